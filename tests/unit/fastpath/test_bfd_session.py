"""The sans-I/O BFD session (RFC 5880 asynchronous mode) on a fake clock: two sessions wired back to back."""

from __future__ import annotations

import random

import pytest

from fastpath import bfd
from fastpath._bfd_common import Diag, State
from fastpath.bfd_session import SLOW_TX_US, BfdConfig, BfdSession

FAST = BfdConfig(300_000, 300_000, 3)


class Wire:
    """Two sessions, a clock and a switch per direction; every packet sent is decoded and logged."""

    def __init__(self, a: BfdConfig = FAST, b: BfdConfig = FAST) -> None:
        self.now = 0.0
        self.a = BfdSession(a, 0x0A, self.now, random.Random(1))
        self.b = BfdSession(b, 0x0B, self.now, random.Random(2))
        self.up = {"a": True, "b": True}  # a delivers to b / b delivers to a
        self.sent: list[tuple[float, str, bfd.Control]] = []

    def _pump(self) -> None:
        moved = True
        while moved:
            moved = False
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                for raw in src.packets_to_send():
                    moved = True
                    pkt = bfd.parse_control(raw)
                    self.sent.append((self.now, name, pkt))
                    if self.up[name]:
                        dst.receive(pkt, self.now)

    def run(self, until: float) -> None:
        self._pump()
        while True:
            dls = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not dls or min(dls) > until:
                self.now = until
                return
            self.now = max(self.now, min(dls))
            self.a.tick(self.now)
            self.b.tick(self.now)
            self._pump()


def test_two_sessions_come_up_and_negotiate_the_profile_intervals() -> None:
    w = Wire(BfdConfig(300_000, 200_000, 3), BfdConfig(100_000, 400_000, 5))
    w.run(5.0)
    assert w.a.state is State.UP and w.b.state is State.UP
    assert (w.a.remote_disc, w.b.remote_disc) == (0x0B, 0x0A)
    # TX = max(own desired min TX, peer's required min RX); detection = peer mult x max(own RX, peer's TX)
    assert w.a.tx_interval_us == 400_000 and w.b.tx_interval_us == 200_000
    assert w.a.detection_time == pytest.approx(5 * 0.2) and w.b.detection_time == pytest.approx(3 * 0.4)
    states = [(who, p.state) for _, who, p in w.sent]
    # a three-way handshake: Down, then Init, then Up from both sides
    assert ("a", 1) in states and ("a", 2) in states or ("b", 2) in states
    assert [e.kind for e in w.a.events()] == ["up"]


def test_not_up_means_slow_tx_and_the_poll_sequence_switches_to_the_profile() -> None:
    w = Wire()
    w.run(5.0)
    down = [p for _, who, p in w.sent if who == "a" and p.state != State.UP]
    assert down and all(p.min_tx == SLOW_TX_US for p in down)
    up = [p for _, who, p in w.sent if who == "a" and p.state == State.UP]
    assert up[-1].min_tx == 300_000 and not up[-1].poll  # poll finished
    polls = [t for t, who, p in w.sent if who == "a" and p.poll]
    finals = [t for t, who, p in w.sent if who == "b" and p.final]
    assert polls and finals and finals[0] == polls[0]  # a Poll is answered at once with a Final
    assert not any(p.poll and p.final for _, _, p in w.sent)
    gaps = [t2 - t1 for (t1, _, p1), (t2, _, _) in zip(
        [s for s in w.sent if s[1] == "a"][-10:], [s for s in w.sent if s[1] == "a"][-9:])]
    assert all(0.3 * 0.75 - 1e-9 <= g <= 0.3 + 1e-9 for g in gaps), gaps  # jitter 0..25 % below the interval


def test_silence_for_the_detection_time_takes_the_session_down() -> None:
    w = Wire()
    w.run(5.0)
    w.events = w.a.events()
    w.up["b"] = False  # b's packets no longer reach a
    last = max(t for t, who, _ in w.sent if who == "b")
    w.run(10.0)
    assert w.a.state is State.DOWN and w.a.diag is Diag.TIME_EXPIRED
    assert w.a.remote_disc == 0
    down_at = next(t for t, who, p in w.sent if who == "a" and p.state == State.DOWN and t > last)
    assert down_at - last == pytest.approx(0.9, abs=1e-6)  # 3 x 300 ms
    ev = w.a.events()
    assert [e.kind for e in ev] == ["down"] and ev[0].diag == Diag.TIME_EXPIRED
    # b hears a's Down and follows (diag 3, neighbour signalled session down)
    assert w.b.state is not State.UP
    assert w.b.counters.down_events == 1 and w.a.counters.down_events == 1


def test_link_back_brings_the_session_up_again() -> None:
    w = Wire()
    w.run(5.0)
    w.up["b"] = w.up["a"] = False
    w.run(8.0)
    assert w.a.state is State.DOWN and w.b.state is State.DOWN
    w.up["b"] = w.up["a"] = True
    w.run(12.0)
    assert w.a.state is State.UP and w.b.state is State.UP
    assert w.a.counters.up_events == 2 and w.a.tx_interval_us == 300_000


def test_passive_waits_for_the_peer() -> None:
    w = Wire(BfdConfig(300_000, 300_000, 3, passive=True), BfdConfig(300_000, 300_000, 3, passive=True))
    w.run(5.0)
    assert w.sent == [] and w.a.state is State.DOWN  # two passive ends never talk
    w = Wire(BfdConfig(300_000, 300_000, 3, passive=True), FAST)
    w.run(5.0)
    first_a = min(t for t, who, _ in w.sent if who == "a")
    first_b = min(t for t, who, _ in w.sent if who == "b")
    assert first_b < first_a or (first_a == first_b and w.sent[0][1] == "b")
    assert w.a.state is State.UP and w.b.state is State.UP
    # the active end goes away: after the detection time the passive end forgets it and falls silent
    w.up["b"] = False
    w.run(8.0)
    quiet_from = max(t for t, who, _ in w.sent if who == "a")
    w.run(20.0)
    assert max(t for t, who, _ in w.sent if who == "a") == quiet_from
    assert w.a.remote_disc == 0


def test_admin_down_from_the_peer() -> None:
    w = Wire()
    w.run(5.0)
    w.b.admin_down(w.now)
    w.run(6.0)
    assert w.b.state is State.ADMIN_DOWN and w.a.state is State.DOWN and w.a.diag is Diag.NEIGHBOR_DOWN
    w.b.enable(w.now)
    w.run(12.0)
    assert w.a.state is State.UP and w.b.state is State.UP


def test_packets_not_for_this_session_are_discarded() -> None:
    s = BfdSession(FAST, 5, 0.0, random.Random(0))
    s.receive(bfd.Control(state=1, my_disc=9, your_disc=6), 0.1)  # your_disc is not ours
    s.receive(bfd.Control(state=1, my_disc=9, your_disc=5, auth_present=True, auth=b"\x01\x03x"), 0.1)
    assert s.counters.discarded == 2 and s.state is State.DOWN and s.remote_disc == 0
    s.receive(bfd.Control(state=1, my_disc=9, your_disc=5), 0.2)
    assert s.state is State.INIT and s.remote_disc == 9


def test_a_new_profile_is_negotiated_with_a_poll() -> None:
    w = Wire()
    w.run(5.0)
    w.a.reconfigure(BfdConfig(1_000_000, 1_000_000, 4), w.now)
    w.run(10.0)
    assert w.a.state is State.UP
    assert w.b.detection_time == pytest.approx(4 * 1.0)  # b adopted a's slower TX and multiplier
    assert w.a.tx_interval_us == 1_000_000
    assert not w.a._poll
