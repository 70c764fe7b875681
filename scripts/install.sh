#!/usr/bin/env bash
# Installs libb2dest the way a C library is installed, so a host's build finds it with
# pkg-config:
#
#   cargo build --release -p b2dest
#   scripts/install.sh --prefix /usr/local          # as root for a system prefix
#   cc host.c $(pkg-config --cflags --libs b2dest)
#
# Puts in place:
#   LIBDIR/libb2dest.so.VERSION, LIBDIR/libb2dest.so.0 -> it (the soname, what programs
#   load), LIBDIR/libb2dest.so -> libb2dest.so.0 (what the linker finds for -lb2dest);
#   INCLUDEDIR/b2dest.h (and b2dest_ffi.h, the same declarations for PHP's FFI::cdef);
#   LIBDIR/pkgconfig/b2dest.pc.
#
# Options: --prefix DIR (default /usr/local), --libdir DIR (default PREFIX/lib),
# --includedir DIR (default PREFIX/include), --lib FILE (the built library, default
# target/release/libb2dest.so). DESTDIR=/stage is honoured for packaging: files go under
# it, the .pc names the final paths. Builds nothing. After installing into a directory
# the dynamic loader does not search, set LD_LIBRARY_PATH or add it to /etc/ld.so.conf.d
# and run ldconfig.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
}

PREFIX=/usr/local
LIBDIR=
INCLUDEDIR=
LIB=target/release/libb2dest.so
while (($#)); do
    case $1 in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --libdir) LIBDIR=${2:?--libdir needs a directory}; shift 2 ;;
    --libdir=*) LIBDIR=${1#*=}; shift ;;
    --includedir) INCLUDEDIR=${2:?--includedir needs a directory}; shift 2 ;;
    --includedir=*) INCLUDEDIR=${1#*=}; shift ;;
    --lib) LIB=${2:?--lib needs a file}; shift 2 ;;
    --lib=*) LIB=${1#*=}; shift ;;
    -h | --help) usage ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage ;;
    esac
done
case $PREFIX in
/*) ;;
*) echo "install.sh: --prefix must be an absolute path (the .pc file records it): $PREFIX" >&2; exit 64 ;;
esac
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
DESTDIR=${DESTDIR:-}

if [[ ! -f $LIB ]]; then
    echo "install.sh: $LIB is missing: run 'cargo build --release -p b2dest' first (or pass --lib)" >&2
    exit 66
fi
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
MAJOR=${VERSION%%.*}
SONAME=libb2dest.so.$MAJOR
# A library built before build.rs set the soname would install under a name nothing loads.
if command -v readelf >/dev/null 2>&1; then
    built_soname=$(readelf -d "$LIB" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
    if [[ $built_soname != "$SONAME" ]]; then
        echo "install.sh: $LIB has soname '${built_soname:-none}', expected $SONAME: rebuild it (cargo build --release -p b2dest)" >&2
        exit 65
    fi
fi

install -d "$DESTDIR$LIBDIR" "$DESTDIR$LIBDIR/pkgconfig" "$DESTDIR$INCLUDEDIR"
install -m 0755 "$LIB" "$DESTDIR$LIBDIR/libb2dest.so.$VERSION"
ln -sfn "libb2dest.so.$VERSION" "$DESTDIR$LIBDIR/$SONAME"
ln -sfn "$SONAME" "$DESTDIR$LIBDIR/libb2dest.so"
install -m 0644 include/b2dest.h include/b2dest_ffi.h "$DESTDIR$INCLUDEDIR/"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@LIBDIR@|$LIBDIR|g" -e "s|@INCLUDEDIR@|$INCLUDEDIR|g" \
    -e "s|@VERSION@|$VERSION|g" scripts/b2dest.pc.in >"$DESTDIR$LIBDIR/pkgconfig/b2dest.pc"
chmod 0644 "$DESTDIR$LIBDIR/pkgconfig/b2dest.pc"

echo "installed libb2dest $VERSION into $DESTDIR$PREFIX:"
echo "  $LIBDIR/libb2dest.so.$VERSION ($SONAME, libb2dest.so)"
echo "  $INCLUDEDIR/b2dest.h, b2dest_ffi.h"
echo "  $LIBDIR/pkgconfig/b2dest.pc"
