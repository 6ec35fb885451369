#!/usr/bin/env bash
# Starts or stops the servers the tests and the full-stack example use, from Debian's packages,
# on loopback only, with their data under var/ (or $DJTRACE_VAR):
#   scripts/services.sh start [postgres] [redis] [mariadb]   (default: postgres and redis)
#   scripts/services.sh stop  [postgres] [redis] [mariadb]
#   scripts/services.sh env   prints the connection variables
# PostgreSQL refuses to run as root: as root it runs as the `postgres` system user. MariaDB (the
# MySQL tests) runs as the user who starts it, with a `djtrace` account for 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
VAR=${DJTRACE_VAR:-$PWD/var}
PG_PORT=${DJTRACE_PG_PORT:-54329}
REDIS_PORT=${DJTRACE_REDIS_PORT:-63799}
MYSQL_PORT=${DJTRACE_MYSQL_PORT:-33069}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
# As root the server runs as `postgres`, which may not be able to enter this checkout's
# directories (a clone under /root, say): its files then live under /var/tmp, one directory
# per checkout.
if [ "$(id -u)" -eq 0 ] && [ -z "${DJTRACE_VAR:-}" ]; then
  PG_HOME=/var/tmp/djtrace-pg-$(printf '%s' "$PWD" | md5sum | cut -c1-12)
else
  PG_HOME=$VAR
fi
# Servers on ports other than the defaults (the test command picks ports of the checkout's
# own) keep their files apart, so that they run beside the default ones.
PG_SUFFIX=$([ "$PG_PORT" = 54329 ] || echo "-$PG_PORT")
REDIS_SUFFIX=$([ "$REDIS_PORT" = 63799 ] || echo "-$REDIS_PORT")
PG_DATA=$PG_HOME/postgres$PG_SUFFIX
PG_SOCK=$PG_HOME/postgres-socket$PG_SUFFIX
REDIS_DIR=$VAR/redis$REDIS_SUFFIX
MYSQL_DIR=$VAR/mariadb$([ "$MYSQL_PORT" = 33069 ] || echo "-$MYSQL_PORT")

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  [ -n "$PG_BIN" ] || { echo "services: PostgreSQL is not installed (scripts/bootstrap.sh)"; exit 1; }
  mkdir -p "$PG_HOME" "$PG_SOCK"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_SOCK"; chmod o+x "$PG_HOME"; fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PG_DATA"
    [ "$(id -u)" -eq 0 ] && chown postgres "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then return; fi
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -w -l "$PG_DATA/server.log" \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_SOCK -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
  echo "services: postgres on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  [ -f "$PG_DATA/PG_VERSION" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
}

start_redis() {
  command -v redis-server >/dev/null || { echo "services: redis-server is not installed"; exit 1; }
  mkdir -p "$REDIS_DIR"
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then return; fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" --daemonize yes \
    --save "" --appendonly no --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "services: redis on 127.0.0.1:$REDIS_PORT"
}

stop_redis() {
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
}

mysql_client() {
  mariadb --no-defaults --socket="$MYSQL_DIR/mysqld.sock" -u root "$@"
}

start_mariadb() {
  local mariadbd
  mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)  # /usr/sbin: not on every PATH
  [ -x "$mariadbd" ] ||
    { echo "services: mariadb-server is not installed (scripts/bootstrap.sh)"; exit 1; }
  mkdir -p "$MYSQL_DIR"
  if mysql_client -e "SELECT 1" >/dev/null 2>&1; then return; fi
  local as_user=()
  [ "$(id -u)" -eq 0 ] && as_user=(--user=root)  # mariadbd runs as root only when told to
  if [ ! -d "$MYSQL_DIR/data/mysql" ]; then
    mariadb-install-db --no-defaults "${as_user[@]}" --datadir="$MYSQL_DIR/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$MYSQL_DIR/install.log" 2>&1 ||
      { tail -20 "$MYSQL_DIR/install.log"; exit 1; }
  fi
  "$mariadbd" --no-defaults "${as_user[@]}" --datadir="$MYSQL_DIR/data" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$MYSQL_DIR/mysqld.sock" \
    --pid-file="$MYSQL_DIR/mysqld.pid" --log-error="$MYSQL_DIR/server.log" --skip-name-resolve \
    --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=64M --max-connections=200 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    </dev/null >/dev/null 2>&1 &
  for _ in $(seq 300); do mysql_client -e "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
  mysql_client -e "SELECT 1" >/dev/null 2>&1 ||
    { echo "services: MariaDB did not start"; tail -20 "$MYSQL_DIR/server.log"; exit 1; }
  mysql_client -e "CREATE USER IF NOT EXISTS 'djtrace'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'djtrace'@'127.0.0.1'"
  echo "services: mariadb on 127.0.0.1:$MYSQL_PORT"
}

stop_mariadb() {
  [ -f "$MYSQL_DIR/mysqld.pid" ] || return 0
  local pid
  pid=$(cat "$MYSQL_DIR/mysqld.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

action=${1:-start}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(postgres redis)
case "$action" in
  start) for t in "${targets[@]}"; do "start_$t"; done ;;
  stop) for t in "${targets[@]}"; do "stop_$t"; done ;;
  env)
    echo "DB_HOST=127.0.0.1 DB_PORT=$PG_PORT DB_USER=postgres DB_PASSWORD="
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "MYSQL_HOST=127.0.0.1 MYSQL_PORT=$MYSQL_PORT MYSQL_USER=djtrace MYSQL_PASSWORD=" ;;
  *) echo "usage: $0 start|stop|env [postgres] [redis] [mariadb]"; exit 2 ;;
esac
