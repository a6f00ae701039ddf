"""Fold throughput: events/s of ``reconciler.fold.apply`` over a generated log, beside the msgspec decode-only rate.

What is measured: decode (msgpack -> Struct, with canonical-form validation) + apply for every event of a seeded
log (``benchmarks.data.make_event_log``: Services created/updated/deleted, EndpointSlice churn, speaker liveness),
from an empty state. The baseline is ``msgspec.msgpack.Decoder(Event).decode`` alone over the same encoded log —
the ceiling for any fold that must at least decode its input; the ratio says what fraction of it the fold keeps.

What is not measured: file or Redis I/O (see bench_stream), JSON output rendering, the state hash.
"""

from __future__ import annotations

import time

import msgspec

from benchmarks import data
from events import codec, schema
from reconciler import fold, state as statemod

NAME = "fold"


def _rates(n_events: int, n_services: int, n_nodes: int, n_pools: int) -> tuple[float, float]:
    events = data.make_event_log(n_events, n_services=n_services, n_nodes=n_nodes, n_pools=n_pools, seed=42)
    blobs = [codec.encode(e) for e in events]
    dec = msgspec.msgpack.Decoder(schema.Event)
    t0 = time.perf_counter()
    for b in blobs:
        dec.decode(b)
    decode_rate = len(blobs) / (time.perf_counter() - t0)
    st = statemod.new()
    t0 = time.perf_counter()
    for b in blobs:
        fold.apply(st, codec.decode(b))
    fold_rate = len(blobs) / (time.perf_counter() - t0)
    return fold_rate, decode_rate


def run(quick: bool) -> list[dict]:
    sizes = [2_000, 5_000, 10_000] if quick else [10_000, 30_000, 100_000]
    series, ceiling = [], []
    for n in sizes:
        f, d = _rates(n, n_services=max(100, n // 10), n_nodes=50, n_pools=8)
        series.append([n, f])
        ceiling.append([n, d])
    fold_rate, decode_rate = series[-1][1], ceiling[-1][1]
    return [
        {
            "name": "replay fold throughput",
            "unit": "events/s",
            "streamlb": fold_rate,
            "baselines": {"msgspec decode-only": decode_rate},
            "higher_is_better": True,
            "notes": f"log of {sizes[-1]:,} events, {sizes[-1] // 10:,} services, 50 nodes, 8 pools",
            "series": {"streamlb fold": series, "msgspec decode-only": ceiling},
            "series_x": "events in log",
            "series_y": "events/s",
        }
    ]
