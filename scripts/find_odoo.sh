# Sourced by the scripts that need a real Odoo 18; never downloads or installs one.
#   ODOO_PATH    an Odoo 18 source install: the folder holding the odoo package, or one with
#                that tree in src/ (default /opt/odoo)
#   ODOO_PYTHON  the Python that runs it (default $ODOO_PATH/venv/bin/python, else python3)
# Sets ODOO_SRC, ODOO_PY and ODOO_BIN, and returns 1 when no Odoo 18 is found.
find_odoo() {
  local path=${ODOO_PATH:-/opt/odoo} candidate
  ODOO_SRC=""
  for candidate in "$path" "$path/src"; do
    if [ -f "$candidate/odoo/release.py" ]; then ODOO_SRC=$candidate; break; fi
  done
  ODOO_PY=${ODOO_PYTHON:-}
  if [ -z "$ODOO_PY" ]; then
    if [ -x "$path/venv/bin/python" ]; then ODOO_PY="$path/venv/bin/python"; else ODOO_PY=python3; fi
  fi
  [ -n "$ODOO_SRC" ] || return 1
  (cd "$ODOO_SRC" && "$ODOO_PY" -c 'import odoo.release as r; assert r.version_info[0] == 18' 2>/dev/null) || return 1
  # odoo-bin in a git checkout, setup/odoo in a release tree: the same three lines.
  ODOO_BIN="$ODOO_SRC/odoo-bin"
  [ -f "$ODOO_BIN" ] || ODOO_BIN="$ODOO_SRC/setup/odoo"
  return 0
}

# write_odoo_conf FILE DB WORKDIR: an odoo.conf for this repository's addons on that database.
write_odoo_conf() {
  local conf=$1 db=$2 work=$3 repo core_addons server_wide=base,web
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  core_addons="$ODOO_SRC/odoo/addons"
  [ -d "$ODOO_SRC/addons" ] && core_addons="$ODOO_SRC/addons,$core_addons"
  # zero_sudo is a server-wide module (Redis sessions, cache coherence) once it exists.
  [ -f "$repo/addons/zero_sudo/__manifest__.py" ] && server_wide=base,web,zero_sudo
  cat > "$conf" <<CONF
[options]
addons_path = $core_addons,$repo/addons
data_dir = $work/data
db_host = ${ZERO_SUDO_DB_HOST:-127.0.0.1}
db_port = ${ZERO_SUDO_DB_PORT:-5432}
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
}

# fresh_database DB: drop and create it as an operator would, without Odoo's extensions:
# installing zero_sudo must create pg_trgm itself (or say what to run).
fresh_database() {
  local db=$1 host=${ZERO_SUDO_DB_HOST:-127.0.0.1} port=${ZERO_SUDO_DB_PORT:-5432}
  psql -h "$host" -p "$port" -d postgres -qAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  psql -h "$host" -p "$port" -d postgres -qAtc "CREATE DATABASE \"$db\" ENCODING 'unicode' LC_COLLATE 'C' TEMPLATE template0" >/dev/null
}
