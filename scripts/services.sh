#!/usr/bin/env bash
# Install (if needed), start and configure the database servers the integration tests use:
# PostgreSQL 15, MariaDB and Redis on loopback, each with a password-protected test user.
# Idempotent: safe to run again.  Prints the environment to export, e.g.
#   eval "$(scripts/services.sh)"
set -euo pipefail

PG_USER=${SEAM_PG_USER:-seam_test}
PG_PASSWORD=${SEAM_PG_PASSWORD:-seam_test_pw}
MARIADB_USER=${SEAM_MARIADB_USER:-seam_test}
MARIADB_PASSWORD=${SEAM_MARIADB_PASSWORD:-seam_test_pw}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

log() { echo "services: $*" >&2; }

wait_for() {  # wait_for "description" seconds command...
  local what=$1 limit=$2; shift 2
  for _ in $(seq 1 "$limit"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$what did not answer within ${limit}s"; return 1
}

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt-get)"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2
fi

# --- PostgreSQL -------------------------------------------------------------------------------
PG_VERSION=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
if [ -z "$PG_VERSION" ]; then log "no PostgreSQL cluster found under /etc/postgresql"; exit 1; fi
if ! $SUDO pg_ctlcluster "$PG_VERSION" main status >/dev/null 2>&1; then
  log "starting PostgreSQL $PG_VERSION"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start >&2
fi
wait_for "PostgreSQL" 60 $SUDO su postgres -c "psql -tAc 'select 1'"
$SUDO su postgres -c "psql -v ON_ERROR_STOP=1 -q" >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
-- a test database is dropped WITH (FORCE), which must also end an autovacuum worker that happens
-- to be vacuuming it (a process of no role: only pg_signal_backend may end it)
GRANT pg_signal_backend TO $PG_USER;
SQL

# --- MariaDB ----------------------------------------------------------------------------------
if ! mariadb -u root -e 'select 1' >/dev/null 2>&1; then
  log "starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql \
    --bind-address=127.0.0.1 --local-infile=1 >&2
fi
wait_for "MariaDB" 60 mariadb -u root -e 'select 1'
mariadb -u root >&2 <<SQL
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'127.0.0.1' IDENTIFIED BY '$MARIADB_PASSWORD';
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'localhost' IDENTIFIED BY '$MARIADB_PASSWORD';
ALTER USER '$MARIADB_USER'@'127.0.0.1' IDENTIFIED BY '$MARIADB_PASSWORD';
ALTER USER '$MARIADB_USER'@'localhost' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MARIADB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$MARIADB_USER'@'localhost' WITH GRANT OPTION;
SET GLOBAL local_infile = 1;
FLUSH PRIVILEGES;
SQL

# --- Redis (Celery broker for the distributed tests) ------------------------------------------
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
fi
wait_for "Redis" 30 redis-cli -h 127.0.0.1 -p 6379 ping

log "PostgreSQL, MariaDB and Redis are up"
echo "export SEAM_TEST_POSTGRES_URL='postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:5432/postgres'"
echo "export SEAM_TEST_MARIADB_URL='mysql+pymysql://$MARIADB_USER:$MARIADB_PASSWORD@127.0.0.1:3306/mysql'"
echo "export SEAM_TEST_REDIS_URL='redis://127.0.0.1:6379/0'"
