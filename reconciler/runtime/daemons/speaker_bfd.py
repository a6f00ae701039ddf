"""The speaker's BFD sessions and BGP timers, from BGPPeer and BFDProfile objects.

BFD (design.md §7): a selected BGPPeer with ``bfdProfile`` gets one BFD session to its ``peerAddress`` — single
hop (RFC 5881, UDP 3784) or, with ``ebgpMultiHop``, multi-hop (RFC 5883, UDP 4784, packets accepted from TTL
``minimumTtl`` up, default 254). When a session that was Up goes Down the peer's BGP connection is dropped at once,
as FRR does; BGP then reconnects on its own schedule. ``echoMode`` is accepted and reported as unsupported.

BGP timers (metallb-behaviour.md §2.4, applied as MetalLB renders them for FRR): with only ``holdTime`` the
keepalive is hold/3, with only ``keepaliveTime`` the hold is 3 × keepalive, both in whole seconds (truncated);
neither set ⇒ hold 90 s and keepalive hold/3 (MetalLB's native default). ``connectTime`` is the ConnectRetry
interval (FRR ``timers connect``): connection attempts start that many seconds apart, and an attempt not through
by then is abandoned.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Gauge

from fastpath.bfd_session import BfdConfig, BfdEvent
from fastpath.emit.bfd import DEFAULT_MINIMUM_TTL, BfdManager, BfdPeerSpec

logger = logging.getLogger("streamlb.speak")

DEFAULT_HOLD = 90
DEFAULT_CONNECT_TIMEOUT = 10.0


def peer_timers(peer: Any) -> tuple[int, int | None, float | None, float]:
    """(hold time s, keepalive s or None for hold/3, connect retry s or None for back-off, connect timeout s)."""
    hold_ms, ka_ms = peer.hold_time_ms, peer.keepalive_time_ms
    if hold_ms is None and ka_ms is None:
        hold, ka = DEFAULT_HOLD, None
    else:
        if hold_ms is None:
            hold_ms = 3 * ka_ms
        if ka_ms is None:
            ka_ms = hold_ms // 3
        hold, ka = hold_ms // 1000, ka_ms // 1000
    ct = None if peer.connect_time_ms is None else peer.connect_time_ms / 1000
    return hold, ka, ct, DEFAULT_CONNECT_TIMEOUT if ct is None else ct


def bfd_for(peer: Any, profile: Any) -> tuple[BfdPeerSpec, BfdConfig]:
    spec = BfdPeerSpec(
        name=peer.name,
        address=peer.peer_address,
        source_address=peer.source_address or None,
        multihop=bool(peer.ebgp_multi_hop),
        minimum_ttl=DEFAULT_MINIMUM_TTL if profile.minimum_ttl is None else profile.minimum_ttl,
        echo_requested=bool(profile.echo_mode),
    )
    return spec, BfdConfig.from_profile(profile)


class SpeakerBfd:
    """BFD sessions for the speaker's peers; ``drop(peer name, reason)`` takes a BGP session down."""

    def __init__(self, registry: CollectorRegistry, drop: Callable[[str, str], None], **manager_kw: Any) -> None:
        self.manager = BfdManager(on_event=self._on_event, **manager_kw)
        self._drop = drop
        r = registry
        self.m_up = Gauge("metallb_bfd_session_up", "1 while the BFD session is Up.", ["peer"], registry=r)
        self.m_in = Gauge("metallb_bfd_control_packet_input", "BFD control packets received.", ["peer"], registry=r)
        self.m_out = Gauge("metallb_bfd_control_packet_output", "BFD control packets sent.", ["peer"], registry=r)
        self.m_upev = Gauge("metallb_bfd_session_up_events", "Transitions to Up.", ["peer"], registry=r)
        self.m_downev = Gauge("metallb_bfd_session_down_events", "Transitions from Up to Down.", ["peer"],
                              registry=r)
        self.m_ttl = Gauge("streamlb_bfd_ttl_dropped", "Packets dropped for their TTL (RFC 5881 §5, minimumTtl).",
                           ["peer"], registry=r)
        self._labels: set[str] = set()

    def _on_event(self, name: str, ev: BfdEvent) -> None:
        if ev.kind == "down":
            logger.warning("BFD down: dropping the BGP session", extra={"peer": name, "reason": ev.detail})
            self._drop(name, f"BFD down ({ev.detail})")
        else:
            logger.info("BFD up", extra={"peer": name})

    def sync(self, peers: dict[str, Any], profiles: dict[str, Any]) -> None:
        """Sessions for exactly the peers that have a (known) BFD profile. Must run in the event loop."""
        want = {}
        for name, p in peers.items():
            prof = profiles.get(p.bfd_profile) if p.bfd_profile else None
            if prof is not None and p.peer_address:
                want[name] = bfd_for(p, prof)
        for name in sorted(set(self.manager.peers) - set(want)):
            self.manager.remove(name)
        if want:
            self.manager.start()
        for name in sorted(want):
            try:
                self.manager.ensure(*want[name])
            except OSError as exc:
                logger.error("cannot open BFD sockets", extra={"peer": name, "error": str(exc)})

    def status(self) -> dict:
        return self.manager.status()

    def refresh_metrics(self) -> None:
        seen = set()
        for name, p in self.manager.peers.items():
            s, peer = p.session, p.spec.address
            seen.add(peer)
            self.m_up.labels(peer).set(1 if int(s.state) == 3 else 0)
            self.m_in.labels(peer).set(s.counters.packets_in)
            self.m_out.labels(peer).set(s.counters.packets_out)
            self.m_upev.labels(peer).set(s.counters.up_events)
            self.m_downev.labels(peer).set(s.counters.down_events)
            self.m_ttl.labels(peer).set(p.ttl_dropped)
        for gone in self._labels - seen:
            for g in (self.m_up, self.m_in, self.m_out, self.m_upev, self.m_downev, self.m_ttl):
                try:
                    g.remove(gone)
                except KeyError:
                    pass
        self._labels = seen

    async def stop(self) -> None:
        await self.manager.stop()
