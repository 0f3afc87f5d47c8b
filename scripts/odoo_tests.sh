#!/usr/bin/env bash
# Run the addons' pytest-odoo suites on a real Odoo 18, when one is found.
#
# Where Odoo is looked for (never downloaded or installed by this project):
#   ODOO_PATH    an Odoo 18 source install: the folder holding odoo-bin / the odoo package,
#                or one with that tree in src/ (default /opt/odoo)
#   ODOO_PYTHON  the Python that runs that Odoo (default $ODOO_PATH/venv/bin/python, else python3)
# This script installs pytest-odoo and this repository's package into that Python, creates a
# fresh database (with pg_trgm, which Odoo only adds to databases it creates itself), installs
# every addon of addons/ and runs their tests.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ODOO_PATH=${ODOO_PATH:-/opt/odoo}
db=${ZERO_SUDO_TEST_DB:-zero_sudo_test}
pg_host=${ZERO_SUDO_DB_HOST:-127.0.0.1}
pg_port=${ZERO_SUDO_DB_PORT:-5432}

src=""
for candidate in "$ODOO_PATH" "$ODOO_PATH/src"; do
  if [ -f "$candidate/odoo/release.py" ]; then src=$candidate; break; fi
done
python=${ODOO_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$ODOO_PATH/venv/bin/python" ]; then python="$ODOO_PATH/venv/bin/python"; else python=python3; fi
fi
if [ -z "$src" ] || ! (cd "$src" && "$python" -c 'import odoo.release as r; assert r.version_info[0] == 18' 2>/dev/null); then
  echo "Odoo suites SKIPPED: no Odoo 18 source install found at ODOO_PATH=$ODOO_PATH (set ODOO_PATH, and ODOO_PYTHON if needed; see README 'Odoo suites')"
  exit 0
fi

mapfile -t addons < <(cd "$repo/addons" && for d in */; do [ -f "$d/__manifest__.py" ] && echo "${d%/}"; done)
if [ ${#addons[@]} -eq 0 ]; then
  echo "Odoo suites: no addon in addons/ yet, nothing to run"
  exit 0
fi
modules=$(IFS=,; echo "${addons[*]}")

echo "Odoo suites: Odoo 18 at $src, Python $python, database $db, addons $modules"
"$python" -m pip install -q --disable-pip-version-check "pytest>=8" "pytest-odoo>=2,<3" -e "$repo[odoo]" >/dev/null

# zero_sudo is a server-wide module (Redis sessions, cache coherence) once it exists.
server_wide=base,web
[ -f "$repo/addons/zero_sudo/__manifest__.py" ] && server_wide=base,web,zero_sudo

work="$repo/.odoo-test"
mkdir -p "$work"
conf="$work/odoo.conf"
core_addons="$src/odoo/addons"
[ -d "$src/addons" ] && core_addons="$src/addons,$core_addons"
cat > "$conf" <<CONF
[options]
addons_path = $core_addons,$repo/addons
data_dir = $work/data
db_host = $pg_host
db_port = $pg_port
db_user = $(id -un)
db_name = $db
list_db = False
without_demo = all
http_port = ${ZERO_SUDO_TEST_HTTP_PORT:-8169}
gevent_port = ${ZERO_SUDO_TEST_GEVENT_PORT:-8172}
server_wide_modules = $server_wide
log_level = warn

[zero_sudo]
redis_url = ${ZERO_SUDO_REDIS_URL:-redis://127.0.0.1:6379/0}
CONF

psql -h "$pg_host" -p "$pg_port" -d postgres -qAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
psql -h "$pg_host" -p "$pg_port" -d postgres -qAtc "CREATE DATABASE \"$db\" ENCODING 'unicode' LC_COLLATE 'C' TEMPLATE template0" >/dev/null
psql -h "$pg_host" -p "$pg_port" -d "$db" -qAtc "CREATE EXTENSION IF NOT EXISTS pg_trgm" >/dev/null

log="$work/install.log"
# odoo-bin in a git checkout, setup/odoo in a release tree: the same three lines.
odoo_bin="$src/odoo-bin"; [ -f "$odoo_bin" ] || odoo_bin="$src/setup/odoo"
if ! "$python" "$odoo_bin" -c "$conf" -d "$db" -i "$modules" --stop-after-init --log-level=warn >"$log" 2>&1; then
  echo "Odoo suites FAILED: installing $modules failed; see $log"; tail -n 30 "$log"; exit 1
fi
if grep -E " (ERROR|CRITICAL) " "$log" >/dev/null; then
  echo "Odoo suites FAILED: installing $modules logged errors; see $log"; grep -E " (ERROR|CRITICAL) " "$log" | head -n 20; exit 1
fi

cd "$repo"
set +e
ODOO_RC="$conf" "$python" -m pytest -p no:cacheprovider --odoo-database="$db" --odoo-config="$conf" --odoo-http "${addons[@]/#/addons/}" "$@"
rc=$?
set -e
exit $rc
