"""The Redis stream runtime: append, catch-up, end-to-end throughput and XADD-to-decision latency.

Everything runs against a redis-server this module starts on a free loopback port (no persistence, own temporary
directory, stopped by PID). Figures and the baselines they are compared with, all measured in the same run:

* **events append**: ``streamlb events append`` of a Kubernetes watch log (``data.watch_log_lines``: 100,000
  Services and their EndpointSlices, 200,006 lines [5,000 Services]) as a process, wall clock, vs msgspec's
  decode-only rate of the same lines (``msgspec.json.Decoder().decode`` per line, in-process: the floor of any
  producer that must at least parse its input) and vs ``redis-benchmark`` pipelining XADDs of the same mean entry
  size (the server's ceiling).
* **append**: events/s of the pipelined producer (``StreamLog.append``, 1,000 XADDs per round trip) vs one
  ``XADD`` per round trip (what a naive producer does).
* **end-to-end**: events/s from a pipelined producer *process* through Redis into the fold and the published
  decisions (``Daemon`` following the stream, leader, one decisions entry per batch), vs the transport ceiling:
  raw pipelined ``XADD`` of the same entries followed by paged ``XRANGE`` of them, with no decoding.
* **catch-up**: events/s of ``Daemon`` catching up from an empty state on a stream of N events (1,000,000 in the
  full run) vs the same fold reading the same events from an evlog file; and the time to catch up from a snapshot
  taken at 90 % of the stream vs from empty. These replicas do not publish (as followers), so the incremental
  announcement planner, which the first state hash switches on, stays idle; the end-to-end figure includes it.
* **latency**: p50/p99 from XADD (the entry ID's millisecond, the server clock) to the decision being published,
  with a producer process holding a steady 10,000 events/s, vs the same producer read by a bare ``XREAD BLOCK``
  consumer (transport only, no fold). The entry-ID clock has 1 ms resolution.

Not measured: Redis persistence (AOF fsync costs are Redis's), network latency (loopback only), status write-back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import data
from events import codec, log as logmod, logfile, stream
from events.position import Position
from reconciler import decisions, snapshot as snapmod
from reconciler.runtime.daemons import replica as daemonmod

from benchmarks.peers import Redis

NAME = "stream"
ROOT = Path(__file__).resolve().parents[1]


def _quiet_daemon(lg, **kw) -> daemonmod.Daemon:
    import logging

    logging.getLogger("streamlb").setLevel(logging.ERROR)
    s = daemonmod.Settings(replica="bench", snapshot_every=10**12, snapshot_interval=1e9, speaker_ttl=1e9,
                           monitor_interval=1e9, **kw)
    d = daemonmod.Daemon(lg, s)
    d.boot()
    return d


def _catch_up(d: daemonmod.Daemon, head: Position) -> None:
    while d.pos < head:
        d.step(timeout_ms=100)


def _append_cli(url: str, port: int, n_services: int, tmp: str) -> dict:
    """``streamlb events append`` of a watch log (a process, wall clock) vs msgspec's decode-only rate of the same
    lines and vs ``redis-benchmark`` pipelining XADDs of the same mean entry size."""
    import msgspec

    lines = data.watch_log_lines(n_services)
    path = os.path.join(tmp, "watch.jsonl")
    Path(path).write_bytes(b"\n".join(lines) + b"\n")
    n = len(lines)
    dec = msgspec.json.Decoder()
    t0 = time.perf_counter()
    for line in lines:
        dec.decode(line)
    decode_rate = n / (time.perf_counter() - t0)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "reconciler", "events", "append", path, "--redis-url", url,
                          "--cluster", "bench-cli", "--no-progress"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=3600)
    cli_rate = n / (time.perf_counter() - t0)
    if res.returncode != 0:
        raise RuntimeError(f"events append failed: {res.stderr[-2000:]}")
    lg = stream.StreamLog.from_url(url, "bench-cli")
    assert lg.length() == n, f"appended {lg.length()} of {n}"
    size = sum(len(r.data) for r in lg.read(limit=2000)) // min(n, 2000)
    lg.client.delete(lg.keys.events)
    rb = shutil.which("redis-benchmark")
    rb_rate = None
    if rb:
        out = subprocess.run([rb, "-h", "127.0.0.1", "-p", str(port), "-n", str(n), "-P", "1000", "--csv",
                              "XADD", "bench-rb", "*", "e", "x" * size, "v", "1"], capture_output=True, text=True,
                             timeout=600).stdout
        for row in out.splitlines():
            cells = [c.strip('"') for c in row.split(",")]
            if len(cells) > 1 and cells[0].upper().startswith("XADD"):
                rb_rate = float(cells[1])
        stream.connect(url).delete("bench-rb")
    base = {"msgspec JSON decode-only of the same lines": decode_rate}
    if rb_rate:
        base["redis-benchmark XADD (pipeline 1000)"] = rb_rate
    return {"name": f"events append of a {n:,}-event watch log", "unit": "events/s", "streamlb": cli_rate,
            "baselines": base, "higher_is_better": True,
            "notes": f"`streamlb events append` as a process (start-up included), {n_services:,} Services + "
                     f"EndpointSlices; mean entry {size} B; goal >= 50,000 events/s and >= 0.5x decode-only"}


def _append_rates(url: str, blobs: list[bytes]) -> tuple[float, float]:
    lg = stream.StreamLog.from_url(url, "bench-append", batch=1000)
    t0 = time.perf_counter()
    lg.append_raw(blobs)
    batched = len(blobs) / (time.perf_counter() - t0)
    n1 = min(len(blobs), 5_000)
    single = stream.StreamLog.from_url(url, "bench-append1", batch=1)
    t0 = time.perf_counter()
    for b in blobs[:n1]:
        single.append_raw([b])
    unbatched = n1 / (time.perf_counter() - t0)
    lg.client.delete(lg.keys.events, single.keys.events)
    return batched, unbatched


_PRODUCER = r"""
import sys, time
from events import logfile, stream
url, cluster, path, rate = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
blob = open(path, "rb").read()
logfile.read_header(blob)
frames = [f.data for f in logfile.iter_frames(blob)]
lg = stream.StreamLog.from_url(url, cluster, batch=1000)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
if rate <= 0:
    lg.append_raw(frames)
else:
    chunk = max(1, int(rate / 100))  # every 10 ms
    t0 = time.perf_counter()
    for i in range(0, len(frames), chunk):
        lg.append_raw(frames[i:i + chunk])
        due = t0 + (i + chunk) / rate
        d = due - time.perf_counter()
        if d > 0:
            time.sleep(d)
"""


def _producer(url: str, cluster: str, path: str, rate: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _PRODUCER, url, cluster, path, str(rate)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)), text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _go(p: subprocess.Popen) -> None:
    p.stdin.write("go\n")
    p.stdin.flush()


def _end_to_end(url: str, events: list, evlog: str) -> tuple[float, float]:
    n = len(events)
    lg = stream.StreamLog.from_url(url, "bench-e2e", page=1000)
    d = _quiet_daemon(lg, page=1000, block_ms=50)
    prod = _producer(url, "bench-e2e", evlog, 0)
    t0 = time.perf_counter()
    _go(prod)
    applied = 0
    while applied < n:
        applied += d.step(timeout_ms=50)
    e2e = n / (time.perf_counter() - t0)
    prod.wait(timeout=60)
    assert d.leader and lg.decisions(count=1), "the daemon should have led and published decisions"
    # the transport ceiling: the same entries through raw XADD (pipelined) + XRANGE (paged), no decoding
    raw = stream.StreamLog.from_url(url, "bench-raw", batch=1000, page=1000)
    blobs = [codec.encode(e) for e in events]
    t0 = time.perf_counter()
    raw.append_raw(blobs)
    cursor = Position(0, 0)
    got = 0
    while True:
        rows = raw.client.xrange(raw.keys.events, min=f"({cursor}", max="+", count=1000)
        if not rows:
            break
        got += len(rows)
        cursor = Position.parse(rows[-1][0])
    ceiling = got / (time.perf_counter() - t0)
    raw.client.delete(raw.keys.events, lg.keys.events, lg.keys.decisions, lg.keys.leader)
    return e2e, ceiling


def _catch_up_rates(url: str, events: list, evlog: str) -> tuple[float, float, float, float, str]:
    n = len(events)
    lg = stream.StreamLog.from_url(url, "bench-catchup", batch=1000, page=1000)
    lg.append_raw(codec.encode(e) for e in events)
    head = lg.head()
    d = _quiet_daemon(lg, page=1000, publish=False)
    t0 = time.perf_counter()
    _catch_up(d, head)
    t_empty = time.perf_counter() - t0
    h = decisions.state_hash(d.state)
    # the same fold, from the evlog file (the offline path)
    fl = logfile.FileLog(evlog)
    fd = _quiet_daemon(_FileCluster(fl), page=1000, publish=False)
    t0 = time.perf_counter()
    _catch_up(fd, fl.head())
    t_file = time.perf_counter() - t0
    assert decisions.state_hash(fd.state) == h
    # from a snapshot at 90 %
    cut = list(lg.read(limit=int(n * 0.9)))[-1].position
    d90 = _quiet_daemon(lg, page=1000, publish=False)
    _catch_up(d90, cut)
    lg.save_snapshot(logmod.Snapshot(cut, snapmod.SNAPSHOT_VERSION, snapmod.dump(d90.state),
                                     decisions.state_hash(d90.state)))
    t0 = time.perf_counter()
    ds = _quiet_daemon(lg, page=1000, publish=False)  # boot loads the snapshot
    _catch_up(ds, head)
    t_snap = time.perf_counter() - t0
    assert decisions.state_hash(ds.state) == h
    lg.client.delete(lg.keys.events, lg.keys.snapshot)
    return n / t_empty, n / t_file, t_empty, t_snap, h


class _FileCluster:
    """An evlog file behind the daemon's interface (read-only: nothing to dead-letter, publish or lead)."""

    def __init__(self, fl: logfile.FileLog) -> None:
        self.fl = fl

    def __getattr__(self, name):
        return getattr(self.fl, name)

    def read_page(self, after, count=None):
        return list(self.fl.read(after, count))

    def last_id(self):
        return self.fl.head()

    def has(self, pos):
        return True

    def first(self):
        return None

    def epoch(self):
        return "file"

    def probe(self, pos):
        return "file", True

    def entries_added(self):
        return len(self.fl._records)

    def length(self):
        return len(self.fl._records)

    def try_lead(self, replica, ttl):
        return False

    def deadletter(self, *a):
        return True


def _latency(url: str, evlog: str, rate: float, with_fold: bool, preload: list) -> tuple[float, float, int]:
    cluster = f"bench-lat-{int(with_fold)}"
    lg = stream.StreamLog.from_url(url, cluster, page=1000)
    lg.append(preload)  # the cluster as it was before the measured steady stream
    lat: list[float] = []
    if with_fold:
        pending: list[Position] = []
        inner_follow = lg.follow

        def follow(after, timeout_ms):
            recs = inner_follow(after, timeout_ms)
            pending.extend(r.position for r in recs)
            return recs

        lg.follow = follow  # type: ignore[method-assign]

        def writer(batch) -> None:
            now = time.time()
            lat.extend(now - p.ms / 1000 for p in pending)
            pending.clear()

        d = _quiet_daemon(lg, page=1000, block_ms=100)
        d.status_writer = writer
        while not d.caught_up or d.pos < lg.head():
            d.step(timeout_ms=1)  # take the lead, fold the preload
        pending.clear()
    prod = _producer(url, cluster, evlog, rate)
    _go(prod)
    pos = lg.head()
    while prod.poll() is None or (lg.head() > (d.pos if with_fold else pos)):
        if with_fold:
            d.step(timeout_ms=100)
        else:
            recs = lg.client.xread({lg.keys.events: str(pos)}, count=1000, block=100)
            if recs:
                now = time.time()
                rows = recs[0][1]
                lat.extend(now - Position.parse(i).ms / 1000 for i, _ in rows)
                pos = Position.parse(rows[-1][0])
    lat.sort()
    lg.client.delete(lg.keys.events, lg.keys.decisions, lg.keys.leader)
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], len(lat)


def run(quick: bool) -> list[dict]:
    if not shutil.which("redis-server"):
        return []
    n_tp = 10_000 if quick else 200_000
    n_cu = 24_000 if quick else 1_000_000
    lat_seconds = 1 if quick else 10
    rate = 10_000.0
    srv = Redis()
    tmp = tempfile.mkdtemp(prefix="bench-stream-")
    try:
        n_svc = max(1000, min(n_cu // 10, 10_000))  # the allocator, not the stream, dominates beyond that
        events_cu = data.make_event_log(n_cu, n_services=n_svc, n_nodes=50, n_pools=8, seed=42)
        events_tp = events_cu[:n_tp]
        ev_tp = os.path.join(tmp, "tp.evlog")
        Path(ev_tp).write_bytes(logfile.encode_file(events_tp))
        ev_cu = os.path.join(tmp, "cu.evlog")
        Path(ev_cu).write_bytes(logfile.encode_file(events_cu))
        ev_lat = os.path.join(tmp, "lat.evlog")
        n_pre = n_cu // 2  # latency: the first half is the cluster's history, the next rate*seconds the load
        Path(ev_lat).write_bytes(logfile.encode_file(events_cu[n_pre:n_pre + int(rate * lat_seconds)]))

        cli_row = _append_cli(srv.url, srv.port, 5_000 if quick else 100_000, tmp)
        blobs = [codec.encode(e) for e in events_tp]
        batched, unbatched = _append_rates(srv.url, blobs)
        e2e, ceiling = _end_to_end(srv.url, events_tp, ev_tp)
        cu_redis, cu_file, t_empty, t_snap, _ = _catch_up_rates(srv.url, events_cu, ev_cu)
        p50, p99, n_lat = _latency(srv.url, ev_lat, rate, with_fold=True, preload=events_cu[:n_pre])
        r50, r99, _ = _latency(srv.url, ev_lat, rate, with_fold=False, preload=events_cu[:n_pre])
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        cli_row,
        {"name": "stream append (pipelined XADD)", "unit": "events/s", "streamlb": batched,
         "baselines": {"one XADD per round trip": unbatched}, "higher_is_better": True,
         "notes": f"{n_tp:,} events, 1,000 XADDs per pipeline; unbatched over {min(n_tp, 5000):,}"},
        {"name": "end-to-end producer->Redis->fold->decisions", "unit": "events/s", "streamlb": e2e,
         "baselines": {"raw XADD+XRANGE (transport ceiling)": ceiling}, "higher_is_better": True,
         "notes": f"{n_tp:,} events; producer in its own process, daemon leader publishing per batch"},
        {"name": "catch-up fold from Redis", "unit": "events/s", "streamlb": cu_redis,
         "baselines": {"same fold from an evlog file": cu_file}, "higher_is_better": True,
         "notes": f"{n_cu:,} events ({n_svc:,} Services) from an empty state: {t_empty:.2f} s"},
        {"name": "catch-up from a 90% snapshot", "unit": "s", "streamlb": t_snap,
         "baselines": {"catch-up from empty": t_empty}, "higher_is_better": False,
         "notes": f"{n_cu:,} events; snapshot load + last 10% of the stream"},
        {"name": "XADD->decision latency p50 @10k ev/s", "unit": "s", "streamlb": p50,
         "baselines": {"bare XREAD consumer p50": r50}, "higher_is_better": False,
         "notes": f"{n_lat:,} events over {lat_seconds} s after a {n_pre:,}-event history; entry-ID clock, "
                  "1 ms resolution"},
        {"name": "XADD->decision latency p99 @10k ev/s", "unit": "s", "streamlb": p99,
         "baselines": {"bare XREAD consumer p99": r99}, "higher_is_better": False,
         "notes": f"{n_lat:,} events over {lat_seconds} s"},
    ]
