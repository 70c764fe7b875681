#!/usr/bin/env bash
# Builds the release artifacts of b2dest for x86_64 Linux into dist/:
#
#   dist/b2dest-VERSION-x86_64-linux-gnu.tar.gz  the tree for /usr/local (tar -C /usr/local
#                                                --strip-components=1 -xzf ...), with the
#                                                library's debug info in lib/.debug/
#   dist/b2dest_VERSION-1_amd64.deb              Debian, Ubuntu (dpkg-deb)
#   dist/b2dest-VERSION-1.x86_64.rpm             AlmaLinux, Rocky, CloudLinux, RHEL 8+ (cargo-generate-rpm)
#   dist/libb2dest.so.VERSION.debug              the debug info alone (gdb finds it by the
#                                                library's .gnu_debuglink)
#
# The library is built against glibc 2.28 (AlmaLinux/Rocky/CloudLinux 8) with
# cargo-zigbuild and zig (both from PyPI, in target/venv-release, made here), stripped,
# its debug info split off. destctl and the cPanel transport are built with the same zig
# against the same glibc. Each artifact holds the library with its soname links, b2dest.h
# and b2dest_ffi.h, b2dest.pc with the package's prefix, destctl, the cPanel transport,
# the PHP wrapper with its preload script and scoped FFI header, the README and licence.
# Needs python3 (venv), dpkg-deb, objcopy/strip (binutils), network for PyPI on the first
# run. Check the result with scripts/check-release.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
MAJOR=${VERSION%%.*}
SONAME=libb2dest.so.$MAJOR
REAL=libb2dest.so.$VERSION
GLIBC=2.28
TRIPLE=x86_64-unknown-linux-gnu
ZIG_TARGET=x86_64-linux-gnu.$GLIBC
# Pinned: the wheels this script was written against.
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.1
GENERATE_RPM_VERSION=0.10.1
VENV=target/venv-release
STAGE=target/release-stage
DIST=dist

for tool in python3 dpkg-deb objcopy strip; do
    command -v "$tool" >/dev/null || { echo "release.sh: $tool is needed" >&2; exit 69; }
done

echo "== tools: ziglang $ZIGLANG_VERSION, cargo-zigbuild $ZIGBUILD_VERSION, cargo-generate-rpm $GENERATE_RPM_VERSION in $VENV"
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    python3 -m venv "$VENV"
fi
want=("ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" "cargo-generate-rpm==$GENERATE_RPM_VERSION")
installed=$("$VENV/bin/pip" freeze 2>/dev/null || true)
for w in "${want[@]}"; do
    if ! grep -qxF "$w" <<<"$installed"; then
        "$VENV/bin/pip" install -q "${want[@]}"
        break
    fi
done
export PATH=$PWD/$VENV/bin:$PATH
zig() { "$VENV/bin/python" -m ziglang "$@"; }

echo "== the library for $TRIPLE, glibc $GLIBC"
cargo zigbuild --release --locked -p b2dest --target "$TRIPLE.$GLIBC"
BUILT=target/$TRIPLE/release/libb2dest.so

rm -rf "$STAGE" "$DIST"
mkdir -p "$STAGE/build" "$DIST"
# Debug info apart, the library stripped of everything but its dynamic symbols.
objcopy --only-keep-debug "$BUILT" "$STAGE/build/$REAL.debug"
strip --strip-unneeded -o "$STAGE/build/$REAL" "$BUILT"
(cd "$STAGE/build" && objcopy --add-gnu-debuglink="$REAL.debug" "$REAL")
chmod 0644 "$STAGE/build/$REAL.debug"

echo "== destctl and the cPanel transport, zig cc for glibc $GLIBC"
CFLAGS=(-target "$ZIG_TARGET" -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -Iinclude)
zig cc "${CFLAGS[@]}" -o "$STAGE/build/destctl" c_examples/destctl.c -ldl -pthread
zig cc "${CFLAGS[@]}" -o "$STAGE/build/b2dest-cpanel-transport" c_examples/cpanel/b2dest-cpanel-transport.c \
    -L"$(dirname "$BUILT")" -lb2dest -pthread
strip "$STAGE/build/destctl" "$STAGE/build/b2dest-cpanel-transport"
# The scoped header for PHP's ffi.preload, naming the soname the packages install.
php_header() {
    printf '#define FFI_SCOPE "B2DEST"\n#define FFI_LIB "%s"\n' "$1"
    cat include/b2dest_ffi.h
}

# stage ROOT PREFIX LIBDIR LIBNAME: the installed tree under ROOT. LIBNAME is what PHP's
# scoped header loads: the soname from the system's path, or a full path.
stage() {
    local root=$1 prefix=$2 libdir=$3 libname=$4
    install -d "$root$libdir/pkgconfig" "$root$prefix/include" "$root$prefix/bin" \
        "$root$prefix/libexec/b2dest" "$root$prefix/share/b2dest/php" "$root$prefix/share/doc/b2dest"
    install -m 0755 "$STAGE/build/$REAL" "$root$libdir/$REAL"
    ln -s "$REAL" "$root$libdir/$SONAME"
    ln -s "$SONAME" "$root$libdir/libb2dest.so"
    install -m 0644 include/b2dest.h include/b2dest_ffi.h "$root$prefix/include/"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@INCLUDEDIR@|$prefix/include|g" \
        -e "s|@VERSION@|$VERSION|g" scripts/b2dest.pc.in >"$root$libdir/pkgconfig/b2dest.pc"
    chmod 0644 "$root$libdir/pkgconfig/b2dest.pc"
    install -m 0755 "$STAGE/build/destctl" "$root$prefix/bin/destctl"
    install -m 0755 "$STAGE/build/b2dest-cpanel-transport" "$root$prefix/libexec/b2dest/b2dest-cpanel-transport"
    install -m 0644 c_examples/php/B2Dest.php c_examples/php/preload.php c_examples/php/example.php \
        "$root$prefix/share/b2dest/php/"
    php_header "$libname" >"$root$prefix/share/b2dest/php/b2dest-ffi-preload.h"
    chmod 0644 "$root$prefix/share/b2dest/php/b2dest-ffi-preload.h"
    install -m 0644 README.md LICENSE "$root$prefix/share/doc/b2dest/"
    install -m 0644 c_examples/cpanel/README.md "$root$prefix/share/doc/b2dest/README-cpanel.md"
}

DESCRIPTION="Backblaze B2 backup destination for control-panel backup engines (C library)"
LONG="libb2dest: backups to a Backblaze B2 bucket, SHA1-verified, resumable, for JetBackup-style
 engines, with destctl, a cPanel Custom transport and a PHP FFI wrapper. Built for glibc $GLIBC
 or newer."

echo "== tarball"
TARNAME=b2dest-$VERSION-x86_64-linux-gnu
stage "$STAGE/tar/$TARNAME" "" /lib "$SONAME"
# Its .pc names /usr/local, where the README unpacks it.
sed -i -e "s|^prefix=.*|prefix=/usr/local|" -e "s|^libdir=.*|libdir=/usr/local/lib|" \
    -e "s|^includedir=.*|includedir=/usr/local/include|" "$STAGE/tar/$TARNAME/lib/pkgconfig/b2dest.pc"
install -d "$STAGE/tar/$TARNAME/lib/.debug"
install -m 0644 "$STAGE/build/$REAL.debug" "$STAGE/tar/$TARNAME/lib/.debug/"
tar -C "$STAGE/tar" --owner=0 --group=0 --sort=name -czf "$DIST/$TARNAME.tar.gz" "$TARNAME"

echo "== .deb"
DEB_ROOT=$STAGE/deb
stage "$DEB_ROOT" /usr /usr/lib/x86_64-linux-gnu "$SONAME"
install -d "$DEB_ROOT/DEBIAN"
cat >"$DEB_ROOT/DEBIAN/control" <<EOF
Package: b2dest
Version: $VERSION-1
Architecture: amd64
Maintainer: b2dest maintainers <b2dest@localhost>
Depends: libc6 (>= $GLIBC)
Suggests: php-cli (>= 8.1), php-fpm (>= 8.1)
Section: libs
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$DEB_ROOT" | cut -f1)
Homepage: https://www.backblaze.com/docs/cloud-storage-native-api
Description: $DESCRIPTION
 $LONG
EOF
# dpkg runs ldconfig for a package that ships a shared library through this trigger.
echo "activate-noawait ldconfig" >"$DEB_ROOT/DEBIAN/triggers"
echo "libb2dest $MAJOR b2dest (>= $VERSION)" >"$DEB_ROOT/DEBIAN/shlibs"
dpkg-deb --root-owner-group -Zxz --build "$DEB_ROOT" "$DIST/b2dest_${VERSION}-1_amd64.deb" >/dev/null

echo "== .rpm"
RPM_ROOT=$STAGE/rpm
stage "$RPM_ROOT" /usr /usr/lib64 "$SONAME"
# cargo-generate-rpm reads a Cargo.toml (the workspace's is newer than its parser), and
# copies a link's target rather than the link: it gets a small project of its own, every
# staged file, and the links are made by the install scriptlet (ldconfig makes the
# soname's, ln the development link).
RPM_PROJECT=$PWD/$STAGE/rpm-project
mkdir -p "$RPM_PROJECT"
python3 - "$PWD/$RPM_ROOT" "$RPM_PROJECT/Cargo.toml" "$VERSION" "$GLIBC" "$DESCRIPTION" "$REAL" "$SONAME" <<'PY'
import os, sys
root, out, version, glibc, summary, real, soname = sys.argv[1:8]
post_install = ("ln -sfn %s /usr/lib64/%s; ln -sfn %s /usr/lib64/libb2dest.so; /sbin/ldconfig"
                % (real, soname, soname))
post_uninstall = ('if [ "$1" = 0 ]; then rm -f /usr/lib64/%s /usr/lib64/libb2dest.so; fi; /sbin/ldconfig'
                  % soname)
lines = ['[package]', 'name = "b2dest"', 'version = "%s"' % version, 'license = "MIT"',
         'description = "%s"' % summary, '', '[package.metadata.generate-rpm]', 'release = "1"',
         'post_install_script = %r' % post_install, 'post_uninstall_script = %r' % post_uninstall,
         'assets = [']
for dirpath, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(dirpath, name)
        if os.path.islink(path):
            continue
        dest = "/" + os.path.relpath(path, root)
        mode = "%o" % (os.stat(path).st_mode & 0o7777)
        doc = ", doc = true" if "/share/doc/" in dest else ""
        lines.append('  { source = "%s", dest = "%s", mode = "%s"%s },' % (path, dest, mode, doc))
# The transport needs the soname (found by --auto-req): the package says it provides it.
lines += [']', '', '[package.metadata.generate-rpm.requires]', 'glibc = ">= %s"' % glibc,
          '', '[package.metadata.generate-rpm.provides]', '"%s()(64bit)" = "*"' % soname]
open(out, "w").write("\n".join(lines) + "\n")
PY
(cd "$RPM_PROJECT" && cargo generate-rpm --auto-req builtin --payload-compress gzip -a x86_64 \
    -o "$OLDPWD/$DIST/b2dest-$VERSION-1.x86_64.rpm")

install -m 0644 "$STAGE/build/$REAL.debug" "$DIST/"
echo "== dist/"
ls -l "$DIST"
