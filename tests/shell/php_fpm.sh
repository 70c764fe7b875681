#!/usr/bin/env bash
# The PHP wrapper where PHP really runs on hosting servers: a php-fpm (Debian's) with its
# default ffi.enable=preload, workers as nobody, answering FastCGI requests (cgi-fcgi) that
# upload a file and restore it, with progress, against an emulator. First without
# preloading (FFI::cdef() is refused: the request must say so), then as
# c_examples/php/preload.php says for a root-started server: its scoped header as
# ffi.preload, itself as opcache.preload (it preloads B2Dest.php, since under
# ffi.enable=preload only preloaded code may use FFI).
#
#   bash tests/shell/php_fpm.sh   (after cargo build --release -p b2dest -p b2-emulator)
#
# Skips, saying why, when php-fpm or cgi-fcgi is missing (scripts/test.sh installs them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
LIB=${B2DEST_LIB:-$ROOT/target/release/libb2dest.so}
PHP=${PHP:-php}
FPM=${PHP_FPM:-$(command -v php-fpm || compgen -G '/usr/sbin/php-fpm*' | sort | tail -1 || true)}
if [[ -z $FPM || ! -x $FPM ]] || ! command -v cgi-fcgi >/dev/null; then
    echo "skipped: php-fpm or cgi-fcgi (libfcgi-bin) is not installed"
    exit 0
fi
start_emulator

# The worker's files: readable by nobody, the restore directory writable.
WWW=$TMP/www
install -d -m 755 "$WWW" "$WWW/data"
install -d -m 777 "$WWW/restore"
chmod 755 "$TMP"
head -c 3000000 /dev/urandom >"$WWW/data/site.tar.gz"
chmod 644 "$WWW/data/site.tar.gz"
python3 -c '
import json, sys
json.dump({"name": "fpm", "account_id": sys.argv[1], "application_key": sys.argv[2], "bucket": sys.argv[3],
           "backup_directory": "php-fpm", "api_url": sys.argv[4], "part_size_bytes": 1000000}, open(sys.argv[5], "w"))
' "$ACCOUNT_ID" "$APP_KEY" "$BUCKET" "$URL" "$WWW/config.json"
chmod 644 "$WWW/config.json"
cat >"$WWW/app.php" <<PHP
<?php
require '$ROOT/c_examples/php/B2Dest.php';
header('Content-Type: application/json');
\$out = ['sapi' => PHP_SAPI, 'ffi_enable' => ini_get('ffi.enable'), 'user' => posix_getpwuid(posix_geteuid())['name'] ?? '?'];
try {
    \$dest = new B2Dest(json_decode(file_get_contents('$WWW/config.json'), true));
    \$out['scope'] = B2Dest::loadedFromScope();
    foreach (['upload', 'download'] as \$op) {
        \$calls = 0;
        \$last = null;
        \$progress = function (int \$done, int \$total) use (&\$calls, &\$last): bool {
            \$calls++;
            \$last = [\$done, \$total];
            return true;
        };
        \$r = \$op === 'upload'
            ? \$dest->upload('$WWW/data/site.tar.gz', 'site.tar.gz', \$progress)
            : \$dest->download('site.tar.gz', '$WWW/restore/site.tar.gz', \$progress);
        \$out[\$op] = ['size' => \$r['size'], 'progress_calls' => \$calls, 'last' => \$last];
    }
    \$out['identical'] = sha1_file('$WWW/data/site.tar.gz') === sha1_file('$WWW/restore/site.tar.gz');
} catch (Throwable \$e) {
    \$out['error'] = get_class(\$e) . ': ' . \$e->getMessage();
}
echo json_encode(\$out);
PHP
chmod 644 "$WWW/app.php"

FPM_PID=
stop_fpm() {
    if [[ -n $FPM_PID ]]; then
        kill "$FPM_PID" 2>/dev/null || true
        wait "$FPM_PID" 2>/dev/null || true
        FPM_PID=
    fi
}
trap 'stop_fpm; stop_emulator' EXIT
# start_fpm NAME [-d ...]: a php-fpm in the foreground, one worker as nobody.
start_fpm() {
    local name=$1
    shift
    local user=nobody
    [[ $(id -u) -eq 0 ]] || user=$(id -un)
    cat >"$TMP/$name.conf" <<CONF
[global]
error_log = $TMP/$name.log
daemonize = no
pid = $TMP/$name.pid
[www]
user = $user
listen = $TMP/$name.sock
listen.mode = 0666
pm = static
pm.max_children = 1
catch_workers_output = yes
CONF
    "$FPM" -F -y "$TMP/$name.conf" -d opcache.enable=1 "$@" >"$TMP/$name.out" 2>&1 &
    FPM_PID=$!
    for _ in $(seq 1 100); do
        [[ -S $TMP/$name.sock ]] && return 0
        kill -0 "$FPM_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "php-fpm did not start:" >&2
    cat "$TMP/$name.out" "$TMP/$name.log" >&2 || true
    exit 2
}
# request NAME: one FastCGI request for app.php; its body (after the headers) in $TMP/body.json.
request() {
    SCRIPT_FILENAME=$WWW/app.php SCRIPT_NAME=/app.php REQUEST_METHOD=GET QUERY_STRING= \
        cgi-fcgi -bind -connect "$TMP/$1.sock" >"$TMP/response.txt"
    python3 -c '
import sys
raw = open(sys.argv[1], "rb").read()
print(raw.split(b"\r\n\r\n", 1)[-1].decode())
' "$TMP/response.txt" >"$TMP/body.json"
}
field() {
    python3 -c 'import json, sys; v = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"r": v}))' "$TMP/body.json" "$1"
}

echo "== php-fpm ($("$FPM" -v | head -1 | cut -d' ' -f1-2)), default ffi.enable, no preloading"
start_fpm plain
request plain
if [[ $(field 'r.get("ffi_enable")') == preload && $(field 'r.get("sapi")') == fpm-fcgi ]] &&
    grep -q 'ffi.enable' <<<"$(field 'r.get("error", "")')"; then
    pass "FFI::cdef() is refused under php-fpm, and the error says so ($(field 'r["error"]' | cut -c1-90)...)"
else
    fail "without preloading: $(cat "$TMP/body.json")"
fi
stop_fpm

echo "== php-fpm with ffi.preload of the scoped header preload.php writes, and preload.php as opcache.preload"
"$PHP" c_examples/php/preload.php --header "$LIB" >"$TMP/b2dest-ffi-preload.h"
start_fpm preloaded -d ffi.preload="$TMP/b2dest-ffi-preload.h" \
    -d opcache.preload="$ROOT/c_examples/php/preload.php" -d opcache.preload_user=nobody
request preloaded
if [[ $(field 'r.get("scope")') == True && $(field 'r.get("user")') != root ]]; then
    pass "the worker ($(field 'r["user"]')) uses the preloaded FFI scope"
else
    fail "preloaded: $(cat "$TMP/body.json")"
fi
for op in upload download; do
    if [[ $(field "r.get('$op', {}).get('size')") == 3000000 && $(field "r['$op']['progress_calls'] >= 2 and r['$op']['last'] == [3000000, 3000000]") == True ]]; then
        pass "$op of 3 MB through php-fpm, progress called $(field "r['$op']['progress_calls']") times, ending at 3000000/3000000"
    else
        fail "$op: $(cat "$TMP/body.json")"
    fi
done
if [[ $(field 'r.get("identical")') == True ]]; then pass "the restored file is identical"; else fail "restore: $(cat "$TMP/body.json")"; fi
versions=$(emu GET "versions/$BUCKET" | python3 -c 'import json,sys; print(sum(1 for v in json.load(sys.stdin) if v["file_name"] == "php-fpm/site.tar.gz"))')
if [[ $versions -eq 1 ]]; then pass "B2 holds the upload once"; else fail "B2 holds $versions versions of the upload"; fi
stop_fpm

finish
