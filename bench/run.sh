#!/usr/bin/env bash
# Benchmark of libb2dest.so against rclone on the local B2 emulator.
#
#   bash bench/run.sh            # full: 2 GiB / 8 GiB files, 1,000 files, 100,000 versions, 3 runs
#   bash bench/run.sh --quick    # smaller sizes, 1 run (BENCH_RUNS overrides the run count)
#
# Builds in release mode, compiles bench/driver.c against target/release/libb2dest.so,
# installs Debian's rclone and time if missing, then runs bench/bench.py, which prints the
# results table and writes bench/results.md (and the raw runs to bench/results.json).
# Test files and the emulator's data live in a temp dir under $BENCH_TMPDIR (default
# /var/tmp, on the local disk) and are removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=()
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=(--quick) ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option $arg (use --quick)" >&2; exit 64 ;;
    esac
done

need_apt=()
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bench: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "bench: cargo build --release -p b2dest -p b2-emulator" >&2
cargo build --release -p b2dest -p b2-emulator

BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/b2dest-bench-driver.XXXXXX")
trap 'rm -rf "$BUILD_DIR"' EXIT
gcc -O2 -Wall -Wextra -Werror -I"$ROOT/include" -o "$BUILD_DIR/driver" "$ROOT/bench/driver.c" \
    -L"$ROOT/target/release" -lb2dest -Wl,-rpath,"$ROOT/target/release"

python3 "$ROOT/bench/bench.py" "${QUICK[@]}" --driver "$BUILD_DIR/driver" --rclone "$(command -v rclone)"
