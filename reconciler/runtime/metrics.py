"""Prometheus metrics of ``streamlb run`` (prometheus-client), on a registry of their own.

Names: ``streamlb_*`` for the daemon; the allocator gauges keep MetalLB's names
(``metallb_allocator_addresses_total`` / ``metallb_allocator_addresses_in_use_total``, label ``pool``) so existing
dashboards and alerts keep working.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from reconciler import net


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events_applied = Counter("streamlb_events_applied", "Stream entries folded into the state.", registry=r)
        self.dead_letters = Counter("streamlb_dead_letters", "Entries dead-lettered (undecodable or invalid).",
                                    registry=r)
        self.lag = Gauge("streamlb_lag_entries", "Entries between the applied position and the stream head.",
                         registry=r)
        self.fold_latency = Histogram(
            "streamlb_fold_batch_seconds", "Time to fold one batch of entries.", registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.decision_latency = Histogram(
            "streamlb_entry_to_decision_seconds", "From an entry's stream ID time to its published decision.",
            registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.snapshot_age = Gauge("streamlb_snapshot_age_seconds", "Seconds since the newest snapshot was taken.",
                                  registry=r)
        self.screened = Counter("streamlb_events_screened", "Entries in an unexpected form, by reason "
                                "(foreignNamespace: ignored; unknownNode, unchangedLiveness, unknownObject: applied, "
                                "no decision changed).", ["reason"], registry=r)
        self.snapshots = Counter("streamlb_snapshots_written", "Snapshots written by this replica.", registry=r)
        self.leader = Gauge("streamlb_leader", "1 while this replica holds the leader lock.", registry=r)
        self.redis_up = Gauge("streamlb_redis_up", "1 while Redis answers.", registry=r)
        self.regressed = Gauge("streamlb_stream_regressed", "1 when the stream went backwards (folding stopped).",
                               registry=r)
        self.position = Gauge("streamlb_applied_position_ms", "Millisecond part of the applied stream ID.",
                              registry=r)
        self.speaker_changes = Counter("streamlb_speaker_liveness_changes", "speaker.up/down appended by the monitor.",
                                       ["kind"], registry=r)
        self.addresses_total = Gauge("metallb_allocator_addresses_total", "Usable addresses per pool.", ["pool"],
                                     registry=r)
        self.addresses_in_use = Gauge("metallb_allocator_addresses_in_use_total", "Assigned addresses per pool.",
                                      ["pool"], registry=r)
        self.redis_up.set(0)
        self.leader.set(0)
        self.regressed.set(0)

    def serve(self, port: int, addr: str = "0.0.0.0"):
        return start_http_server(port, addr=addr, registry=self.registry)

    def update_allocator(self, state) -> None:
        """Refresh the per-pool gauges from the state (O(pools + assigned Services); call at a slow rate)."""
        cfg = state.config
        if cfg is None:
            return
        in_use: dict[str, int] = {}
        for pool, addrs in state.assigned.values():
            in_use[pool] = in_use.get(pool, 0) + len(addrs)
        for p in cfg.pools:
            total = sum(net.block_capacity(b, p.avoid_buggy_ips) for b in p.blocks)
            self.addresses_total.labels(pool=p.name).set(total)
            self.addresses_in_use.labels(pool=p.name).set(in_use.get(p.name, 0))
