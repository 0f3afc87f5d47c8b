#!/usr/bin/env bash
# Run the addons' pytest-odoo suites on a real Odoo 18, when one is found.
#
# Where Odoo is looked for: scripts/find_odoo.sh (never downloaded or installed here).
# This script installs pytest-odoo and this repository's package into that Python, creates a
# fresh database as an operator would (plain CREATE DATABASE: installing the suite creates
# pg_trgm itself), installs every addon of addons/ and runs their tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
db=${ZERO_SUDO_TEST_DB:-zero_sudo_test}

# shellcheck source=find_odoo.sh
. "$repo/scripts/find_odoo.sh"
if ! find_odoo; then
  echo "Odoo suites SKIPPED: no Odoo 18 source install found at ODOO_PATH=${ODOO_PATH:-/opt/odoo} (set ODOO_PATH, and ODOO_PYTHON if needed; see README 'Odoo suites')"
  exit 0
fi
src=$ODOO_SRC
python=$ODOO_PY

mapfile -t addons < <(cd "$repo/addons" && for d in */; do [ -f "$d/__manifest__.py" ] && echo "${d%/}"; done)
if [ ${#addons[@]} -eq 0 ]; then
  echo "Odoo suites: no addon in addons/ yet, nothing to run"
  exit 0
fi
modules=$(IFS=,; echo "${addons[*]}")

echo "Odoo suites: Odoo 18 at $src, Python $python, database $db, addons $modules"
"$python" -m pip install -q --disable-pip-version-check "pytest>=8" "pytest-odoo>=2,<3" -e "$repo[odoo]" >/dev/null

work=${ZERO_SUDO_TEST_WORKDIR:-$repo/.odoo-test}
mkdir -p "$work"
conf="$work/odoo.conf"
write_odoo_conf "$conf" "$db" "$work"
fresh_database "$db"

log="$work/install.log"
if ! "$python" "$ODOO_BIN" -c "$conf" -d "$db" -i "$modules" --stop-after-init --log-level=warn >"$log" 2>&1; then
  echo "Odoo suites FAILED: installing $modules failed; see $log"; tail -n 30 "$log"; exit 1
fi
if grep -E " (WARNING|ERROR|CRITICAL) " "$log" >/dev/null; then
  echo "Odoo suites FAILED: installing $modules logged warnings or errors; see $log"; grep -E " (WARNING|ERROR|CRITICAL) " "$log" | head -n 20; exit 1
fi

cd "$repo"
set +e
ODOO_RC="$conf" "$python" -m pytest -p no:cacheprovider --odoo-database="$db" --odoo-config="$conf" --odoo-http "${addons[@]/#/addons/}" "$@"
rc=$?
set -e
exit $rc
