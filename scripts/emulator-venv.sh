#!/usr/bin/env bash
# Create (idempotently) the tools virtualenv and link it as .venv-tools/ in the checkout:
#
#   scripts/emulator-venv.sh            # test tools: ministack (AWS emulator), cfn-lint, boto3,
#                                       # duckdb (reads the Parquet export back in the tests),
#                                       # schemathesis (tests `orders serve` against docs/openapi.json)
#   scripts/emulator-venv.sh --release  # also cargo-lambda (+ zig), for the release zips of
#                                       # scripts/deploy.sh and the benchmarks
#
# Prints the venv path on stdout. The venv itself lives in the tools cache (scripts/tools-cache.sh),
# one per requirement list, so a fresh clone reuses it: a fast no-op when it is there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools-cache.sh
source "$ROOT/scripts/tools-cache.sh"
PYTHON="${PYTHON:-python3}"

TEST_REQUIREMENTS="ministack==1.5.33
cfn-lint==1.51.0
boto3==1.43.106
duckdb==1.5.6
schemathesis==4.32.5"
RELEASE_REQUIREMENTS="cargo-lambda==1.9.2"

hash_of() { printf '%s' "$1" | sha256sum | cut -c1-16; }
VENV="${TOOLS_VENV:-$ORDERS_TOOLS_CACHE/venv-$(hash_of "$TEST_REQUIREMENTS")}"

# install LABEL REQUIREMENTS: pip-installs REQUIREMENTS into the venv unless its stamp says done.
install() {
  local label="$1" requirements="$2"
  local stamp="$VENV/.$label.sha256" want
  want="$(hash_of "$requirements")"
  if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "emulator-venv: installing into $VENV: $(echo "$requirements" | tr '\n' ' ')" >&2
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV" >&2
  fi
  local file="$VENV/$label-requirements.txt"
  printf '%s\n' "$requirements" > "$file"
  "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$file" >&2
  printf '%s' "$want" > "$stamp"
}

with_tools_lock install test "$TEST_REQUIREMENTS"
if [[ "${1:-}" == "--release" ]]; then
  with_tools_lock install release "$RELEASE_REQUIREMENTS"
fi

# Tests and docs name ./.venv-tools; it is a link to the cached venv. A real directory there is
# the venv of an older checkout layout (before the cache): replaced by the link.
LINK="$ROOT/.venv-tools"
if [[ "$(readlink "$LINK" 2>/dev/null)" != "$VENV" ]]; then
  [[ -d "$LINK" && ! -L "$LINK" ]] && rm -rf "$LINK"
  ln -sfn "$VENV" "$LINK"
fi
echo "$VENV"
