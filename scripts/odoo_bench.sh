#!/usr/bin/env bash
# Run a benchmark that needs a real Odoo 18: NAME SCRIPT [ARGS...]. Without Odoo, print
# "BENCH NAME skipped=no-odoo" and succeed. The script runs with Odoo's Python, on a fresh
# database (zs_bench_NAME) where every addon of this repository is installed (zero_sudo_test
# included: it holds the benchmarks' own models and routes).
set -euo pipefail
name=$1; script=$2; shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=find_odoo.sh
. "$repo/scripts/find_odoo.sh"
if ! find_odoo; then
  echo "BENCH $name skipped=no-odoo"
  exit 0
fi
db="zs_bench_$name"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ODOO_PY" -m pip install -q --disable-pip-version-check -e "$repo[odoo]" >/dev/null
write_odoo_conf "$work/odoo.conf" "$db" "$work"
fresh_database "$db"
modules=$(cd "$repo/addons" && for d in */; do if [ -f "$d/__manifest__.py" ]; then printf '%s,' "${d%/}"; fi; done)
"$ODOO_PY" "$ODOO_BIN" -c "$work/odoo.conf" -d "$db" -i "${modules%,}" --stop-after-init --log-level=warn >"$work/install.log" 2>&1 \
  || { echo "installing the addons failed:"; tail -n 20 "$work/install.log"; exit 1; }
ODOO_RC="$work/odoo.conf" ODOO_BIN="$ODOO_BIN" ZERO_SUDO_DAEMONS_PYTHON="$repo/.venv/bin/python" PYTHONPATH="$ODOO_SRC${PYTHONPATH:+:$PYTHONPATH}" "$ODOO_PY" "$repo/$script" --database "$db" "$@"
