#!/usr/bin/env python3
"""An HTTP front for b2sdk's RawSimulator: Backblaze's own in-memory B2, served over B2's
native API on 127.0.0.1, so that b2dest is checked against a B2 server it did not write.

Run with the python of a venv holding the pinned b2sdk (scripts/test.sh makes it):

    python b2sdk_front.py [--bucket NAME]... [--locked-bucket NAME]...

The first stdout line is `B2_SIMULATOR_URL=http://127.0.0.1:PORT`, then
`B2_SIMULATOR_ACCOUNT_ID=...` and `B2_SIMULATOR_APPLICATION_KEY=...` (the simulator's
master key). The front exits when its stdin closes, so it never outlives its test.

What the front does, and no more: it turns each HTTP request into the RawSimulator call of
the same name, and passes the simulator's answer through AS IT GIVES IT (its shapes are
the point: they are what b2sdk's own tests hold to be B2's). What it had to invent, since
RawSimulator is a Python object, not a server:
- URLs: the simulator answers `http://api.example.com`, `http://download.example.com` and
  `https://upload.example.com/...`; the front puts its own address in `apiUrl`,
  `downloadUrl` and each `uploadUrl` (`/upload/<the simulator's URL, percent-encoded>`),
  and maps them back.
- Errors: the simulator raises b2sdk exceptions; the front answers B2's JSON error body
  `{status, code, message}` with the status and code that b2sdk's own `interpret_b2_error`
  reads back as that exception (AccessDenied: 403 access_denied; FileNotPresent: 404
  not_found, or 400 file_not_present for b2_delete_file_version and 400 no_such_file for
  b2_hide_file, as B2 answers those calls; FileSha1Mismatch: 400 bad_request "Sha1 did
  not match data received"; ...). Where the simulator fails with a bare KeyError (an
  unknown file id) the front answers as for FileNotPresent; an AssertionError of the
  simulator's (a request it does not expect) is 400 bad_request naming it.
- A token the simulator never gave (an account token, or an upload URL's) is answered
  401 `bad_auth_token`, as B2 does; the simulator only asserts.
- Request parsing: headers and JSON bodies are read into the simulator's argument types
  (EncryptionSetting, FileRetentionSetting, LegalHold); file names and info values are
  percent-decoded as B2 does.
- Listings: a `b2_list_file_names` / `b2_list_file_versions` with a `prefix` and no
  `startFileName` is handed to the simulator starting at the prefix, as b2sdk's own
  `Bucket.ls` always calls it (B2's meaning of the request): the simulator, given no start,
  stops at the first name that sorts before the prefix and answers an empty page.
- `/sim/...` control calls for the tests (not B2): counts of B2 calls and upload bytes,
  the files a bucket holds as the simulator stores them, injected failures and lost
  answers (the simulator acts, the connection closes unanswered), keys made with
  the simulator's own b2_create_key, names hidden with its own b2_hide_file (as another
  tool would), and its own expiry of every token.
- One lock around the simulator: RawSimulator is not made for threads. Uploads are read
  whole before the call (the simulator takes a stream and reads it twice).

Where RawSimulator departs from B2's documentation (found reading b2sdk 2.13.2, and by
b2dest's tests; none of it is bent to in the library):
- `b2_list_buckets`: `fileLockConfiguration.value.isFileLockEnabled` is null for a bucket
  made without the lock flag (B2: false); `defaultRetention` is `{"mode": null, "period":
  null}`; `options` is an empty set, which the front sends as an empty list.
- `b2_authorize_account`: recommendedPartSize and absoluteMinimumPartSize are both 200
  bytes; `storageApi` also carries the v3 fields `capabilities` and `namePrefix`.
- Upload timestamps are a per-bucket counter from 5000 (milliseconds after 1970), not the
  time: every unfinished large file looks started in 1970, so anything judged by B2's
  timestamps (a resume window, whether someone is still sending parts) sees it long dead.
- Parts (`b2_upload_part`, `b2_list_parts`) have no `uploadTimestamp`;
  `b2_start_large_file` and `b2_list_unfinished_large_files` entries have no `action`,
  `contentLength` or `contentSha1`.
- A version without retention reads `fileRetention.value: {"mode": null}` (no
  `retainUntilTimestamp`); `b2_delete_file_version` compares `retainUntilTimestamp`
  (milliseconds) with the time in seconds, so a retention never runs out.
- `b2_update_file_retention` checks nothing: it may shorten or drop a compliance
  retention, with or without bypassGovernance.
- SSE-C: upload, start and part answers echo the customer key itself
  (`serverSideEncryption.customerKey`; B2 answers only its MD5); the key's MD5 is never
  checked against the key; a part's key is not checked against its large file's.
- Upload tokens are the upload URL itself, which ends with the account token.
- Downloads check no authorization token (a TODO in the simulator); a range past the end
  is not refused with 416.
- `nextFileName` of `b2_list_file_names` is the last name plus a space.
- Keys restricted to a bucket are refused (401) by every call that does not hand the
  bucket id to the simulator's check: those that take a `fileId`, `b2_get_upload_url`,
  `b2_list_unfinished_large_files`. File ids are counters per bucket, so two buckets hold
  the same ids, and the id-to-bucket map points at the last bucket that used one.
- An expired token's code is `auth_token_expired` (B2: `expired_auth_token`).
- `b2_copy_file` answers `action: "copy"`.
- `b2_hide_file` of a name that has no version stores a hide marker (B2: 400
  `no_such_file`).
"""

import argparse
import base64
import collections
import http.server
import io
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse

from b2sdk._internal import exception as b2exc
from b2sdk._internal.encryption.setting import EncryptionKey, EncryptionSetting
from b2sdk._internal.encryption.types import EncryptionAlgorithm, EncryptionMode
from b2sdk._internal.file_lock import FileRetentionSetting, LegalHold, RetentionMode
from b2sdk._internal.raw_api import MetadataDirectiveMode
from b2sdk._internal.raw_simulator import RawSimulator
from b2sdk.version import VERSION as B2SDK_VERSION

# The version this front and its list of quirks were written against (scripts/test.sh
# installs exactly this one).
PINNED_B2SDK = "2.13.2"

SIM = RawSimulator()
LOCK = threading.RLock()
COUNTS = collections.Counter()
BYTES = {"received": 0, "sent": 0}
# call name -> list of [passes_left, failures_left, status, code]
FAULTS = collections.defaultdict(list)
BASE = ""  # http://127.0.0.1:PORT, set at start
ACCOUNT = {}


def b2_error(status, code, message):
    return status, {"status": status, "code": code, "message": message}


def error_for(call, e):
    """The B2 error answer that b2sdk's interpret_b2_error reads back as `e`."""
    not_found = {
        "b2_delete_file_version": (400, "file_not_present"),
        "b2_hide_file": (400, "no_such_file"),
    }.get(call, (404, "not_found"))
    if isinstance(e, b2exc.FileNotPresent):
        return b2_error(*not_found, str(e))
    if isinstance(e, KeyError):
        return b2_error(*not_found, "File not present: %s" % (e,))
    if isinstance(e, b2exc.NonExistentBucket):
        return b2_error(400, "bad_bucket_id", str(e))
    if isinstance(e, b2exc.AccessDenied):
        return b2_error(403, "access_denied", str(e))
    if isinstance(e, b2exc.Unauthorized):  # InvalidAuthToken too, with its own code
        return b2_error(401, e.code or "unauthorized", e.message or str(e))
    if isinstance(e, b2exc.BadRequest):
        return b2_error(400, e.code or "bad_request", e.message)
    if isinstance(e, b2exc.BadJson):
        return b2_error(400, "bad_json", str(e))
    if isinstance(e, b2exc.MissingPart):
        return b2_error(400, "missing_part", str(e))
    if isinstance(e, b2exc.PartSha1Mismatch):
        return b2_error(400, "part_sha1_mismatch", str(e))
    if isinstance(e, b2exc.FileSha1Mismatch):
        return b2_error(400, "bad_request", "Sha1 did not match data received")
    if isinstance(e, b2exc.UnsatisfiableRange):
        return b2_error(416, "range_not_satisfiable", str(e))
    if isinstance(e, b2exc.UploadTokenUsedConcurrently):
        return b2_error(400, "auth_token_limit", str(e))
    if isinstance(e, b2exc.Conflict):
        return b2_error(409, "conflict", str(e))
    if isinstance(e, b2exc.B2Error):
        return b2_error(400, "bad_request", "%s: %s" % (type(e).__name__, e))
    if isinstance(e, (AssertionError, ValueError)):
        traceback.print_exc(file=sys.stderr)
        return b2_error(
            400, "bad_request", "the simulator refused it (%s %s)" % (type(e).__name__, e)
        )
    traceback.print_exc(file=sys.stderr)
    return b2_error(500, "internal_error", "%s in the simulator" % type(e).__name__)


def injected(call):
    """A failure injected with /sim/fail for this call, or None. Status 0 is a lost answer:
    the simulator acts, and the connection is closed before any answer. A delay holds the
    request that long first (a hung server, for a test to kill its client meanwhile)."""
    chosen = None
    with LOCK:
        for fault in FAULTS[call]:
            if fault[0] > 0:
                fault[0] -= 1
                return None
            if fault[1] > 0:
                fault[1] -= 1
                chosen = fault
                break
    if chosen is None:
        return None
    time.sleep(chosen[4] / 1000.0)
    return b2_error(chosen[2], chosen[3], "injected by the test (b2sdk front)")


def sse_from_json(d):
    if not d:
        return None
    mode = EncryptionMode(d.get("mode"))
    algorithm = EncryptionAlgorithm(d["algorithm"]) if d.get("algorithm") else None
    key = None
    if mode == EncryptionMode.SSE_C:
        key = EncryptionKey(secret=base64.b64decode(d.get("customerKey", "")), key_id=None)
    return EncryptionSetting(mode, algorithm, key)


def sse_from_headers(h):
    if h.get("X-Bz-Server-Side-Encryption"):
        return EncryptionSetting(
            EncryptionMode.SSE_B2, EncryptionAlgorithm(h["X-Bz-Server-Side-Encryption"])
        )
    if h.get("X-Bz-Server-Side-Encryption-Customer-Key"):
        return EncryptionSetting(
            EncryptionMode.SSE_C,
            EncryptionAlgorithm(h.get("X-Bz-Server-Side-Encryption-Customer-Algorithm")),
            EncryptionKey(
                secret=base64.b64decode(h["X-Bz-Server-Side-Encryption-Customer-Key"]),
                key_id=None,
            ),
        )
    return None


def retention_from_json(d):
    if not d or d.get("mode") is None:
        return None
    return FileRetentionSetting(RetentionMode(d["mode"]), d.get("retainUntilTimestamp"))


def retention_from_headers(h):
    mode = h.get("X-Bz-File-Retention-Mode")
    if not mode:
        return None
    until = h.get("X-Bz-File-Retention-Retain-Until-Timestamp")
    return FileRetentionSetting(RetentionMode(mode), int(until) if until else None)


def legal_hold(value):
    return LegalHold.from_string_or_none(value) if value else None


def listing_start(p):
    """Where a listing starts: B2 starts a prefixed one at its prefix (see the header)."""
    return p.get("startFileName") or p.get("prefix") or None


def front_upload_url(answer):
    """The simulator's upload URL, made one of the front's (its token is left alone)."""
    answer = dict(answer)
    answer["uploadUrl"] = "%s/upload/%s" % (BASE, urllib.parse.quote(answer["uploadUrl"], safe=""))
    return answer


def api_call(call, token, p):
    """One JSON call of B2's native API, as the simulator's method of that name."""
    api = SIM.API_URL
    if call == "b2_list_buckets":
        return SIM.list_buckets(
            api, token, p.get("accountId"), p.get("bucketId"), p.get("bucketName")
        )
    if call == "b2_get_upload_url":
        return front_upload_url(SIM.get_upload_url(api, token, p["bucketId"]))
    if call == "b2_get_upload_part_url":
        return front_upload_url(SIM.get_upload_part_url(api, token, p["fileId"]))
    if call == "b2_start_large_file":
        return SIM.start_large_file(
            api,
            token,
            p["bucketId"],
            p["fileName"],
            p.get("contentType", "b2/x-auto"),
            p.get("fileInfo") or {},
            server_side_encryption=sse_from_json(p.get("serverSideEncryption")),
            file_retention=retention_from_json(p.get("fileRetention")),
            legal_hold=legal_hold(p.get("legalHold")),
        )
    if call == "b2_finish_large_file":
        return SIM.finish_large_file(api, token, p["fileId"], p["partSha1Array"])
    if call == "b2_cancel_large_file":
        return SIM.cancel_large_file(api, token, p["fileId"])
    if call == "b2_list_file_names":
        return SIM.list_file_names(
            api, token, p["bucketId"], listing_start(p), p.get("maxFileCount"),
            p.get("prefix"),
        )
    if call == "b2_list_file_versions":
        return SIM.list_file_versions(
            api, token, p["bucketId"], listing_start(p), p.get("startFileId"),
            p.get("maxFileCount"), p.get("prefix"),
        )
    if call == "b2_list_unfinished_large_files":
        return SIM.list_unfinished_large_files(
            api, token, p["bucketId"], p.get("startFileId"), p.get("maxFileCount"),
            p.get("namePrefix"),
        )
    if call == "b2_list_parts":
        return SIM.list_parts(
            api, token, p["fileId"], p.get("startPartNumber"), p.get("maxPartCount")
        )
    if call == "b2_delete_file_version":
        return SIM.delete_file_version(
            api, token, p["fileId"], p["fileName"], bool(p.get("bypassGovernance"))
        )
    if call == "b2_get_file_info":
        return SIM.get_file_info_by_id(api, token, p["fileId"])
    if call == "b2_update_file_retention":
        return SIM.update_file_retention(
            api, token, p["fileId"], p["fileName"],
            retention_from_json(p.get("fileRetention")) or FileRetentionSetting(RetentionMode.NONE),
            bool(p.get("bypassGovernance")),
        )
    if call == "b2_hide_file":
        return SIM.hide_file(api, token, p["bucketId"], p["fileName"])
    if call == "b2_copy_file":
        rng = p.get("range")
        if rng:
            first, last = rng.replace("bytes=", "").split("-")
            rng = (int(first), int(last))
        directive = p.get("metadataDirective")
        return SIM.copy_file(
            api, token, p["sourceFileId"], p["fileName"],
            bytes_range=rng,
            metadata_directive=MetadataDirectiveMode(directive) if directive else None,
            content_type=p.get("contentType"),
            file_info=p.get("fileInfo"),
            destination_bucket_id=p.get("destinationBucketId"),
            destination_server_side_encryption=sse_from_json(
                p.get("destinationServerSideEncryption")
            ),
            source_server_side_encryption=sse_from_json(p.get("sourceServerSideEncryption")),
            file_retention=retention_from_json(p.get("fileRetention")),
            legal_hold=legal_hold(p.get("legalHold")),
        )
    return None


def to_json(value):
    # The simulator's `options` is a Python set.
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(type(value).__name__)


API_PATH = re.compile(r"^/b2api/v\d+/(b2_[a-z_]+)$")


class Front(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=None):
        data = json.dumps(body, default=to_json).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def run(self, call, fn):
        with LOCK:
            COUNTS[call] += 1
        fault = injected(call)
        if fault and fault[0] != 0:
            return self.answer(*fault)
        try:
            with LOCK:
                result = fn()
        except Exception as e:  # every failure becomes B2's error body
            return self.answer(*error_for(call, e))
        if fault:
            self.close_connection = True
            return None
        if result is None:
            return self.answer(*b2_error(404, "not_found", "no such call: %s" % call))
        return self.answer(200, result)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        m = API_PATH.match(url.path)
        if m and m.group(1) == "b2_authorize_account":
            return self.authorize()
        if m and m.group(1) == "b2_download_file_by_id":
            return self.download("b2_download_file_by_id", url.path + "?" + url.query)
        if url.path.startswith("/file/"):
            return self.download("b2_download_file_by_name", url.path)
        if url.path == "/sim/counts":
            with LOCK:
                return self.answer(200, {"calls": dict(COUNTS), "bytes": dict(BYTES)})
        if url.path == "/sim/files":
            bucket = urllib.parse.parse_qs(url.query)["bucket"][0]
            return self.answer(200, self.files(bucket))
        self.answer(*b2_error(404, "not_found", "no such path"))

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        raw = self.body()
        m = API_PATH.match(path)
        if m and m.group(1) == "b2_authorize_account":
            return self.authorize()
        if m:
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                return self.answer(*b2_error(400, "bad_json", "the body is not JSON"))
            token = self.headers.get("Authorization", "")
            if token not in SIM.auth_token_to_key:
                return self.refuse_token(m.group(1))
            return self.run(m.group(1), lambda: api_call(m.group(1), token, params))
        if path.startswith("/upload/"):
            return self.upload(urllib.parse.unquote(path[len("/upload/"):]), raw)
        if path == "/sim/reset_counts":
            with LOCK:
                COUNTS.clear()
                BYTES.update(received=0, sent=0)
            return self.answer(200, {})
        if path == "/sim/create_key":
            p = json.loads(raw)
            with LOCK:
                bucket_ids = [SIM.bucket_name_to_bucket[b].bucket_id for b in p["buckets"]] \
                    if p.get("buckets") is not None else None
                key = SIM.create_key(
                    SIM.API_URL, ACCOUNT["token"], ACCOUNT["id"], p["capabilities"], "testkey",
                    None, bucket_ids, p.get("namePrefix"),
                )
            return self.answer(200, key)
        if path == "/sim/hide":
            p = json.loads(raw)
            with LOCK:
                bucket_id = SIM.bucket_name_to_bucket[p["bucket"]].bucket_id
                SIM.hide_file(SIM.API_URL, ACCOUNT["token"], bucket_id, p["fileName"])
            return self.answer(200, {})
        if path == "/sim/expire_tokens":
            with LOCK:
                for token in list(SIM.auth_token_to_key):
                    SIM.expire_auth_token(token)
            return self.answer(200, {})
        if path == "/sim/clear_faults":
            with LOCK:
                FAULTS.clear()
            return self.answer(200, {})
        if path == "/sim/fail":
            p = json.loads(raw)
            with LOCK:
                FAULTS[p["call"]].append(
                    [p.get("after", 0), p.get("count", 1), p.get("status", 503),
                     p.get("code", "service_unavailable"), p.get("delay_ms", 0)]
                )
            return self.answer(200, {})
        self.answer(*b2_error(404, "not_found", "no such path"))

    def refuse_token(self, call):
        """Invented: the simulator asserts on a token it never gave; B2 answers this."""
        with LOCK:
            COUNTS[call] += 1
        return self.answer(*b2_error(401, "bad_auth_token", "Invalid authorization token"))

    def authorize(self):
        def call():
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                raise b2exc.Unauthorized("no Basic authorization", "bad_auth_token")
            key_id, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            answer = SIM.authorize_account(BASE, key_id, key)
            # Invented: the front's own address where the simulator names example.com.
            answer["apiInfo"]["storageApi"]["apiUrl"] = BASE
            answer["apiInfo"]["storageApi"]["downloadUrl"] = BASE
            return answer

        self.run("b2_authorize_account", call)

    def upload(self, sim_url, raw):
        h = self.headers
        token = h.get("Authorization", "")
        if token != sim_url:  # the simulator's upload token is its upload URL
            return self.refuse_token("b2_upload_part" if "/part/" in sim_url else "b2_upload_file")
        sha1 = h.get("X-Bz-Content-Sha1", "")
        sse = sse_from_headers(h)
        with LOCK:
            BYTES["received"] += len(raw)
        if "/part/" in sim_url:
            part = int(h.get("X-Bz-Part-Number", "0"))
            return self.run(
                "b2_upload_part",
                lambda: SIM.upload_part(sim_url, token, part, len(raw), sha1, io.BytesIO(raw), sse),
            )
        info = {
            k[len("X-Bz-Info-"):]: urllib.parse.unquote(v)
            for k, v in h.items()
            if k.lower().startswith("x-bz-info-")
        }
        self.run(
            "b2_upload_file",
            lambda: SIM.upload_file(
                sim_url,
                token,
                urllib.parse.unquote(h.get("X-Bz-File-Name", "")),
                len(raw),
                h.get("Content-Type", "b2/x-auto"),
                sha1,
                info,
                io.BytesIO(raw),
                server_side_encryption=sse,
                file_retention=retention_from_headers(h),
                legal_hold=legal_hold(h.get("X-Bz-File-Legal-Hold")),
            ),
        )

    def download(self, call, sim_path):
        with LOCK:
            COUNTS[call] += 1
        fault = injected(call)
        if fault:
            return self.answer(*fault)
        range_ = None
        asked = self.headers.get("Range")
        if asked:
            first, _, last = asked.replace("bytes=", "").partition("-")
            # Invented for "bytes=N-": the simulator wants both ends, and slices past the end.
            range_ = (int(first), int(last) if last else 2**62)
        token = self.headers.get("Authorization")
        try:
            with LOCK:
                with SIM.download_file_from_url(
                    token, SIM.DOWNLOAD_URL + sim_path, range_, sse_from_headers(self.headers)
                ) as resp:
                    headers = dict(resp.headers)
                    data = resp.raw.data_bytes
        except Exception as e:
            return self.answer(*error_for(call, e))
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        BYTES["sent"] += len(data)
        self.send_response(206 if range_ else 200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def files(self, bucket_name):
        """Every file the simulator holds in the bucket, read from it directly."""
        with LOCK:
            bucket = SIM.bucket_name_to_bucket[bucket_name]
            out = []
            for (name, file_id), f in sorted(bucket.file_name_and_id_to_file.items()):
                retention = f.file_retention
                out.append({
                    "fileId": file_id,
                    "fileName": name,
                    "action": f.action,
                    "contentLength": len(f.data_bytes) if f.data_bytes is not None else None,
                    "parts": len([p for p in getattr(f, "parts", []) if p is not None]),
                    "retentionMode": retention.mode.value if retention else None,
                    "retainUntil": retention.retain_until if retention else None,
                    "sseMode": f.server_side_encryption.mode.value
                    if f.server_side_encryption else None,
                })
            return out


def main():
    global BASE
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--locked-bucket", action="append", default=[])
    args = parser.parse_args()

    if B2SDK_VERSION != PINNED_B2SDK:
        print(
            "b2sdk_front: b2sdk %s, not the pinned %s: the simulator's quirks listed here may"
            " differ" % (B2SDK_VERSION, PINNED_B2SDK),
            file=sys.stderr,
        )
    account_id, master_key = SIM.create_account()
    ACCOUNT.update(id=account_id, key=master_key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
    server.daemon_threads = True
    BASE = "http://127.0.0.1:%d" % server.server_address[1]
    # Buckets are made with the simulator's own calls, as b2sdk's tests make them: without
    # the lock flag (its None is what b2_list_buckets then shows) or with it on.
    token = SIM.authorize_account(BASE, account_id, master_key)["authorizationToken"]
    ACCOUNT["token"] = token
    for name in args.bucket:
        SIM.create_bucket(SIM.API_URL, token, account_id, name, "allPrivate")
    for name in args.locked_bucket:
        SIM.create_bucket(
            SIM.API_URL, token, account_id, name, "allPrivate", is_file_lock_enabled=True
        )

    print("B2_SIMULATOR_URL=%s" % BASE)
    print("B2_SIMULATOR_ACCOUNT_ID=%s" % account_id)
    print("B2_SIMULATOR_APPLICATION_KEY=%s" % master_key)
    sys.stdout.flush()

    def exit_when_stdin_closes():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
