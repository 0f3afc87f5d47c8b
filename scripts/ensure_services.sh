#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on localhost before the tests run.
# A server that is installed but down is started; one that is missing is installed from
# Debian's packages (as root). When one still cannot be had, say so in one line and fail.
set -uo pipefail

PG_HOST=${ZERO_SUDO_DB_HOST:-127.0.0.1}
PG_PORT=${ZERO_SUDO_DB_PORT:-5432}
REDIS_PORT=6379
AMQP_PORT=5672

say() { echo "services: $*" >&2; }
die() { echo "services: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port seconds
  for _ in $(seq 1 $(( $2 * 4 ))); do port_open "$1" && return 0; sleep 0.25; done
  return 1
}

apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  command -v apt-get >/dev/null || return 1
  say "installing $* with apt-get"
  { [ -n "${ZERO_SUDO_APT_UPDATED:-}" ] || apt-get update -qq; } >/dev/null 2>&1
  export ZERO_SUDO_APT_UPDATED=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib || die "PostgreSQL is not installed and could not be: run 'apt-get install postgresql' as root, or point ZERO_SUDO_DB_HOST/PORT at a running server"
  fi
  if ! pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && break; sleep 0.5; done
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT and could not be started: see /var/log/postgresql/"
  fi
  # Odoo refuses to run as 'postgres': the tests connect as the OS user, a superuser role.
  local me; me=$(id -un)
  if ! psql -h "$PG_HOST" -p "$PG_PORT" -U "$me" -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      su postgres -c "psql -qc \"CREATE ROLE \\\"$me\\\" SUPERUSER LOGIN\"" >/dev/null 2>&1 || true
    fi
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$me" -d postgres -Atqc 'select 1' >/dev/null 2>&1 \
      || die "PostgreSQL answers but role '$me' cannot log in on $PG_HOST:$PG_PORT: create it (createuser -s $me) and allow trust or password auth for localhost"
  fi
}

ensure_redis() {
  port_open "$REDIS_PORT" && return 0
  command -v redis-server >/dev/null || apt_install redis-server || die "Redis is not installed and could not be: run 'apt-get install redis-server' as root"
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null 2>&1 || true
  wait_port "$REDIS_PORT" 15 || die "Redis does not answer on 127.0.0.1:$REDIS_PORT and could not be started"
}

ensure_rabbitmq() {
  port_open "$AMQP_PORT" && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server || die "RabbitMQ is not installed and could not be: run 'apt-get install rabbitmq-server' as root"
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port "$AMQP_PORT" 90 || die "RabbitMQ does not answer on 127.0.0.1:$AMQP_PORT and could not be started: see /var/log/rabbitmq/"
}

# Servers the tests start privately on loopback ports of their own (never as services): the
# proxy of the one-origin stack, and the pooler of the PgBouncer test. A missing one is
# installed; one that cannot be had is said in one line, and its tests say they skip.
ensure_private_server_packages() {
  local missing=() package binary
  for package in nginx pgbouncer; do
    binary=/usr/sbin/$package
    [ -x "$binary" ] || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}" || true
  for package in "${missing[@]}"; do
    [ -x "/usr/sbin/$package" ] || say "could not install $package: the tests that need it skip"
  done
  # Installing them as packages starts them as services; the tests want their ports free.
  for package in "${missing[@]}"; do
    command -v systemctl >/dev/null && systemctl disable --now "$package" >/dev/null 2>&1
    service "$package" stop >/dev/null 2>&1 || true
  done
}

ensure_postgres
ensure_redis
ensure_rabbitmq
ensure_private_server_packages
say "PostgreSQL, Redis and RabbitMQ answer"
