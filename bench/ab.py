#!/usr/bin/env python3
"""A/B of libb2dest builds on one scenario, built from bench/bench.py's own pieces (its
Emulator, `measure` with /usr/bin/time, `make_big_file`, `warm`): the plugin only, one
large-file upload and/or restore, the builds' runs alternating. For measuring a change to
the data path without the whole benchmark or the peers.

    # each driver is bench/driver.c linked to one build (gcc ... -Wl,-rpath,<its dir>)
    python3 bench/ab.py --drivers before=/tmp/driver-before after=/tmp/driver-after \\
        --size-mib 1024 --concurrency 4 --runs 5 [--what upload,download] [--wan 40,50] \\
        [--wrap "perf stat -e page-faults"]

Needs target/release/b2-emulator. Caches stay warm (nothing is dropped), so the figures
are the client's work, not the disk's. Prints every run and the medians per build.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drivers", nargs="+", required=True, help="label=path ...")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--what", default="upload,download")
    ap.add_argument("--wan", default="", help="latency_ms,mb_per_s for the emulator's WAN model")
    ap.add_argument("--wrap", default="", help="command prefix for the client, e.g. valgrind --tool=callgrind")
    ap.add_argument("--out", help="raw runs as JSON")
    a = ap.parse_args()
    drivers = dict(d.split("=", 1) for d in a.drivers)
    first = next(iter(drivers.values()))
    wrap = a.wrap.split()
    work = tempfile.mkdtemp(prefix="b2dest-ab.", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp"))
    wan_args = []
    if a.wan:
        latency, bandwidth = a.wan.split(",")
        wan_args = ["--latency-ms", latency, "--bandwidth-mb-per-s", bandwidth]
    emu = B.Emulator(work, 5_000_000, 100_000_000, wan_args)
    res = {}

    def report(what, label, run, ok):
        res.setdefault((what, label), []).append(run)
        print(f"{what} {label}: ok={ok} wall {run['wall']:.2f} s, cpu {run['cpu']:.2f} s "
              f"(user {run['user']:.2f}, sys {run['sys']:.2f}), rss {run['rss_mib']:.1f} MiB, "
              f"{run['transactions']} calls {run['calls']}", flush=True)
        if not ok:
            print(run["stdout_tail"], run["stderr_tail"])

    try:
        path = os.path.join(work, "big.bin")
        sha1 = B.make_big_file(path, a.size_mib * B.MIB)
        cfg = os.path.join(work, "config.json")
        with open(cfg, "w") as f:
            json.dump({"name": "ab", "account_id": B.ACCOUNT, "application_key": B.KEY,
                       "bucket": B.BUCKET, "backup_directory": "bench", "api_url": emu.url,
                       "concurrency": a.concurrency}, f)
        env = dict(os.environ)
        if "upload" in a.what:
            for i in range(a.runs):
                for label, drv in drivers.items():
                    B.warm(path)
                    sub = f"up-{label}-{i}"
                    run = B.measure(emu, wrap + [drv, "upload", cfg, path, f"{sub}/file"], env, work, label)
                    report("upload", label, run, run["status"] == 0)
                    subprocess.run([first, "delete", cfg, sub], capture_output=True)
        if "download" in a.what:
            subprocess.run([first, "upload", cfg, path, "down/file"], check=True, capture_output=True)
            out = os.path.join(work, "restored.bin")
            for i in range(a.runs):
                for label, drv in drivers.items():
                    if os.path.exists(out):
                        os.unlink(out)
                    run = B.measure(emu, wrap + [drv, "download", cfg, "down/file", out], env, work, label)
                    got = B.sha1_file(out) if os.path.exists(out) else None
                    report("download", label, run, run["status"] == 0 and got == sha1)
        print("\nmedians:")
        for (what, label), runs in res.items():
            def m(k):
                return statistics.median(r[k] for r in runs)
            print(f"  {what:8} {label:10} wall {m('wall'):.2f} s  cpu {m('cpu'):.2f} s  "
                  f"rss {m('rss_mib'):.1f} MiB  calls {m('transactions'):.0f}  "
                  f"load before {[round(r['loadavg_before'], 1) for r in runs]}")
        if a.out:
            with open(a.out, "w") as f:
                json.dump({f"{k[0]}/{k[1]}": v for k, v in res.items()}, f, indent=1, default=str)
    finally:
        emu.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
