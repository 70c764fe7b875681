#!/usr/bin/env bash
# End-to-end tests of the host's side: destctl, host_example and the PHP wrapper, driven
# against a b2-emulator this script starts (and stops on exit).
#
#   bash tests/shell/run.sh
#
# Builds nothing. It needs, from the repository root:
#   cargo build --release -p b2dest        -> target/release/libb2dest.so
#   cargo build --release -p b2-emulator   -> target/release/b2-emulator
#   make -C c_examples                     -> c_examples/destctl (and host_example)
# Overrides: B2DEST_LIB, B2_EMULATOR_BIN, DESTCTL, HOST_EXAMPLE, PHP (php binary),
# KEEP_TMP=1 (keep the temporary directory for a look after a failure).
#
# Prints one line per check and ends with "N passed, M failed"; exits 1 on any failure.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LIB=${B2DEST_LIB:-$ROOT/target/release/libb2dest.so}
EMULATOR=${B2_EMULATOR_BIN:-$ROOT/target/release/b2-emulator}
DESTCTL=${DESTCTL:-$ROOT/c_examples/destctl}
HOST_EXAMPLE=${HOST_EXAMPLE:-$ROOT/c_examples/host_example}
PHP=${PHP:-php}

missing=0
need() { # need PATH WHAT HOW
    if [[ ! -x $1 && ! -f $1 ]]; then
        echo "run.sh: $2 is missing: $1" >&2
        echo "        build it with: $3" >&2
        missing=1
    fi
}
need "$LIB" "the library" "cargo build --release -p b2dest"
need "$EMULATOR" "the emulator" "cargo build --release -p b2-emulator"
need "$DESTCTL" "destctl" "make -C c_examples"
if ! command -v python3 >/dev/null 2>&1; then
    echo "run.sh: python3 is needed to read the JSON responses" >&2
    missing=1
fi
if [[ $missing -ne 0 ]]; then
    exit 2
fi
LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")
export B2DEST_LIB=$LIB

# shellcheck source=emulator.sh
source "$ROOT/tests/shell/emulator.sh"

# A check that cannot run: a failure in CI (CI=true), where everything must be there.
unavailable() {
    if [[ ${CI:-} == true ]]; then fail "$* (CI=true: every check must run)"; else echo "skip $*"; fi
}

OUT=$TMP/out.json
ERR=$TMP/err.txt

show_last() {
    echo "     stdout: $(head -c 2000 "$OUT")"
    if [[ -s $ERR ]]; then
        echo "     stderr: $(head -c 2000 "$ERR" | tr '\n' ' ')"
    fi
}

# dctl NAME EXPECTED_EXIT DESTCTL_ARGS...: runs destctl, output in $OUT and $ERR.
dctl() {
    local name=$1 expected=$2 rc=0
    shift 2
    "$DESTCTL" "$@" >"$OUT" 2>"$ERR" </dev/null || rc=$?
    if [[ $rc -eq $expected ]]; then
        pass "$name (exit $rc)"
    else
        fail "$name: exit $rc, expected $expected"
        show_last
    fi
}

# json_true PYTHON_EXPR: whether the expression holds for d, the response in $OUT.
json_true() {
    python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("not JSON: %s" % e)
sys.exit(0 if eval(sys.argv[2]) else 1)
' "$OUT" "$1" 2>>"$TMP/json-errors.txt"
}

# expect NAME PYTHON_EXPR: a check on the last response.
expect() {
    if json_true "$2"; then
        pass "$1"
    else
        fail "$1: not true: $2"
        show_last
    fi
}

# json_value PYTHON_EXPR: prints the value for d, the response in $OUT.
json_value() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$OUT" "$1"
}

# config FILE JSON_OVERRIDES: writes the base configuration with the overrides applied.
config() {
    local overrides='{}'
    if [[ $# -ge 2 ]]; then overrides=$2; fi
    python3 -c '
import json, sys
c = json.loads(sys.argv[2])
c.update(json.loads(sys.argv[3]))
with open(sys.argv[1], "w") as f:
    json.dump(c, f)
' "$1" "$BASE_CONFIG" "$overrides"
}

sha1() { sha1sum "$1" | cut -d' ' -f1; }

# ------------------------------------------------------------------------------------
# The emulator: a temporary data directory, 1 MB parts allowed, and extra keys:
# one without writeFiles, one restricted to names under "allowed/".

start_emulator --bucket b2dest-other --object-lock b2dest-locked \
    --key "readonly-key:readonly-secret:listBuckets,listFiles,readFiles:$BUCKET" \
    --key "prefix-key:prefix-secret:listBuckets,listFiles,readFiles,writeFiles,deleteFiles:$BUCKET:allowed/"
echo "emulator at $URL (pid $EMU_PID), data in $TMP/emulator-data"

BASE_CONFIG=$(python3 -c '
import json, sys
print(json.dumps({
    "name": "shell tests", "account_id": sys.argv[1], "application_key": sys.argv[2],
    "bucket": sys.argv[3], "backup_directory": "shell-tests", "api_url": sys.argv[4],
    "part_size_bytes": 1000000, "retry_initial_delay_ms": 10, "timeout_seconds": 30,
}))' "$ACCOUNT_ID" "$APP_KEY" "$BUCKET" "$URL")

CFG=$TMP/config.json
config "$CFG"

# Local files: ~3 MB (three 1 MB parts and a bit) and a small directory tree.
mkdir -p "$TMP/data/site/logs" "$TMP/data/site/empty-dir"
head -c 3145728 /dev/urandom >"$TMP/data/big.bin"
printf 'hello from the shell tests\n' >"$TMP/data/site/index.html"
head -c 12345 /dev/urandom >"$TMP/data/site/logs/access.log"
head -c 1 /dev/urandom >"$TMP/data/site/logs/one-byte"
: >"$TMP/data/site/logs/empty.txt"
DIR_BYTES=$(($(stat -c %s "$TMP/data/site/index.html") + 12345 + 1))

# ------------------------------------------------------------------------------------
echo "== command line"

dctl "destctl --version" 0 --version
if grep -q '^libb2dest [0-9]' "$OUT"; then pass "--version names the library version"; else fail "--version: $(cat "$OUT")"; fi
dctl "destctl --help" 0 --help
dctl "no command: usage error" 64 --config "$CFG"
dctl "unknown command: usage error" 64 --config "$CFG" frobnicate
dctl "upload without its arguments: usage error" 64 --config "$CFG" upload only-one
dctl "delete with too many arguments: usage error" 64 --config "$CFG" delete a b
dctl "unknown option: usage error" 64 --frob validate
dctl "unreadable configuration file" 66 --config "$TMP/no-such-config.json" validate
dctl "library that does not load" 69 --lib "$TMP/no-such-lib.so" --config "$CFG" validate
# dctl gives destctl /dev/null as standard input: no configuration at all.
dctl "no --config and nothing on standard input: usage error" 64 validate
if grep -q 'no configuration' "$ERR" && ! grep -q 'not valid JSON' "$ERR" "$OUT"; then pass "it says there is no configuration"; else fail "no configuration: $(head -c 300 "$ERR")"; fi
: >"$TMP/empty.json"
dctl "an empty configuration file" 66 --config "$TMP/empty.json" validate
dctl "combined short options -qv" 0 -qv --config "$CFG" validate
dctl "combined short options with a value, -qc FILE" 0 -qc "$CFG" validate
dctl "a value joined to its option, -cFILE" 0 "-c$CFG" validate
dctl "an unknown letter among short options" 64 -qx --config "$CFG" validate

# ------------------------------------------------------------------------------------
echo "== backup and restore round trip"

dctl "validate" 0 --config "$CFG" validate
expect "validate: every check passed" 'd["ok"] is True and d["checks"] and all(c["ok"] for c in d["checks"])'

rc=0
"$DESTCTL" validate <"$CFG" >"$OUT" 2>"$ERR" || rc=$?
if [[ $rc -eq 0 ]] && json_true 'd["ok"] is True'; then pass "configuration on standard input (no --config)"; else fail "configuration on standard input: exit $rc"; show_last; fi
rc=0
"$DESTCTL" --config - usage <"$CFG" >"$OUT" 2>"$ERR" || rc=$?
if [[ $rc -eq 0 ]]; then pass "configuration from --config -"; else fail "--config -: exit $rc"; show_last; fi

emu POST counts/reset '{}' >/dev/null
dctl "upload a 3 MB file" 0 --config "$CFG" upload "$TMP/data/big.bin" backups/big.bin
expect "upload: size and sha1" "d['size'] == 3145728 and d['sha1'] == '$(sha1 "$TMP/data/big.bin")' and d['remote_path'] == 'backups/big.bin'"
if [[ ! -s $ERR ]]; then pass "no progress bar when stderr is not a terminal"; else fail "stderr not empty without a terminal: $(head -c 300 "$ERR")"; fi
parts=$(emu GET counts | python3 -c 'import json,sys; c=json.load(sys.stdin)["calls"]; print(c.get("b2_upload_part", 0), c.get("b2_finish_large_file", 0), c.get("b2_upload_file", 0))')
read -r n_parts n_finish n_small <<<"$parts"
if [[ $n_parts -ge 4 && $n_finish -eq 1 ]]; then
    pass "the 3 MB file went up as a large file ($n_parts parts)"
else
    fail "expected a large file of >= 4 parts: b2_upload_part=$n_parts b2_finish_large_file=$n_finish b2_upload_file=$n_small"
fi

dctl "upload a directory" 0 --config "$CFG" --verbose upload "$TMP/data/site" site
expect "upload directory: 4 files" "d['file_count'] == 4 and d['size'] == $DIR_BYTES"
if grep -q '^\[info\] ' "$ERR"; then pass "--verbose shows the library's log lines"; else fail "--verbose printed no [info] line: $(head -c 300 "$ERR")"; fi

dctl "list everything" 0 --config "$CFG" list
expect "list: the file and the directory's files" \
    "sorted(e['path'] for e in d['entries']) == ['backups/big.bin', 'site/index.html', 'site/logs/access.log', 'site/logs/empty.txt', 'site/logs/one-byte'] and d['count'] == 5"
dctl "list a directory" 0 --config "$CFG" list site/logs
expect "list site/logs: 3 files" "d['count'] == 3"
dctl "list one file" 0 --config "$CFG" list backups/big.bin
expect "list one file: its size" "d['count'] == 1 and d['entries'][0]['size'] == 3145728"

dctl "usage" 0 --config "$CFG" usage
expect "usage: bytes and files" "d['used_bytes'] == 3145728 + $DIR_BYTES and d['files'] == 5 and d['unfinished_large_files'] == 0"

dctl "download the file" 0 --config "$CFG" download backups/big.bin "$TMP/restore/big.bin"
expect "download: verified" "d['verified'] is True and d['size'] == 3145728"
if cmp -s "$TMP/data/big.bin" "$TMP/restore/big.bin"; then pass "restored file is identical (cmp)"; else fail "restored file differs"; fi
dctl "download the directory" 0 --config "$CFG" download site "$TMP/restore/site"
if diff -r "$TMP/data/site/index.html" "$TMP/restore/site/index.html" >/dev/null &&
    diff -r "$TMP/data/site/logs" "$TMP/restore/site/logs" >/dev/null; then
    pass "restored directory is identical (diff -r)"
else
    fail "restored directory differs: $(diff -r "$TMP/data/site" "$TMP/restore/site" 2>&1 | head -5)"
fi
dctl "download what is not there" 5 --config "$CFG" download backups/nothing.bin "$TMP/restore/nothing.bin"
expect "not found: error code" "d['ok'] is False and d['error']['code'] == 'not_found'"
if [[ ! -e $TMP/restore/nothing.bin ]]; then pass "a failed download leaves no file"; else fail "a failed download left a file"; fi
dctl "upload a local file that is not there" 5 --config "$CFG" upload "$TMP/data/nothing" backups/nothing
dctl "an invalid remote path" 1 --config "$CFG" upload "$TMP/data/big.bin" ../outside.bin

dctl "delete the file" 0 --config "$CFG" delete backups/big.bin
expect "delete: one version, 3 MB freed" "d['deleted_versions'] == 1 and d['bytes_freed'] == 3145728"
dctl "delete the directory" 0 --config "$CFG" delete site
expect "delete directory: 4 versions" "d['deleted_versions'] == 4"
dctl "delete what is not there" 0 --config "$CFG" delete backups/big.bin
expect "delete again: nothing to delete" "d['deleted_versions'] == 0"
dctl "usage after the deletes" 0 --config "$CFG" usage
expect "usage is 0" "d['used_bytes'] == 0 and d['files'] == 0 and d['versions'] == 0"
dctl "list after the deletes" 0 --config "$CFG" list
expect "list is empty" "d['count'] == 0 and d['entries'] == []"

# ------------------------------------------------------------------------------------
echo "== errors"

printf '{"name": "x", "account_id": "a"' >"$TMP/broken.json"
dctl "configuration that is not JSON" 2 --config "$TMP/broken.json" validate
expect "config error code" "d['error']['code'] == 'config'"
config "$TMP/no-bucket.json" '{"bucket": null}'
dctl "configuration without a bucket" 2 --config "$TMP/no-bucket.json" validate
expect "the message names the field" "'bucket' in d['error']['message']"
config "$TMP/remote-http.json" '{"api_url": "http://example.com"}'
dctl "http:// to a host that is not this machine" 2 --config "$TMP/remote-http.json" validate

WRONG_KEY="wrong-secret-$RANDOM$RANDOM"
config "$TMP/wrong-key.json" "{\"application_key\": \"$WRONG_KEY\"}"
dctl "wrong application key: validate" 3 --config "$TMP/wrong-key.json" validate
expect "auth error code" "d['error']['code'] == 'auth'"
if grep -q "$WRONG_KEY" "$OUT" "$ERR"; then fail "the key appears in the output"; else pass "the key is not in the output"; fi
dctl "wrong application key: upload" 3 --config "$TMP/wrong-key.json" --verbose upload "$TMP/data/site/index.html" x.html
if grep -q "$WRONG_KEY" "$OUT" "$ERR"; then fail "the key appears in the output or the log lines"; else pass "the key is not in the output or the log lines"; fi
config "$TMP/wrong-account.json" '{"account_id": "no-such-account"}'
dctl "wrong account id" 3 --config "$TMP/wrong-account.json" list

config "$TMP/no-such-bucket.json" '{"bucket": "no-such-bucket"}'
dctl "a bucket that does not exist" 5 --config "$TMP/no-such-bucket.json" validate

config "$TMP/read-only.json" '{"read_only": true}'
dctl "read-only destination: upload refused" 4 --config "$TMP/read-only.json" upload "$TMP/data/big.bin" ro/big.bin
expect "permission error code" "d['error']['code'] == 'permission'"
dctl "read-only destination: delete refused" 4 --config "$TMP/read-only.json" delete ro/big.bin
dctl "read-only destination: list allowed" 0 --config "$TMP/read-only.json" list

config "$TMP/no-write-key.json" '{"account_id": "readonly-key", "application_key": "readonly-secret"}'
dctl "key without writeFiles: validate" 4 --config "$TMP/no-write-key.json" validate
dctl "key without writeFiles: upload" 4 --config "$TMP/no-write-key.json" upload "$TMP/data/site/index.html" x.html
config "$TMP/prefix-ok.json" '{"account_id": "prefix-key", "application_key": "prefix-secret", "backup_directory": "allowed/server1"}'
dctl "key restricted to a prefix, inside it: validate" 0 --config "$TMP/prefix-ok.json" validate
config "$TMP/prefix-outside.json" '{"account_id": "prefix-key", "application_key": "prefix-secret", "backup_directory": "elsewhere"}'
dctl "key restricted to a prefix, outside it: validate" 4 --config "$TMP/prefix-outside.json" validate
config "$TMP/other-bucket.json" '{"account_id": "readonly-key", "application_key": "readonly-secret", "bucket": "b2dest-other"}'
dctl "key restricted to another bucket" 4 --config "$TMP/other-bucket.json" list

# The limit: 50 % of a 1 MB quota. 600 kB stored is over it, so the next upload is refused.
head -c 600000 /dev/urandom >"$TMP/data/600k.bin"
config "$TMP/limit-base.json" '{"backup_directory": "limit-tests"}'
config "$TMP/limit.json" '{"backup_directory": "limit-tests", "quota_bytes": 1000000, "free_disk_space_limit": 50}'
dctl "limit: first upload, under the limit" 0 --config "$TMP/limit.json" upload "$TMP/data/600k.bin" first.bin
dctl "limit: usage shows it reached" 0 --config "$TMP/limit.json" usage
expect "limit_reached, 60 % used" "d['limit_reached'] is True and d['used_percent'] == 60.0 and d['total_bytes'] == 1000000 and d['free_bytes'] == 400000"
dctl "limit reached: upload refused" 6 --config "$TMP/limit.json" upload "$TMP/data/site/index.html" second.html
expect "limit error code" "d['error']['code'] == 'limit'"
dctl "limit: validate warns" 0 --config "$TMP/limit.json" validate
expect "validate warns that the limit is reached" "any('free disk space limit is already reached' in w for w in d['warnings'])"
dctl "limit: delete to make room" 0 --config "$TMP/limit-base.json" delete first.bin
dctl "limit: upload allowed again" 0 --config "$TMP/limit.json" upload "$TMP/data/site/index.html" second.html
dctl "limit: clean up" 0 --config "$TMP/limit-base.json" delete second.html

# ------------------------------------------------------------------------------------
echo "== encryption at rest and the bandwidth limit"

SSE_KEY=$(head -c 32 /dev/urandom | base64)
config "$TMP/sse-c.json" "{\"backup_directory\": \"sse-tests\", \"encryption\": {\"mode\": \"SSE-C\", \"customer_key\": \"$SSE_KEY\"}}"
config "$TMP/sse-none.json" '{"backup_directory": "sse-tests"}'
no_key_leak() { # no_key_leak NAME: the customer key is in neither output of the last run
    if grep -qF -- "$SSE_KEY" "$OUT" "$ERR"; then
        fail "$1: the SSE-C customer key is in destctl's output"
    else
        pass "$1: no customer key in the output"
    fi
}
dctl "SSE-C: validate" 0 --config "$TMP/sse-c.json" --verbose validate
expect "validate reports SSE-C and the key's MD5" "d['encryption']['mode'] == 'SSE-C' and len(d['encryption']['customer_key_md5']) == 24"
no_key_leak "SSE-C validate"
dctl "SSE-C: upload a 3 MB file (parts)" 0 --config "$TMP/sse-c.json" --verbose upload "$TMP/data/big.bin" big.bin
no_key_leak "SSE-C upload"
dctl "SSE-C: list" 0 --config "$TMP/sse-c.json" list
expect "list shows SSE-C" "d['entries'][0]['encryption'] == 'SSE-C'"
dctl "SSE-C: download with the key (ranges)" 0 --config "$TMP/sse-c.json" --verbose download big.bin "$TMP/restore/sse.bin"
no_key_leak "SSE-C download"
if [[ $(sha1 "$TMP/restore/sse.bin") == "$(sha1 "$TMP/data/big.bin")" ]]; then
    pass "SSE-C restore is identical"
else
    fail "SSE-C restore differs"
fi
dctl "SSE-C: download without the key" 14 --config "$TMP/sse-none.json" download big.bin "$TMP/restore/sse-nokey.bin"
expect "encryption_key error, not retryable" "d['error']['code'] == 'encryption_key' and d['error']['retryable'] is False"
if [[ ! -e $TMP/restore/sse-nokey.bin ]]; then
    pass "a restore without the key writes nothing"
else
    fail "a restore without the key wrote $TMP/restore/sse-nokey.bin"
fi
if grep -qF -- "$SSE_KEY" "$TMP/emulator-data/journal.jsonl"; then
    fail "the emulator's journal holds the customer key"
else
    pass "the emulator's journal holds no customer key"
fi
dctl "SSE-C: clean up" 0 --config "$TMP/sse-c.json" delete big.bin
config "$TMP/bandwidth.json" '{"backup_directory": "bandwidth-tests", "bandwidth_limit_bytes_per_second": 1000000}'
started=$(date +%s%N)
dctl "bandwidth limit: upload 3 MB at 1 MB/s" 0 --config "$TMP/bandwidth.json" upload "$TMP/data/big.bin" big.bin
took_ms=$((($(date +%s%N) - started) / 1000000))
if [[ $took_ms -ge 2800 ]]; then
    pass "the limited upload took at least 2.8 s ($took_ms ms)"
else
    fail "the limited upload took $took_ms ms, under what 1 MB/s allows"
fi
dctl "bandwidth limit: clean up" 0 --config "$TMP/bandwidth.json" delete big.bin
echo "== Object Lock"

config "$TMP/locked.json" '{"bucket": "b2dest-locked", "object_lock": {"mode": "compliance", "retention_days": 2}}'
config "$TMP/lock-unlocked-bucket.json" '{"object_lock": {"mode": "governance", "retention_days": 2}}'
dctl "locked: validate" 0 --config "$TMP/locked.json" validate
expect "locked: the Object Lock checks passed" "{c['name'] for c in d['checks'] if c['ok']} >= {'object_lock_bucket', 'object_lock_capabilities', 'probe'}"
dctl "locked: upload" 0 --config "$TMP/locked.json" upload "$TMP/data/site/index.html" locked/index.html
expect "locked: the upload says until when" "d['retention_mode'] == 'compliance' and d['retain_until_ms'] > 0"
dctl "locked: delete refused" 13 --config "$TMP/locked.json" delete locked
expect "locked: the response counts what stays" "d['error']['code'] == 'locked' and d['locked_versions'] == 1 and d['deleted_versions'] == 0"
dctl "locked: list shows the lock" 0 --config "$TMP/locked.json" list locked
expect "locked: still there, locked" "d['count'] == 1 and d['entries'][0]['retention_mode'] == 'compliance'"
config "$TMP/locked-longer.json" '{"bucket": "b2dest-locked", "object_lock": {"mode": "compliance", "retention_days": 5}}'
dctl "locked: protect moves the retention forward" 0 --config "$TMP/locked-longer.json" protect locked
expect "locked: one version extended" "d['extended_versions'] == 1 and d['unchanged_versions'] == 0"
dctl "locked: a bucket without Object Lock refuses the upload" 4 --config "$TMP/lock-unlocked-bucket.json" upload "$TMP/data/site/index.html" locked/index.html
expect "locked: says what to enable" "'Object Lock' in d['error']['message']"

echo "== recovery after a compromise"

config "$TMP/rec.json" '{"bucket": "b2dest-locked", "backup_directory": "recovery", "object_lock": {"mode": "governance", "retention_days": 2}}'
config "$TMP/rec-attacker.json" '{"bucket": "b2dest-locked", "backup_directory": "recovery", "object_lock": {"mode": "compliance", "retention_days": 3}}'
dctl "recovery: locked backup of a tree" 0 --config "$TMP/rec.json" upload "$TMP/data/site" site
sleep 0.05
AS_OF=$(python3 -c 'import time; print(int(time.time() * 1000))')
sleep 0.05
printf 'garbage\n' >"$TMP/garbage"
dctl "recovery: the key's holder locks garbage over a backup" 0 --config "$TMP/rec-attacker.json" upload "$TMP/garbage" site/index.html
dctl "recovery: versions --as-of" 0 --config "$TMP/rec.json" versions site/index.html --as-of "$AS_OF"
expect "recovery: the garbage is newest, the original was current" "[e['current_at'] for e in d['entries']] == [False, True] and d['entries'][0]['retention_mode'] == 'compliance'"
dctl "recovery: restore --as-of" 0 --config "$TMP/rec.json" restore site "$TMP/restore/rec-site" --as-of "$AS_OF"
if cmp -s "$TMP/data/site/index.html" "$TMP/restore/rec-site/index.html" && cmp -s "$TMP/data/site/logs/access.log" "$TMP/restore/rec-site/logs/access.log"; then
    pass "recovery: the tree as of before the attack"
else
    fail "recovery: the restored tree differs from the backup"
fi
dctl "recovery: rollback --dry-run" 0 --config "$TMP/rec.json" rollback site --as-of "$AS_OF" --dry-run
expect "recovery: one copy planned, nothing done" "d['dry_run'] is True and d['copied_files'] == 1 and d['actions'][-1]['file_id'] is None"
dctl "recovery: rollback" 0 --config "$TMP/rec.json" rollback site --as-of "$AS_OF"
expect "recovery: the original copied back over the locked garbage" "d['copied_files'] == 1 and d['deleted_versions'] == 0 and d['locked_versions_left'] == 1"
dctl "recovery: download after the rollback" 0 --config "$TMP/rec.json" download site/index.html "$TMP/restore/rec-index.html"
if cmp -s "$TMP/data/site/index.html" "$TMP/restore/rec-index.html"; then
    pass "recovery: a plain download is the backup again"
else
    fail "recovery: a plain download after the rollback is not the backup"
fi
dctl "recovery: ISO-8601 time" 0 --config "$TMP/rec.json" versions site --as-of "2001-09-09T01:46:40Z"
expect "recovery: nothing was current in 2001" "d['as_of_ms'] == 1000000000000 and not any(e['current_at'] for e in d['entries'])"
dctl "recovery: restore needs --as-of or --file-id" 64 --config "$TMP/rec.json" restore site "$TMP/restore/x"
dctl "recovery: an unreadable time" 64 --config "$TMP/rec.json" rollback site --as-of yesterday

# ------------------------------------------------------------------------------------
echo "== progress and cancellation"

if command -v script >/dev/null 2>&1; then
    cmd=$(printf '%q ' "$DESTCTL" --config "$CFG" upload "$TMP/data/big.bin" tty/big.bin)
    rc=0
    script -qec "$cmd" /dev/null >"$TMP/tty.txt" 2>&1 </dev/null || rc=$?
    if [[ $rc -eq 0 ]] && grep -q 'upload \[' "$TMP/tty.txt" && grep -q '100%' "$TMP/tty.txt"; then
        pass "progress bar on a terminal"
    else
        fail "no progress bar on a terminal (exit $rc): $(head -c 400 "$TMP/tty.txt")"
    fi
    cmd=$(printf '%q ' "$DESTCTL" --quiet --config "$CFG" download tty/big.bin "$TMP/restore/tty.bin")
    rc=0
    script -qec "$cmd" /dev/null >"$TMP/tty.txt" 2>&1 </dev/null || rc=$?
    if [[ $rc -eq 0 ]] && ! grep -q 'download \[' "$TMP/tty.txt"; then
        pass "--quiet: no progress bar on a terminal"
    else
        fail "--quiet on a terminal (exit $rc): $(head -c 400 "$TMP/tty.txt")"
    fi
    dctl "progress test: clean up" 0 --config "$CFG" delete tty
else
    unavailable "progress bar checks: script(1) is not installed (bsdutils)"
fi

# Slow every part down and send them one at a time, interrupt destctl mid-upload: it
# cancels, and nothing is left. (The library asks the progress callback, and so learns of
# the Ctrl-C, only when bytes have moved: here when a part is done.)
config "$TMP/one-at-a-time.json" '{"concurrency": 1}'
# Starts a slowed upload of big.bin to the remote path $1 in the background (its pid in
# DESTCTL_PID) and returns once its first part is on its way, so destctl's handler is
# surely in place.
start_slow_upload() {
    emu POST faults '{"call": "b2_upload_part", "count": 20, "action": "delay", "millis": 1000}' >/dev/null
    "$DESTCTL" --config "$TMP/one-at-a-time.json" upload "$TMP/data/big.bin" "$1" >"$OUT" 2>"$ERR" </dev/null &
    DESTCTL_PID=$!
    for _ in $(seq 1 100); do
        started=$(emu GET counts | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"].get("b2_upload_part", 0))')
        [[ $started -ge 1 ]] && break
        sleep 0.1
    done
    sleep 0.5
}
emu POST counts/reset '{}' >/dev/null
start_slow_upload cancel/big.bin
kill -INT "$DESTCTL_PID" 2>/dev/null || true
rc=0
wait "$DESTCTL_PID" || rc=$?
emu DELETE faults >/dev/null
if [[ $rc -eq 11 ]] && json_true "d['error']['code'] == 'cancelled'"; then
    pass "Ctrl-C cancels an upload (exit 11)"
else
    fail "Ctrl-C during an upload: exit $rc, expected 11"
    show_last
fi
dctl "after the cancel: usage" 0 --config "$CFG" usage
expect "nothing half-made is left" "d['used_bytes'] == 0 and d['unfinished_large_files'] == 0"

# timeout(1) signals destctl and then its process group: the echo, 0.1 s later, is the
# same stop and must not kill destctl half-way; a signal a second later is an admin's
# second Ctrl-C and ends it at once (128 + SIGINT). Cancelling the large file takes 3 s
# here, so destctl is still cleaning up when the second signal comes.
cancel_twice() { # name, seconds between the signals, expected exit status
    emu POST faults '{"call": "b2_cancel_large_file", "count": 1, "action": "delay", "millis": 3000}' >/dev/null
    start_slow_upload cancel/twice.bin
    kill -INT "$DESTCTL_PID" 2>/dev/null || true
    sleep "$2"
    kill -INT "$DESTCTL_PID" 2>/dev/null || true
    rc=0
    wait "$DESTCTL_PID" || rc=$?
    emu DELETE faults >/dev/null
    if [[ $rc -eq $3 ]]; then
        pass "$1 (exit $rc)"
    else
        fail "$1: exit $rc, expected $3"
        show_last
    fi
}
emu POST counts/reset '{}' >/dev/null
cancel_twice "a signal repeated within 0.1 s still cancels cleanly" 0.1 11
dctl "after the repeated signal: usage" 0 --config "$CFG" usage
expect "the clean cancel left nothing" "d['used_bytes'] == 0 and d['unfinished_large_files'] == 0"
emu POST counts/reset '{}' >/dev/null
cancel_twice "a second Ctrl-C a second later ends destctl at once" 1 130
dctl "after the abrupt end, the upload runs again" 0 --config "$CFG" upload "$TMP/data/big.bin" cancel/twice.bin
dctl "and is deleted" 0 --config "$CFG" delete cancel
dctl "after the abrupt end: usage" 0 --config "$CFG" usage
expect "nothing is left of it" "d['used_bytes'] == 0 and d['unfinished_large_files'] == 0"

# Calls without a progress callback stop on SIGINT / SIGTERM too: every B2 call is held
# back 20 s, and the signal comes after 2 s. Without the fix destctl finishes the call and
# exits 0; the status, not the time, is checked.
for sig_cmd in "INT delete shell-tests-nothing" "TERM validate" "INT list" "TERM usage"; do
    read -r sig cmd args <<<"$sig_cmd"
    emu POST faults '{"call": "*", "count": 10, "action": "delay", "millis": 20000}' >/dev/null
    rc=0
    # shellcheck disable=SC2086 # args is one word or none
    timeout --preserve-status -s "$sig" 2 "$DESTCTL" --config "$CFG" "$cmd" $args >"$OUT" 2>"$ERR" </dev/null || rc=$?
    emu DELETE faults >/dev/null
    if [[ $rc -eq 11 ]] && json_true "d['error']['code'] == 'cancelled' and '$cmd' in d['error']['message']"; then
        pass "SIG$sig stops $cmd (exit 11)"
    else
        fail "SIG$sig during $cmd: exit $rc, expected 11"
        show_last
    fi
done

# ------------------------------------------------------------------------------------
echo "== host_example"

if [[ -x $HOST_EXAMPLE ]]; then
    config "$TMP/host.json" '{"backup_directory": "host-example-tests"}'
    rc=0
    "$HOST_EXAMPLE" "$TMP/host.json" "$TMP/data/big.bin" >"$TMP/host.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q 'all steps passed' "$TMP/host.out"; then
        pass "host_example round trip"
    else
        fail "host_example round trip: exit $rc"
        sed 's/^/     /' "$TMP/host.out" | tail -20
    fi
    # Parts one at a time, each slowed down: the callback sees bytes move before the end.
    config "$TMP/host-slow.json" '{"backup_directory": "host-example-tests", "concurrency": 1}'
    emu POST faults '{"call": "b2_upload_part", "count": 20, "action": "delay", "millis": 300}' >/dev/null
    rc=0
    "$HOST_EXAMPLE" --cancel-after 1 "$TMP/host-slow.json" "$TMP/data/big.bin" cancelled.dat >"$TMP/host.out" 2>&1 || rc=$?
    emu DELETE faults >/dev/null
    if [[ $rc -eq 0 ]] && grep -q 'cancelled upload: DEST_ERR_CANCELLED' "$TMP/host.out"; then
        pass "host_example with a cancelled upload"
    else
        fail "host_example --cancel-after: exit $rc"
        sed 's/^/     /' "$TMP/host.out" | tail -20
    fi
    config "$TMP/host-bad.json" "{\"application_key\": \"$WRONG_KEY\"}"
    rc=0
    "$HOST_EXAMPLE" "$TMP/host-bad.json" "$TMP/data/big.bin" >"$TMP/host.out" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]] && grep -q 'DEST_ERR_AUTH' "$TMP/host.out"; then
        pass "host_example fails on a wrong key"
    else
        fail "host_example with a wrong key: exit $rc"
        sed 's/^/     /' "$TMP/host.out" | tail -20
    fi
else
    unavailable "host_example: $HOST_EXAMPLE is not built (make -C c_examples)"
fi

# ------------------------------------------------------------------------------------
echo "== PHP"

php_modules=$("$PHP" -m 2>/dev/null || true)
if grep -qix 'ffi' <<<"$php_modules"; then
    rc=0
    B2_EMULATOR_URL=$URL B2_EMULATOR_ACCOUNT_ID=$ACCOUNT_ID B2_EMULATOR_APPLICATION_KEY=$APP_KEY \
        B2_EMULATOR_BUCKET=$BUCKET B2_EMULATOR_LOCKED_BUCKET=b2dest-locked \
        "$PHP" "$ROOT/tests/php/run_tests.php" >"$TMP/php.out" 2>&1 || rc=$?
    sed 's/^/     /' "$TMP/php.out"
    if [[ $rc -eq 0 ]]; then
        pass "PHP tests ($(tail -1 "$TMP/php.out"))"
    else
        fail "PHP tests: exit $rc"
    fi
    # Preloaded, as under php-fpm: the scoped header by ffi.preload plus preload.php as
    # opcache.preload (which sees the scope and leaves it), run as root needs preload_user.
    "$PHP" "$ROOT/c_examples/php/preload.php" --header "$LIB" >"$TMP/b2dest-ffi-preload.h"
    rc=0
    B2_EMULATOR_URL=$URL B2_EMULATOR_ACCOUNT_ID=$ACCOUNT_ID B2_EMULATOR_APPLICATION_KEY=$APP_KEY \
        B2_EMULATOR_BUCKET=$BUCKET B2_EMULATOR_LOCKED_BUCKET=b2dest-locked B2DEST_EXPECT_SCOPE=1 \
        "$PHP" -d ffi.enable=preload -d ffi.preload="$TMP/b2dest-ffi-preload.h" -d opcache.enable_cli=1 \
        -d opcache.preload="$ROOT/c_examples/php/preload.php" -d opcache.preload_user="$(id -un)" \
        "$ROOT/tests/php/run_tests.php" >"$TMP/php.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]]; then
        pass "PHP tests under preloading, ffi.preload ($(tail -1 "$TMP/php.out"))"
    else
        sed 's/^/     /' "$TMP/php.out"
        fail "PHP tests under preloading (ffi.preload): exit $rc"
    fi
    # preload.php's own FFI::load(), which PHP allows only when preloading runs in the
    # process itself: not as root (that forks a child as preload_user), so as nobody then.
    as_user=()
    if [[ $(id -u) -eq 0 ]] && command -v runuser >/dev/null; then as_user=(runuser -u nobody --); fi
    if [[ $(id -u) -ne 0 || ${#as_user[@]} -gt 0 ]]; then
        rc=0
        out=$(B2DEST_LIB=$LIB "${as_user[@]}" "$PHP" -d ffi.enable=preload -d opcache.enable_cli=1 \
            -d opcache.preload="$ROOT/c_examples/php/preload.php" \
            -r 'require $argv[1]; echo B2Dest::loadedFromScope() ? "scope " : "cdef ", B2Dest::version(), "\n";' \
            "$ROOT/c_examples/php/B2Dest.php" 2>&1) || rc=$?
        if [[ $rc -eq 0 && $out == "scope "* ]]; then
            pass "preload.php as opcache.preload loads the library by FFI::load() ($out${as_user:+, as nobody})"
        else
            fail "preload.php by FFI::load(): exit $rc: $out"
        fi
    fi
    config "$TMP/php-example.json" '{"backup_directory": "php-example"}'
    rc=0
    "$PHP" "$ROOT/c_examples/php/example.php" "$TMP/php-example.json" "$TMP/data/big.bin" >"$TMP/php.out" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q 'identical yes' "$TMP/php.out"; then
        pass "PHP example round trip"
    else
        fail "PHP example: exit $rc"
        sed 's/^/     /' "$TMP/php.out"
    fi
else
    fail "PHP with the FFI extension is not available ($PHP -m has no FFI)"
fi

# ------------------------------------------------------------------------------------
finish
