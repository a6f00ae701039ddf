"""Sans-I/O BFD session: RFC 5880 asynchronous mode, one session per peer.

No sockets and no clock: the transport hands in decoded packets (``receive``) with the time, calls ``tick(now)``
when ``next_deadline()`` is reached, and sends what ``packets_to_send()`` returns. Jitter comes from an injected
``rng`` (a ``random.Random``), so a test can replay every timer exactly.

What it implements (section numbers of RFC 5880):
* the state machine Down → Init → Up, Up → Down on the peer's Down/AdminDown or when the detection time passes
  without a packet (diagnostic 1, Control Detection Time Expired; 3, Neighbor Signaled Session Down) (§6.2, §6.8.6);
* discriminators: ours is fixed per session; the peer's is learned from its packets and forgotten when the
  detection time expires (§6.8.1);
* timers: transmit every max(our desired min TX, the peer's required min RX), less 0–25 % jitter (10–25 % with
  detect multiplier 1) (§6.8.7); detection time = the peer's detect multiplier × max(our required min RX, the
  peer's desired min TX) (§6.8.4); while not Up our desired min TX is at least 1 s (§6.8.3);
* Poll/Final: a change of our intervals (going Up or Down, a new profile) starts a Poll Sequence; a slower TX rate
  or a faster RX requirement takes effect only when the peer's Final arrives; a Poll from the peer is answered at
  once with a Final (§6.5, §6.8.3);
* passive role: nothing is sent before a packet from the peer taught us its discriminator (§6.1, §6.8.7);
* administrative down: ``admin_down`` sends AdminDown (diagnostic 7) and ignores the peer until ``enable``.

Demand mode, echo and authentication are not implemented: a packet with the A bit set is discarded (§6.8.6, no
authentication configured), the D bit of the peer is recorded and otherwise ignored, and we ask for no echo
(required min echo RX 0).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fastpath import bfd as codec
from fastpath._bfd_common import Control, Diag, State

SLOW_TX_US = 1_000_000  # §6.8.3: desired min TX while the session is not Up


@dataclass(frozen=True)
class BfdConfig:
    """A BFDProfile in wire units. Defaults are FRR's (metallb-behaviour.md §2.6)."""

    desired_min_tx_us: int = 300_000
    required_min_rx_us: int = 300_000
    detect_mult: int = 3
    passive: bool = False

    @classmethod
    def from_profile(cls, profile) -> "BfdConfig":
        """From a ``schema.BFDProfile`` (intervals in ms, unset fields ``None``)."""
        def ms(v, default):
            return (default if v is None else v) * 1000

        return cls(
            desired_min_tx_us=ms(profile.transmit_interval, 300),
            required_min_rx_us=ms(profile.receive_interval, 300),
            detect_mult=3 if profile.detect_multiplier is None else profile.detect_multiplier,
            passive=bool(profile.passive_mode),
        )


@dataclass
class BfdCounters:
    packets_in: int = 0
    packets_out: int = 0
    discarded: int = 0
    up_events: int = 0
    down_events: int = 0


@dataclass(frozen=True)
class BfdEvent:
    kind: str  # "up" | "down"
    diag: int = 0
    detail: str = ""


@dataclass
class _Timers:
    """The interval values in force (may lag the advertised ones during a Poll Sequence)."""

    tx_us: int  # our desired min TX in use for the transmit interval
    rx_us: int  # our required min RX in use for the detection time


class BfdSession:
    """One BFD session. See the module docstring for the contract."""

    def __init__(self, config: BfdConfig, local_disc: int, now: float, rng: random.Random | None = None) -> None:
        if not 1 <= local_disc <= 0xFFFFFFFF:
            raise ValueError("the local discriminator must be in 1..2**32-1")
        self.config = config
        self.local_disc = local_disc
        self.rng = rng or random.Random()
        self.state = State.DOWN
        self.diag = Diag.NONE
        self.remote_disc = 0
        self.remote_state = State.DOWN
        self.remote_min_rx_us = 1  # §6.8.1: initialised to 1
        self.remote_min_tx_us = 0  # last received desired min TX
        self.remote_detect_mult = 0
        self.remote_demand = False
        self.counters = BfdCounters()
        self._admin = False
        self._desired_tx = self._advertised_tx()
        self._required_rx = config.required_min_rx_us
        self._in_use = _Timers(self._desired_tx, self._required_rx)
        self._poll = False  # a Poll Sequence is in progress
        self._final_due = False
        self._out: list[bytes] = []
        self._events: list[BfdEvent] = []
        self._detect_at: float | None = None
        self._tx_at: float | None = None if config.passive else now

    # --- derived values ------------------------------------------------------------------------------------------

    def _advertised_tx(self) -> int:
        want = self.config.desired_min_tx_us
        return want if getattr(self, "state", State.DOWN) is State.UP else max(want, SLOW_TX_US)

    @property
    def tx_interval_us(self) -> int:
        """The negotiated transmit interval (before jitter)."""
        return max(self._in_use.tx_us, self.remote_min_rx_us)

    @property
    def rx_interval_us(self) -> int:
        """The negotiated receive interval: how often the peer sends, as far as detection is concerned."""
        return max(self._in_use.rx_us, self.remote_min_tx_us)

    @property
    def detection_time(self) -> float:
        """Seconds without a packet after which the session goes Down (0 before the peer was heard)."""
        return self.remote_detect_mult * self.rx_interval_us / 1e6

    # --- input ---------------------------------------------------------------------------------------------------

    def receive(self, pkt: Control, now: float) -> None:
        """A decoded packet for this session (the transport has checked TTL and demultiplexed it)."""
        if pkt.auth_present:  # no authentication configured: §6.8.6 says discard
            self.counters.discarded += 1
            return
        if pkt.your_disc and pkt.your_disc != self.local_disc:
            self.counters.discarded += 1
            return
        self.counters.packets_in += 1
        self.remote_disc = pkt.my_disc
        self.remote_state = State(pkt.state)
        self.remote_demand = pkt.demand
        self.remote_detect_mult = pkt.detect_mult
        self.remote_min_tx_us = pkt.min_tx
        self.remote_min_rx_us = pkt.min_rx
        if pkt.final and self._poll:
            self._poll = False
            self._in_use = _Timers(self._desired_tx, self._required_rx)
        if self._admin:
            return
        old = self.state
        rs = self.remote_state
        if rs is State.ADMIN_DOWN:
            if old is not State.DOWN:
                self._set_state(State.DOWN, Diag.NEIGHBOR_DOWN, now)
        elif old is State.DOWN:
            if rs is State.DOWN:
                self._set_state(State.INIT, Diag.NONE, now)
            elif rs is State.INIT:
                self._set_state(State.UP, Diag.NONE, now)
        elif old is State.INIT:
            if rs in (State.INIT, State.UP):
                self._set_state(State.UP, Diag.NONE, now)
        elif rs is State.DOWN:  # old is Up
            self._set_state(State.DOWN, Diag.NEIGHBOR_DOWN, now)
        if pkt.poll:
            self._final_due = True
        self._detect_at = now + self.detection_time if self.detection_time else None
        if self._tx_at is None and self.remote_min_rx_us:
            self._tx_at = now  # a passive session starts sending once it knows the peer
        if self._final_due or self.state is not old:
            self._transmit(now)

    # --- timers --------------------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        ds = [d for d in (self._tx_at, self._detect_at) if d is not None]
        return min(ds) if ds else None

    def tick(self, now: float) -> None:
        if self._detect_at is not None and now >= self._detect_at:
            self._detect_at = None
            self.remote_disc = 0  # §6.8.1: forgotten when the detection time passes
            self.remote_state = State.DOWN
            self.remote_min_tx_us = 0
            self.remote_min_rx_us = 1
            self.remote_detect_mult = 0
            self._poll = False  # nobody is left to answer it
            if self.state in (State.INIT, State.UP):
                self._set_state(State.DOWN, Diag.TIME_EXPIRED, now)
                self._transmit(now)  # tell the peer at once, should it still hear us
            if self.config.passive:
                self._tx_at = None
        if self._tx_at is not None and now >= self._tx_at:
            self._transmit(now)

    # --- administration ------------------------------------------------------------------------------------------

    def admin_down(self, now: float) -> None:
        """Take the session administratively down (the peer sees AdminDown and must not treat it as a failure)."""
        self._admin = True
        self._set_state(State.ADMIN_DOWN, Diag.ADMIN_DOWN, now)
        self._detect_at = None
        self._transmit(now)

    def enable(self, now: float) -> None:
        if self._admin:
            self._admin = False
            self._set_state(State.DOWN, Diag.ADMIN_DOWN, now)
            if not self.config.passive:
                self._tx_at = now

    def reconfigure(self, config: BfdConfig, now: float) -> None:
        """A changed profile: new intervals are negotiated with a Poll Sequence; the role may change too."""
        self.config = config
        self._retime(now)
        if config.passive and not self.remote_disc:
            self._tx_at = None
        elif self._tx_at is None:
            self._tx_at = now

    # --- internals -----------------------------------------------------------------------------------------------

    def _set_state(self, new: State, diag: Diag, now: float) -> None:
        old = self.state
        if new is old:
            return
        self.state = new
        self.diag = diag
        if new is State.UP:
            self.counters.up_events += 1
            self._events.append(BfdEvent("up", diag, f"remote discriminator {self.remote_disc}"))
        elif old is State.UP:
            self.counters.down_events += 1
            self._events.append(BfdEvent("down", diag, Diag(diag).name.lower().replace("_", " ")))
        self._retime(now)

    def _retime(self, now: float) -> None:
        """Our advertised intervals follow the state (§6.8.3); a change starts a Poll Sequence."""
        tx, rx = self._advertised_tx(), self.config.required_min_rx_us
        if (tx, rx) == (self._desired_tx, self._required_rx):
            return
        self._desired_tx, self._required_rx = tx, rx
        # faster TX and slower RX requirements are safe at once; the others wait for the peer's Final
        self._in_use = _Timers(min(self._in_use.tx_us, tx), max(self._in_use.rx_us, rx))
        if self.state is State.UP or self.remote_disc:
            self._poll = True
        else:
            self._poll = False
            self._in_use = _Timers(tx, rx)

    def _interval(self) -> float:
        base = self.tx_interval_us / 1e6
        high = 1.0 if self.config.detect_mult > 1 else 0.9
        return base * (0.75 + (high - 0.75) * self.rng.random())

    def _transmit(self, now: float) -> None:
        if self.config.passive and not self.remote_disc and not self._admin:
            self._tx_at = None
            return
        final, self._final_due = self._final_due, False
        pkt = codec.build_control(
            int(self.state), int(self.diag), self.config.detect_mult, self.local_disc, self.remote_disc,
            self._desired_tx, self._required_rx, 0, self._poll and not final, final,
        )
        self._out.append(pkt)
        self.counters.packets_out += 1
        if self.remote_min_rx_us == 0 or (self._admin and self.config.passive):
            self._tx_at = None  # §6.8.7: the peer asked for no periodic packets
        else:
            self._tx_at = now + self._interval()

    def packets_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[BfdEvent]:
        ev, self._events = self._events, []
        return ev

    def status(self) -> dict:
        return {
            "state": codec.STATE_NAMES[int(self.state)],
            "diagnostic": Diag(self.diag).name.lower(),
            "local_discriminator": self.local_disc,
            "remote_discriminator": self.remote_disc,
            "remote_state": codec.STATE_NAMES[int(self.remote_state)],
            "transmit_interval_ms": self.tx_interval_us / 1000,
            "receive_interval_ms": self.rx_interval_us / 1000,
            "detect_multiplier": self.config.detect_mult,
            "remote_detect_multiplier": self.remote_detect_mult,
            "detection_time_ms": round(self.detection_time * 1000, 3),
            "passive": self.config.passive,
            "flaps": self.counters.down_events,
            "packets_in": self.counters.packets_in,
            "packets_out": self.counters.packets_out,
            "discarded": self.counters.discarded,
        }


__all__ = ["BfdConfig", "BfdCounters", "BfdEvent", "BfdSession", "SLOW_TX_US"]
