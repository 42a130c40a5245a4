#!/usr/bin/env python3
"""Two (or more) builds of the receiver on the full pipeline, in alternating rounds.

    python3 Tests/Benchmarks/ab-bench.py .build-before/release/ncs-receiver .build/release/ncs-receiver

Why: a change to the request or commit path is measured against the build without it in the
same run, round after round, because this machine's figures drift by 10-20% within minutes
(http-bench.sh measures one build against nginx, the bar's reference). Each round runs every
build once, in turn: a new data folder (SQLite, fsync on, unless --serve-args says otherwise), a
warm-up, then `wrk -t1` with distinct signed callbacks (ncs-signed.lua). Printed per round and
build: requests/s, p99, the receiver's CPU a callback, the machine's idle time, the mean group
commit (from /metrics), and with --threads each thread's CPU and how long it waited for a
core (/proc/<pid>/task/*/schedstat): the figures that told where the overlapped fsync lost
(README, Roadmap). At the end, the median of every figure per build and its ratio to the first.
"""
import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the receiver exited ({process.returncode}) before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after {seconds} s")


def threads(pid):
    """comm -> [CPU ticks, run-queue wait ns], summed over threads of the same name."""
    result = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                wait = int(f.read().split()[1])
        except OSError:
            continue  # the thread ended meanwhile
        entry = result.setdefault(name, [0, 0])
        entry[0] += int(fields[11]) + int(fields[12])
        entry[1] += wait
    return result


def process_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine():
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return values[3] + values[4], sum(values)


def commits(admin_port, token):
    request = urllib.request.Request(f"http://127.0.0.1:{admin_port}/metrics", headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    found = dict(re.findall(r"^(ncs_store_commit_batch_events_(?:sum|count)) (\S+)$", text, re.M))
    return float(found.get("ncs_store_commit_batch_events_sum", 0)), float(found.get("ncs_store_commit_batch_events_count", 0))


def to_ms(value):
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def run_round(binary, args, token):
    data = tempfile.mkdtemp(prefix="ab-bench-data.")
    port, admin_port = free_port(), free_port()
    env = dict(os.environ, NCS_SECRET="ncs-fixture-secret", NCS_ADMIN_TOKEN=token)
    command = [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
               "--log-level", "warning", "--data-dir", data] + args.serve_args.split()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(port, server)
        url = f"http://127.0.0.1:{port}/v1/ncs"
        wrk = ["wrk", "-t1", f"-c{args.connections}", "-s", os.path.join(ROOT, "Tests/Benchmarks/ncs-signed.lua")]
        subprocess.run(wrk + [f"-d{args.warmup}s", url], check=True, capture_output=True)
        threads_before, ticks_before, machine_before = threads(server.pid), process_ticks(server.pid), machine()
        commits_before = commits(admin_port, token)
        output = subprocess.run(wrk + [f"-d{args.duration}s", "--latency", url], check=True, capture_output=True, text=True).stdout
        threads_after, ticks_after, machine_after = threads(server.pid), process_ticks(server.pid), machine()
        commits_after = commits(admin_port, token)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    batches = commits_after[1] - commits_before[1]
    idle = (machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1])
    figures = {
        "req/s": float(re.search(r"Requests/sec:\s+(\S+)", output).group(1)),
        "p99 ms": to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),
        "CPU µs/callback": (ticks_after - ticks_before) / TICKS * 1e6 / max(1, requests),
        "idle %": 100 * idle,
        "events/commit": (commits_after[0] - commits_before[0]) / batches if batches else 0.0,
    }
    per_thread = {}
    for name, (ticks, wait) in threads_after.items():
        before = threads_before.get(name, [0, 0])
        cpu = 100 * (ticks - before[0]) / TICKS / args.duration
        waited = 100 * (wait - before[1]) / 1e9 / args.duration
        if cpu >= 1:
            per_thread[name] = (cpu, waited)
    return figures, per_thread, int(failed.group(1)) if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="+", help="ncs-receiver builds to compare (the first is the reference)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds of wrk a round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", action="store_true", help="print each thread's CPU and run-queue wait")
    parser.add_argument("--serve-args", default="", help="more arguments for `serve` (e.g. '--store memory')")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    labels = []
    for binary in args.binaries:
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} is not an executable")
        label = os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary
        labels.append(label if label not in labels else f"{label} ({len(labels) + 1})")
    token = secrets.token_hex(16)
    results = {label: [] for label in labels}
    print(f"== {args.rounds} rounds of {args.duration} s, wrk -t1 -c{args.connections}, builds alternating", flush=True)
    for round_number in range(1, args.rounds + 1):
        for binary, label in zip(args.binaries, labels):
            figures, per_thread, failed = run_round(binary, args, token)
            results[label].append(figures)
            line = "  ".join(f"{name} {value:.1f}" for name, value in figures.items())
            print(f"round {round_number} {label}: {line}" + (f"  NON-2XX {failed}" if failed else ""), flush=True)
            if args.threads:
                for name, (cpu, waited) in sorted(per_thread.items(), key=lambda item: -item[1][0]):
                    print(f"      {name:24s} CPU {cpu:5.1f}%  waited for a core {waited:5.1f}%")
    print("\n== median of the rounds (ratio to the first build)")
    reference = {name: statistics.median(r[name] for r in results[labels[0]]) for name in results[labels[0]][0]}
    for label in labels:
        medians = {name: statistics.median(r[name] for r in results[label]) for name in reference}
        print(f"{label}: " + "  ".join(
            f"{name} {value:.1f}" + (f" ({value / reference[name]:.2f}x)" if label != labels[0] and reference[name] else "")
            for name, value in medians.items()))


if __name__ == "__main__":
    sys.exit(main())
