"""Redis transport: the ceiling redis-benchmark reaches for XADD, beside what streamlb gets end to end.

What is measured, against a private ``redis-server`` (no persistence) on a free loopback port:

* **ceiling** — ``redis-benchmark -P 1000 -c 1 XADD`` with a field of the same size as an average encoded event:
  what the server and loopback can take from one pipelined client. streamlb appends from one producer, so one
  client is the fair ceiling.
* **streamlb append** — :class:`events.producer.Producer` sending the seeded benchmark log (validation, msgpack
  encoding, batched pipelined XADD through redis-py).
* **streamlb end to end** — append, then a fresh replica catching up: paged XRANGE, decode, fold — the events/s a
  reconciler restarting on that stream achieves, measured from the first XADD to the last applied event.

What is not measured: AOF fsync cost (``--appendfsync always`` would make the disk the bottleneck), network
latency between hosts (all on loopback), XREAD BLOCK wake-up latency (see the speaker's failover benchmark), and
Redis Cluster / Sentinel indirection.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from benchmarks import data
from benchmarks.peers import Redis
from events import codec, log as logmod, producer, stream
from reconciler import fold, state as statemod

NAME = "transport"


def _redis_benchmark(port: int, n: int, size: int) -> float:
    payload = "x" * size
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(n), "-c", "1", "-P", "1000", "-q",
         "XADD", "bench:ceiling", "*", "e", payload],
        capture_output=True, text=True, timeout=300,
    ).stdout
    rates = re.findall(r"([\d.]+) requests per second", out)
    if not rates:
        raise RuntimeError(f"could not read redis-benchmark output: {out!r}")
    return float(rates[-1])


def run(quick: bool) -> list[dict]:
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        raise RuntimeError("redis-server and redis-benchmark are needed (Debian package redis-server)")
    n = 20_000 if quick else 200_000
    events = data.make_event_log(n, n_services=max(100, n // 10), n_nodes=50, n_pools=8, seed=7)
    avg = sum(len(codec.encode(e)) for e in events[:2000]) // min(2000, len(events))
    server = Redis()
    try:
        ceiling = _redis_benchmark(server.port, n, avg)
        log = stream.StreamLog.from_url(server.url, "bench")
        try:
            prod = producer.Producer(log, batch=1000)
            t0 = time.perf_counter()
            prod.send_many(events)
            prod.flush()
            t_append = time.perf_counter() - t0
            st = statemod.new()
            reader = stream.StreamLog.from_url(server.url, "bench")
            count = 0
            for rec in reader.read():
                fold.apply(st, logmod.decode_record(rec))
                count += 1
            t_total = time.perf_counter() - t0
            reader.close()
        finally:
            log.close()
        if count != n:
            raise RuntimeError(f"read back {count} of {n} events")
    finally:
        server.close()
    return [
        {
            "name": "Redis append (producer, batched XADD)",
            "unit": "events/s",
            "streamlb": n / t_append,
            "baselines": {"redis-benchmark XADD -P 1000 (ceiling)": ceiling},
            "higher_is_better": True,
            "notes": f"{n:,} events of ~{avg} bytes, one client, loopback, no persistence",
        },
        {
            "name": "Redis end to end (append + catch-up fold)",
            "unit": "events/s",
            "streamlb": n / t_total,
            "baselines": {"redis-benchmark XADD -P 1000 (ceiling)": ceiling, "streamlb append alone": n / t_append},
            "higher_is_better": True,
            "plot": "bars",
            "plot_title": "Redis transport ceiling vs streamlb append and end to end",
            "notes": "from the first XADD to the last event applied by a fresh replica",
        },
    ]
