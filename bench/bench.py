#!/usr/bin/env python3
"""Benchmark of libb2dest.so (through bench/driver.c) against rclone, both talking to the
local B2 emulator. Started by bench/run.sh, which builds everything first.

Stdlib only. For every scenario the plugin and rclone runs alternate (plugin, rclone,
plugin, rclone, ...); each run is one client process measured with /usr/bin/time
(wall, user+sys CPU, peak RSS), and the emulator's call counters are reset before it and
read after it. Medians are reported, in a Markdown table printed and written to
bench/results.md (raw runs in bench/results.json).
"""

import argparse
import datetime
import hashlib
import http.client
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
EMULATOR_BIN = os.path.join(ROOT, "target", "release", "b2-emulator")

ACCOUNT = "bench-account"
KEY = "bench-application-key"
BUCKET = "b2dest-bench"
CONCURRENCY = 4
MIB = 1 << 20
GIB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def human_size(n):
    if n >= GIB and n % GIB == 0:
        return f"{n // GIB} GiB"
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} B"


# ------------------------------------------------------------------------------------
# The emulator


class Emulator:
    def __init__(self, workdir, min_part, recommended_part):
        self.data_dir = os.path.join(workdir, "emulator-data")
        os.makedirs(self.data_dir)
        self.out_path = os.path.join(workdir, "emulator.stdout")
        self.err_path = os.path.join(workdir, "emulator.stderr")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    EMULATOR_BIN,
                    "--listen", "127.0.0.1:0",
                    "--data-dir", self.data_dir,
                    "--account-id", ACCOUNT,
                    "--application-key", KEY,
                    "--bucket", BUCKET,
                    "--min-part-size", str(min_part),
                    "--recommended-part-size", str(recommended_part),
                ],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.time() + 30
        self.url = None
        while time.time() < deadline:
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("B2_EMULATOR_URL="):
                        self.url = line.strip().split("=", 1)[1]
            if self.url:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {open(self.err_path).read()}")
            time.sleep(0.05)
        if not self.url:
            self.stop()
            raise RuntimeError("emulator did not print B2_EMULATOR_URL within 30 s")
        self.pid = self.proc.pid

    def control(self, method, path, body=None, timeout=600):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/__emulator/{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")

    def counts(self):
        return self.control("GET", "counts")

    def reset(self):
        self.control("POST", "counts/reset", {})

    def seed(self, prefix, count, size):
        self.control("POST", "seed", {"bucket": BUCKET, "prefix": prefix, "count": count, "size": size})

    def cpu_seconds(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            return float("nan")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------------------------
# Measuring one client process


def drop_caches():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def warm(path):
    """Reads a file through so that every run of an upload starts with it in the page cache."""
    if os.path.isdir(path):
        for name in os.listdir(path):
            warm(os.path.join(path, name))
        return
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MIB)
        while f.readinto(buf):
            pass


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def measure(emu, cmd, env, workdir, label):
    """Runs one client process; returns its measurements and the emulator's counters."""
    tfile = os.path.join(workdir, "time.out")
    out_path = os.path.join(workdir, "client.stdout")
    err_path = os.path.join(workdir, "client.stderr")
    os.sync()  # the previous run's written data must not be flushed during this one
    emu.reset()
    load = loadavg()
    emu_cpu0 = emu.cpu_seconds()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.run(
            ["/usr/bin/time", "-o", tfile, "-f", "%e %U %S %M"] + cmd,
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
        )
    emu_cpu = emu.cpu_seconds() - emu_cpu0
    counts = emu.counts()
    with open(tfile) as f:
        last = [l for l in f.read().splitlines() if l.strip()][-1]
    wall, user, sys_, rss_kib = last.split()
    with open(out_path, "rb") as f:
        stdout = f.read().decode(errors="replace")
    with open(err_path, "rb") as f:
        stderr = f.read().decode(errors="replace")
    calls = {k: v for k, v in counts.get("calls", {}).items() if v}
    run = {
        "label": label,
        "cmd": cmd,
        "status": proc.returncode,
        "wall": float(wall),
        "cpu": float(user) + float(sys_),
        "user": float(user),
        "sys": float(sys_),
        "rss_mib": int(rss_kib) / 1024,
        "calls": calls,
        "transactions": sum(calls.values()),
        "bytes_received": counts.get("bytes_received", 0),
        "bytes_sent": counts.get("bytes_sent", 0),
        "emulator_cpu": emu_cpu,
        "loadavg_before": load,
        "stdout_tail": stdout[-1500:],
        "stderr_tail": stderr[-1500:],
    }
    try:
        run["response"] = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except (ValueError, IndexError):
        run["response"] = None
    run["response"] = shrink(run["response"])
    return run


def shrink(response):
    """Keeps results.json small: a directory's per-file list becomes its length."""
    if isinstance(response, dict):
        return {k: (f"<{len(v)} items>" if isinstance(v, list) and len(v) > 20 else v)
                for k, v in response.items()}
    return response


def short_error(run):
    resp = run.get("response")
    if isinstance(resp, dict):
        inner = resp.get("response") if isinstance(resp.get("response"), dict) else resp
        if isinstance(inner, dict) and "error" in inner:
            return json.dumps(inner["error"])[:400]
        return json.dumps(resp)[:400]
    text = (run.get("stdout_tail") or "") + (run.get("stderr_tail") or "")
    return text.strip()[-400:] or f"exit status {run['status']}"


# ------------------------------------------------------------------------------------
# Test data


def make_big_file(path, size):
    """A file of `size` bytes: one random 1 MiB block, each copy stamped with its index so
    that no two MiB are alike. Returns its SHA1 (hex)."""
    block = bytearray(os.urandom(MIB))
    sha = hashlib.sha1()
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            block[:8] = i.to_bytes(8, "little")
            n = min(left, MIB)
            chunk = memoryview(block)[:n]
            f.write(chunk)
            sha.update(chunk)
            left -= n
            i += 1
    return sha.hexdigest()


def make_small_files(directory, count, size):
    os.makedirs(directory)
    for i in range(count):
        with open(os.path.join(directory, f"f{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(size))


def sha1_file(path):
    sha = hashlib.sha1()
    buf = bytearray(8 * MIB)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            sha.update(view[:n])
    return sha.hexdigest()


# ------------------------------------------------------------------------------------
# Ceilings: the CPU's SHA1 rate and what the emulator takes/gives with a near-free client


def sha1_rate():
    buf = os.urandom(64 * MIB)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 1.5:
        hashlib.sha1(buf).digest()
        n += len(buf)
    return n / (time.perf_counter() - t0) / 1e6


class RawB2:
    """A minimal native-API client (python http.client) used only for the ceilings."""

    def __init__(self, url):
        req = urllib.request.Request(f"{url}/b2api/v2/b2_authorize_account")
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{ACCOUNT}:{KEY}".encode()).decode())
        with urllib.request.urlopen(req) as resp:
            auth = json.loads(resp.read())
        self.api = auth["apiUrl"]
        self.download = auth["downloadUrl"]
        self.token = auth["authorizationToken"]
        self.account = auth["accountId"]

    def call(self, name, body):
        req = urllib.request.Request(
            f"{self.api}/b2api/v2/{name}", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())


def ceiling_upload(emu, total_bytes, part_size=100_000_000, streams=CONCURRENCY):
    b2 = RawB2(emu.url)
    bucket_id = [b for b in b2.call("b2_list_buckets", {"accountId": b2.account})["buckets"]
                 if b["bucketName"] == BUCKET][0]["bucketId"]
    large = b2.call("b2_start_large_file", {
        "bucketId": bucket_id, "fileName": "bench-ceiling/upload", "contentType": "b2/x-auto"})
    file_id = large["fileId"]
    part = os.urandom(part_size)
    part_sha = hashlib.sha1(part).hexdigest()
    parts = max(1, total_bytes // part_size)
    numbers = list(range(1, parts + 1))
    lock = threading.Lock()
    errors = []

    def worker():
        try:
            u = b2.call("b2_get_upload_part_url", {"fileId": file_id})
            target = urllib.parse.urlsplit(u["uploadUrl"])
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            while True:
                with lock:
                    if not numbers:
                        break
                    n = numbers.pop(0)
                conn.request("POST", target.path, body=part, headers={
                    "Authorization": u["authorizationToken"], "X-Bz-Part-Number": str(n),
                    "Content-Length": str(part_size), "X-Bz-Content-Sha1": part_sha})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"upload_part {n}: HTTP {resp.status}")
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported in the results
            errors.append(str(e))

    cpu0 = emu.cpu_seconds()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    emu_cpu = emu.cpu_seconds() - cpu0
    try:
        b2.call("b2_cancel_large_file", {"fileId": file_id})
    except Exception:  # noqa: BLE001
        pass
    if errors:
        return {"error": errors[0]}
    return {"mb_per_s": parts * part_size / wall / 1e6, "wall": wall, "emulator_cpu": emu_cpu,
            "bytes": parts * part_size}


def ceiling_download(emu, remote_name, size, streams=CONCURRENCY):
    b2 = RawB2(emu.url)
    target = urllib.parse.urlsplit(b2.download)
    path = f"/file/{BUCKET}/" + urllib.parse.quote(remote_name)
    share = -(-size // streams)
    errors = []

    def worker(i):
        try:
            start, end = i * share, min(size, (i + 1) * share) - 1
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=300)
            conn.request("GET", path, headers={"Authorization": b2.token, "Range": f"bytes={start}-{end}"})
            resp = conn.getresponse()
            buf = bytearray(4 * MIB)
            while resp.readinto(buf):
                pass
            conn.close()
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))

    cpu0 = emu.cpu_seconds()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        return {"error": errors[0]}
    return {"mb_per_s": size / wall / 1e6, "wall": wall, "emulator_cpu": emu.cpu_seconds() - cpu0,
            "bytes": size}


# ------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(self, args):
        self.quick = args.quick
        env_runs = os.environ.get("BENCH_RUNS")
        self.runs = int(env_runs) if env_runs else (1 if self.quick else 3)
        if self.quick:
            self.big, self.huge = 512 * MIB, 1 * GIB
            self.n_small, self.n_versions, self.n_delete = 200, 10_000, 1_000
        else:
            self.big, self.huge = 2 * GIB, 8 * GIB
            self.n_small, self.n_versions, self.n_delete = 1_000, 100_000, 10_000
        self.small_size = 256 * 1024
        self.driver = args.driver
        self.rclone = args.rclone
        self.results = {}   # scenario key -> {"plugin": [runs], "rclone": [runs], ...}
        self.notes = []
        self.failures = []
        self.caches_dropped = None
        self.started = time.time()

    # -- setup ------------------------------------------------------------------------
    def setup(self):
        base = os.environ.get("BENCH_TMPDIR", "/var/tmp")
        need = self.big * 2 + self.huge * 2 + self.n_small * self.small_size * 4 + 4 * GIB
        free = shutil.disk_usage(base).free
        if free < need:
            raise SystemExit(f"bench: {base} has {free / GIB:.1f} GiB free, needs about {need / GIB:.1f} GiB")
        self.work = tempfile.mkdtemp(prefix="b2dest-bench.", dir=base)
        log(f"work dir {self.work} ({free / GIB:.0f} GiB free there)")
        self.emu = Emulator(self.work, 5_000_000, 100_000_000)
        log(f"emulator at {self.emu.url} (pid {self.emu.pid})")
        self.configs = {}
        for name, directory in [("bench", "bench"), ("rclone", "bench-rclone"), ("usage", "bench-usage")]:
            path = os.path.join(self.work, f"config-{name}.json")
            with open(path, "w") as f:
                json.dump({"name": "bench", "account_id": ACCOUNT, "application_key": KEY,
                           "bucket": BUCKET, "backup_directory": directory,
                           "api_url": self.emu.url, "concurrency": CONCURRENCY}, f)
            self.configs[name] = path
        rclone_conf = os.path.join(self.work, "rclone.conf")
        open(rclone_conf, "w").close()
        self.rclone_env = dict(os.environ)
        self.rclone_env.update({
            "RCLONE_CONFIG": rclone_conf,
            "RCLONE_CONFIG_EMU_TYPE": "b2",
            "RCLONE_CONFIG_EMU_ACCOUNT": ACCOUNT,
            "RCLONE_CONFIG_EMU_KEY": KEY,
            "RCLONE_CONFIG_EMU_ENDPOINT": self.emu.url,
        })
        self.plugin_env = dict(os.environ)
        # e.g. BENCH_PLUGIN_ENV="MALLOC_ARENA_MAX=1" to try an allocator setting on the plugin only
        self.plugin_extra_env = os.environ.get("BENCH_PLUGIN_ENV", "").split()
        for item in self.plugin_extra_env:
            k, _, v = item.partition("=")
            self.plugin_env[k] = v
        if self.plugin_extra_env:
            self.notes.append(f"The plugin's driver ran with `{' '.join(self.plugin_extra_env)}` (BENCH_PLUGIN_ENV).")
        help_b2 = subprocess.run([self.rclone, "help", "backend", "b2"], capture_output=True, text=True).stdout
        self.rclone_flags = ["--transfers", str(CONCURRENCY), "--multi-thread-streams", str(CONCURRENCY)]
        if "--b2-upload-concurrency" in help_b2:
            self.rclone_flags += ["--b2-upload-concurrency", str(CONCURRENCY)]
        else:
            self.notes.append(
                "This rclone has no `--b2-upload-concurrency` flag (added in rclone 1.64); its large-file "
                "uploads send at most `--transfers` (4) chunks at once, so the concurrency is still 4.")
        self.rclone_version = subprocess.run([self.rclone, "version"], capture_output=True, text=True).stdout.splitlines()[0]
        self.plugin_version = subprocess.run([self.driver, "version"], capture_output=True, text=True).stdout.strip()

        t0 = time.time()
        self.big_path = os.path.join(self.work, "big.bin")
        self.big_sha1 = make_big_file(self.big_path, self.big)
        self.huge_path = os.path.join(self.work, "huge.bin")
        make_big_file(self.huge_path, self.huge)
        self.small_dir = os.path.join(self.work, "small")
        make_small_files(self.small_dir, self.n_small, self.small_size)
        log(f"test files made in {time.time() - t0:.1f} s")

    def teardown(self):
        if getattr(self, "emu", None):
            self.emu.stop()
        if getattr(self, "work", None) and os.path.isdir(self.work):
            shutil.rmtree(self.work, ignore_errors=True)
            log(f"removed {self.work}")

    # -- helpers ----------------------------------------------------------------------
    def plugin(self, *args):
        return [self.driver] + [str(a) for a in args]

    def rclone_cmd(self, *args):
        return [self.rclone] + [str(a) for a in args] + self.rclone_flags

    def remove_remote(self, config, remote_path, rclone_path=None):
        """Untimed clean-up between runs (frees the emulator's disk)."""
        r = subprocess.run(self.plugin("delete", self.configs[config], remote_path),
                           capture_output=True, env=self.plugin_env)
        if r.returncode != 0 and rclone_path:
            subprocess.run([self.rclone, "purge", "--b2-hard-delete", f"emu:{BUCKET}/{rclone_path}"],
                           capture_output=True, env=self.rclone_env)

    def run_pair(self, key, runs, plugin_fn, rclone_fn):
        """plugin_fn/rclone_fn(i) -> (cmd, pre, post, check) ; alternates plugin, rclone."""
        res = self.results.setdefault(key, {"plugin": [], "rclone": []})
        for i in range(runs):
            for tool, fn in (("plugin", plugin_fn), ("rclone", rclone_fn)):
                if fn is None:
                    continue
                cmd, pre, post, check = fn(i)
                if pre:
                    pre()
                env = self.plugin_env if tool == "plugin" else self.rclone_env
                run = measure(self.emu, cmd, env, self.work, f"{key}/{tool}/{i}")
                run["ok"] = run["status"] == 0
                if check and run["ok"]:
                    problem = check(run)
                    if problem:
                        run["ok"] = False
                        run["check_failed"] = problem
                if not run["ok"]:
                    why = run.get("check_failed") or short_error(run)
                    self.failures.append(f"{key} {tool} run {i + 1}: exit {run['status']}: {why}")
                    log(f"  FAILED: {why}")
                log(f"{key:<12} {tool:<6} run {i + 1}/{runs}: {run['wall']:7.2f} s wall, "
                    f"{run['cpu']:6.2f} s CPU, {run['rss_mib']:7.1f} MiB, {run['transactions']} calls"
                    f" (emulator {run['emulator_cpu']:.1f} s CPU)")
                res[tool].append(run)
                if post:
                    post()

    # -- scenarios --------------------------------------------------------------------
    def scenario_upload(self, key, path):
        runs = self.runs

        def p(i):
            remote = f"{key}-p{i}/file"
            return (self.plugin("upload", self.configs["bench"], path, remote), lambda: warm(path),
                    lambda: self.remove_remote("bench", f"{key}-p{i}", f"bench/{key}-p{i}"), None)

        def r(i):
            remote = f"bench-rclone/{key}-r{i}"
            return (self.rclone_cmd("copyto", path, f"emu:{BUCKET}/{remote}/file"), lambda: warm(path),
                    lambda: self.remove_remote("rclone", f"{key}-r{i}", remote), None)

        self.run_pair(key, runs, p, r)

    def scenario_download(self):
        key = "download"
        remote = "download/file"
        setup = subprocess.run(self.plugin("upload", self.configs["bench"], self.big_path, remote),
                               capture_output=True, text=True)
        if setup.returncode != 0:
            self.notes.append(f"download: the plugin could not upload the file to download "
                              f"({setup.stdout.strip()[:300]}); rclone uploaded it instead.")
            subprocess.run([self.rclone, "copyto", self.big_path, f"emu:{BUCKET}/bench/{remote}"]
                           + self.rclone_flags, env=self.rclone_env, capture_output=True)
        out = os.path.join(self.work, "downloaded.bin")

        def pre():
            if os.path.exists(out):
                os.unlink(out)
            dropped = drop_caches()
            if self.caches_dropped is None:
                self.caches_dropped = dropped

        def check(run):
            got = sha1_file(out) if os.path.exists(out) else "missing"
            run["downloaded_sha1"] = got
            if got != self.big_sha1:
                return f"downloaded file's SHA1 {got} != source {self.big_sha1}"
            resp = run.get("response")
            if run["label"].split("/")[1] == "plugin" and not (isinstance(resp, dict) and resp.get("verified")):
                return f"response does not say verified: {json.dumps(resp)[:200]}"
            return None

        def post():
            if os.path.exists(out):
                os.unlink(out)

        self.run_pair(
            key, self.runs,
            lambda i: (self.plugin("download", self.configs["bench"], remote, out), pre, post, check),
            lambda i: (self.rclone_cmd("copyto", f"emu:{BUCKET}/bench/{remote}", out), pre, post, check),
        )
        # The emulator's own download ceiling, on the same file, page cache warm.
        self.ceilings["download"] = ceiling_download(self.emu, f"bench/{remote}", self.big)
        self.remove_remote("bench", "download", "bench/download")

    def scenario_dir(self):
        key = "dir"

        def p(i):
            return (self.plugin("upload", self.configs["bench"], self.small_dir, f"dir-p{i}"),
                    lambda: warm(self.small_dir),
                    lambda: self.remove_remote("bench", f"dir-p{i}", f"bench/dir-p{i}"), None)

        def r(i):
            remote = f"bench-rclone/dir-r{i}"
            return (self.rclone_cmd("copy", self.small_dir, f"emu:{BUCKET}/{remote}"),
                    lambda: warm(self.small_dir),
                    lambda: self.remove_remote("rclone", f"dir-r{i}", remote), None)

        self.run_pair(key, self.runs, p, r)

    def scenario_many(self):
        key = "many"

        def p(i):
            return (self.plugin("upload-many", self.configs["bench"], self.small_dir, f"many-p{i}", self.n_small),
                    lambda: warm(self.small_dir),
                    lambda: self.remove_remote("bench", f"many-p{i}", f"bench/many-p{i}"), None)

        self.run_pair(key, self.runs, p, None)

    def scenario_usage(self):
        key = "usage"
        self.emu.seed("bench-usage/v/", self.n_versions, 1000)

        def check(run):
            resp = run.get("response") or {}
            if run["label"].split("/")[1] == "plugin" and resp.get("versions") != self.n_versions:
                return f"usage reports {resp.get('versions')} versions, expected {self.n_versions}"
            return None

        self.run_pair(
            key, self.runs,
            lambda i: (self.plugin("usage", self.configs["usage"]), None, None, check),
            lambda i: ([self.rclone, "size", f"emu:{BUCKET}/bench-usage"] + self.rclone_flags, None, None, None),
        )

    def scenario_delete(self):
        key = "delete"
        n = self.n_delete

        def check(run):
            deleted = run["calls"].get("b2_delete_file_version", 0)
            if deleted != n:
                return f"{deleted} b2_delete_file_version calls for {n} seeded files"
            return None

        def p(i):
            return (self.plugin("delete", self.configs["bench"], f"del-p{i}"),
                    lambda: self.emu.seed(f"bench/del-p{i}/", n, 1000), None, check)

        def r(i):
            return ([self.rclone, "purge", "--b2-hard-delete", f"emu:{BUCKET}/bench-rclone/del-r{i}"] + self.rclone_flags,
                    lambda: self.emu.seed(f"bench-rclone/del-r{i}/", n, 1000), None, check)

        self.run_pair(key, self.runs, p, r)

    def run(self):
        self.ceilings = {"sha1_mb_per_s": sha1_rate()}
        log(f"python hashlib SHA1: {self.ceilings['sha1_mb_per_s']:.0f} MB/s on one core")
        self.ceilings["upload"] = ceiling_upload(self.emu, self.big)
        log(f"emulator upload ceiling: {self.ceilings['upload']}")
        self.scenario_upload("up-big", self.big_path)
        self.scenario_upload("up-huge", self.huge_path)
        self.scenario_download()
        self.scenario_dir()
        self.scenario_many()
        self.scenario_delete()
        self.scenario_usage()
        self.elapsed = time.time() - self.started

    # -- report -----------------------------------------------------------------------
    def med(self, key, tool, metric):
        runs = [r for r in self.results.get(key, {}).get(tool, []) if r["ok"]]
        if not runs:
            return None
        if callable(metric):
            return statistics.median(metric(r) for r in runs)
        return statistics.median(r[metric] for r in runs)

    def ok_count(self, key, tool):
        runs = self.results.get(key, {}).get(tool, [])
        return sum(r["ok"] for r in runs), len(runs)

    def report(self):
        B, H = human_size(self.big), human_size(self.huge)
        nS, nV, nD = self.n_small, self.n_versions, self.n_delete
        slots = CONCURRENCY
        rows = []

        def fmt(v, kind):
            if v is None:
                return "failed"
            if kind == "s":
                return f"{v:.2f} s"
            if kind == "MiB":
                return f"{v:.1f} MiB"
            return f"{v:g}"

        def ratio(p, r):
            if p is None or r is None or r == 0:
                return "—"
            return f"{p / r:.2f}×"

        def add(scen, key, metric_name, metric, kind, target="", verdict_fn=None, rclone=True):
            p = self.med(key, "plugin", metric)
            r = self.med(key, "rclone", metric) if rclone else None
            ok_p, n_p = self.ok_count(key, "plugin")
            verdict = ""
            if verdict_fn is not None:
                if p is None or (ok_p < n_p):
                    verdict = f"**MISS** ({n_p - ok_p}/{n_p} runs failed)" if n_p else "**MISS** (not run)"
                else:
                    verdict = "PASS" if verdict_fn(p, r) else "**MISS**"
            rows.append([scen, metric_name, fmt(p, kind), fmt(r, kind) if rclone else "n/a",
                         ratio(p, r) if rclone else "—", target, verdict])

        list_calls = lambda r: (r["calls"].get("b2_list_file_versions", 0) + r["calls"].get("b2_list_file_names", 0))
        auth_calls = lambda r: r["calls"].get("b2_authorize_account", 0)
        big_rss = self.med("up-big", "plugin", "rss_mib")

        s = f"upload one {B} file"
        add(s, "up-big", "wall", "wall", "s", "≤ 0.75× rclone", lambda p, r: r is not None and p <= 0.75 * r)
        add(s, "up-big", "CPU (user+sys)", "cpu", "s")
        add(s, "up-big", "peak RSS", "rss_mib", "MiB", "≤ 100 MiB and ≤ ¼ rclone",
            lambda p, r: r is not None and p <= 100 and p <= r / 4)
        add(s, "up-big", "transactions", "transactions", "n")
        s = f"upload one {H} file"
        add(s, "up-huge", "wall", "wall", "s")
        add(s, "up-huge", "CPU (user+sys)", "cpu", "s")
        add(s, "up-huge", "peak RSS", "rss_mib", "MiB",
            f"within 10% of the {B} run ({big_rss:.1f} MiB)" if big_rss else f"within 10% of the {B} run",
            lambda p, r: big_rss is not None and abs(p - big_rss) <= 0.10 * big_rss)
        add(s, "up-huge", "transactions", "transactions", "n")
        s = f"download the {B} file + verify"
        add(s, "download", "wall", "wall", "s", "≤ 0.75× rclone", lambda p, r: r is not None and p <= 0.75 * r)
        add(s, "download", "CPU (user+sys)", "cpu", "s")
        add(s, "download", "peak RSS", "rss_mib", "MiB", "≤ 100 MiB", lambda p, r: p <= 100)
        add(s, "download", "transactions", "transactions", "n")
        s = f"upload a directory of {nS:,} × 256 KiB"
        add(s, "dir", "wall", "wall", "s", "≤ 0.75× rclone", lambda p, r: r is not None and p <= 0.75 * r)
        add(s, "dir", "CPU (user+sys)", "cpu", "s")
        add(s, "dir", "peak RSS", "rss_mib", "MiB")
        add(s, "dir", "transactions", "transactions", "n", f"≤ {nS:,} + 2×{slots} + 2 = {nS + 2 * slots + 2:,}",
            lambda p, r: p <= nS + 2 * slots + 2)
        s = f"{nS:,} single-file `dest_upload` calls, one process"
        add(s, "many", "wall", "wall", "s", rclone=False)
        add(s, "many", "CPU (user+sys)", "cpu", "s", rclone=False)
        add(s, "many", "peak RSS", "rss_mib", "MiB", rclone=False)
        add(s, "many", "transactions", "transactions", "n", f"≤ {nS:,} + 1 + {slots} = {nS + 1 + slots:,}",
            lambda p, r: p <= nS + 1 + slots, rclone=False)
        s = f"`dest_usage` over {nV:,} versions (rclone: `size`)"
        add(s, "usage", "wall", "wall", "s")
        add(s, "usage", "CPU (user+sys)", "cpu", "s")
        add(s, "usage", "peak RSS", "rss_mib", "MiB")
        add(s, "usage", "list calls", list_calls, "n", f"= ⌈{nV:,} / 10,000⌉ = {math.ceil(nV / 10000)}",
            lambda p, r: p <= math.ceil(nV / 10000))
        add(s, "usage", "authorize calls", auth_calls, "n", "= 1", lambda p, r: p == 1)
        add(s, "usage", "transactions", "transactions", "n")
        s = f"delete a directory of {nD:,} files (rclone: `purge --b2-hard-delete`)"
        add(s, "delete", "wall", "wall", "s", "≤ 0.75× rclone", lambda p, r: r is not None and p <= 0.75 * r)
        add(s, "delete", "CPU (user+sys)", "cpu", "s")
        add(s, "delete", "peak RSS", "rss_mib", "MiB")
        add(s, "delete", "transactions", "transactions", "n")

        header = ["scenario", "metric", "plugin (median)", "rclone (median)", "plugin/rclone", "target", "result"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        last = None
        for row in rows:
            shown = list(row)
            if row[0] == last:
                shown[0] = ""
            last = row[0]
            lines.append("| " + " | ".join(shown) + " |")
        table = "\n".join(lines)

        # Transactions per call type, and the emulator's CPU per run.
        call_lines = ["| scenario | client | runs ok | B2 calls per type (median of runs) | bytes to / from emulator | emulator CPU |",
                      "|---|---|---|---|---|---|"]
        names = {"up-big": f"upload {B}", "up-huge": f"upload {H}", "download": f"download {B}",
                 "dir": f"directory of {nS:,}", "many": f"{nS:,} × dest_upload", "usage": f"usage over {nV:,}",
                 "delete": f"delete {nD:,}"}
        for key, label in names.items():
            for tool in ("plugin", "rclone"):
                runs = self.results.get(key, {}).get(tool, [])
                if not runs:
                    continue
                okr = [r for r in runs if r["ok"]] or runs
                call_names = sorted({c for r in okr for c in r["calls"]})
                parts = []
                for c in call_names:
                    v = statistics.median(r["calls"].get(c, 0) for r in okr)
                    parts.append(f"{c.removeprefix('b2_')} {v:g}")
                rx = statistics.median(r["bytes_received"] for r in okr) / MIB
                tx = statistics.median(r["bytes_sent"] for r in okr) / MIB
                ecpu = statistics.median(r["emulator_cpu"] for r in okr)
                ok_p, n_p = sum(r["ok"] for r in runs), len(runs)
                call_lines.append(f"| {label} | {tool} | {ok_p}/{n_p} | {', '.join(parts) or '—'} | "
                                  f"{rx:,.0f} MiB / {tx:,.0f} MiB | {ecpu:.1f} s |")
        calls_table = "\n".join(call_lines)

        run_lines = ["| scenario | client | wall s | CPU s | peak RSS MiB | transactions | exit status |",
                     "|---|---|---|---|---|---|---|"]

        def per_run(runs, fmt_one):
            return ", ".join(fmt_one(r) for r in runs)

        for key, label in names.items():
            for tool in ("plugin", "rclone"):
                runs = self.results.get(key, {}).get(tool, [])
                if not runs:
                    continue
                cells = [
                    per_run(runs, lambda r: f"{r['wall']:.2f}"),
                    per_run(runs, lambda r: f"{r['cpu']:.2f}"),
                    per_run(runs, lambda r: f"{r['rss_mib']:.1f}"),
                    per_run(runs, lambda r: str(r["transactions"])),
                    per_run(runs, lambda r: str(r["status"]) + ("" if r["ok"] else " ✗")),
                ]
                run_lines.append(f"| {label} | {tool} | " + " | ".join(cells) + " |")
        runs_table = "\n".join(run_lines)

        # Environment
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), platform.processor())
        with open("/proc/meminfo") as f:
            mem_kib = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
        loads = [r["loadavg_before"] for k in self.results.values() for t in k.values() for r in t]
        c = self.ceilings
        up_c, dl_c = c.get("upload", {}), c.get("download", {})

        def ceil_text(x):
            if not x:
                return "not measured"
            if "error" in x:
                return f"failed: {x['error']}"
            return (f"{x['mb_per_s']:.0f} MB/s ({x['bytes'] / MIB:,.0f} MiB in {x['wall']:.2f} s; "
                    f"emulator used {x['emulator_cpu']:.1f} s CPU = {x['emulator_cpu'] / x['wall']:.2f} cores)")

        env_lines = [
            f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- Machine: `nproc` = {nproc}, CPU {model}, {mem_kib / 1024 / 1024:.1f} GiB RAM, "
            f"kernel {platform.release()}",
            f"- Mode: {'`--quick`' if self.quick else 'full'}, {self.runs} run(s) per client per scenario, "
            f"plugin and rclone runs alternating; whole benchmark {self.elapsed / 60:.1f} min",
            f"- libb2dest {self.plugin_version} (release build, driven through its C ABI by `bench/driver.c`); "
            f"{self.rclone_version} (Debian package), flags `{' '.join(self.rclone_flags)}`, defaults otherwise "
            "(chunk size 96 MiB, upload cutoff 200 MiB)",
            f"- Emulator: `b2-emulator --min-part-size 5000000 --recommended-part-size 100000000`, data dir on "
            f"the local disk; the plugin's part size is the recommended 100 MB, concurrency {CONCURRENCY}",
            f"- Page cache: {'dropped (`echo 3 > /proc/sys/vm/drop_caches`) before every download run' if self.caches_dropped else 'could NOT be dropped before downloads (no permission); downloads ran with a warm cache'}; "
            "upload sources were read through once before every upload run (warm cache)",
            f"- The machine is shared with other work: 1-minute load average before the runs "
            f"{min(loads):.2f}–{max(loads):.2f} on {nproc} cores, so absolute times are noisy; "
            "the ratios come from interleaved runs." if loads else "- (no runs)",
            f"- Ceilings: SHA1 (python hashlib/OpenSSL, one core) {c.get('sha1_mb_per_s', 0):.0f} MB/s; "
            f"emulator ingest with a near-free client (python, 4 streams of 100 MB parts) {ceil_text(up_c)}; "
            f"emulator download, 4 ranged streams of the same file, page cache warm {ceil_text(dl_c)}",
        ]
        md = [f"# b2dest benchmark: plugin vs rclone against the local B2 emulator", "",
              "Generated by `bash bench/run.sh" + (" --quick" if self.quick else "") + "`. "
              "Medians of wall time, CPU time (user+sys) and peak RSS of the client process "
              "(`/usr/bin/time`), and B2 transactions counted by the emulator (counters reset before every run).",
              "", *env_lines, "", table, "", "## B2 transactions per call type", "", calls_table, "",
              "## Every run, in order", "", runs_table, ""]
        if self.failures:
            md += ["## Failed runs", ""] + [f"- {f}" for f in self.failures] + [""]
        self.notes.append(
            "rclone's b2 backend paces its API calls (pacer minimum sleep 10 ms between calls, about "
            "100 calls/s per process, meant for the real B2's rate limits); that, not the emulator, bounds "
            "its time for many small files and for deletes. The plugin does not pace; it retries on 429/503.")
        self.notes.append(
            "Every client run is one process started from scratch (authorize included). Before each run: "
            "`sync`, emulator counters reset. Between runs the uploaded files are deleted again (untimed), "
            "so every upload creates new files. Each delete run gets freshly seeded files.")
        if self.notes:
            md += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        text = "\n".join(md)
        with open(os.path.join(BENCH_DIR, "results.md"), "w") as f:
            f.write(text)
        with open(os.path.join(BENCH_DIR, "results.json"), "w") as f:
            json.dump({"quick": self.quick, "runs": self.runs, "ceilings": self.ceilings,
                       "results": self.results, "failures": self.failures, "notes": self.notes}, f, indent=1)
        print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--driver", required=True)
    ap.add_argument("--rclone", default=shutil.which("rclone") or "/usr/bin/rclone")
    args = ap.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    bench = Bench(args)
    try:
        bench.setup()
        bench.run()
        bench.report()
    finally:
        bench.teardown()


if __name__ == "__main__":
    main()
