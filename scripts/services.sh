#!/usr/bin/env bash
# Starts, stops and describes the local services the integration tests talk to.
#
#   scripts/services.sh start   start what is not running yet and wait until each one answers
#   scripts/services.sh stop    stop what this script started
#   scripts/services.sh status  say what answers
#   scripts/services.sh env     print the `export` lines tests read (eval "$(scripts/services.sh env)")
#   scripts/services.sh check   exercise each service once (push an image, query, call the AWS double)
#
# Everything listens on 127.0.0.1 only. Logs and pid files live in /var/tmp/slipway-services,
# the PostgreSQL cluster in /var/tmp/slipway-pg; both survive between runs on one machine, so a
# second `start` returns at once. Install the programs first with scripts/install-test-deps.sh.
set -euo pipefail

RUN_DIR="${SLIPWAY_SERVICES_DIR:-/var/tmp/slipway-services}"
PG_DIR="${SLIPWAY_PG_DIR:-/var/tmp/slipway-pg}"
VENV="${SLIPWAY_VENV:-/var/tmp/slipway-venv}"
HOST=127.0.0.1
REGISTRY_PORT=5000
MOTO_PORT=5001
PG_PORT=5433
PG_DB=slipway
SMTP_PORT=8025
IRC_PORT=6667
PYPI_PORT=5002
# The index's one account: a test credential on loopback, which the tests read from `env`.
PYPI_USER=slipway
PYPI_PASSWORD=pypi-test-password
CHROMIUM=/usr/bin/chromium
START_TIMEOUT="${SLIPWAY_SERVICES_TIMEOUT:-60}"

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

http_answers() { curl -s -o /dev/null --max-time 2 "$1"; }

# Polls `$2...` until it succeeds; fails with the log's tail after START_TIMEOUT seconds.
wait_until() {
  local name="$1" logfile="$2" deadline
  shift 2
  deadline=$(($(date +%s) + START_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      [ -f "$logfile" ] && tail -n 20 "$logfile" >&2
      die "$name did not become ready within ${START_TIMEOUT}s (log: $logfile)"
    fi
    sleep 0.3
  done
}

# True, saying so, when service $1 already answers on $2 (the check is the rest): nothing to start.
answering() {
  local name="$1" addr="$2"
  shift 2
  "$@" || return 1
  log "$name: answering on $addr"
}

# Waits until service $1, just spawned, passes the check (the rest); then says where it listens ($2).
started() {
  local name="$1" addr="$2"
  shift 2
  wait_until "$name" "$RUN_DIR/$name.log" "$@"
  log "$name: started on $addr"
}

# Starts a long-running program detached from this shell, recording its pid.
spawn() {
  local name="$1"
  shift
  # fd 9 holds the start lock; the service must not keep it.
  setsid nohup "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$RUN_DIR/$name.pid"
}

# Outside CI a machine without Docker still gets the other services; tests that need Docker skip.
docker_missing() {
  if [ "${CI:-}" = true ]; then die "$1"; fi
  log "warning: $1; tests that need Docker will skip"
  return 1
}

ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || { docker_missing "the Docker daemon is not running and dockerd is not installed"; return 0; }
  [ "$(id -u)" -eq 0 ] || { docker_missing "the Docker daemon is not running (start it, or run this as root)"; return 0; }
  log "docker: daemon not answering; starting dockerd"
  spawn dockerd dockerd
  wait_until docker "$RUN_DIR/dockerd.log" docker info
}

registry_url() { echo "http://$HOST:$REGISTRY_PORT/v2/"; }

start_registry() {
  answering registry "$HOST:$REGISTRY_PORT" http_answers "$(registry_url)" && return 0
  command -v docker-registry >/dev/null || die "docker-registry not found: run scripts/install-test-deps.sh"
  mkdir -p "$RUN_DIR/registry-data"
  cat >"$RUN_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $RUN_DIR/registry-data
  delete:
    enabled: true
http:
  addr: $HOST:$REGISTRY_PORT
EOF
  spawn registry docker-registry serve "$RUN_DIR/registry.yml"
  started registry "$HOST:$REGISTRY_PORT" curl -sf --max-time 2 "$(registry_url)"
}

moto_url() { echo "http://$HOST:$MOTO_PORT"; }

start_moto() {
  answering moto "$HOST:$MOTO_PORT" http_answers "$(moto_url)/moto-api/" && return 0
  [ -x "$VENV/bin/moto_server" ] || die "moto_server not found in $VENV: run scripts/install-test-deps.sh"
  spawn moto "$VENV/bin/moto_server" -H "$HOST" -p "$MOTO_PORT"
  started moto "$HOST:$MOTO_PORT" curl -sf --max-time 2 "$(moto_url)/moto-api/"
}

pg_bin() {
  local dir
  dir="$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] || die "PostgreSQL server not found: run scripts/install-test-deps.sh"
  echo "$dir"
}

# PostgreSQL refuses to run as root, so the cluster belongs to the postgres user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_url() { echo "postgres://postgres@$HOST:$PG_PORT/$PG_DB"; }

pg_ready() { psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

start_postgres() {
  local bin
  if ! pg_ready; then
    bin="$(pg_bin)"
    mkdir -p "$PG_DIR/run" "$RUN_DIR"
    touch "$RUN_DIR/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$PG_DIR" "$RUN_DIR/postgres.log"; fi
    if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
      log "postgres: creating cluster in $PG_DIR/data"
      as_pg "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 >"$RUN_DIR/initdb.log" 2>&1 \
        || { tail -n 20 "$RUN_DIR/initdb.log" >&2; die "initdb failed (log: $RUN_DIR/initdb.log)"; }
    fi
    as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$RUN_DIR/postgres.log" \
      -o "-c listen_addresses=$HOST -p $PG_PORT -k $PG_DIR/run" start >/dev/null 9>&- \
      || { tail -n 20 "$RUN_DIR/postgres.log" >&2; die "postgres failed to start (log: $RUN_DIR/postgres.log)"; }
    started postgres "$HOST:$PG_PORT" pg_ready
  else
    log "postgres: answering on $HOST:$PG_PORT"
  fi
  if [ "$(psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc "select 1 from pg_database where datname = '$PG_DB'")" != 1 ]; then
    psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -qc "create database $PG_DB" >/dev/null
  fi
}

# Answers when something accepts TCP connections on $1:$2.
tcp_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The SMTP sink email notifications go to: aiosmtpd writes every message it accepts into a
# Maildir ($RUN_DIR/mail/new), which tests read.
start_smtp() {
  answering smtp "$HOST:$SMTP_PORT" tcp_answers "$HOST" "$SMTP_PORT" && return 0
  "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null || die "aiosmtpd not found in $VENV: run scripts/install-test-deps.sh"
  mkdir -p "$RUN_DIR/mail/tmp" "$RUN_DIR/mail/new" "$RUN_DIR/mail/cur"
  spawn smtp "$VENV/bin/python" -m aiosmtpd -n -l "$HOST:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$RUN_DIR/mail"
  started smtp "$HOST:$SMTP_PORT (Maildir $RUN_DIR/mail)" tcp_answers "$HOST" "$SMTP_PORT"
}

pypi_url() { echo "http://$HOST:$PYPI_PORT"; }

# A real Python package index (pypiserver): uploads need $PYPI_USER's password (htpasswd),
# downloads are open, packages live in $RUN_DIR/pypi-packages.
start_pypi() {
  answering pypi "$HOST:$PYPI_PORT" http_answers "$(pypi_url)/simple/" && return 0
  [ -x "$VENV/bin/pypi-server" ] || die "pypi-server not found in $VENV: run scripts/install-test-deps.sh"
  mkdir -p "$RUN_DIR/pypi-packages"
  "$VENV/bin/python" - "$RUN_DIR/pypi.htpasswd" "$PYPI_USER" "$PYPI_PASSWORD" <<'PY'
import sys
from passlib.apache import HtpasswdFile
ht = HtpasswdFile(sys.argv[1], new=True)
ht.set_password(sys.argv[2], sys.argv[3])
ht.save()
PY
  spawn pypi "$VENV/bin/pypi-server" run -i "$HOST" -p "$PYPI_PORT" -a update -P "$RUN_DIR/pypi.htpasswd" \
    "$RUN_DIR/pypi-packages"
  started pypi "$HOST:$PYPI_PORT" curl -sf --max-time 2 "$(pypi_url)/simple/"
}

# The IRC server notifications are sent to, on loopback only.
start_irc() {
  answering irc "$HOST:$IRC_PORT" tcp_answers "$HOST" "$IRC_PORT" && return 0
  command -v ngircd >/dev/null || die "ngircd not found: run scripts/install-test-deps.sh"
  cat >"$RUN_DIR/ngircd.conf" <<EOF
[Global]
	Name = irc.slipway.test
	Info = Slipway test IRC server
	Listen = $HOST
	Ports = $IRC_PORT
[Limits]
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 30
[Options]
	DNS = no
	Ident = no
	PAM = no
EOF
  spawn irc ngircd -n -f "$RUN_DIR/ngircd.conf"
  started irc "$HOST:$IRC_PORT" tcp_answers "$HOST" "$IRC_PORT"
}

check_chromium() {
  [ -x "$CHROMIUM" ] || die "chromium not found at $CHROMIUM: run scripts/install-test-deps.sh"
  "$CHROMIUM" --version >/dev/null 2>&1 || die "$CHROMIUM --version failed"
  log "chromium: $("$CHROMIUM" --version 2>/dev/null)"
}

stop_pidfile() {
  local name="$1"
  if pid_alive "$RUN_DIR/$name.pid"; then
    kill "$(cat "$RUN_DIR/$name.pid")" && log "$name: stopped"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

cmd_start() {
  command -v curl >/dev/null || die "curl not found: run scripts/install-test-deps.sh"
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/start.lock"
  flock 9
  ensure_docker
  start_registry
  start_moto
  start_postgres
  start_smtp
  start_irc
  start_pypi
  check_chromium
}

cmd_stop() {
  stop_pidfile registry
  stop_pidfile moto
  stop_pidfile smtp
  stop_pidfile irc
  stop_pidfile pypi
  if [ -s "$PG_DIR/data/postmaster.pid" ]; then
    as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null && log "postgres: stopped"
  fi
}

cmd_status() {
  local rc=0
  if http_answers "$(registry_url)"; then log "registry: up"; else log "registry: down"; rc=1; fi
  if http_answers "$(moto_url)/moto-api/"; then log "moto: up"; else log "moto: down"; rc=1; fi
  if pg_ready; then log "postgres: up"; else log "postgres: down"; rc=1; fi
  if tcp_answers "$HOST" "$SMTP_PORT"; then log "smtp: up"; else log "smtp: down"; rc=1; fi
  if tcp_answers "$HOST" "$IRC_PORT"; then log "irc: up"; else log "irc: down"; rc=1; fi
  if http_answers "$(pypi_url)/simple/"; then log "pypi: up"; else log "pypi: down"; rc=1; fi
  if [ -x "$CHROMIUM" ]; then log "chromium: installed"; else log "chromium: missing"; rc=1; fi
  return "$rc"
}

cmd_env() {
  cat <<EOF
export SLIPWAY_TEST_REGISTRY=$HOST:$REGISTRY_PORT
export SLIPWAY_TEST_MOTO=$(moto_url)
export SLIPWAY_TEST_POSTGRES=$(pg_url)
export SLIPWAY_TEST_CHROMIUM=$CHROMIUM
export SLIPWAY_TEST_SMTP=$HOST:$SMTP_PORT
export SLIPWAY_TEST_MAILDIR=$RUN_DIR/mail
export SLIPWAY_TEST_IRC=$HOST:$IRC_PORT
export SLIPWAY_TEST_PYPI=$(pypi_url)
export SLIPWAY_TEST_PYPI_AUTH=$PYPI_USER:$PYPI_PASSWORD
export SLIPWAY_TEST_BUSYBOX_IMAGE=slipway-test/busybox:latest
export SLIPWAY_TEST_DEBIAN_IMAGE=slipway-test/debian:latest
export SLIPWAY_TEST_DEBIAN_NODE_IMAGE=slipway-test/debian-node:latest
EOF
}

# One real round trip per service, for a quick diagnosis by hand.
cmd_check() {
  local tag="$HOST:$REGISTRY_PORT/slipway-check/busybox:latest"
  docker tag slipway-test/busybox:latest "$tag"
  docker push -q "$tag" >/dev/null && log "registry: pushed $tag"
  docker rmi -f "$tag" >/dev/null
  docker pull -q "$tag" >/dev/null && log "registry: pulled $tag back"
  docker rmi -f "$tag" >/dev/null
  curl -sf -X PUT "$(moto_url)/slipway-check-bucket" >/dev/null
  curl -sf "$(moto_url)/" | grep -q slipway-check-bucket && log "moto: created and listed an S3 bucket"
  psql "$(pg_url)" -tAc 'select version()' | sed 's/^/[services] postgres: /' >&2
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>slipway</p>' 2>/dev/null \
    | grep -q '<p>slipway</p>' && log "chromium: rendered a page headless"
  curl -sf "$(pypi_url)/simple/" >/dev/null && log "pypi: listed the simple index"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  check) cmd_check ;;
  *) echo "usage: $0 start|stop|status|env|check" >&2; exit 2 ;;
esac
