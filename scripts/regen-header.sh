#!/usr/bin/env bash
# Rewrites the committed C headers include/b2dest.h and include/b2dest_ffi.h from the ones
# build.rs generates into OUT_DIR. With --check, compares them instead and fails when they
# differ or cannot be compared. Other arguments go to `cargo build` (e.g. --release).
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
if [ "${1:-}" = --check ]; then
  check=1
  shift
fi

# The build script's OUT_DIR, from cargo's own report of running it.
out_dir=$(cargo build -p b2dest --message-format=json "$@" |
  grep '"reason":"build-script-executed"' | grep -E '"package_id":"[^"]*[#/]b2dest[@#]' |
  sed -n 's/.*"out_dir":"\([^"]*\)".*/\1/p' | tail -n 1)
if [ -z "$out_dir" ]; then
  echo "regen-header: cargo did not report the b2dest build script's OUT_DIR" >&2
  exit 1
fi

status=0
for name in b2dest.h b2dest_ffi.h; do
  if [ ! -f "$out_dir/$name" ]; then
    echo "regen-header: $out_dir/$name is missing: build.rs could not generate it (see its warning)" >&2
    exit 1
  fi
  if ((check)); then
    if ! cmp -s "$out_dir/$name" "include/$name"; then
      echo "include/$name differs from what the code generates: run scripts/regen-header.sh and commit include/" >&2
      diff -u "include/$name" "$out_dir/$name" >&2 || true
      status=1
    fi
  elif ! cmp -s "$out_dir/$name" "include/$name"; then
    cp "$out_dir/$name" "include/$name"
    echo "include/$name regenerated"
  fi
done
exit $status
