#!/usr/bin/env bash
# Checks what scripts/release.sh put in dist/:
#   - the library in each artifact needs no GLIBC_ symbol newer than 2.28 (objdump -T),
#     nor do destctl and the cPanel transport; it is stripped (no .debug_* sections, no
#     .symtab), names its .debug file, and has the soname libb2dest.so.0;
#   - the tarball, the .deb and the .rpm hold the same files (by path below the prefix and
#     library directory), and the soname links (in the .rpm made by its install scriptlet,
#     which is checked to make them);
#   - a C host builds from the .deb's files with pkg-config alone, and runs;
#   - the package metadata names the glibc it needs.
# Prints the sizes and the glibc baseline; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
REAL=libb2dest.so.$VERSION
MAX_GLIBC=2.28
DIST=dist
TARBALL=$DIST/b2dest-$VERSION-x86_64-linux-gnu.tar.gz
DEB=$DIST/b2dest_${VERSION}-1_amd64.deb
RPM=$DIST/b2dest-$VERSION-1.x86_64.rpm
WORK=$(mktemp -d "${TMPDIR:-/tmp}/b2dest-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }

for f in "$TARBALL" "$DEB" "$RPM"; do
    [[ -f $f ]] || { echo "check-release.sh: $f is missing: run scripts/release.sh" >&2; exit 66; }
done

echo "== sizes"
ls -l "$DIST" | sed 1d | awk '{printf "     %10d  %s\n", $5, $9}'

echo "== unpacking"
mkdir -p "$WORK/tar" "$WORK/deb" "$WORK/rpm"
tar -C "$WORK/tar" -xzf "$TARBALL"
TAR_ROOT=$WORK/tar/b2dest-$VERSION-x86_64-linux-gnu
dpkg-deb -x "$DEB" "$WORK/deb"
# The .rpm without rpm(8): its lead, two headers, then a gzip'd cpio (newc) payload.
python3 - "$RPM" "$WORK/rpm" "$WORK/rpm-meta.txt" <<'PY'
import gzip, os, stat, struct, sys
data = open(sys.argv[1], "rb").read()
out, meta = sys.argv[2], sys.argv[3]
off = 96  # the lead
headers = []
for i in range(2):
    assert data[off:off + 3] == b"\x8e\xad\xe8", "not an RPM header at %d" % off
    count, size = struct.unpack(">II", data[off + 8:off + 16])
    index = data[off + 16:off + 16 + 16 * count]
    store = data[off + 16 + 16 * count:off + 16 + 16 * count + size]
    headers.append((index, count, store))
    off += 16 + 16 * count + size
    if i == 0:
        off = (off + 7) // 8 * 8
def tag(header, wanted):
    index, count, store = header
    for k in range(count):
        t, typ, o, n = struct.unpack(">IIII", index[16 * k:16 * k + 16])
        if t == wanted:
            if typ in (6, 8, 9):  # string, string array, i18n string
                return store[o:].split(b"\0")[:n if typ != 6 else 1]
            return None
    return []
main = headers[1]
def flags(header, wanted):
    index, count, store = header
    for k in range(count):
        t, typ, o, n = struct.unpack(">IIII", index[16 * k:16 * k + 16])
        if t == wanted and typ == 4:
            return struct.unpack(">%dI" % n, store[o:o + 4 * n])
    return ()
def relation(f):
    return {2: "<", 4: ">", 8: "=", 10: "<=", 12: ">="}.get(f & 14, "")
post = b"".join(tag(main, 1024) or []).decode()    # POSTIN
with open(meta, "w") as m:
    for kind, name_tag, flag_tag, version_tag in (("requires", 1049, 1048, 1050), ("provides", 1047, 1112, 1113)):
        names = [x.decode() for x in tag(main, name_tag)]
        versions = [x.decode() for x in tag(main, version_tag)]
        for n, f, v in zip(names, flags(main, flag_tag), versions):
            m.write(("%s %s %s %s" % (kind, n, relation(f), v)).rstrip() + "\n")
    m.write("postin %s\n" % post)
payload = gzip.decompress(data[off:])
o = 0
while True:
    f = [int(payload[o + 6 + 8 * k:o + 14 + 8 * k], 16) for k in range(13)]
    mode, size, namesize = f[1], f[6], f[11]
    name = payload[o + 110:o + 110 + namesize - 1].decode()
    o = (o + 110 + namesize + 3) // 4 * 4
    body = payload[o:o + size]
    o = (o + size + 3) // 4 * 4
    if name == "TRAILER!!!":
        break
    path = os.path.join(out, name.lstrip("./"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if stat.S_ISLNK(mode):
        os.symlink(body.decode(), path)
    elif stat.S_ISREG(mode):
        with open(path, "wb") as w:
            w.write(body)
        os.chmod(path, mode & 0o7777)
PY
pass "unpacked the tarball, the .deb (dpkg-deb) and the .rpm (its cpio payload)"

echo "== the library and the programs"
# glibc_max FILE: the newest GLIBC_x.y a file's dynamic symbols need.
glibc_max() { objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1; }
check_elf() {
    local what=$1 file=$2 need
    need=$(glibc_max "$file")
    if [[ $(printf '%s\n%s\n' "$need" "$MAX_GLIBC" | sort -V | tail -1) == "$MAX_GLIBC" ]]; then
        pass "$what needs GLIBC_$need at most (baseline $MAX_GLIBC)"
    else
        fail "$what needs GLIBC_$need, newer than $MAX_GLIBC"
    fi
    local sections
    sections=$(readelf -S "$file") # whole, before grep -q: pipefail would see readelf's SIGPIPE
    if grep -qE '\.debug_|\.symtab' <<<"$sections"; then
        fail "$what is not stripped: $(grep -oE '\.(debug_[a-z]+|symtab)' <<<"$sections" | sort -u | tr '\n' ' ')"
    else
        pass "$what is stripped (no .debug_* or .symtab)"
    fi
}
DEB_LIB=$WORK/deb/usr/lib/x86_64-linux-gnu
RPM_LIB=$WORK/rpm/usr/lib64
for where in "tarball:$TAR_ROOT/lib" "deb:$DEB_LIB" "rpm:$RPM_LIB"; do
    name=${where%%:*}
    dir=${where#*:}
    check_elf "$name: $REAL" "$dir/$REAL"
    soname=$(readelf -d "$dir/$REAL" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
    link=$(readelf -p .gnu_debuglink "$dir/$REAL" 2>/dev/null | grep -o "$REAL.debug" | head -1 || true)
    if [[ $soname == libb2dest.so.0 && $link == "$REAL.debug" ]]; then
        pass "$name: soname $soname, .gnu_debuglink $link"
    else
        fail "$name: soname '$soname', debuglink '$link'"
    fi
done
for where in "tarball:$TAR_ROOT" "deb:$WORK/deb/usr"; do
    name=${where%%:*}
    root=${where#*:}
    check_elf "$name: destctl" "$root/bin/destctl"
    check_elf "$name: cPanel transport" "$root/libexec/b2dest/b2dest-cpanel-transport"
done
for where in "tarball:$TAR_ROOT/lib" "deb:$DEB_LIB"; do
    name=${where%%:*}
    dir=${where#*:}
    if [[ $(readlink "$dir/libb2dest.so.0") == "$REAL" && $(readlink "$dir/libb2dest.so") == libb2dest.so.0 ]]; then
        pass "$name: libb2dest.so -> libb2dest.so.0 -> $REAL"
    else
        fail "$name: soname links: $(ls -l "$dir" | grep libb2dest)"
    fi
done
if grep -q "ln -sfn $REAL /usr/lib64/libb2dest.so.0; ln -sfn libb2dest.so.0 /usr/lib64/libb2dest.so; /sbin/ldconfig" "$WORK/rpm-meta.txt"; then
    pass "rpm: its install scriptlet makes libb2dest.so -> libb2dest.so.0 -> $REAL and runs ldconfig"
else
    fail "rpm: install scriptlet: $(grep postin "$WORK/rpm-meta.txt")"
fi
debug_file=$TAR_ROOT/lib/.debug/$REAL.debug
if [[ -f $debug_file ]] && grep -q '\.debug_info' <<<"$(readelf -S "$debug_file")"; then
    pass "tarball: the debug info, lib/.debug/$REAL.debug ($(stat -c %s "$debug_file") bytes)"
else
    fail "tarball: no debug info file"
fi

echo "== the same files in each"
# list ROOT LIBDIR PREFIX: each regular file and link, as lib/... (below LIBDIR) or the
# path below PREFIX; links in the .rpm come from its scriptlet, so links are left out.
list() {
    (cd "$1" && find . -type f | sed 's|^\./||' | sort) | python3 -c '
import sys
libdir, prefix = sys.argv[1].strip("/"), sys.argv[2].strip("/")
for line in sys.stdin:
    p = line.strip()
    if p.startswith(libdir + "/"):
        print("LIB/" + p[len(libdir) + 1:])
    elif p.startswith(prefix + "/") or not prefix:
        print(p[len(prefix) + 1:] if prefix else p)
    else:
        print("ELSEWHERE " + p)
' "$2" "$3" | grep -v '^LIB/\.debug/'
}
list "$TAR_ROOT" lib "" >"$WORK/tar.list"
list "$WORK/deb" usr/lib/x86_64-linux-gnu usr >"$WORK/deb.list"
list "$WORK/rpm" usr/lib64 usr >"$WORK/rpm.list"
if cmp -s "$WORK/deb.list" "$WORK/rpm.list" && cmp -s "$WORK/deb.list" "$WORK/tar.list"; then
    pass "the tarball, the .deb and the .rpm hold the same $(wc -l <"$WORK/deb.list") files"
    sed 's/^/     /' "$WORK/deb.list"
else
    fail "the artifacts differ: $(diff "$WORK/deb.list" "$WORK/rpm.list"; diff "$WORK/deb.list" "$WORK/tar.list")"
fi
for f in "$DEB_LIB/$REAL" usr/include/b2dest.h; do :; done
if cmp -s "$DEB_LIB/$REAL" "$RPM_LIB/$REAL" && cmp -s "$DEB_LIB/$REAL" "$TAR_ROOT/lib/$REAL"; then
    pass "the same library in each"
else
    fail "the libraries differ"
fi
for pc in "$DEB_LIB/pkgconfig/b2dest.pc:/usr/lib/x86_64-linux-gnu" "$RPM_LIB/pkgconfig/b2dest.pc:/usr/lib64" "$TAR_ROOT/lib/pkgconfig/b2dest.pc:/usr/local/lib"; do
    file=${pc%%:*}
    libdir=${pc#*:}
    if grep -qx "libdir=$libdir" "$file"; then pass "b2dest.pc names libdir=$libdir"; else fail "$file: $(cat "$file")"; fi
done

echo "== metadata"
deb_depends=$(dpkg-deb -f "$DEB" Depends)
if [[ $deb_depends == *"libc6 (>= $MAX_GLIBC)"* ]]; then pass ".deb Depends: $deb_depends"; else fail ".deb Depends: $deb_depends"; fi
newest=$(grep -o 'GLIBC_[0-9.]*' "$WORK/rpm-meta.txt" | sed 's/GLIBC_//' | sort -uV | tail -1)
if grep -qx "requires glibc >= $MAX_GLIBC" "$WORK/rpm-meta.txt"; then
    pass ".rpm Requires: glibc >= $MAX_GLIBC (newest symbol version it requires: GLIBC_$newest)"
else
    fail ".rpm Requires: $(grep '^requires' "$WORK/rpm-meta.txt")"
fi
# Every library the .rpm's files need is glibc's or its own: dnf must find each provider.
unmet=$(grep '^requires lib' "$WORK/rpm-meta.txt" | awk '{print $2}' | sort -u |
    grep -vE '^lib(c|m|dl|pthread|rt)\.so\.[0-9]+\(|^libb2dest\.so\.0\(' || true)
if [[ -z $unmet ]] && grep -q '^provides libb2dest.so.0()(64bit)' "$WORK/rpm-meta.txt"; then
    pass ".rpm provides libb2dest.so.0()(64bit), which its transport requires; nothing else outside glibc"
else
    fail ".rpm: unmet '$unmet' or no provides: $(grep '^provides' "$WORK/rpm-meta.txt")"
fi

echo "== a C host built from the .deb's files with pkg-config alone"
cat >"$WORK/host.c" <<'C'
#include <stdio.h>
#include <b2dest.h>
int main(void)
{
    char *response = NULL;
    int32_t status = dest_validate("{", &response); /* not JSON: DEST_ERR_CONFIG, no network */
    printf("%s %d\n", dest_version(), (int)status);
    dest_free(response);
    return status == DEST_ERR_CONFIG ? 0 : 1;
}
C
export PKG_CONFIG_SYSROOT_DIR=$WORK/deb PKG_CONFIG_LIBDIR=$DEB_LIB/pkgconfig
flags=$(pkg-config --cflags --libs b2dest)
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
# shellcheck disable=SC2086 # the flags are words
if cc -std=c11 -Wall -Werror -o "$WORK/host" "$WORK/host.c" $flags &&
    out=$(LD_LIBRARY_PATH=$DEB_LIB "$WORK/host") && [[ $out == "$VERSION 2" ]]; then
    pass "cc host.c \$(pkg-config --cflags --libs b2dest) [$flags]: runs, prints '$out'"
else
    fail "the C host: flags '$flags', output '${out:-}'"
fi
if out=$(LD_LIBRARY_PATH=$DEB_LIB "$WORK/deb/usr/libexec/b2dest/b2dest-cpanel-transport" 2>&1); [[ $out == *usage* ]]; then
    pass "the packaged cPanel transport runs against the packaged library"
else
    fail "the cPanel transport: $out"
fi

echo
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
