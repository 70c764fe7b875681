#!/usr/bin/env bash
# The b2dest demo: a backup and restore through destctl, step by step.
#
#   bash scripts/demo.sh
#
# Builds the release library, destctl and (when needed) the emulator, then runs:
# validate, upload a large generated file (multipart) and a small directory, list,
# usage, download both and verify them (sha1sum, diff), delete, usage again. Against the
# emulator it then shows an immutable backup: uploaded with Object Lock to a bucket that
# has it, its delete refused (DEST_ERR_LOCKED, 13) and the backup still there; then an
# attacker with the key uploading garbage over it, and the recovery: versions, a restore
# as of before the attack, a rollback that copies the original back, a plain restore.
#
# Where: with B2_ACCOUNT_ID, B2_APPLICATION_KEY and B2_BUCKET all set, against real
# Backblaze B2, under a fresh backup directory "b2dest-demo-<random>" that is removed
# again at the end (also when a step fails). Otherwise against a local b2-emulator with a
# temporary data directory, over HTTPS as B2 is: the emulator makes its own CA, and the
# destination trusts it through "ca_file".
#
# B2_API_URL overrides the API URL in that mode (default https://api.backblazeb2.com).
#
# Settings: DEMO_SIZE_MB (default 300) the size of the large file; DEMO_PART_SIZE bytes
# per part (default: what B2 recommends; the emulator is started recommending 25 MB);
# DEMO_CONCURRENCY (default 4). Run it in a terminal to see destctl's progress bars.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${DEMO_SIZE_MB:-300}
DESTCTL=$ROOT/c_examples/destctl
LIB=$ROOT/target/release/libb2dest.so
EMULATOR=$ROOT/target/release/b2-emulator
export B2DEST_LIB=$LIB

if [[ -t 1 ]]; then
    BOLD=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' GREEN=$'\033[32m' RESET=$'\033[0m'
else
    BOLD='' DIM='' RED='' GREEN='' RESET=''
fi
header() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }
note() { printf '%s%s%s\n' "$DIM" "$*" "$RESET"; }
die() {
    printf '%sdemo: %s%s\n' "$RED" "$*" "$RESET" >&2
    exit 1
}

if ! [[ $SIZE_MB =~ ^[0-9]+$ ]] || [[ $SIZE_MB -lt 1 ]]; then
    die "DEMO_SIZE_MB must be a whole number of megabytes, not '$SIZE_MB'"
fi
for tool in cargo make cc python3 sha1sum head diff; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and not installed"
done

if [[ -n ${B2_ACCOUNT_ID:-} && -n ${B2_APPLICATION_KEY:-} && -n ${B2_BUCKET:-} ]]; then
    MODE=b2
else
    MODE=emulator
    unset_vars=()
    for v in B2_ACCOUNT_ID B2_APPLICATION_KEY B2_BUCKET; do
        [[ -n ${!v:-} ]] || unset_vars+=("$v")
    done
    if [[ ${#unset_vars[@]} -lt 3 ]]; then
        note "(${unset_vars[*]} not set: using the local emulator, not B2)"
    fi
fi

# ------------------------------------------------------------------------------------
header "Building"
(cd "$ROOT" && cargo build --release -p b2dest) || die "the library did not build"
if [[ $MODE == emulator ]]; then
    (cd "$ROOT" && cargo build --release -p b2-emulator) || die "the emulator did not build"
fi
make -C "$ROOT/c_examples" destctl || die "destctl did not build"

# ------------------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/b2dest-demo.XXXXXX")
EMU_PID=
UPLOADED=0 # set once something may be stored remotely, cleared by the delete step

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ $UPLOADED == 1 && -f $TMP/config.json ]]; then
        note "cleaning up: deleting the demo's files from the destination"
        "$DESTCTL" --quiet --config "$TMP/config.json" delete demo >/dev/null 2>&1 ||
            printf '%sdemo: could not delete the demo files; remove "%s" by hand%s\n' \
                "$RED" "${BACKUP_DIR:-demo}" "$RESET" >&2
    fi
    if [[ -n $EMU_PID ]] && kill -0 "$EMU_PID" 2>/dev/null; then
        kill "$EMU_PID" 2>/dev/null || true
        wait "$EMU_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $MODE == emulator ]]; then
    header "Starting the local B2 emulator"
    "$EMULATOR" --listen 127.0.0.1:0 --data-dir "$TMP/emulator-data" \
        --tls --ca-out "$TMP/emulator-ca.pem" --bucket b2dest-test --object-lock b2dest-locked \
        --recommended-part-size 25000000 >"$TMP/emulator.out" 2>"$TMP/emulator.err" &
    EMU_PID=$!
    API_URL=
    for _ in $(seq 1 100); do
        API_URL=$(sed -n '1s/^B2_EMULATOR_URL=//p' "$TMP/emulator.out" 2>/dev/null || true)
        [[ -n $API_URL ]] && break
        kill -0 "$EMU_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $API_URL ]]; then
        cat "$TMP/emulator.err" >&2 || true
        die "the emulator did not start"
    fi
    echo "emulator at $API_URL, data in $TMP/emulator-data, its CA in $TMP/emulator-ca.pem"
    CA_FILE=$TMP/emulator-ca.pem
    ACCOUNT=emu-account KEY=emu-application-key BUCKET=b2dest-test
    BACKUP_DIR=b2dest-demo
else
    header "Using Backblaze B2"
    API_URL=${B2_API_URL:-}
    ACCOUNT=$B2_ACCOUNT_ID KEY=$B2_APPLICATION_KEY BUCKET=$B2_BUCKET
    CA_FILE=
    BACKUP_DIR=b2dest-demo-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
    echo "bucket $BUCKET, backup directory $BACKUP_DIR (removed at the end)"
fi

# The configuration holds the key: written by python3 from the environment (never on a
# command line, where ps would show it), readable by this user only.
old_umask=$(umask)
umask 077
DEMO_ACCOUNT=$ACCOUNT DEMO_KEY=$KEY DEMO_BUCKET=$BUCKET DEMO_DIR=$BACKUP_DIR DEMO_URL=$API_URL \
    DEMO_CA=$CA_FILE python3 - "$TMP/config.json" <<'PY'
import json, os, sys
c = {
    "name": "b2dest demo",
    "account_id": os.environ["DEMO_ACCOUNT"],
    "application_key": os.environ["DEMO_KEY"],
    "bucket": os.environ["DEMO_BUCKET"],
    "backup_directory": os.environ["DEMO_DIR"],
    "concurrency": int(os.environ.get("DEMO_CONCURRENCY") or 4),
}
if os.environ["DEMO_URL"]:
    c["api_url"] = os.environ["DEMO_URL"]
if os.environ["DEMO_CA"]:
    c["ca_file"] = os.environ["DEMO_CA"]
if os.environ.get("DEMO_PART_SIZE"):
    c["part_size_bytes"] = int(os.environ["DEMO_PART_SIZE"])
with open(sys.argv[1], "w") as f:
    json.dump(c, f)
PY
unset KEY
umask "$old_umask"

# Prints a response readably: python3 show.py STEP RESPONSE.json
cat >"$TMP/show.py" <<'PY'
import datetime, json, sys

step, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))

def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024

def row(label, value):
    print("  %-25s %s" % (label + ":", value))

if not d.get("ok"):
    e = d.get("error", {})
    row("error", "%s: %s" % (e.get("code"), e.get("message")))
    row("retryable", e.get("retryable"))
    if "locked_versions" in d:
        row("versions deleted", d["deleted_versions"])
        row("locked versions", "%d (%s)" % (d["locked_versions"], human(d["locked_bytes"])))
        if d.get("earliest_unlock_ms"):
            row("first unlock", datetime.datetime.fromtimestamp(d["earliest_unlock_ms"] / 1000).strftime("%Y-%m-%d %H:%M:%S"))
elif step == "validate":
    for c in d.get("checks", []):
        print("  %s %-15s %s" % ("ok  " if c["ok"] else "FAIL", c["name"], c["message"]))
elif step == "upload":
    row("remote path", d["remote_path"])
    row("size", "%s (%d bytes)" % (human(d["size"]), d["size"]))
    if "files" in d:
        row("files", d["file_count"])
        for f in d["files"]:
            print("    %-30s %10s  sha1 %s" % (f["remote_path"], human(f["size"]), f["sha1"]))
    else:
        row("sha1", d["sha1"])
        row("file id", d["file_id"])
        if d.get("retain_until_ms"):
            row("locked until", "%s (%s mode)" % (datetime.datetime.fromtimestamp(d["retain_until_ms"] / 1000).strftime("%Y-%m-%d %H:%M:%S"), d["retention_mode"]))
        if d.get("resumed_bytes"):
            row("resumed", human(d["resumed_bytes"]))
elif step == "list":
    row("files", d["count"])
    for e in d["entries"]:
        when = datetime.datetime.fromtimestamp(e["modified_ms"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
        print("    %-30s %10s  %s  sha1 %s" % (e["path"], human(e["size"]), when, e["sha1"]))
elif step == "usage":
    row("used", "%s (%d bytes)" % (human(d["used_bytes"]), d["used_bytes"]))
    row("files / versions", "%d / %d" % (d["files"], d["versions"]))
    row("unfinished large files", d["unfinished_large_files"])
    row("limit reached", d["limit_reached"])
    if "total_bytes" in d:
        row("quota", "%s, %s free (%.2f%% used)" % (human(d["total_bytes"]), human(d["free_bytes"]), d["used_percent"]))
elif step == "download":
    row("size", "%s (%d bytes)" % (human(d["size"]), d["size"]))
    if "files" in d:
        row("files", d["file_count"])
    else:
        row("sha1", d["sha1"])
    row("verified by the library", d["verified"])
elif step == "delete":
    row("versions deleted", d["deleted_versions"])
    row("space freed", human(d["bytes_freed"]))
elif step == "versions":
    row("versions", d["count"])
    for e in d["entries"]:
        when = datetime.datetime.fromtimestamp((e["upload_ms"] or 0) / 1000).strftime("%Y-%m-%d %H:%M:%S")
        now = "  <- current then" if e.get("current_at") else ""
        print("    %-24s %-7s %8s  %s  sha1 %s%s" % (e["remote_path"], e["action"], human(e["size"] or 0), when, e["sha1"], now))
elif step == "restore":
    row("size", "%s (%d bytes)" % (human(d["size"]), d["size"]))
    row("sha1", d["sha1"])
    row("from version", "%s (uploaded %s)" % (d["file_id"], datetime.datetime.fromtimestamp(d["upload_ms"] / 1000).strftime("%Y-%m-%d %H:%M:%S")))
    row("verified by the library", d["verified"])
elif step == "rollback":
    row("dry run", d["dry_run"])
    row("deleted / copied back", "%d / %d" % (d["deleted_versions"], d["copied_files"]))
    for a in d["actions"]:
        print("    %-6s %-24s %s" % (a["action"], a["remote_path"], a.get("source_file_id") or a.get("file_id")))
for w in d.get("warnings", []):
    row("warning", w)
PY

STEP=0
STEPS=10
# Against the emulator, nine more: an immutable backup, a takeover and the recovery from
# it, and a certificate refused (see the end).
[[ $MODE == emulator ]] && STEPS=19
now() { date +%s.%N; }

# run_step STEP_KIND TITLE DESTCTL_ARGS...: runs one destctl command, shows its result.
run_step() {
    local kind=$1 title=$2 started rc=0
    shift 2
    STEP=$((STEP + 1))
    header "Step $STEP/$STEPS: $title"
    note "\$ destctl $*"
    started=$(now)
    "$DESTCTL" --config "$TMP/config.json" "$@" >"$TMP/response.json" || rc=$?
    ELAPSED=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$started" "$(now)")
    python3 "$TMP/show.py" "$kind" "$TMP/response.json" || cat "$TMP/response.json"
    if [[ $rc -ne 0 ]]; then
        die "step $STEP ($title) failed: destctl exited $rc"
    fi
    printf '  %s%s in %s s%s\n' "$GREEN" "done" "$ELAPSED" "$RESET"
}

json() { python3 -c 'import json,sys; print(eval(sys.argv[2], {"d": json.load(open(sys.argv[1]))}))' "$TMP/response.json" "$1"; }

# ------------------------------------------------------------------------------------
header "Preparing the files to back up"
mkdir -p "$TMP/local/site/assets" "$TMP/restore"
note "generating a ${SIZE_MB} MB file of random bytes..."
head -c $((SIZE_MB * 1024 * 1024)) /dev/urandom >"$TMP/local/backup.tar"
printf '<h1>b2dest demo</h1>\n' >"$TMP/local/site/index.html"
printf 'body { color: #333 }\n' >"$TMP/local/site/assets/style.css"
head -c 200000 /dev/urandom >"$TMP/local/site/assets/logo.png"
printf '{"generated": "%s"}\n' "$(date -u +%FT%TZ)" >"$TMP/local/site/manifest.json"
ls -l "$TMP/local/backup.tar"
(cd "$TMP/local" && find site -type f -exec ls -l {} +)

run_step validate "validate the destination" validate

UPLOADED=1
run_step upload "upload a ${SIZE_MB} MB file (in parts)" upload "$TMP/local/backup.tar" demo/backup.tar
rate=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[1]) / max(float(sys.argv[2]), 0.1)))' "$SIZE_MB" "$ELAPSED")
note "  ~$rate MiB/s"
run_step upload "upload a small directory" upload "$TMP/local/site" demo/site
run_step list "list the backup directory" list
run_step usage "usage" usage

run_step download "download the large file" download demo/backup.tar "$TMP/restore/backup.tar"
local_sha1=$(sha1sum "$TMP/local/backup.tar" | cut -d' ' -f1)
restored_sha1=$(sha1sum "$TMP/restore/backup.tar" | cut -d' ' -f1)
echo "  sha1sum of the original: $local_sha1"
echo "  sha1sum of the restore:  $restored_sha1"
[[ $local_sha1 == "$restored_sha1" ]] || die "the restored file differs from the original"
printf '  %sidentical%s\n' "$GREEN" "$RESET"

run_step download "download the directory" download demo/site "$TMP/restore/site"
diff -r "$TMP/local/site" "$TMP/restore/site" || die "the restored directory differs from the original"
printf '  %sdiff -r: identical%s\n' "$GREEN" "$RESET"

run_step delete "delete everything the demo stored" delete demo
UPLOADED=0
run_step list "list again" list
run_step usage "usage again" usage
[[ $(json 'd["used_bytes"]') == 0 ]] || die "usage is not 0 after the delete"

if [[ $MODE == emulator ]]; then
    # An immutable backup: its own destination, on a bucket with Object Lock. Only against
    # the emulator, whose data goes with it: on B2 the file would stay locked for a day.
    header "Immutable backups: B2 Object Lock"
    python3 - "$TMP/config.json" "$TMP/locked.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(name="b2dest demo, locked", bucket="b2dest-locked",
         object_lock={"mode": "compliance", "retention_days": 1})
with open(sys.argv[2], "w") as f:
    json.dump(c, f)
PY
    cp "$TMP/config.json" "$TMP/plain.json"
    cp "$TMP/locked.json" "$TMP/config.json"
    run_step upload "upload a backup locked for a day (compliance mode)" upload "$TMP/local/site/manifest.json" locked/manifest.json
    STEP=$((STEP + 1))
    header "Step $STEP/$STEPS: delete the locked backup: B2 refuses"
    note "\$ destctl delete locked"
    rc=0
    "$DESTCTL" --config "$TMP/config.json" delete locked >"$TMP/response.json" || rc=$?
    python3 "$TMP/show.py" delete "$TMP/response.json" || cat "$TMP/response.json"
    [[ $rc == 13 ]] || die "the delete of a locked backup exited $rc, not 13 (DEST_ERR_LOCKED)"
    printf '  %srefused as it should be: exit 13 (DEST_ERR_LOCKED)%s\n' "$GREEN" "$RESET"
    run_step list "the locked backup is still there" list locked
    [[ $(json 'd["count"]') == 1 ]] || die "the locked backup is gone"

    # A takeover: whoever holds the server holds the key. They cannot delete the locked
    # backup, but they can upload garbage over its name (locked too, for good measure).
    BEFORE_ATTACK_MS=$(python3 -c 'import time; print(int(time.time() * 1000))')
    sleep 0.01
    head -c 4096 /dev/zero >"$TMP/garbage"
    run_step upload "the attacker, with the same key, uploads garbage over the backup" upload "$TMP/garbage" locked/manifest.json
    run_step versions "versions: the original is still there, under the attacker's copy" versions locked --as-of "$BEFORE_ATTACK_MS"
    [[ $(json 'd["count"]') == 2 ]] || die "versions does not show both copies"
    run_step restore "restore as it was before the attack" restore locked/manifest.json "$TMP/restore/manifest.before" --as-of "$BEFORE_ATTACK_MS"
    cmp -s "$TMP/local/site/manifest.json" "$TMP/restore/manifest.before" || die "the restore as of before the attack differs from the original"
    printf '  %sidentical to the original%s\n' "$GREEN" "$RESET"
    run_step rollback "roll back: the original made current again (the garbage is locked, so copied over)" rollback locked --as-of "$BEFORE_ATTACK_MS"
    [[ $(json 'd["copied_files"]') == 1 ]] || die "the rollback did not copy the original back"
    run_step download "a plain restore now gives the original" download locked/manifest.json "$TMP/restore/manifest.after"
    cmp -s "$TMP/local/site/manifest.json" "$TMP/restore/manifest.after" || die "after the rollback the current file is not the original"
    printf '  %sidentical to the original%s\n' "$GREEN" "$RESET"
    cp "$TMP/plain.json" "$TMP/config.json"

    # What a server behind a TLS-inspecting proxy sees: a certificate from a CA it does
    # not trust. Here, the emulator's, without "ca_file": refused at once, not retried.
    python3 - "$TMP/config.json" "$TMP/untrusting.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
del c["ca_file"]
with open(sys.argv[2], "w") as f:
    json.dump(c, f)
PY
    STEP=$((STEP + 1))
    header "Step $STEP/$STEPS: validate without the emulator's CA: the certificate is refused"
    note "\$ destctl validate   (no \"ca_file\")"
    rc=0
    "$DESTCTL" --config "$TMP/untrusting.json" validate >"$TMP/response.json" || rc=$?
    python3 "$TMP/show.py" validate "$TMP/response.json" || cat "$TMP/response.json"
    [[ $rc == 15 ]] || die "validate without the CA exited $rc, not 15 (DEST_ERR_TLS)"
    [[ $(json 'd["error"]["retryable"]') == False ]] || die "a refused certificate is said to be retryable"
    json 'd["error"]["message"]' | grep -q "unknown issuer" || die "the message does not name the unknown issuer"
    printf '  %srefused once, not retryable: exit 15 (DEST_ERR_TLS)%s\n' "$GREEN" "$RESET"
fi

header "Demo finished"
if [[ $MODE == b2 ]]; then
    echo "Everything ran against Backblaze B2 bucket $BUCKET; $BACKUP_DIR is empty again."
else
    echo "Everything ran against the local emulator; set B2_ACCOUNT_ID, B2_APPLICATION_KEY"
    echo "and B2_BUCKET to run the same demo against Backblaze B2."
fi
