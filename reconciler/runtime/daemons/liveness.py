"""Speaker liveness (design.md §2): heartbeat keys with a short TTL, watched by every ``streamlb run`` replica.

Theory of operation
-------------------
* A speaker never appends to the event stream. A dedicated thread (:class:`Heartbeat`) refreshes its key
  ``streamlb:{c}:speaker:{node}`` with ``SET ... PX ttl`` every ``interval`` over a connection of its own with a
  short timeout, so neither the speaker's fold, its asyncio loop nor a slow event-stream read can delay a beat.
  A clean exit deletes the key; ``--keep-on-exit`` instead leaves it with a restart grace (a planned restart is not
  a node death). While every interface the speaker could announce on has lost its link, it stops beating and
  deletes the key: a node cut off from the LAN is dead for its clients even if Redis still hears it.
* Every replica (not only the leader) compares the live keys with what its fold believes, every ``interval``
  from a thread of its own (:class:`Monitor` decides, :class:`Ticker` runs), and appends only *changes*:
  ``speaker.down`` for a node the fold has up whose key is gone, ``speaker.up`` for a node the fold has down
  whose key is back. Several replicas may append the same change; the fold ignores a down for a node already down
  (and an up for a node already up), so duplicates are harmless, and a replica never repeats its own append
  within ``resend`` seconds.
* Which nodes a replica judges: every node whose heartbeat it saw, and every node the fold says is up (each Node
  object not marked down — also a replica that booted from a snapshot and never saw that node beat: otherwise a
  node that died while no replica watched would keep its IPs for ever). Nodes never seen beating are judged only
  ``grace`` seconds after the replica's first look at the keys, so a cluster that starts all at once does not
  mark down speakers that are still starting.

Why these defaults (measured; README "Failure detection"): a node's death is noticed when its key expires, at most
``ttl`` after the last refresh, plus at most one monitor ``interval``; then ``speaker.down`` -> first gratuitous
ARP takes a few milliseconds. A healthy node loses its IPs only if no refresh gets through for ``ttl - interval``.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable

from events import schema

logger = logging.getLogger("streamlb.liveness")

# defaults (README "Failure detection" gives the measurements behind them)
HEARTBEAT_INTERVAL_MS = 100  # a speaker refreshes its key this often
HEARTBEAT_TTL_MS = 700  # ... with this TTL: a 600 ms silence (twice the worst gap measured under load) is tolerated
MONITOR_INTERVAL = 0.1  # seconds between two looks at the keys, per replica
UNSEEN_GRACE = 2.0  # seconds a replica waits before judging nodes it never saw beating
RESTART_GRACE_MS = 15_000  # --keep-on-exit: the key outlives the process this long
LEADER_TTL_MS = 5_000  # leader lock of ``streamlb run`` (not on the failover path: every replica monitors)


FREEZE_EVERY = 10_000  # entries folded between two freezes of the heap


def freeze_heap(full: bool = False) -> None:
    """Put every object alive now out of the cyclic garbage collector's reach (``gc.freeze``).

    A full collection walks every tracked object while holding the GIL: on a state of 20,000 Services (750,000
    objects) that is about a second, longer than the heartbeat's whole budget, and it would stop the heartbeat
    thread, the monitor thread and the ARP responder alike. The folded state is long-lived and acyclic, so it
    never needs the cyclic collector; what is created later is collected as usual. ``full`` collects everything
    first (one pause, taken before the heartbeat starts); otherwise only the young generations are collected
    (cheap) and what is left is frozen."""
    gc.collect(2 if full else 1)
    gc.freeze()


class Monitor:
    """Decides the liveness events to append from the live keys and the folded state (no I/O, injected time)."""

    def __init__(self, grace: float = UNSEEN_GRACE, resend: float = 1.0) -> None:
        self.grace = grace
        self.resend = resend
        self.seen: set[str] = set()  # nodes whose heartbeat this monitor saw
        self.first_look: float | None = None
        self._sent: dict[str, tuple[bool, float]] = {}  # node -> (appended up?, when)

    def changes(self, alive: set[str], up_nodes: Iterable[str], down: set[str], now: float) -> list[schema.Event]:
        """The events to append, in node-name order.

        ``alive``: nodes with a live heartbeat key; ``up_nodes``: the fold's nodes (Node objects) — those not in
        ``down`` are up; ``down``: the fold's ``speakers_down``."""
        if self.first_look is None:
            self.first_look = now
        self.seen |= alive
        judged = set(self.seen)
        if now - self.first_look >= self.grace:
            judged.update(up_nodes)
        out: list[schema.Event] = []
        for node in sorted(alive | down | judged):
            if node in alive:
                if node not in down:
                    continue
                ev: schema.Event = schema.SpeakerUp(node=node)
            elif node in judged and node not in down:
                ev = schema.SpeakerDown(node=node)
            else:
                continue
            up = isinstance(ev, schema.SpeakerUp)
            last = self._sent.get(node)
            if last is not None and last[0] == up and now - last[1] < self.resend:
                continue  # appended it a moment ago; the fold has not caught up with it yet
            self._sent[node] = (up, now)
            out.append(ev)
        return out


class Ticker:
    """Calls ``tick`` every ``interval`` seconds from a daemon thread until stopped (deadline-based: a slow tick
    does not shift the schedule; missed ticks are skipped, not queued)."""

    def __init__(self, tick: Callable[[], object], interval: float, name: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tick = tick
        self.interval = interval
        self.name = name
        self.clock = clock
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Tick now (from any thread)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        next_at = self.clock()
        while not self._stopping:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bug in one tick must not end liveness for good
                logger.exception("liveness tick failed", extra={"ticker": self.name})
            now = self.clock()
            next_at = max(next_at + self.interval, now)
            self._wake.wait(max(0.0, next_at - now))
            if self._wake.is_set():
                self._wake.clear()
                next_at = self.clock()


SIOCGIFFLAGS = 0x8913
IFF_RUNNING = 0x40  # operationally up: admin up and carrier present


def link_running(name: str) -> bool:
    """Whether interface ``name`` (in this process's network namespace) is up with carrier."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            res = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", name.encode()[:15], 0))
    except OSError:
        return False  # gone
    return bool(struct.unpack("16sH14x", res)[1] & IFF_RUNNING)


class LinkWatch:
    """``check()`` is False when every interface this node announced on so far has lost its link (a node cut off
    from the LAN), True otherwise — also while no interface is known yet (nothing to judge)."""

    def __init__(self, current: Callable[[], Iterable[str]], running: Callable[[str], bool] = link_running) -> None:
        self.current = current
        self.running = running
        self.known: set[str] = set()

    def check(self) -> bool:
        self.known.update(self.current())
        return not self.known or any(self.running(n) for n in sorted(self.known))


class Heartbeat:
    """Keeps a speaker's heartbeat key alive from a dedicated thread (``start``/``stop``/``beat_soon``).

    ``log`` is anything with ``heartbeat(node, ttl_ms)`` and ``clear_heartbeat(node)`` (a
    :class:`events.stream.StreamLog` on a connection of its own, with a short socket timeout).
    ``link_ok`` (optional) says whether the node can still reach its LAN; while it says no, the key is deleted
    instead of refreshed.
    """

    def __init__(self, log, node: str, *, interval_ms: int = HEARTBEAT_INTERVAL_MS, ttl_ms: int = HEARTBEAT_TTL_MS,
                 link_ok: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic,
                 on_beat: Callable[[float], None] | None = None) -> None:
        if interval_ms >= ttl_ms:
            raise ValueError(f"heartbeat interval ({interval_ms} ms) must be below its TTL ({ttl_ms} ms)")
        self.log = log
        self.node = node
        self.interval_ms = interval_ms
        self.ttl_ms = ttl_ms
        self.link_ok = link_ok
        self.clock = clock
        self.on_beat = on_beat  # called with the gap since the previous successful refresh (metrics)
        self.failures = 0
        self.beats = 0
        self.last_ok: float | None = None  # when the last refresh was acknowledged
        self.max_gap = 0.0
        self.link_down = False
        self.unreachable = False
        self.forbidden: Exception | None = None  # Redis refused the key to this user (NOPERM): the speaker stops
        self._ticker: Ticker | None = None
        self._lock = threading.Lock()

    # -- one beat ---------------------------------------------------------------------------------------------

    def beat(self) -> bool:
        """Refresh the key (or delete it while the links are down). True when the key was refreshed."""
        from events.log import LogForbidden, LogUnavailable

        with self._lock:
            try:
                if self.link_ok is not None and not self.link_ok():
                    if not self.link_down:
                        logger.warning("every announcing interface lost its link: heartbeat withdrawn",
                                       extra={"node": self.node})
                    self.log.clear_heartbeat(self.node)
                    self.link_down = True
                    self._reachable()
                    return False
                if self.link_down:
                    logger.info("link back: heartbeat resumed", extra={"node": self.node})
                    self.link_down = False
                self.log.heartbeat(self.node, self.ttl_ms)
            except LogForbidden as exc:  # the wrong Redis user: reported once by the speaker, which stops
                self.forbidden = exc
                return False
            except LogUnavailable as exc:
                self.failures += 1
                if not self.unreachable:
                    logger.error("heartbeat not delivered (redis unreachable)",
                                 extra={"node": self.node, "error": str(exc)})
                    self.unreachable = True
                return False
            self._reachable()
            now = self.clock()
            if self.last_ok is not None:
                gap = now - self.last_ok
                self.max_gap = max(self.max_gap, gap)
                if self.on_beat is not None:
                    self.on_beat(gap)
            self.last_ok = now
            self.beats += 1
            return True

    def _reachable(self) -> None:
        if self.unreachable:
            logger.info("heartbeat delivered again", extra={"node": self.node})
            self.unreachable = False

    def expired(self) -> bool:
        """True when no refresh was acknowledged for a whole TTL: the key is gone for the others too."""
        return self.last_ok is None or self.clock() - self.last_ok >= self.ttl_ms / 1000

    def status(self) -> dict:
        age = None if self.last_ok is None else round(self.clock() - self.last_ok, 3)
        return {"interval_ms": self.interval_ms, "ttl_ms": self.ttl_ms, "last_ok_age_s": age,
                "max_gap_s": round(self.max_gap, 3), "failures": self.failures, "link_down": self.link_down}

    # -- thread -----------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._ticker is not None

    def start(self) -> None:
        """Start beating from a thread of its own (the first beat is immediate; this call does not block)."""
        if self._ticker is None:
            self._ticker = Ticker(self.beat, self.interval_ms / 1000, f"heartbeat-{self.node}", self.clock)
            self._ticker.start()

    def beat_soon(self) -> None:
        """Refresh now rather than at the next tick (e.g. the log just said this live speaker is down)."""
        if self._ticker is not None:
            self._ticker.poke()

    def stop(self, linger_ms: int | None = None) -> None:
        """Stop beating; delete the key (others append ``speaker.down`` at once), or with ``linger_ms`` leave it
        alive that long (a planned restart)."""
        from events.log import LogForbidden, LogUnavailable

        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        with self._lock:
            try:
                if linger_ms:
                    self.log.heartbeat(self.node, linger_ms)
                else:
                    self.log.clear_heartbeat(self.node)
            except LogForbidden:
                pass  # already reported: this user may not write the key
            except LogUnavailable:
                logger.warning("could not update the heartbeat key on exit (redis unreachable); it expires "
                               "by itself", extra={"node": self.node})
