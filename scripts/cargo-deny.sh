#!/usr/bin/env bash
# Supply-chain checks with a pinned cargo-deny, installed into the project-local .tools/ (once;
# later runs reuse it) — nothing global is needed beyond Rust:
#
#   scripts/cargo-deny.sh            # licenses, bans, sources (offline once the index is cached)
#   scripts/cargo-deny.sh advisories # the RustSec advisory database: needs the network
#
# Policy: deny.toml. The install builds cargo-deny from crates.io with its locked dependencies:
# on a clean machine about 3 min of CPU (35 min wall on the shared 2-core machine, under load);
# nothing after that (a check takes ~3 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="0.20.2"
TOOLS="${CARGO_DENY_ROOT:-$ROOT/.tools}"
BIN="$TOOLS/bin/cargo-deny"

if [[ ! -x "$BIN" ]] || [[ "$("$BIN" --version 2>/dev/null)" != "cargo-deny $VERSION" ]]; then
  echo "cargo-deny: installing $VERSION into $TOOLS" >&2
  cargo install --locked --quiet "cargo-deny@$VERSION" --root "$TOOLS" >&2
fi

cd "$ROOT"
if [[ $# -eq 0 ]]; then
  set -- licenses bans sources
fi
exec "$BIN" deny --manifest-path "$ROOT/Cargo.toml" check --hide-inclusion-graph "$@"
