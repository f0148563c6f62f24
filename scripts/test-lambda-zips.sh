#!/usr/bin/env bash
# Zips the six function binaries of the test build (target/debug/, `cargo build --workspace
# --all-targets`, run by scripts/test.sh) as Lambda bootstraps, for the emulator tests:
#
#   scripts/test-lambda-zips.sh OUT_DIR      → OUT_DIR/<function>/bootstrap.zip
#
# The emulator runs a provided.al2023 bootstrap as a process on this host (x86_64 Linux), so the
# test build's own binaries serve, and nothing is compiled twice. They are debug builds with the
# test build's unified features (sqlite, test-util… compiled in, none of which changes a function's
# behaviour: features here only add modules). What ships is the release cross build of
# scripts/deploy.sh (cargo lambda); deploy that to the emulator by hand before a release
# (CONTRIBUTING.md, "Before a release").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:?usage: test-lambda-zips.sh OUT_DIR}"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
FUNCTIONS=(ingest processor projector notifier reconciler archiver)

exec python3 - "$BIN_DIR" "$OUT" "${FUNCTIONS[@]}" <<'PY'
import os, subprocess, sys, tempfile, zipfile
bin_dir, out, functions = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in functions:
    binary = os.path.join(bin_dir, name)
    if not os.access(binary, os.X_OK):
        sys.exit(f"test-lambda-zips: {binary} is missing: run `cargo build --workspace --all-targets` first")
    target = os.path.join(out, name, "bootstrap.zip")
    if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(binary):
        print(f"test-lambda-zips: {target} is up to date", file=sys.stderr)
        continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = (0o100755 << 16)  # a regular, executable file once unzipped
    info.compress_type = zipfile.ZIP_DEFLATED
    # Without debug info (symbols stay, so a backtrace still names functions): a third of the
    # size, so each stack deploy uploads and unpacks less.
    with tempfile.TemporaryDirectory() as scratch:
        stripped = os.path.join(scratch, "bootstrap")
        subprocess.run(["strip", "--strip-debug", "-o", stripped, binary], check=True)
        with open(stripped, "rb") as f, zipfile.ZipFile(target + ".tmp", "w") as z:
            z.writestr(info, f.read(), compresslevel=1)
    os.replace(target + ".tmp", target)
    print(f"test-lambda-zips: {target} ({os.path.getsize(target) / 1e6:.1f} MB, "
          f"from {os.path.getsize(binary) / 1e6:.1f} MB)", file=sys.stderr)
PY
