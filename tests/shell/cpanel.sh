#!/usr/bin/env bash
# The cPanel Custom transport (c_examples/cpanel), driven the way cPanel drives it: one
# process per command, arguments COMMAND CURRENT_DIR PARAMS... [HOST] [USER], the key in
# PASSWORD and nothing else in the environment, CURRENT_DIR as the last chdir printed it,
# killed when its output stays silent for the read timeout. A whole backup, restore and
# prune against an emulator; missing paths; every combination of Remote Host, Remote
# Account Username and account_id; a prune and a listing slowed past the read timeout;
# the refusals of rmdir and delete; and a watcher that reads every process's argv while
# the commands run, to show the key is in none.
#
#   bash tests/shell/cpanel.sh   (after cargo build --release and make -C c_examples)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
TRANSPORT=${CPANEL_TRANSPORT:-$ROOT/c_examples/cpanel/b2dest-cpanel-transport}
if [[ ! -x $TRANSPORT ]]; then
    echo "cpanel.sh: $TRANSPORT is missing (make -C c_examples)" >&2
    exit 2
fi
start_emulator

# A key made for this run, sent to the emulator on standard input: no argv holds it.
KEY_ID=cpanel-key
SECRET="cpanel-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '{"key_id": "%s", "application_key": "%s", "capabilities": ["listBuckets", "listFiles", "readFiles", "writeFiles", "deleteFiles"], "bucket": "%s"}' \
    "$KEY_ID" "$SECRET" "$BUCKET" |
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/__emulator/keys", data=sys.stdin.buffer.read(), method="POST", headers={"Content-Type": "application/json"}), timeout=10).read()' "$URL"

# The destination without the key, next to a copy of the program (the default place).
install -d "$TMP/bin"
cp "$TRANSPORT" "$TMP/bin/b2-offsite"
T=$TMP/bin/b2-offsite
python3 -c '
import json, sys
json.dump({"name": "cPanel", "bucket": sys.argv[1], "backup_directory": "whm", "api_url": sys.argv[2],
           "part_size_bytes": 1000000, "retry_initial_delay_ms": 10}, open(sys.argv[3], "w"))
' "$BUCKET" "$URL" "$T.json"
chmod 600 "$T.json"
HOST=api.backblazeb2.com

# Watches every process's argv for the key until $TMP/watch.stop exists; the key comes
# in its environment. Writes what it saw to $TMP/watch.json.
WATCH_KEY=$SECRET python3 -c '
import json, os, sys
key = os.environ.pop("WATCH_KEY").encode()
stop, out = sys.argv[1], sys.argv[2]
hits, seen, scans = set(), set(), 0
open(stop + ".ready", "w").close()
while not os.path.exists(stop):
    scans += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if b"b2-offsite" in argv:
            seen.add(pid)
        if key in argv:
            hits.add(argv.replace(b"\0", b" ").replace(key, b"<KEY>").decode(errors="replace"))
json.dump({"hits": sorted(hits), "transport_processes": len(seen), "scans": scans}, open(out, "w"))
' "$TMP/watch.stop" "$TMP/watch.json" &
WATCH_PID=$!
for _ in $(seq 1 100); do [[ -e $TMP/watch.stop.ready ]] && break; sleep 0.1; done

OUT=$TMP/out.txt
ERR=$TMP/err.txt
# cPanel's Cpanel::SafeRun::Object as the Custom module uses it: the environment stripped
# to PASSWORD (and what run_env adds), the script killed when its standard output stays
# silent for the read timeout (exit 124, "Connection Timeout").
cat >"$TMP/saferun.py" <<'PY'
import os, select, subprocess, sys
# saferun.py TIMEOUT OUT ERR [VAR=value...] -- PROGRAM ARGS...; PASSWORD from our environment.
timeout = float(sys.argv[1])
out, err = open(sys.argv[2], "wb"), open(sys.argv[3], "wb")
split = sys.argv.index("--")
env = {"PATH": "/usr/bin:/bin", "PASSWORD": os.environ.get("PASSWORD", "")}
env.update(a.split("=", 1) for a in sys.argv[4:split])
child = subprocess.Popen(sys.argv[split + 1:], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
fd = child.stdout.fileno()
while True:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        child.kill()
        child.wait()
        err.write(b"Connection Timeout\n")
        sys.exit(124)
    data = os.read(fd, 65536)
    if not data:
        break
    out.write(data)
    out.flush()
sys.exit(child.wait())
PY
READ_TIMEOUT=30 # cPanel's default Timeout
RUN_ENV=()      # more VAR=value for the script's environment
# run NAME EXPECTED_EXIT ARGS...: one transport process, as cPanel starts it.
run() {
    local name=$1 expected=$2 rc=0
    shift 2
    PASSWORD=$SECRET python3 "$TMP/saferun.py" "$READ_TIMEOUT" "$OUT" "$ERR" "${RUN_ENV[@]}" -- "${PROGRAM:-$T}" "$@" || rc=$?
    if [[ $rc -eq $expected ]]; then
        pass "$name (exit $rc)"
    else
        fail "$name: exit $rc, expected $expected; stdout: $(head -c 500 "$OUT"); stderr: $(head -c 500 "$ERR")"
    fi
}
# A failure must say why on standard error.
says() {
    if [[ -s $ERR ]] && grep -q -- "$1" "$ERR"; then pass "  ... stderr says: $(head -1 "$ERR" | cut -c1-110)"; else fail "  ... stderr lacks '$1': $(cat "$ERR")"; fi
}
# ls_names: "TYPE NAME SIZE" per line, split as cPanel splits ls -l output (9 fields).
ls_names() {
    python3 -c '
import sys
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split(None, 8)
    if len(f) == 9:
        print(f[0][0], f[8], f[4])
    elif not line.startswith("total "):
        print("BAD", line.strip())
' "$OUT"
}

# A planted argv with the key: the watcher must see it, or it proves nothing.
bash -c 'sleep 1; true' planted "$SECRET"

mkdir -p "$TMP/local/accounts" "$TMP/restore"
head -c 3000000 /dev/urandom >"$TMP/local/accounts/alice.tar.gz"
head -c 40000 /dev/urandom >"$TMP/local/accounts/bob.tar.gz"
printf 'backup meta\n' >"$TMP/local/backup_meta"

echo "== a backup: mkdir, chdir, put"
run "mkdir the backup directory" 0 mkdir / cpanel-backups "$HOST" "$KEY_ID"
if [[ ! -s $OUT ]]; then pass "mkdir prints nothing"; else fail "mkdir printed $(cat "$OUT")"; fi
run "chdir into it" 0 chdir / cpanel-backups "$HOST" "$KEY_ID"
CWD=$(cat "$OUT") # as cPanel keeps it: chdir's output, newline and all
if [[ $CWD == /cpanel-backups ]]; then pass "chdir prints the new directory"; else fail "chdir printed '$CWD'"; fi
CWD=$(<"$OUT")$'\n'
run "mkdir the day" 0 mkdir "$CWD" 2026-12-01 "$HOST" "$KEY_ID"
run "mkdir the day's accounts" 0 mkdir "$CWD" 2026-12-01/accounts "$HOST" "$KEY_ID"
run "put a 3 MB account archive (large file)" 0 put "$CWD" "$TMP/local/accounts/alice.tar.gz" 2026-12-01/accounts/alice.tar.gz "$HOST" "$KEY_ID"
run "put a small account archive" 0 put "$CWD" "$TMP/local/accounts/bob.tar.gz" 2026-12-01/accounts/bob.tar.gz "$HOST" "$KEY_ID"
run "put by an absolute path" 0 put "$CWD" "$TMP/local/backup_meta" /cpanel-backups/2026-12-01/backup_meta "$HOST" "$KEY_ID"
run "put the next day's backup" 0 put "$CWD" "$TMP/local/accounts/bob.tar.gz" 2026-12-02/accounts/bob.tar.gz "$HOST" "$KEY_ID"

echo "== ls"
run "ls the day's accounts" 0 ls "$CWD" 2026-12-01/accounts "$HOST" "$KEY_ID"
if [[ $(ls_names) == $'- alice.tar.gz 3000000\n- bob.tar.gz 40000' ]]; then pass "ls -l lines: files, names, sizes"; else fail "ls: $(cat "$OUT")"; fi
run "ls the backup directory" 0 ls "$CWD" . "$HOST" "$KEY_ID"
if [[ $(ls_names) == $'d 2026-12-01 0\nd 2026-12-02 0' ]]; then pass "ls shows the days as directories"; else fail "ls .: $(cat "$OUT")"; fi
run "ls one day" 0 ls "$CWD" 2026-12-01 "$HOST" "$KEY_ID"
if [[ $(ls_names) == $'d accounts 0\n- backup_meta 12' ]]; then pass "ls mixes directories and files"; else fail "ls day: $(cat "$OUT")"; fi
run "ls one file by an absolute path" 0 ls / /cpanel-backups/2026-12-01/accounts/bob.tar.gz "$HOST" "$KEY_ID"
if [[ $(ls_names) == '- bob.tar.gz 40000' ]]; then pass "ls of a file: that file"; else fail "ls file: $(cat "$OUT")"; fi
# B2 has no empty directories: nothing there is a path that does not exist, and cPanel
# says so only when ls prints no line at all.
run "ls a path that holds nothing" 0 ls "$CWD" 2026-11-30 "$HOST" "$KEY_ID"
if [[ ! -s $OUT ]]; then pass "ls of nothing prints nothing (cPanel: 'The specified path does not exist')"; else fail "ls nothing: $(cat "$OUT")"; fi
run "chdir into a directory B2 shows nothing in (cPanel's mkdir then chdir)" 0 chdir "$CWD" 2026-11-30 "$HOST" "$KEY_ID"
if [[ $(cat "$OUT") == /cpanel-backups/2026-11-30 ]]; then pass "  ... prints it"; else fail "chdir printed '$(cat "$OUT")'"; fi

echo "== restore: get"
run "get the large archive" 0 get "$CWD" 2026-12-01/accounts/alice.tar.gz "$TMP/restore/alice.tar.gz" "$HOST" "$KEY_ID"
if cmp -s "$TMP/local/accounts/alice.tar.gz" "$TMP/restore/alice.tar.gz"; then pass "restored archive is identical"; else fail "restored archive differs"; fi
run "get what is not there" 5 get "$CWD" 2026-12-01/accounts/carol.tar.gz "$TMP/restore/carol.tar.gz" "$HOST" "$KEY_ID"
says "not"
if [[ ! -e $TMP/restore/carol.tar.gz ]]; then pass "a failed get leaves no file"; else fail "a failed get left a file"; fi

echo "== refusals (nothing is deleted)"
run "rmdir /" 1 rmdir / / "$HOST" "$KEY_ID"
says "whole backup directory"
run "rmdir of the current directory's root by '..'" 1 rmdir "$CWD" .. "$HOST" "$KEY_ID"
says "whole backup directory"
run "rmdir of an empty path" 1 rmdir / "" "$HOST" "$KEY_ID"
says "whole backup directory"
run "rmdir of a path that leaves the backup directory" 1 rmdir "$CWD" ../../etc "$HOST" "$KEY_ID"
says "leaves the backup directory"
run "delete of a directory" 1 delete "$CWD" 2026-12-01 "$HOST" "$KEY_ID"
says "is a directory"
run "chdir out of the backup directory" 1 chdir / .. "$HOST" "$KEY_ID"
says "leaves"
run "everything is still there" 0 ls "$CWD" 2026-12-01/accounts "$HOST" "$KEY_ID"
if [[ $(ls_names | wc -l) -eq 2 ]]; then pass "the refusals deleted nothing"; else fail "after the refusals: $(cat "$OUT")"; fi

echo "== prune: rmdir, delete"
run "rmdir the old day" 0 rmdir "$CWD" 2026-12-01 "$HOST" "$KEY_ID"
run "ls after the prune" 0 ls "$CWD" . "$HOST" "$KEY_ID"
if [[ $(ls_names) == 'd 2026-12-02 0' ]]; then pass "only the new day is left"; else fail "after rmdir: $(cat "$OUT")"; fi
left=$(emu GET "versions/$BUCKET" | python3 -c 'import json,sys; print(sum(1 for v in json.load(sys.stdin) if v["file_name"].startswith("whm/cpanel-backups/2026-12-01/")))')
unfinished=$(emu GET "unfinished/$BUCKET" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
if [[ $left -eq 0 && $unfinished -eq 0 ]]; then pass "B2 keeps no version of the pruned day"; else fail "after rmdir: $left versions, $unfinished unfinished"; fi
run "delete one file" 0 delete "$CWD" 2026-12-02/accounts/bob.tar.gz "$HOST" "$KEY_ID"
run "ls after the delete" 0 ls "$CWD" . "$HOST" "$KEY_ID"
if [[ ! -s $OUT ]]; then pass "the emptied directory does not exist (ls prints nothing)"; else fail "after delete: $(cat "$OUT")"; fi
run "ls / when nothing is left" 0 ls "$CWD" / "$HOST" "$KEY_ID"
if [[ $(cat "$OUT") == 'total 0' ]]; then pass "the backup directory itself always exists: total 0"; else fail "ls / after delete: $(cat "$OUT")"; fi

echo "== failures"
rc=0
PASSWORD=wrong-key "$T" ls / . "$HOST" "$KEY_ID" >"$OUT" 2>"$ERR" </dev/null || rc=$?
if [[ $rc -eq 3 ]]; then pass "a wrong key: exit 3"; else fail "a wrong key: exit $rc"; fi
says "rejected"

echo "== WHM's Remote Host and Remote Account Username, each may be empty"
run "Remote Host empty: cPanel passes the user alone" 0 ls / . "$KEY_ID"
run "Remote Host only (Username empty), no account_id in the file" 78 ls / . "$HOST"
says "Remote Account Username is empty (cPanel passed only the Remote Host, '$HOST')"
run "a host name in Remote Account Username" 78 ls / . "$HOST" api.example.com
says "looks like a host name, not a B2 key ID"
run "Remote Host a plain word, Username empty: taken as the key ID" 3 ls / . b2
says "the one name cPanel passed"
# The key ID in the file instead: a second destination, a copy of the program.
cp "$T" "$TMP/bin/b2-byfile"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1])); c["account_id"] = sys.argv[2]; json.dump(c, open(sys.argv[3], "w"))
' "$T.json" "$KEY_ID" "$TMP/bin/b2-byfile.json"
chmod 600 "$TMP/bin/b2-byfile.json"
PROGRAM=$TMP/bin/b2-byfile
run "account_id in the file, Host and Username empty" 0 ls / .
run "account_id in the file, Host only" 0 ls / . "$HOST"
run "account_id in the file, Username alone, the same key ID" 0 ls / . "$KEY_ID"
run "account_id in the file, Host and the same Username" 0 ls / . "$HOST" "$KEY_ID"
run "account_id in the file, a different Username" 78 ls / . "$HOST" other-key
says "name different keys: leave one of them empty"
run "account_id in the file, one name that is neither a host nor the key ID" 78 ls / . other-key
says "cPanel passed one name, 'other-key'"
unset PROGRAM
rc=0
env -u PASSWORD "$T" ls / . "$HOST" "$KEY_ID" >"$OUT" 2>"$ERR" </dev/null || rc=$?
if [[ $rc -eq 78 ]]; then pass "no PASSWORD: exit 78"; else fail "no PASSWORD: exit $rc"; fi
says "PASSWORD"
run "no key ID (no USER, none in the file)" 78 ls / .
says "key ID"
run "an unknown command" 64 rename / a b "$HOST" "$KEY_ID"
run "too many arguments" 64 delete / a b "$HOST" "$KEY_ID" extra
chmod 666 "$T.json"
run "a configuration others may write" 78 ls / . "$HOST" "$KEY_ID"
says "chmod 600"
# It may hold an SSE-C customer_key: readable by others is refused too.
for mode in 644 640 604; do
    chmod "$mode" "$T.json"
    run "a configuration of mode $mode (others may read it)" 78 ls / . "$HOST" "$KEY_ID"
    says "readable and writable by no one else: chmod 600"
done
chmod 600 "$T.json"
run "the configuration at 600 again" 0 ls / . "$HOST" "$KEY_ID"
RUN_ENV=(B2DEST_CPANEL_CONFIG="$TMP/none.json")
run "B2DEST_CPANEL_CONFIG names a missing file" 66 ls / . "$HOST" "$KEY_ID"
RUN_ENV=()

echo "== a long prune under cPanel's read timeout (each B2 delete slowed to 250 ms)"
# One delete at a time, so 24 files take at least 6 s; the read timeout is 3 s.
cp "$T" "$TMP/bin/b2-slow"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1])); c["concurrency"] = 1; json.dump(c, open(sys.argv[2], "w"))
' "$T.json" "$TMP/bin/b2-slow.json"
chmod 600 "$TMP/bin/b2-slow.json"
PROGRAM=$TMP/bin/b2-slow
READ_TIMEOUT=3
emu POST seed "{\"bucket\": \"$BUCKET\", \"prefix\": \"whm/old/2026-11-01/f\", \"count\": 24, \"size\": 100}" >/dev/null
left_old() { emu GET "versions/$BUCKET" | python3 -c 'import json,sys; print(sum(1 for v in json.load(sys.stdin) if v["file_name"].startswith("whm/old/2026-11-01/")))'; }
emu POST faults '{"call": "b2_delete_file_version", "count": 1000, "action": "delay", "millis": 250}' >/dev/null
# The control: a line only every 10 s is what cPanel kills, with files left behind.
RUN_ENV=(B2DEST_CPANEL_HEARTBEAT_SECONDS=10)
run "rmdir, progress every 10 s: killed by a 3 s read timeout" 124 rmdir / old/2026-11-01 "$HOST" "$KEY_ID"
killed_left=$(left_old)
if [[ $killed_left -gt 0 ]]; then pass "  ... and left $killed_left of 24 files behind"; else fail "the killed prune left nothing: the control proves nothing"; fi
RUN_ENV=(B2DEST_CPANEL_HEARTBEAT_SECONDS=1)
run "rmdir, progress every second: survives the 3 s read timeout" 0 rmdir / old/2026-11-01 "$HOST" "$KEY_ID"
if [[ $(left_old) -eq 0 ]]; then pass "  ... and the pruned day is gone from B2"; else fail "after the prune $(left_old) versions are left"; fi
python3 -c '
import re, sys
lines = open(sys.argv[1]).read().splitlines()
counts = [tuple(map(int, m.groups())) for m in (re.match(r"progress rmdir /old/2026-11-01: (\d+) of (\d+) files deleted, (\d+) left", l) for l in lines) if m]
bad = [l for l in lines if not l.startswith("progress rmdir /old/2026-11-01: ")]
ok = len(counts) >= 2 and not bad and all(d + l == t == int(sys.argv[2]) for d, t, l in counts)
ok = ok and [d for d, _, _ in counts] == sorted(d for d, _, _ in counts) and any(0 < d for d, _, _ in counts)
print("%d progress lines, done counts %s" % (len(counts), [d for d, _, _ in counts]))
sys.exit(0 if ok else 1)
' "$OUT" "$killed_left" >"$TMP/beat.txt" && pass "  ... progress lines count the files down: $(cat "$TMP/beat.txt")" || fail "progress lines: $(cat "$TMP/beat.txt"); $(head -c 600 "$OUT")"
emu DELETE faults >/dev/null

# A listing slowed past the read timeout: "total 0 (...)" lines, which cPanel's ls parser
# skips, keep it alive, and the entries still parse.
run "put a file to list" 0 put / "$TMP/local/backup_meta" slowls/backup_meta "$HOST" "$KEY_ID"
emu POST faults '{"call": "b2_list_file_names", "count": 4, "action": "delay", "millis": 4000}' >/dev/null
run "ls slowed to 4 s a page, progress every second, 3 s read timeout" 0 ls / slowls "$HOST" "$KEY_ID"
if [[ $(ls_names) == '- backup_meta 12' ]] && grep -q '^total 0 (listing /slowls' "$OUT"; then pass "  ... progress lines and the entry"; else fail "slow ls: $(cat "$OUT")"; fi
emu DELETE faults >/dev/null
RUN_ENV=()
READ_TIMEOUT=30
unset PROGRAM

touch "$TMP/watch.stop"
wait "$WATCH_PID"
echo "== argv watcher"
python3 -c '
import json, sys
w = json.load(open(sys.argv[1]))
planted = [h for h in w["hits"] if "planted" in h]
others = [h for h in w["hits"] if "planted" not in h]
print("planted %d, other %d, transport processes seen %d, scans %d" % (len(planted), len(others), w["transport_processes"], w["scans"]))
for h in others:
    print("  argv with the key:", h)
sys.exit(0 if planted and not others and w["transport_processes"] >= 10 else 1)
' "$TMP/watch.json" >"$TMP/watch.txt" && rc=0 || rc=$?
if [[ $rc -eq 0 ]]; then
    pass "the key was in no process's argv ($(head -1 "$TMP/watch.txt"))"
else
    fail "argv watcher: $(cat "$TMP/watch.txt")"
fi

finish
