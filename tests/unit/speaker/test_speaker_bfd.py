"""The speaker's BFD glue: MetalLB's ``metallb_bfd_*`` metrics from the sessions, and BFD Down dropping BGP."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest

from events import schema
from fastpath import bfd
from fastpath.bfd_session import BfdConfig, BfdEvent, BfdSession
from fastpath.emit.bfd import BfdPeerSpec, _Peer
from reconciler.runtime.daemons.speaker_bfd import SpeakerBfd, bfd_for


def _metric(reg: CollectorRegistry, line_start: str) -> float:
    for line in generate_latest(reg).decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start}")


def test_metrics_follow_the_session_and_vanish_with_it() -> None:
    reg = CollectorRegistry()
    sb = SpeakerBfd(reg, lambda name, reason: None)
    sess = BfdSession(BfdConfig(), 7, 0.0, random.Random(0))
    sb.manager.peers["tor"] = _Peer(BfdPeerSpec("tor", "10.0.0.2"), sess)  # a session without its sockets
    sb.refresh_metrics()
    up = 'metallb_bfd_session_up{peer="10.0.0.2"}'
    assert _metric(reg, up) == 0
    sess.receive(bfd.Control(state=1, my_disc=9), 0.1)  # Down -> Init
    sess.receive(bfd.Control(state=3, my_disc=9, your_disc=7), 0.2)  # -> Up
    sb.refresh_metrics()
    assert _metric(reg, up) == 1
    assert _metric(reg, 'metallb_bfd_control_packet_input{peer="10.0.0.2"}') == 2
    assert _metric(reg, 'metallb_bfd_session_up_events{peer="10.0.0.2"}') == 1
    assert _metric(reg, 'metallb_bfd_control_packet_output{peer="10.0.0.2"}') == sess.counters.packets_out > 0
    del sb.manager.peers["tor"]
    sb.refresh_metrics()
    assert up not in generate_latest(reg).decode()


def test_bfd_down_drops_the_bgp_session_and_up_does_not() -> None:
    dropped = []
    sb = SpeakerBfd(CollectorRegistry(), lambda name, reason: dropped.append((name, reason)))
    sb._on_event("tor", BfdEvent("up"))
    assert dropped == []
    sb._on_event("tor", BfdEvent("down", 1, "time expired"))
    assert dropped == [("tor", "BFD down (time expired)")]


def test_profile_and_peer_become_spec_and_config() -> None:
    peer = schema.BGPPeer(name="far", namespace="metallb-system", my_asn=64512, peer_asn=64514,
                          peer_address="192.0.2.9", source_address="192.0.2.1", ebgp_multi_hop=True)
    prof = schema.BFDProfile(name="p", namespace="metallb-system", receive_interval=100, transmit_interval=250,
                             detect_multiplier=5, passive_mode=True, echo_mode=True)
    spec, cfg = bfd_for(peer, prof)
    assert spec == BfdPeerSpec("far", "192.0.2.9", "192.0.2.1", multihop=True, minimum_ttl=254, echo_requested=True)
    assert spec.port == 4784
    assert cfg == BfdConfig(desired_min_tx_us=250_000, required_min_rx_us=100_000, detect_mult=5, passive=True)
    spec, cfg = bfd_for(peer, schema.BFDProfile(name="d", namespace="metallb-system", minimum_ttl=10))
    assert spec.minimum_ttl == 10 and cfg == BfdConfig(300_000, 300_000, 3, False)  # FRR's defaults
