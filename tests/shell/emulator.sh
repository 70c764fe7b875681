# Sourced by the shell tests that need a B2 server of their own (run.sh, install.sh, cpanel.sh):
# a b2-emulator on a free port with a temporary data directory, stopped on exit.
#
#   source tests/shell/emulator.sh
#   start_emulator [ARGS...]  # sets URL, EMU_PID, TMP (removed on exit unless KEEP_TMP=1);
#                             # ARGS go to the emulator (more buckets, more keys)
#   emu GET counts            # the control API; prints the answer
#   pass / fail MESSAGE, and finish (prints "N passed, M failed", exits 1 on a failure)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EMULATOR=${B2_EMULATOR_BIN:-$ROOT/target/release/b2-emulator}
ACCOUNT_ID=emu-account
APP_KEY=emu-application-key
BUCKET=b2dest-test
TMP=$(mktemp -d "${TMPDIR:-/tmp}/b2dest-test.XXXXXX")
EMU_PID=
URL=
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
finish() {
    echo
    echo "$PASSED passed, $FAILED failed"
    [[ $FAILED -eq 0 ]]
}

stop_emulator() {
    local rc=$?
    if [[ -n $EMU_PID ]] && kill -0 "$EMU_PID" 2>/dev/null; then
        kill "$EMU_PID" 2>/dev/null || true
        wait "$EMU_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap stop_emulator EXIT
trap 'exit 130' INT TERM

start_emulator() {
    if [[ ! -x $EMULATOR ]]; then
        echo "the emulator is missing: $EMULATOR (cargo build --release -p b2-emulator)" >&2
        exit 2
    fi
    "$EMULATOR" --listen 127.0.0.1:0 --data-dir "$TMP/emulator-data" \
        --account-id "$ACCOUNT_ID" --application-key "$APP_KEY" --bucket "$BUCKET" \
        --min-part-size 1000000 --recommended-part-size 5000000 "$@" \
        >"$TMP/emulator.out" 2>"$TMP/emulator.err" &
    EMU_PID=$!
    for _ in $(seq 1 100); do
        URL=$(sed -n '1s/^B2_EMULATOR_URL=//p' "$TMP/emulator.out" 2>/dev/null)
        [[ -n $URL ]] && return 0
        kill -0 "$EMU_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "the emulator did not start:" >&2
    cat "$TMP/emulator.out" "$TMP/emulator.err" >&2 || true
    exit 2
}

# emu METHOD PATH [JSON]
emu() {
    python3 -c '
import sys, urllib.request
data = sys.argv[3].encode() if sys.argv[3] else None
req = urllib.request.Request(sys.argv[1] + sys.argv[2], data=data, method=sys.argv[4])
req.add_header("Content-Type", "application/json")
print(urllib.request.urlopen(req, timeout=10).read().decode())
' "$URL" "/__emulator/$2" "${3:-}" "$1"
}
