#!/usr/bin/env bash
# Runs every test of b2dest: rustfmt and clippy (a warning fails the run), the Rust suites
# of the plugin and the emulator (rclone conformance, faults, fork and threads under
# valgrind included), the C examples built with warnings as errors, the shell harness and
# the PHP tests (php-cli, preloaded, and through php-fpm), the install into a prefix with
# pkg-config, the cPanel transport, and the header check.
# Installs what it lacks (rclone, php-cli, php-fpm, libfcgi-bin, valgrind, gcc, make,
# pkg-config, binutils) with apt-get when it can, and b2sdk (for its B2 simulator) into
# target/venv-b2sdk.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have rclone || missing+=(rclone)
have php || missing+=(php-cli)
have valgrind || missing+=(valgrind)
have gcc || missing+=(gcc)
have make || missing+=(make)
have pkg-config || missing+=(pkg-config)
have readelf || missing+=(binutils)
have script || missing+=(bsdutils) # script(1), for the shell harness's progress-bar checks
compgen -G '/usr/sbin/php-fpm*' >/dev/null || have php-fpm || missing+=(php-fpm) # tests/shell/php_fpm.sh
have cgi-fcgi || missing+=(libfcgi-bin)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "== installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: ${missing[*]} missing and cannot be installed here (not root, or no apt-get)" >&2
  fi
fi

# b2sdk's RawSimulator, Backblaze's own in-memory B2, is a second server for
# tests/simulator.rs (served by tests/simulator/b2sdk_front.py): a venv with the pinned b2sdk.
B2SDK_VERSION=2.13.2
B2SDK_VENV=target/venv-b2sdk
if ! "$B2SDK_VENV/bin/python" -c "import b2sdk.version as v, sys; sys.exit(v.VERSION != '$B2SDK_VERSION')" 2>/dev/null; then
  echo "== installing b2sdk $B2SDK_VERSION into $B2SDK_VENV"
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && have apt-get; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
  fi
  rm -rf "$B2SDK_VENV"
  python3 -m venv "$B2SDK_VENV"
  "$B2SDK_VENV/bin/pip" install -q "b2sdk==$B2SDK_VERSION"
fi
export B2DEST_SIMULATOR_PYTHON="$PWD/$B2SDK_VENV/bin/python"
export B2DEST_REQUIRE_SIMULATOR=1

# A clean build has nothing to gain from incremental data, which is a third of target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "== disk free where target/ goes: $(df -h --output=avail . | tail -1 | tr -d ' ')"

# Formatting and lints first: a minute, where the tests below take many.
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test --workspace"
cargo test --workspace --locked

echo "== release build (library, emulator) for the C, shell and PHP tests"
cargo build --release --locked -p b2dest -p b2-emulator

# tokio's parking_lot keeps a process-wide table of parked threads that a forked child
# inherits without the threads: the shipped library must not carry it.
if grep -q parking_lot_core target/release/libb2dest.so; then
  echo "libb2dest.so links parking_lot (a dependency enabled tokio's parking_lot feature): fork() would break" >&2
  exit 1
fi

echo "== C examples with -Wall -Wextra -Werror"
make -C c_examples

echo "== shell harness and PHP tests"
bash tests/shell/run.sh

echo "== the installed library: scripts/install.sh, a host built with pkg-config"
bash tests/shell/install.sh

echo "== the cPanel Custom transport"
bash tests/shell/cpanel.sh

echo "== PHP through php-fpm (preloaded), FastCGI requests"
bash tests/shell/php_fpm.sh

echo "== the committed header is what the code generates"
bash scripts/regen-header.sh --check --release --locked

echo "== all tests passed"
