"""Sans-I/O BGP session: the RFC 4271 §8 state machine, the subset a route originator needs.

No sockets and no clock: the transport feeds bytes in (``receive``), calls ``tick(now)`` when ``next_deadline()``
is reached, drains ``data_to_send()`` onto the wire, and closes the connection when ``want_close`` is set. Time is
always a parameter (h11's design), so every timer is testable with a fake clock.

Behaviour (metallb-behaviour.md §6.5, with the additions of design.md §7):
* active connect with exponential back-off 0, 1, 2, 4, … capped (MetalLB: 120 s), reset after an established
  session; or passive (the transport accepts, the session never asks to connect);
* OPEN with 4-octet AS, MP IPv4/IPv6 unicast, route refresh, extended message and graceful restart (RFC 4724);
  the peer's OPEN is checked (version, AS, hold time) and errors answered with the right NOTIFICATION;
* hold timer enforced on receive (NOTIFICATION 4/0 when it expires), KEEPALIVEs every keepalive interval
  (hold/3 by default, none when the negotiated hold is 0);
* routes: the caller sets the desired set; when Established the session sends withdrawals first, then
  announcements grouped by attributes and packed into as few UPDATEs as fit, then End-of-RIB after the initial
  sync; a ROUTE-REFRESH from the peer re-sends everything of that family;
* ``shutdown(withdraw=True)`` sends NOTIFICATION Cease/Administrative Shutdown at once, with no per-prefix
  withdrawals: a session ended by a NOTIFICATION is not a graceful restart (RFC 4724 covers the loss of the TCP
  connection; RFC 8538 §1, and §4 only when both sides set its N bit, which this OPEN never does), so the peer
  deletes every route of the session itself (RFC 4271 §8.2.2) — O(1) for us whatever the table size, where
  100,000 withdrawals took seconds and a stop cut short by its timeout closed without any NOTIFICATION, which a
  graceful-restart helper takes for a restart and answers by keeping the routes as stale;
  ``shutdown(withdraw=False)`` just closes, so a graceful-restart helper keeps the routes;
* connection collisions (RFC 4271 §6.8): one Session drives one TCP connection; when a peer connects to us while
  we connect to it, the transport runs a second Session for the inbound connection and asks
  :func:`collision_loser` after every message which one to close; the loser sends NOTIFICATION Cease/Connection
  Collision Resolution (RFC 4486 subcode 7) via :meth:`Session.close_collision`.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Iterable

from fastpath import bgp as codec
from fastpath import model
from fastpath.constants import ErrorCode, HeaderError, OpenError
from fastpath.model import BgpError

MAX_MESSAGE = 4096
MAX_EXTENDED = 65535
AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1
CAP_MP, CAP_ROUTE_REFRESH, CAP_EXT_MSG, CAP_GR, CAP_AS4 = 1, 2, 6, 64, 65
CEASE_ADMIN_SHUTDOWN = 2  # RFC 4486
CEASE_COLLISION = 7  # RFC 4486: Connection Collision Resolution


def _ip_int(text: str) -> int:
    return int(ipaddress.ip_address(text))


def _parse_prefix(prefix: str) -> tuple[int, int, int]:
    """(version, network as int, length) of "a.b.c.d/n" or "x::y/n" — socket parsing, ``ipaddress`` is 20x slower
    and this runs once per prefix per sync. Host bits are cleared."""
    addr, _, plen_s = prefix.partition("/")
    if ":" in addr:
        bits, version, value = 128, 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    else:
        bits, version, value = 32, 4, int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
    plen = int(plen_s) if plen_s else bits
    if not 0 <= plen <= bits:
        raise ValueError(f"bad prefix length in {prefix!r}")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - plen)) - 1)
    return version, value & mask, plen


def _prefix_tuple(prefix: str) -> tuple[int, int]:
    _, value, plen = _parse_prefix(prefix)
    return value, plen


def _community(text: str) -> int:
    a, b = text.split(":")
    return model.community(int(a), int(b))


def _large(text: str) -> tuple[int, int, int]:
    a, b, c = (int(x) for x in text.split(":"))
    return a, b, c


class PeerOpen:
    """What the session needs from the peer's OPEN."""

    def __init__(self, msg: model.Open) -> None:
        self.msg = msg
        self.asn = msg.asn
        self.hold_time = msg.hold_time
        self.router_id = msg.router_id  # the peer's BGP Identifier (an unsigned 32-bit number)
        self.codes = {c.code for c in msg.capabilities}
        self.four_octet = CAP_AS4 in self.codes
        self.families = {
            (int.from_bytes(c.value[0:2], "big"), c.value[3])
            for c in msg.capabilities
            if c.code == CAP_MP and len(c.value) == 4
        }
        self.capabilities = self.codes


class State(enum.Enum):
    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPEN_SENT = "OpenSent"
    OPEN_CONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


@dataclass(frozen=True, order=True)
class Route:
    """One advertisement: a prefix and its attributes. ``communities`` holds "A:B" and "large:A:B:C" strings."""

    prefix: str
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    med: int | None = None

    def attrs(self) -> tuple:
        return (self.local_pref, self.communities, self.med)

    @property
    def v6(self) -> bool:
        return ":" in self.prefix


@dataclass
class SessionConfig:
    local_as: int
    peer_as: int
    router_id: str
    hold_time: int = 90
    keepalive_time: int | None = None  # default: negotiated hold / 3
    passive: bool = False
    graceful_restart: bool = True
    restart_time: int = 120
    restarting: bool = False  # R bit: this speaker restarted and the peer may hold our routes
    families: tuple[str, ...] = ("ipv4", "ipv6")
    backoff_initial: float = 1.0
    backoff_max: float = 120.0
    connect_retry: float | None = None  # BGPPeer connectTime: a fixed ConnectRetry interval (FRR ``timers connect``)
    extended_message: bool = True
    open_hold: float = 240.0  # hold timer while waiting for the peer's OPEN (RFC 4271 suggests 4 minutes)


@dataclass
class Counters:
    messages_in: int = 0
    messages_out: int = 0
    updates_out: int = 0
    prefixes_announced: int = 0
    prefixes_withdrawn: int = 0
    keepalives_out: int = 0
    notifications_in: int = 0
    notifications_out: int = 0
    established_count: int = 0
    connect_attempts: int = 0


@dataclass(frozen=True)
class Event:
    kind: str  # "established" | "closed" | "notification_received" | "notification_sent" | "route_refresh"
    detail: str = ""
    code: int = 0
    subcode: int = 0


_AFI = {"ipv4": AFI_IPV4, "ipv6": AFI_IPV6}

NOTIFICATION_TEXT = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
}


class Session:
    """One BGP session to one peer. See the module docstring for the contract."""

    def __init__(self, config: SessionConfig, now: float) -> None:
        self.config = config
        self.state = State.IDLE if not config.passive else State.ACTIVE
        self.counters = Counters()
        self.last_error: str = ""
        self.want_close = False
        self._out: list[bytes] = []
        self._buf = bytearray()
        self._events: list[Event] = []
        self._desired: dict[str, Route] = {}
        self._advertised: dict[str, Route] = {}
        self._backoff = 0.0
        self._connect_at: float | None = None if config.passive else now
        self._attempt_at: float | None = None
        self._hold_deadline: float | None = None
        self._keepalive_at: float | None = None
        self._hold = 0
        self._keepalive_interval = 0.0
        self._next_hops: dict[str, str] = {}
        self.peer_open: PeerOpen | None = None
        self.router_id_fallback = "0.0.0.0"  # used when the config has none and the session is IPv6-only
        self.router_id = config.router_id
        self._max_len = MAX_MESSAGE
        self._as4 = True
        self._keys: dict[str, tuple[int, int, int]] = {}  # prefix -> parsed (version, network, length)
        self._version = 0  # bumped by set_routes
        self._prepared: tuple | None = None  # initial table packed by prepare()
        self._prepacked: tuple | None = None  # initial table packed by prepack(), before any connection

    # --- connection management -------------------------------------------------------------------------------

    def connect_due(self, now: float) -> bool:
        """True when the transport should dial now (active mode, Idle/Connect/Active, back-off elapsed)."""
        return (
            not self.config.passive
            and self.state in (State.IDLE, State.CONNECT, State.ACTIVE)
            and self._connect_at is not None
            and now >= self._connect_at
        )

    def connecting(self, now: float) -> None:
        """The transport started a TCP connect."""
        self.state = State.CONNECT
        self._connect_at = None
        self._attempt_at = now
        self.counters.connect_attempts += 1

    def connection_made(self, now: float, local_address: str, local_address6: str | None = None) -> None:
        """TCP is up: send OPEN. ``local_address`` is the local end of the connection (the NEXT_HOP we use)."""
        self._buf.clear()
        self.want_close = False
        self._prepared = None
        self._next_hops = {}
        la = ipaddress.ip_address(local_address.split("%")[0])
        if la.version == 4:
            self._next_hops["ipv4"] = str(la)
            if local_address6:
                self._next_hops["ipv6"] = local_address6
        else:
            if la.ipv4_mapped is not None:
                self._next_hops["ipv4"] = str(la.ipv4_mapped)
            else:
                self._next_hops["ipv6"] = str(la)
        cfg = self.config
        self.router_id = cfg.router_id or self._next_hops.get("ipv4") or self.router_id_fallback
        self._send(codec.build_open(cfg.local_as, cfg.hold_time, _ip_int(self.router_id), self._capabilities()))
        self.state = State.OPEN_SENT
        self._hold_deadline = now + self.config.open_hold

    def _capabilities(self) -> list[model.Cap]:
        """streamlb's OPEN (design.md §6 ``full``): MP for the configured families, route refresh, graceful restart
        (forwarding state preserved: the data plane does not restart with the speaker), extended message, 4-octet
        AS."""
        cfg = self.config
        caps = [model.Cap(CAP_MP, bytes([0, _AFI[f], 0, SAFI_UNICAST])) for f in cfg.families]
        caps.append(model.Cap(CAP_ROUTE_REFRESH))
        if cfg.graceful_restart:
            gr = ((0x8000 if cfg.restarting else 0) | (cfg.restart_time & 0x0FFF)).to_bytes(2, "big")
            gr += b"".join(bytes([0, _AFI[f], SAFI_UNICAST, 0x80]) for f in cfg.families)
            caps.append(model.Cap(CAP_GR, gr))
        if cfg.extended_message:
            caps.append(model.Cap(CAP_EXT_MSG))
        caps.append(model.Cap(CAP_AS4, cfg.local_as.to_bytes(4, "big")))
        return caps

    def connection_failed(self, now: float, reason: str) -> None:
        """The TCP connect failed (refused, timeout)."""
        self.last_error = reason
        self._to_idle(now, reason)

    def connection_lost(self, now: float, reason: str = "connection closed") -> None:
        if not self.want_close:
            self.last_error = reason
        self._to_idle(now, reason)

    def _to_idle(self, now: float, reason: str) -> None:
        was = self.state
        self.state = State.ACTIVE if self.config.passive else State.IDLE
        self._advertised.clear()
        self._hold_deadline = None
        self._keepalive_at = None
        self._buf.clear()
        self._out.clear()
        self.want_close = False
        if not self.config.passive and self.config.connect_retry:
            # connectTime: attempts start connectTime apart (RFC 4271 ConnectRetryTimer, FRR ``timers connect``)
            start = self._attempt_at if self._attempt_at is not None else now
            self._connect_at = max(now, start + self.config.connect_retry)
        elif not self.config.passive:
            self._connect_at = now + self._backoff
            self._backoff = min(
                self.config.backoff_max, self.config.backoff_initial if self._backoff == 0 else self._backoff * 2
            )
        if was is not State.IDLE or reason:
            self._events.append(Event("closed", reason))

    def shutdown(self, now: float, withdraw: bool = True) -> None:
        """Stop the session: NOTIFICATION Cease/Administrative Shutdown (the peer drops all our routes), or
        (``withdraw=False``) just close, so a graceful-restart helper keeps them (see the module's docstring)."""
        if self.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED) and withdraw:
            self._out.clear()  # UPDATEs not yet handed to the socket are moot: the session ends with the NOTIFICATION
            self._notify(ErrorCode.CEASE, CEASE_ADMIN_SHUTDOWN, b"", "administrative shutdown")
        self.want_close = True
        self._connect_at = None

    def close_collision(self, now: float) -> None:
        """Lose a connection collision (RFC 4271 §6.8): NOTIFICATION Cease/Connection Collision Resolution, close."""
        if self.want_close:
            return
        # what is still unsent (the KEEPALIVE answering the peer's OPEN) must not leave: the peer would take this
        # connection to Established and then see it closed
        self._out.clear()
        if self.state in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED):
            self._notify(ErrorCode.CEASE, CEASE_COLLISION, b"", "connection collision resolution")
        self._events.append(Event("collision", "closed by connection collision resolution", ErrorCode.CEASE,
                                  CEASE_COLLISION))
        self.want_close = True

    # --- input ---------------------------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the peer. Protocol errors become a NOTIFICATION and ``want_close``; nothing raises."""
        if self.want_close or self.state not in (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED):
            return
        self._buf += data
        try:
            while True:
                n = codec.message_length(bytes(self._buf[:19]), self._max_len)
                if n is None or len(self._buf) < n:
                    return
                raw = bytes(self._buf[:n])
                del self._buf[:n]
                self.counters.messages_in += 1
                self._handle(codec.decode(raw, as4=self._as4, max_len=self._max_len), now)
                if self.want_close:
                    return
        except BgpError as exc:
            self._notify(exc.code, exc.subcode, exc.data, str(exc))
            self.want_close = True

    def _handle(self, msg: object, now: float) -> None:
        st = self.state
        if isinstance(msg, model.Notification):
            self.counters.notifications_in += 1
            text = NOTIFICATION_TEXT.get(msg.code, "unknown")
            self.last_error = f"NOTIFICATION received: {msg.code}/{msg.subcode} ({text})"
            self._events.append(Event("notification_received", self.last_error, msg.code, msg.subcode))
            self.want_close = True
            return
        if st is State.OPEN_SENT:
            if not isinstance(msg, model.Open):
                raise BgpError(ErrorCode.FSM, 1, b"", "expected OPEN in OpenSent")
            self._accept_open(PeerOpen(msg), now)
            return
        if st is State.OPEN_CONFIRM:
            if isinstance(msg, model.Keepalive):
                self._established(now)
                return
            raise BgpError(ErrorCode.FSM, 2, b"", "expected KEEPALIVE in OpenConfirm")
        # Established
        if isinstance(msg, model.Open):
            raise BgpError(ErrorCode.FSM, 3, b"", "OPEN in Established")
        self._restart_hold(now)
        if isinstance(msg, model.RouteRefresh):
            self._events.append(Event("route_refresh", f"afi {msg.afi}"))
            fam = "ipv4" if msg.afi == AFI_IPV4 else "ipv6" if msg.afi == AFI_IPV6 else None
            if fam is not None:
                for p in [p for p, r in self._advertised.items() if (r.v6 == (fam == "ipv6"))]:
                    del self._advertised[p]
                self._sync(force_families=(fam,))
        # KEEPALIVE and UPDATE: nothing more (we originate only; received routes are ignored).

    def _accept_open(self, msg: PeerOpen, now: float) -> None:
        cfg = self.config
        if msg.asn != cfg.peer_as:
            raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.BAD_PEER_AS, b"",
                           f"peer AS {msg.asn}, expected {cfg.peer_as}")
        if cfg.local_as > 0xFFFF and not msg.four_octet:
            raise BgpError(ErrorCode.OPEN_MESSAGE, OpenError.BAD_PEER_AS, b"",
                           "4-octet local AS needs the peer's capability 65")
        self.peer_open = msg
        self._as4 = msg.four_octet
        self._hold = min(cfg.hold_time, msg.hold_time)
        if self._hold:
            ka = cfg.keepalive_time if cfg.keepalive_time is not None else self._hold / 3
            self._keepalive_interval = min(ka, self._hold / 3) if ka else self._hold / 3
        else:
            self._keepalive_interval = 0.0
        if cfg.extended_message and CAP_EXT_MSG in msg.capabilities:
            self._max_len = MAX_EXTENDED
        else:
            self._max_len = MAX_MESSAGE
        self._send(codec.build_keepalive())
        self.counters.keepalives_out += 1
        self.state = State.OPEN_CONFIRM
        self._restart_hold(now)
        self._keepalive_at = now + self._keepalive_interval if self._keepalive_interval else None

    def _established(self, now: float) -> None:
        self.state = State.ESTABLISHED
        self.counters.established_count += 1
        self._backoff = 0.0
        self.last_error = ""
        self._advertised.clear()
        self._events.append(Event("established", f"hold {self._hold}"))
        prep, self._prepared = self._prepared, None
        if prep is not None and prep[0] == self._version and prep[1] == set(self._families()) and self._as4:
            self._apply(prep[2], prep[3], dict(prep[4]))  # packed while the OPENs crossed
        else:
            self._sync()
        # End-of-RIB for every negotiated family, also those we have nothing to send in (no next hop of that
        # family on this session): a graceful-restart helper waits for all of them before dropping stale routes.
        for fam in self.config.families:
            if self._peer_has(fam):
                self._send(codec.build_end_of_rib(_AFI[fam]))

    def _restart_hold(self, now: float) -> None:
        self._hold_deadline = now + self._hold if self._hold else None

    # --- timers --------------------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        ds = [d for d in (self._hold_deadline, self._keepalive_at, self._connect_at) if d is not None]
        return min(ds) if ds else None

    def tick(self, now: float) -> None:
        if self.want_close:
            return
        if self._hold_deadline is not None and now >= self._hold_deadline:
            self._notify(ErrorCode.HOLD_TIMER_EXPIRED, 0, b"", "hold timer expired")
            self.want_close = True
            return
        if self._keepalive_at is not None and now >= self._keepalive_at:
            if self.state in (State.OPEN_CONFIRM, State.ESTABLISHED):
                self._send(codec.build_keepalive())
                self.counters.keepalives_out += 1
            self._keepalive_at = now + self._keepalive_interval

    # --- routes --------------------------------------------------------------------------------------------------

    def set_routes(self, routes: Iterable[Route]) -> None:
        """The complete desired set for this peer; sent (as a diff) once Established."""
        self._desired = {r.prefix: r for r in routes}
        self._version += 1
        if self.state is State.ESTABLISHED and not self.want_close:
            self._sync()

    @property
    def advertised(self) -> dict[str, Route]:
        return dict(self._advertised)

    def _families(self) -> list[str]:
        return [f for f in self.config.families if f in self._next_hops and self._peer_has(f)]

    def _peer_has(self, fam: str) -> bool:
        if self.peer_open is None:
            return False
        fams = self.peer_open.families
        if not fams:  # no MP capability: IPv4 unicast only (RFC 4760 §8)
            return fam == "ipv4"
        return (_AFI[fam], SAFI_UNICAST) in fams

    def _key(self, prefix: str) -> tuple[int, int, int]:  # noqa: D401
        k = self._keys.get(prefix)
        if k is None:
            k = self._keys[prefix] = _parse_prefix(prefix)
        return k

    def _sync(self, force_families: tuple[str, ...] = ()) -> None:
        peer_4 = self.peer_open.four_octet if self.peer_open else True
        msgs, stats, advertised = self._diff(set(self._families()), peer_4, self._max_len, self._advertised)
        self._apply(msgs, stats, advertised)

    def _apply(self, msgs: list[bytes], stats: tuple[int, int, int], advertised: dict[str, Route]) -> None:
        for m in msgs:
            self._send(m)
        updates, withdrawn, announced = stats
        self.counters.updates_out += updates
        self.counters.prefixes_withdrawn += withdrawn
        self.counters.prefixes_announced += announced
        self._advertised = advertised

    def prepack(self, local_address: str) -> None:
        """Pack the initial table before connecting, for a connection whose local end will be ``local_address``
        (the speaker predicts it from the route to the peer). Packing 100,000 prefixes takes a few hundred ms:
        done here, off the event loop and before the SYN, the OPENs cross and the table follows Established at
        once. A connection from another address, or routes set since, make :meth:`prepare` pack afresh."""
        if self.state not in (State.IDLE, State.ACTIVE, State.CONNECT):
            return
        saved, self._next_hops = self._next_hops, {}
        la = ipaddress.ip_address(local_address.split("%")[0])
        if la.version == 4:
            self._next_hops["ipv4"] = str(la)
        else:
            self._next_hops["ipv4" if la.ipv4_mapped is not None else "ipv6"] = str(la.ipv4_mapped or la)
        try:
            fams = {f for f in self.config.families if f in self._next_hops}
            msgs, stats, advertised = self._diff(fams, True, MAX_MESSAGE, {})
            self._prepacked = (self._version, dict(self._next_hops), fams, msgs, stats, advertised)
        finally:
            self._next_hops = saved

    def prepare(self) -> None:
        """Pack the initial table ahead of Established (call after the OPEN went out): the next hops are known
        from the connection; 4-octet AS and 4,096-byte messages are assumed and checked when the peer's OPEN has
        arrived. A changed desired set or a peer that differs makes ``_established`` pack afresh."""
        if self.state not in (State.OPEN_SENT, State.OPEN_CONFIRM) or self.want_close:
            return
        pp = self._prepacked
        if pp is not None and pp[0] == self._version and pp[1] == self._next_hops:
            self._prepared = (pp[0], pp[2], pp[3], pp[4], pp[5])  # packed before the connection
            return
        fams = {f for f in self.config.families if f in self._next_hops}
        msgs, stats, advertised = self._diff(fams, True, MAX_MESSAGE, {})
        self._prepared = (self._version, fams, msgs, stats, advertised)

    def _diff(
        self, fams: set[str], peer_4: bool, max_len: int, current: dict[str, Route]
    ) -> tuple[list[bytes], tuple[int, int, int], dict[str, Route]]:
        """UPDATEs taking the peer from ``current`` to the desired set: withdrawals first (design.md §7), then
        announcements grouped by attributes and packed; returns (messages, (updates, withdrawn, announced), the
        new advertised set)."""
        if len(self._keys) > 4 * len(self._desired) + 1024:  # forget prefixes long gone
            self._keys = {p: self._keys[p] for p in (*self._desired, *current) if p in self._keys}
        key_of = self._key
        out: list[bytes] = []
        want = {p: r for p, r in self._desired.items() if ("ipv6" if r.v6 else "ipv4") in fams}
        withdraw = sorted((p for p in current if p not in want), key=key_of)
        announce = [r for p, r in want.items() if current.get(p) != r]
        advertised = dict(current)
        for v6 in (False, True):
            ps = [p for p in withdraw if (":" in p) == v6]
            afi = AFI_IPV6 if v6 else AFI_IPV4
            out += codec.pack_withdrawals([key_of(p)[1:] for p in ps], afi=afi, max_len=max_len)
        for p in withdraw:
            del advertised[p]
        updates_w = len(out)
        groups: dict[tuple, list[Route]] = {}
        for r in sorted(announce, key=lambda r: key_of(r.prefix)):
            groups.setdefault((r.v6,) + r.attrs(), []).append(r)
        for key in sorted(groups, key=_group_key):
            rs = groups[key]
            v6, local_pref, communities, med = key
            nh = _ip_int(self._next_hops["ipv6" if v6 else "ipv4"])
            attrs = model.make_attrs(
                local_as=self.config.local_as,
                peer_as=self.config.peer_as,
                next_hop=None if v6 else nh,
                communities=tuple(_community(c) for c in communities if not c.startswith("large:")),
                large_communities=tuple(_large(c[6:]) for c in communities if c.startswith("large:")),
                local_pref=local_pref,
                med=med,
                peer_4byte=peer_4,
            )
            out += codec.pack_updates(
                [key_of(r.prefix)[1:] for r in rs],
                attrs,
                afi=AFI_IPV6 if v6 else AFI_IPV4,
                next_hop=nh if v6 else None,
                as4=peer_4,
                max_len=max_len,
            )
            for r in rs:
                advertised[r.prefix] = r
        return out, (len(out), len(withdraw), len(announce)), advertised

    # --- output --------------------------------------------------------------------------------------------------

    def _send(self, msg: bytes) -> None:
        self._out.append(msg)
        self.counters.messages_out += 1

    def _notify(self, code: int, subcode: int, data: bytes, text: str) -> None:
        self._send(codec.build_notification(code, subcode, bytes(data)[: MAX_MESSAGE - 21]))
        self.counters.notifications_out += 1
        self.last_error = f"NOTIFICATION sent: {code}/{subcode} ({NOTIFICATION_TEXT.get(code, 'unknown')}): {text}"
        self._events.append(Event("notification_sent", self.last_error, code, subcode))

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def events(self) -> list[Event]:
        ev = self._events
        self._events = []
        return ev


def _prefix_key(prefix: str) -> tuple:
    return _parse_prefix(prefix)


def _group_key(key: tuple) -> tuple:
    v6, lp, comms, med = key
    return (v6, -1 if lp is None else lp, comms, -1 if med is None else med)


_OPEN_STATES = (State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED)


def collision_loser(outbound: Session, inbound: Session) -> Session | None:
    """RFC 4271 §6.8 for two connections to one peer: the Session to close now, or None (no collision yet).

    * A connection that is Established is kept and the other one closed (a collision with an established session
      closes the newcomer).
    * Otherwise, once the peer's BGP Identifier is known (its OPEN arrived on either connection, so one of them is
      in OpenConfirm; the other in OpenSent or OpenConfirm), the connection initiated by the side with the higher
      BGP Identifier is kept: ours is ``outbound``, the peer's is ``inbound``. Checking OpenSent as soon as the
      identifier is known from the other connection is the "MAY" of §6.8; both sides decide alike, so nothing
      flaps.
    * Equal identifiers (possible between different ASes, RFC 6286 §2.3): the side with the larger AS number wins.
    """
    if outbound.want_close or inbound.want_close:
        return None
    if outbound.state not in _OPEN_STATES or inbound.state not in _OPEN_STATES:
        return None
    if outbound.state is State.ESTABLISHED:
        return inbound
    if inbound.state is State.ESTABLISHED:
        return outbound
    peer = inbound.peer_open or outbound.peer_open
    if peer is None:
        return None
    local_id = _ip_int(outbound.router_id)
    mine = (local_id, outbound.config.local_as)
    theirs = (peer.router_id, peer.asn)
    return inbound if mine > theirs else outbound
