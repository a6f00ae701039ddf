"""BGPPeer holdTime / keepaliveTime / connectTime as MetalLB applies them (metallb-behaviour.md §2.4, §6.6):
derived values, whole seconds, the ConnectRetry interval, and what the session then puts on the wire."""

from __future__ import annotations

import struct

import pytest

from events import schema
from fastpath.session import Session, SessionConfig, State
from reconciler.runtime.daemons.speaker_bfd import peer_timers
from tests.unit.speaker.test_session import KEEPALIVE, peer_open, split


def peer(**kw) -> schema.BGPPeer:
    return schema.BGPPeer(name="p", namespace="metallb-system", my_asn=64512, peer_asn=64513,
                          peer_address="10.0.0.2", **kw)


@pytest.mark.parametrize(("kw", "want"), [
    ({}, (90, None, None, 10.0)),  # MetalLB native default hold 90 s, keepalive hold/3
    ({"hold_time_ms": 30_000}, (30, 10, None, 10.0)),  # only hold: keepalive hold/3
    ({"hold_time_ms": 10_000}, (10, 3, None, 10.0)),  # 3.33 s rendered as whole seconds
    ({"keepalive_time_ms": 5_000}, (15, 5, None, 10.0)),  # only keepalive: hold 3 x keepalive
    ({"hold_time_ms": 9_000, "keepalive_time_ms": 1_000}, (9, 1, None, 10.0)),
    ({"hold_time_ms": 3_500, "keepalive_time_ms": 1_500}, (3, 1, None, 10.0)),  # truncated, not rounded
    ({"hold_time_ms": 0, "keepalive_time_ms": 0}, (0, 0, None, 10.0)),  # timers 0 0: no hold timer
    ({"connect_time_ms": 5_000}, (90, None, 5.0, 5.0)),
])
def test_peer_timers(kw: dict, want: tuple) -> None:
    assert peer_timers(peer(**kw)) == want


def _open_hold(out: bytes) -> int:
    (body,) = [b for t, b in split(out) if t == 1]
    return struct.unpack("!H", body[3:5])[0]


def test_the_session_offers_the_hold_time_and_keeps_alive_at_the_keepalive() -> None:
    hold, ka, _, _ = peer_timers(peer(hold_time_ms=9_000, keepalive_time_ms=1_000))
    s = Session(SessionConfig(64512, 64513, "10.0.0.1", hold_time=hold, keepalive_time=ka), now=0.0)
    s.connecting(0.0)
    s.connection_made(0.0, "10.0.0.1")
    assert _open_hold(s.data_to_send()) == 9
    s.receive(peer_open(hold=90) + KEEPALIVE, 0.0)
    assert s.state is State.ESTABLISHED
    s.data_to_send()
    sent = []
    now = 0.0
    while now < 5.0:
        now = s.next_deadline()
        s.tick(now)
        if [t for t, _ in split(s.data_to_send()) if t == 4]:
            sent.append(now)
        s.receive(KEEPALIVE, now)  # the peer stays alive
    assert sent[:4] == [1.0, 2.0, 3.0, 4.0]


def test_negotiated_hold_is_the_smaller_and_expires_as_a_notification() -> None:
    s = Session(SessionConfig(64512, 64513, "10.0.0.1", hold_time=30), now=0.0)
    s.connecting(0.0)
    s.connection_made(0.0, "10.0.0.1")
    s.receive(peer_open(hold=6) + KEEPALIVE, 0.0)
    s.data_to_send()
    # keepalives every 2 s (6/3) and the hold timer fires 6 s after the last message from the peer
    s.tick(2.0)
    assert [t for t, _ in split(s.data_to_send())] == [4]
    s.tick(4.0)
    s.tick(5.99)
    assert not s.want_close
    assert [t for t, _ in split(s.data_to_send())] == [4]
    s.tick(6.0)
    assert s.want_close
    assert [(t, b[:2]) for t, b in split(s.data_to_send())] == [(3, b"\x04\x00")]  # Hold Timer Expired


def test_connect_time_spaces_attempts_evenly() -> None:
    s = Session(SessionConfig(64512, 64513, "10.0.0.1", connect_retry=5.0), now=0.0)
    starts = []
    now = 0.0
    for fail_after in (0.1, 4.0, 0.0, 7.0):  # refused fast, slow refusal, instant, a connect timeout past it
        assert s.connect_due(now)
        starts.append(now)
        s.connecting(now)
        s.connection_failed(now + fail_after, "refused")
        now = s.next_deadline()
    assert starts == [0.0, 5.0, 10.0, 15.0]
    assert now == 22.0  # the attempt that took 7 s is retried at once
    s.connecting(now)
    s.connection_made(now, "10.0.0.1")
    s.receive(peer_open() + KEEPALIVE, now)
    s.connection_lost(now + 100, "peer closed")
    assert s.next_deadline() == now + 100  # after a working session the first retry is immediate


def test_without_connect_time_the_backoff_is_exponential() -> None:
    s = Session(SessionConfig(64512, 64513, "10.0.0.1"), now=0.0)
    s.connecting(0.0)
    s.connection_failed(0.1, "refused")
    s.connecting(s.next_deadline())
    s.connection_failed(1.2, "refused")
    assert s.next_deadline() == pytest.approx(1.2 + 1.0)
