"""Latency benchmark of ``seqrec serve``: a bounded, self-stopping open-loop load test.

Starts ``seqrec serve`` on a free 127.0.0.1 port (or targets ``--url``, loopback
only), replays the click sequences of a test set as ``POST
/v1/sessions/{id}/events`` requests at fixed rates (default 100, 200, 500 req/s for
60 s each, Poisson arrivals), and reports per rate: p50/p95/p99/max latency, errors
and the server's RSS. ``--in-process`` also times the runtime alone (no HTTP): one
``add_event`` (step + top-20 + state store) per click.

Every step stops after ``--duration`` seconds, or earlier when more than 5 % of the
requests failed or the client fell more than 5 s behind its schedule (overload).

Examples::

    python benchmarks/serve_latency.py --model runs/demo/gru4rec --test data/excerpt/test.tsv
    python benchmarks/serve_latency.py --model /tmp/dig_g4r \\
        --test ../shared/data/diginetica/srgnn --rates 200,1000 --duration 60 --in-process 5000

The client is a minimal asyncio HTTP/1.1 keep-alive client (cheap per request, so the
2 cores are left to the server); latency is measured from the moment a request is
written to the moment its whole response is read, and also from its scheduled start
(which adds any delay in the client: the ``sched p99`` column).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_RATE = 5000  # req/s: the generator refuses more (it is a latency test, not a flood)
MAX_DURATION = 600  # s per rate step
MAX_FAIL_FRACTION = 0.05
MAX_LAG = 5.0  # s behind schedule = overloaded, stop the step


# ------------------------------------------------------------------ click sequences
def load_sessions(model_dir: str, test: str) -> list[list[str]]:
    """Test sessions as lists of external item ids known to the model (unknown
    clicks dropped), sessions with at least one click."""
    from seqrec.data.loading import load_test_data
    from seqrec.models import load_model

    model = load_model(model_dir)
    assert model.item_index_ is not None
    log, _ = load_test_data(test, "auto", model.item_index_, "next-item")
    ids = model.item_index_.external_ids
    out = []
    for s in range(log.n_sessions):
        items = log.items[log.offsets[s] : log.offsets[s + 1]]
        seq = [ids[i] for i in items if i >= 0]
        if seq:
            out.append(seq)
    if not out:
        raise SystemExit(f"no test session with a known item in {test}")
    return out


class ClickStream:
    """Interleaves ``active`` sessions replayed in full, one click per request, like
    ``active`` concurrent users; a finished session is replaced by the next one."""

    def __init__(self, sessions: list[list[str]], active: int, tag: str) -> None:
        self.sessions = sessions
        self.tag = tag
        self.next_session = 0
        self.slots: list[tuple[str, Iterator[str]]] = []
        for _ in range(min(active, len(sessions))):
            self.slots.append(self._new())
        self.turn = 0

    def _new(self) -> tuple[str, Iterator[str]]:
        j = self.next_session
        self.next_session += 1
        seq = self.sessions[j % len(self.sessions)]
        return f"{self.tag}-{j}", iter(seq)

    def __next__(self) -> tuple[str, str]:
        i = self.turn % len(self.slots)
        self.turn += 1
        while True:
            sid, it = self.slots[i]
            item = next(it, None)
            if item is not None:
                return sid, item
            self.slots[i] = self._new()


# ------------------------------------------------------------------ HTTP client
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
IDLE_REUSE_S = 2.0  # reuse idle connections younger than this (servers close idle ones)


class Pool:
    """Keep-alive HTTP/1.1 connections to one host (grows up to ``limit``)."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: list[tuple[Conn, float]] = []  # most recently used last
        self.n_open = 0
        self.freed = asyncio.Condition()

    async def acquire(self) -> Conn:
        while True:
            now = time.perf_counter()
            while self.idle and now - self.idle[0][1] > IDLE_REUSE_S:  # stale: close
                (_, w), _ = self.idle.pop(0)
                w.close()
                self.n_open -= 1
            if self.idle:
                return self.idle.pop()[0]
            if self.n_open < self.limit:
                self.n_open += 1
                try:
                    return await asyncio.open_connection(self.host, self.port)
                except OSError:
                    self.n_open -= 1
                    raise
            async with self.freed:
                await self.freed.wait()

    async def release(self, conn: Conn, ok: bool) -> None:
        if ok:
            self.idle.append((conn, time.perf_counter()))
        else:
            self.n_open -= 1
            conn[1].close()
        async with self.freed:
            self.freed.notify()

    def close(self) -> None:
        for (_, w), _ in self.idle:
            w.close()


async def post(pool: Pool, path: str, body: bytes, headers: bytes) -> tuple[int, float]:
    """One request; (HTTP status or 0 on a transport error, seconds from write to end)."""
    conn = await pool.acquire()
    reader, writer = conn
    ok = False
    try:
        t0 = time.perf_counter()
        writer.write(
            b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + headers
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        status_line = await reader.readline()
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        close = False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        ok = not close
        return status, time.perf_counter() - t0
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        return 0, 0.0
    finally:
        await pool.release(conn, ok)


@dataclass
class StepResult:
    rate: float
    duration_s: float
    sent: int
    ok: int
    errors: int
    achieved_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    sched_p99_ms: float
    rss_mb: float | None
    rss_peak_mb: float | None
    load_avg_1m: float
    server_cpu_ms_per_req: float | None = None
    client_cpu_ms_per_req: float | None = None
    stopped_early: str = ""
    statuses: dict[str, int] = field(default_factory=dict)


async def run_step(
    host: str,
    port: int,
    stream: ClickStream,
    rate: float,
    duration: float,
    k: int,
    headers: bytes,
    poisson: bool,
    seed: int,
    max_conns: int,
    timeout: float,
) -> tuple[list[float], list[float], dict[str, int], int, str, float]:
    """Fire requests at ``rate`` for ``duration`` s; returns latencies, scheduled
    latencies, status counts, requests sent, early-stop reason, elapsed seconds."""
    pool = Pool(host, port, max_conns)
    rng = random.Random(seed)
    lat: list[float] = []
    sched: list[float] = []
    statuses: dict[str, int] = {}
    tasks: set[asyncio.Task] = set()
    stop_reason = ""
    sent = 0
    fails = 0

    async def one(sid: str, item: str, t_sched: float) -> None:
        nonlocal fails
        body = json.dumps({"item": item, "k": k}).encode()
        path = f"/v1/sessions/{urllib.parse.quote(sid, safe='')}/events"
        try:
            status, seconds = await asyncio.wait_for(post(pool, path, body, headers), timeout)
        except TimeoutError:
            status, seconds = -1, 0.0
        key = str(status) if status > 0 else ("timeout" if status < 0 else "transport")
        statuses[key] = statuses.get(key, 0) + 1
        if status == 200:
            lat.append(seconds)
            sched.append(time.perf_counter() - t_sched)
        else:
            fails += 1

    start = time.perf_counter()
    t_next = start
    end = start + duration
    while t_next < end:
        now = time.perf_counter()
        if now < t_next:
            await asyncio.sleep(t_next - now)
            continue
        if now - t_next > MAX_LAG:
            stop_reason = f"client more than {MAX_LAG:.0f} s behind schedule (overload)"
            break
        sid, item = next(stream)
        task = asyncio.create_task(one(sid, item, t_next))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        if sent >= 200 and fails > MAX_FAIL_FRACTION * sent:
            stop_reason = f"more than {MAX_FAIL_FRACTION:.0%} of requests failed"
            break
        gap = rng.expovariate(rate) if poisson else 1.0 / rate
        t_next += gap
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 1)
    elapsed = time.perf_counter() - start
    pool.close()
    return lat, sched, statuses, sent, stop_reason, elapsed


# ------------------------------------------------------------------ server process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int | None) -> tuple[float | None, float | None]:
    """(current, peak) resident set size of ``pid`` and its children, in MiB."""
    if pid is None:
        return None, None
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    cur = peak = 0.0
    for p in pids:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                cur += int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1]) / 1024
    return cur, peak


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of ``pid`` and its children (threads included)."""
    if pid is None:
        return None
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f} s")


# ------------------------------------------------------------------ in-process timing
def in_process(
    model_dir: str, sessions: list[list[str]], n: int, k: int, ann: str = "auto"
) -> dict[str, float]:
    """Time the runtime without HTTP: ``add_event`` per click (step + top-k + store),
    single thread, torch with 1 thread."""
    import torch

    from seqrec.serving.runtime import Runtime, RuntimeOptions

    torch.set_num_threads(1)
    rt = Runtime(model_dir, options=RuntimeOptions(ann=ann))
    stream = ClickStream(sessions, 100, "inproc")
    for _ in range(min(500, n)):  # warm-up
        rt.add_event(*next(stream), k)
    times, cpu = [], []
    for _ in range(n):
        sid, item = next(stream)
        c0, t0 = time.thread_time(), time.perf_counter()
        rt.add_event(sid, item, k)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    ms = np.asarray(times) * 1e3
    cpu_ms = np.asarray(cpu) * 1e3
    return {
        "events": n,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "cpu_p50_ms": float(np.percentile(cpu_ms, 50)),
        "cpu_p99_ms": float(np.percentile(cpu_ms, 99)),
        "items": rt.model.n_items,
    }


def run_async(coro):  # uvloop when installed: a cheaper client loop
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# ------------------------------------------------------------------ approximate top-K
def ann_benchmark(args: argparse.Namespace) -> list[dict]:
    """Latency and recall@k of the faiss index (seqrec.serving.ann) against exact
    scoring over ``--ann-items`` synthetic items.

    Items: with ``--model`` (a GRU4Rec), its output item vectors and biases (as they
    are when ``--ann-items`` is its catalogue size, else resampled with noise to that
    size) and queries are its hidden outputs on test sessions; without, clustered
    Gaussian vectors (2,000 clusters) and queries near random items. Exact = one
    (1, H) x (H, n) product + top-k, 1 thread.
    """
    import torch

    from seqrec.serving.ann import InnerProductIndex

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    n, n_q, k = args.ann_items, args.ann_queries, args.k
    if args.model:
        from seqrec.models import load_model

        model = load_model(args.model)
        wy, by = model.item_table()  # type: ignore[attr-defined]
        base_w, base_b = wy.numpy(), by.numpy()
        if n == len(base_w):  # the model's own catalogue, unchanged
            w, b = base_w, base_b
        else:
            pick = rng.integers(0, len(base_w), n)
            noise = 0.1 * base_w.std()
            w = base_w[pick] + rng.normal(0, noise, (n, base_w.shape[1])).astype(np.float32)
            b = base_b[pick] + rng.normal(0, 0.1 * base_b.std(), n).astype(np.float32)
        sessions = load_sessions(args.model, args.test)
        chosen = [sessions[i] for i in rng.integers(0, len(sessions), n_q)]
        hist = [model.item_index_.encode(s) for s in chosen]  # type: ignore[union-attr]
        with torch.inference_mode():
            q = model.encode_histories(hist)[1].numpy()  # type: ignore[attr-defined]
        source = (
            f"{args.model}'s own {n:,} item vectors"
            if n == len(base_w)
            else f"{args.model} item vectors resampled to {n:,} items"
        )
    else:
        d = 100
        centers = rng.standard_normal((2000, d), dtype=np.float32)
        w = centers[rng.integers(0, 2000, n)] + 0.5 * rng.standard_normal((n, d), np.float32)
        b = rng.normal(0, 1, n).astype(np.float32)
        q = w[rng.integers(0, n, n_q)] + 0.5 * rng.standard_normal((n_q, d), np.float32)
        q = np.tanh(q / 3)
        source = f"{n:,} clustered Gaussian vectors (synthetic)"
    w = np.ascontiguousarray(w, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    q = np.ascontiguousarray(q, dtype=np.float32)
    print(f"ann benchmark: {source}, d={w.shape[1]}, {n_q} queries, k={k}", file=sys.stderr)

    wt = torch.from_numpy(np.ascontiguousarray(w.T))
    bt = torch.from_numpy(b)
    exact_ids = np.empty((n_q, k), dtype=np.int64)
    times = []
    for i in range(n_q):
        t0 = time.perf_counter()
        scores = torch.addmm(bt, torch.from_numpy(q[i : i + 1]), wt)
        exact_ids[i] = torch.topk(scores, k, dim=1).indices.numpy()[0]
        times.append(time.perf_counter() - t0)
    rows = [
        {
            "kind": "ann",
            "method": "exact",
            "items": n,
            "p50_ms": float(np.percentile(np.asarray(times) * 1e3, 50)),
            "p99_ms": float(np.percentile(np.asarray(times) * 1e3, 99)),
            f"recall@{k}": 1.0,
        }
    ]
    t0 = time.perf_counter()
    index = InnerProductIndex(w, b, seed=args.seed, threads=args.ann_threads)
    build_s = time.perf_counter() - t0
    print(f"IVF-Flat build: nlist {index.nlist}, {build_s:.1f} s", file=sys.stderr)
    for nprobe in (8, 16, 32, 64, 128):
        index.nprobe = nprobe
        times, hits = [], 0
        for i in range(n_q):
            t0 = time.perf_counter()
            _, ids = index.search(q[i : i + 1], k)
            times.append(time.perf_counter() - t0)
            hits += len(set(ids[0].tolist()) & set(exact_ids[i].tolist()))
        ms = np.asarray(times) * 1e3
        rows.append(
            {
                "kind": "ann",
                "method": f"faiss IVF-Flat nlist {index.nlist} nprobe {nprobe}",
                "items": n,
                "build_s": round(build_s, 1),
                "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                f"recall@{k}": hits / (n_q * k),
            }
        )
    print()
    print(f"| top-{k} method | items | p50 ms | p99 ms | recall@{k} vs exact |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['items']:,} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r[f'recall@{k}']:.3f} |"
        )
    return rows


# ------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", help="model directory (served, and its catalogue)")
    p.add_argument("--test", default="data/excerpt/test.tsv", help="test sessions to replay")
    p.add_argument("--rates", default="100,200,500", help="req/s steps, comma-separated")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per rate step")
    p.add_argument("--warmup", type=float, default=5.0, help="unrecorded seconds before each step")
    p.add_argument("--k", type=int, default=20, help="k of every request (default 20)")
    p.add_argument("--active-sessions", type=int, default=200, help="concurrent sessions")
    p.add_argument("--max-connections", type=int, default=256, help="client connection cap")
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout (s)")
    p.add_argument("--uniform", action="store_true", help="evenly spaced (default Poisson)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", help="benchmark a running server (127.0.0.1 only) instead")
    p.add_argument("--server-pid", type=int, help="with --url: pid whose RSS to report")
    p.add_argument("--store", default="memory", help="--store of the started server")
    p.add_argument("--workers", type=int, default=1, help="--workers of the started server")
    p.add_argument("--threads", type=int, default=1, help="--threads of the started server")
    p.add_argument(
        "--ann",
        default="auto",
        choices=["auto", "exact", "faiss"],
        help="top-K search of the server and the in-process runtime (default auto)",
    )
    p.add_argument(
        "--serve-args", default="", help='more `seqrec serve` options, e.g. "--ann faiss"'
    )
    p.add_argument("--api-key-env", help="send the key in this variable (and require it)")
    p.add_argument(
        "--in-process",
        type=int,
        default=0,
        metavar="N",
        help="also time N runtime add_event calls without HTTP",
    )
    p.add_argument("--json", metavar="FILE", help="append one JSON line per result")
    p.add_argument(
        "--ann-items",
        type=int,
        default=0,
        metavar="N",
        help="instead: approximate vs exact top-k over N synthetic items (faiss)",
    )
    p.add_argument("--ann-queries", type=int, default=500, help="queries of --ann-items")
    p.add_argument(
        "--ann-threads", type=int, default=1, help="faiss search threads (the build uses all)"
    )
    args = p.parse_args(argv)
    if not args.model and not args.ann_items:
        p.error("--model is required (except for --ann-items without one)")
    args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    if not args.rate_list or any(r <= 0 or r > MAX_RATE for r in args.rate_list):
        p.error(f"--rates must be in (0, {MAX_RATE}]")
    if not 0 < args.duration <= MAX_DURATION:
        p.error(f"--duration must be in (0, {MAX_DURATION}]")
    if args.url:
        host = urllib.parse.urlsplit(args.url).hostname
        if host not in LOOPBACK:
            p.error("--url must point at 127.0.0.1 / localhost: this tool only loads loopback")
    return args


def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU {cpu}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ann_items:
        results = ann_benchmark(args)
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                for r in results:
                    fh.write(json.dumps({"machine": machine(), **r}) + "\n")
        return 0
    sessions = load_sessions(args.model, args.test)
    n_clicks = sum(len(s) for s in sessions)
    print(f"machine: {machine()}", file=sys.stderr)
    print(
        f"replaying {len(sessions):,} test sessions ({n_clicks:,} clicks) from {args.test}",
        file=sys.stderr,
    )
    results: list[dict] = []

    if args.in_process:
        r = in_process(args.model, sessions, args.in_process, args.k, args.ann)
        print(
            f"in-process runtime add_event (step + top-{args.k} + store), {r['items']:,} items: "
            f"p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
            f"max {r['max_ms']:.2f} ms over {r['events']:,} events; CPU time per event "
            f"p50 {r['cpu_p50_ms']:.3f} ms  p99 {r['cpu_p99_ms']:.3f} ms"
        )
        results.append({"kind": "in-process", "model": args.model, **r})

    proc = None
    headers = b""
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise SystemExit(f"--api-key-env {args.api_key_env}: variable not set")
        headers = b"X-API-Key: " + key.encode() + b"\r\n"
    if args.url:
        url = args.url.rstrip("/")
        pid = args.server_pid
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [
            sys.executable,
            "-m",
            "seqrec.cli",
            "serve",
            "--model",
            args.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--store",
            args.store,
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--log-level",
            "warning",
            "--ann",
            args.ann,
        ]
        if args.api_key_env:
            cmd += ["--api-key-env", args.api_key_env]
        cmd += shlex.split(args.serve_args)
        print("server: " + " ".join(cmd[1:]), file=sys.stderr)
        proc = subprocess.Popen(cmd)
        pid = proc.pid
    parts = urllib.parse.urlsplit(url)
    host, port_n = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        wait_ready(url, proc)
        print(f"server ready; RSS {rss_mb(pid)[0] or 0:.0f} MiB", file=sys.stderr)
        stream = ClickStream(sessions, args.active_sessions, f"b{os.getpid()}")
        rows = []
        for i, rate in enumerate(args.rate_list):
            if args.warmup > 0:
                run_async(
                    run_step(
                        host,
                        port_n,
                        stream,
                        rate,
                        args.warmup,
                        args.k,
                        headers,
                        not args.uniform,
                        args.seed + 1000 + i,
                        args.max_connections,
                        args.timeout,
                    )
                )
            cpu0, client0 = cpu_seconds(pid), time.process_time()
            lat, sched, statuses, sent, why, elapsed = run_async(
                run_step(
                    host,
                    port_n,
                    stream,
                    rate,
                    args.duration,
                    args.k,
                    headers,
                    not args.uniform,
                    args.seed + i,
                    args.max_connections,
                    args.timeout,
                )
            )
            cpu1, client1 = cpu_seconds(pid), time.process_time()
            server_cpu = (
                None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) * 1e3 / max(sent, 1)
            )
            ms = np.asarray(lat) * 1e3 if lat else np.asarray([np.nan])
            sms = np.asarray(sched) * 1e3 if sched else np.asarray([np.nan])
            cur, peak = rss_mb(pid)
            res = StepResult(
                rate=rate,
                duration_s=round(elapsed, 2),
                sent=sent,
                ok=len(lat),
                errors=sent - len(lat),
                achieved_rps=round(len(lat) / elapsed, 1) if elapsed > 0 else 0.0,
                p50_ms=float(np.percentile(ms, 50)),
                p95_ms=float(np.percentile(ms, 95)),
                p99_ms=float(np.percentile(ms, 99)),
                max_ms=float(np.max(ms)),
                sched_p99_ms=float(np.percentile(sms, 99)),
                rss_mb=None if cur is None else round(cur, 1),
                rss_peak_mb=None if peak is None else round(peak, 1),
                load_avg_1m=round(os.getloadavg()[0], 2),
                server_cpu_ms_per_req=None if server_cpu is None else round(server_cpu, 3),
                client_cpu_ms_per_req=round((client1 - client0) * 1e3 / max(sent, 1), 3),
                stopped_early=why,
                statuses=statuses,
            )
            rows.append(res)
            print(
                f"rate {rate:>6.0f}/s: {res.ok:,} ok, {res.errors} errors, p50 {res.p50_ms:.2f} "
                f"p95 {res.p95_ms:.2f} p99 {res.p99_ms:.2f} max {res.max_ms:.1f} ms"
                + (f"  STOPPED: {why}" if why else ""),
                file=sys.stderr,
            )
            results.append({"kind": "http", "model": args.model, **asdict(res)})
        print()
        print(
            "| rate (req/s) | achieved | requests | errors | p50 ms | p95 ms | p99 ms | "
            "max ms | sched p99 ms | server RSS MiB | server CPU ms/req | load avg |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r.rate:.0f} | {r.achieved_rps:.0f} | {r.sent:,} | {r.errors} | "
                f"{r.p50_ms:.2f} | {r.p95_ms:.2f} | {r.p99_ms:.2f} | {r.max_ms:.1f} | "
                f"{r.sched_p99_ms:.2f} | {r.rss_mb or float('nan'):.0f} | "
                f"{r.server_cpu_ms_per_req or float('nan'):.3f} | {r.load_avg_1m:.2f} |"
            )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            for r in results:
                fh.write(json.dumps({"machine": machine(), **r}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
