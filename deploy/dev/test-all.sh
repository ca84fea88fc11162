#!/usr/bin/env bash
# The project's test command (see deploy/README.md):
#
#   bash deploy/dev/test-all.sh [extra cargo test args...]
#
# 1. makes sure the pinned nats-server and PostgreSQL are installed and running
#    (ensure-services.sh), and exports the pinned binary's path as WANGGE_NATS_SERVER: the
#    integration tests start their own servers from exactly that binary,
# 2. checks that a recent enough cargo (rustup's toolchain) is available,
# 3. runs `cargo test --workspace --all-targets "$@"` from the repository root and exits with
#    cargo's status. Nothing is printed after cargo's own output (CI reads its closing lines).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

log() { printf '[test-all] %s\n' "$*"; }
die() {
    printf '[test-all] ERROR: %s\n' "$*" >&2
    exit 1
}

bash "$here/ensure-services.sh"

# Integration tests and benchmarks start their own nats-servers from the pinned binary, never
# from PATH (where a system nats-server of another version may be).
WANGGE_NATS_SERVER="$(bash "$here/install-nats-server.sh")" || die "could not install the pinned nats-server"
export WANGGE_NATS_SERVER
# rustup installs into ~/.cargo/bin, which a non-login shell (CI, cron, sudo) may not have on PATH.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [[ -x "$cargo_bin/cargo" ]]; then
    case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac
fi
export PATH

rustup_hint="Install Rust with rustup (Debian's own cargo/rustc packages are too old for our dependencies):
    rustup (the official Rust installer) with: --profile minimal --component clippy,rustfmt
    . \"\$HOME/.cargo/env\"
then run this script again."

command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH or in $cargo_bin.
$rustup_hint"

# The workspace's minimum Rust version (Cargo.toml: rust-version = "1.xx").
min_rust="$(sed -n 's/^rust-version *= *"\([0-9][0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)"
cargo_version="$(cargo --version 2>/dev/null | awk '{ print $2 }')" ||
    die "'cargo --version' failed ($(command -v cargo)).
$rustup_hint"
if [[ -n "$min_rust" && -n "$cargo_version" ]]; then
    lowest="$(printf '%s\n%s\n' "$min_rust" "${cargo_version%%-*}" | sort -V | head -n 1)"
    if [[ "$lowest" != "$min_rust" ]]; then
        die "$(command -v cargo) is version $cargo_version, the workspace needs Rust >= $min_rust.
$rustup_hint"
    fi
fi

cd "$root"
log "cargo $cargo_version: cargo test --workspace --all-targets $*"
exec cargo test --workspace --all-targets "$@"
