"""Daemon metrics read from the prometheus registry (no HTTP): counters, lag, allocator gauges."""

from __future__ import annotations

from benchmarks import data
from events import schema
from reconciler.runtime.daemons import replica as daemonmod
from reconciler.runtime.local import LocalCluster
from reconciler.runtime.metrics import Metrics


class Clock:
    t = 50.0

    def __call__(self) -> float:
        return self.t


def sample(m: Metrics, name: str, **labels) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_counters_lag_and_allocator_gauges() -> None:
    clock = Clock()
    c = LocalCluster(clock)
    events = data.make_event_log(400, n_services=60, n_nodes=4, n_pools=2, seed=1)
    c.append(events)
    c.append_raw([b"\xc1", b"\xc1"])
    m = Metrics()
    d = daemonmod.Daemon(c, daemonmod.Settings(replica="m", page=100, block_ms=1, monitor_interval=0, speaker_ttl=1e9), metrics=m,
                         clock=clock)
    d.boot()
    d.step(timeout_ms=1)  # one page of 100 out of 402
    assert sample(m, "streamlb_events_applied_total") == 100
    assert sample(m, "streamlb_lag_entries") == 302
    for _ in range(10):
        clock.t += 2
        d.step(timeout_ms=1)
    assert sample(m, "streamlb_events_applied_total") == 402
    assert sample(m, "streamlb_dead_letters_total") == 2
    assert sample(m, "streamlb_lag_entries") == 0
    assert sample(m, "streamlb_leader") == 1
    assert sample(m, "streamlb_fold_batch_seconds_count") >= 5
    c.append([schema.SpeakerUp(node="z")] * 3)
    clock.t += 2
    d._measure_lag(idle=False)
    assert sample(m, "streamlb_lag_entries") == 3
    pools = sorted(p.name for p in d.state.config.pools)
    assert pools
    in_use = {p: 0 for p in pools}
    for pool, addrs in d.state.assigned.values():
        in_use[pool] += len(addrs)
    for p in pools:
        assert sample(m, "metallb_allocator_addresses_in_use_total", pool=p) == in_use[p]
        total = sample(m, "metallb_allocator_addresses_total", pool=p)
        assert total is not None and total >= in_use[p]
    assert sum(in_use.values()) > 0
