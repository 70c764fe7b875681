#!/usr/bin/env bash
# The installable library: scripts/install.sh into a temporary prefix, then a host built
# with nothing but pkg-config (c_examples/host_example.c) runs a round trip against an
# emulator, linked to the soname libb2dest.so.0.
#
#   bash tests/shell/install.sh     (after cargo build --release -p b2dest -p b2-emulator)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"

for tool in pkg-config readelf cc python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install.sh: $tool is needed" >&2; exit 2; }
done

PREFIX=$TMP/prefix
echo "== scripts/install.sh --prefix $PREFIX"
if scripts/install.sh --prefix "$PREFIX" >"$TMP/install.out" 2>&1; then
    pass "install into a temporary prefix"
else
    fail "scripts/install.sh: $(cat "$TMP/install.out")"
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
lib=$PREFIX/lib
if [[ -f $lib/libb2dest.so.$version && ! -L $lib/libb2dest.so.$version &&
    $(readlink "$lib/libb2dest.so.0") == "libb2dest.so.$version" &&
    $(readlink "$lib/libb2dest.so") == "libb2dest.so.0" &&
    -f $PREFIX/include/b2dest.h && -f $PREFIX/include/b2dest_ffi.h &&
    -f $lib/pkgconfig/b2dest.pc ]]; then
    pass "library libb2dest.so.$version with the .so.0 and .so links, headers, b2dest.pc"
else
    fail "installed files: $(cd "$PREFIX" && find . | sort | tr '\n' ' ')"
fi
soname=$(readelf -d "$lib/libb2dest.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [[ $soname == libb2dest.so.0 ]]; then pass "SONAME is libb2dest.so.0"; else fail "SONAME is '$soname'"; fi

export PKG_CONFIG_PATH=$lib/pkgconfig
if [[ $(pkg-config --modversion b2dest 2>&1) == "$version" ]]; then
    pass "pkg-config finds b2dest $version"
else
    fail "pkg-config --modversion b2dest: $(pkg-config --modversion b2dest 2>&1)"
fi

echo "== a host built with pkg-config only"
# shellcheck disable=SC2046 # the flags are words
if cc -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -o "$TMP/host" \
    c_examples/host_example.c $(pkg-config --cflags --libs b2dest) 2>"$TMP/cc.err"; then
    pass "host_example.c builds with \$(pkg-config --cflags --libs b2dest)"
else
    fail "the build with pkg-config: $(cat "$TMP/cc.err")"
fi
needed=$(readelf -d "$TMP/host" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(libb2dest[^]]*\)\].*/\1/p')
if [[ $needed == libb2dest.so.0 ]]; then pass "the host needs libb2dest.so.0 (the soname)"; else fail "the host needs '$needed'"; fi

start_emulator
python3 -c '
import json, sys
json.dump({"name": "install test", "account_id": sys.argv[1], "application_key": sys.argv[2],
           "bucket": sys.argv[3], "backup_directory": "install-test", "api_url": sys.argv[4],
           "part_size_bytes": 1000000, "retry_initial_delay_ms": 10}, open(sys.argv[5], "w"))
' "$ACCOUNT_ID" "$APP_KEY" "$BUCKET" "$URL" "$TMP/config.json"
head -c 2500000 /dev/urandom >"$TMP/data.bin"
rc=0
# Only the prefix is on the loader's path: the installed library is the one that runs.
LD_LIBRARY_PATH=$lib "$TMP/host" "$TMP/config.json" "$TMP/data.bin" >"$TMP/host.out" 2>&1 || rc=$?
loaded=$(LD_LIBRARY_PATH=$lib ldd "$TMP/host" 2>/dev/null | sed -n 's/.*libb2dest.so.0 => \([^ ]*\).*/\1/p')
if [[ $rc -eq 0 ]] && grep -q 'all steps passed' "$TMP/host.out"; then
    pass "the host's round trip against the emulator"
else
    fail "the host's round trip: exit $rc"
    sed 's/^/     /' "$TMP/host.out" | tail -20
fi
if [[ $loaded == "$lib/libb2dest.so.0" ]]; then pass "it loads the installed library"; else fail "it loads '$loaded'"; fi

finish
