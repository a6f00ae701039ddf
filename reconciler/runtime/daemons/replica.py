"""``streamlb run``: the reconciler daemon — snapshot, catch up, follow, fold, publish (design.md §2).

Theory of operation
-------------------
Every replica folds every entry of the stream in order, from the newest snapshot on. One replica at a time holds
the leader lock (``SET NX PX``, renewed at a third of its TTL) and, while it holds it, also

* publishes, after each folded batch, the Services whose decisions changed (all of them in its first batch
  after taking the lock: a resync) to the decisions stream
  (``pos``, ``hash``, ``d``) and hands the same batch to the status writer, if one is configured; ``hash`` is the
  state hash at ``pos`` when at least ``hash_interval`` seconds passed since the last one, else empty (the hash
  costs O(Services), design.md §4);
* writes a snapshot every ``snapshot_every`` entries or ``snapshot_interval`` seconds, and, when retention is
  configured, trims the event stream below that snapshot once it reads back;

Every replica, leader or not, also runs the speaker liveness monitor in a thread of its own
(:mod:`reconciler.runtime.daemons.liveness`): a node's death must not wait for a leader election, nor for a
long batch to be folded.

Rules:

1. A bad entry never stops the fold. An entry that does not decode or validate (or that the fold refuses) is
   dead-lettered under its own stream ID with the reason, counted, logged, and skipped — the same on every
   replica, so they stay in agreement.
2. The position only moves forward past entries that were folded or dead-lettered. A Redis failure (at start or
   mid-run) is retried with capped exponential backoff and a log line per outage; the position is kept.
3. The stream going backwards (Redis lost data) is detected — the last generated ID below the applied position, or
   the applied entry gone without a snapshot covering the gap — and reported; folding stops rather than re-folding
   a different history into the state.
4. Checkpoints are deterministic: when an entry's stream-ID millisecond bucket (``checkpoint_ms``) differs from the
   previous entry's, the hash of the state *before* it is recorded at the previous entry's position. Replicas of
   one stream therefore record hashes at the same positions whatever their batching or restarts.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from events import codec, log as logmod, schema
from events.position import ZERO, Position
from reconciler import decisions, fold, snapshot as snapmod, state as statemod
from reconciler.runtime import gcpolicy
from reconciler.runtime.daemons import liveness
from reconciler.runtime.metrics import Metrics

logger = logging.getLogger("streamlb.run")


@dataclass(slots=True)
class Settings:
    snapshot_every: int = 10_000  # entries folded between snapshots (leader)
    snapshot_interval: float = 60.0  # seconds between snapshots when anything was folded (leader)
    retention: bool = False  # trim the stream below the newest durable snapshot
    leader_ttl_ms: int = liveness.LEADER_TTL_MS
    block_ms: int = 1000  # XREAD BLOCK per follow call
    page: int = 1000  # entries per catch-up page / per follow batch
    lb_class: str | None = None
    metallb_namespaces: tuple[str, ...] = ("metallb-system",)  # MetalLB objects elsewhere are ignored (fold rule 4)
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    monitor_interval: float = liveness.MONITOR_INTERVAL  # seconds between liveness scans (every replica)
    speaker_ttl: float = liveness.UNSEEN_GRACE  # nodes never seen beating are judged only after this long
    checkpoint_ms: int = 0  # 0: no checkpoints; else the stream-ID ms bucket of rule 4
    checkpoint_file: str | None = None  # JSON lines {"pos", "hash", "kind"} appended per checkpoint
    publish: bool = True
    hash_interval: float = 5.0  # the decisions entry carries the state hash at most this often ("" between)
    verify_interval: float = 5.0  # seconds between stream-regression checks while idle
    backoff_max: float = 5.0


@dataclass(slots=True)
class DecisionBatch:
    """What the leader publishes after a batch; also what a status writer receives."""

    position: Position
    state_hash: str
    changed: dict[str, Any]  # service key -> {"ingress", "pool", "reason", "events"} or None (deleted)
    state: statemod.State


StatusWriter = Callable[[DecisionBatch], None]


class ClusterLog(logmod.EventLog, Protocol):
    """``EventLog`` plus the cluster keys (events.stream.StreamLog, reconciler.runtime.local.LocalCluster)."""

    def read_page(self, after: Position, count: int | None = None) -> list[logmod.Record]: ...
    def last_id(self) -> Position: ...
    def has(self, position: Position) -> bool: ...
    def first(self) -> Position | None: ...
    def deadletter(self, position: Position, reason: str, data: bytes) -> bool: ...
    def publish_decisions(self, position: Position, state_hash: str, payload: bytes) -> Position: ...
    def try_lead(self, replica: str, ttl_ms: int) -> bool: ...
    def release_lead(self, replica: str) -> None: ...
    def alive_speakers(self) -> set[str]: ...
    def trim_below(self, position: Position) -> int: ...
    def epoch(self) -> str: ...
    def entries_added(self) -> int: ...
    def length(self) -> int: ...
    def probe(self, position: Position) -> tuple[str, bool]: ...


class StreamRegressed(RuntimeError):
    pass


def _signature(dec: statemod.ServiceDecision) -> tuple:
    return (tuple(dec.ingress), dec.pool, dec.reason, len(dec.events))


_payload_encoder = msgspec.msgpack.Encoder(order="sorted")


class Daemon:
    def __init__(self, log: ClusterLog, settings: Settings | None = None, *, metrics: Metrics | None = None,
                 status_writer: StatusWriter | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, liveness_log: ClusterLog | None = None) -> None:
        self.log = log
        self.liveness_log = liveness_log if liveness_log is not None else log  # its own short-timeout connection
        self.s = settings or Settings()
        self.metrics = metrics or Metrics()
        self.status_writer = status_writer
        self.clock = clock
        self.wall = wall
        self.state = statemod.new(self.s.lb_class)
        self.pos = ZERO
        self.applied = 0  # entries folded or dead-lettered since boot
        self.dead = 0
        self.leader = False
        self.caught_up = False
        self.regressed: str | None = None
        self._since_snapshot = 0
        self._snapshot_at = clock()
        self._snapshot_wall: float | None = None
        self._lead_checked = -1e18
        self._verify_at = clock()
        self._signatures: dict[str, tuple] = {}
        self._last_bucket: int | None = None
        self._backoff = 0.0
        self._down_since: float | None = None
        self._epoch: str | None = None
        self._leader_since = clock()
        self._lag_at = -1e18
        self._hashed_at = -1e18
        self._lag_base: tuple[int, int] | None = None
        self._booted_from_zero = True
        self.monitor = liveness.Monitor(self.s.speaker_ttl)
        self._alloc_metrics_at = -1e18
        self._liveness_down = False
        self._frozen_at: int | None = None
        self.stop_event = threading.Event()

    # -- start --------------------------------------------------------------------------------------------

    def boot(self) -> None:
        """Load the newest usable snapshot (a bad one is logged and ignored: full replay instead)."""
        snap = self.log.load_snapshot()
        self.state, self.pos = statemod.new(self.s.lb_class), ZERO
        if snap is not None:
            try:
                if snap.version != snapmod.SNAPSHOT_VERSION:
                    raise snapmod.SnapshotError(f"snapshot format {snap.version} is not {snapmod.SNAPSHOT_VERSION}")
                st = snapmod.load(snap.state)
                if st.lb_class != self.s.lb_class:
                    raise snapmod.SnapshotError("snapshot was taken with another --lb-class")
                h = decisions.state_hash(st)
                if snap.state_hash and h != snap.state_hash:
                    raise snapmod.SnapshotError(f"snapshot hash mismatch ({h[:12]} != {snap.state_hash[:12]})")
                self.state, self.pos = st, snap.position
                self._snapshot_wall = self.wall()
                logger.info("loaded snapshot", extra={"pos": str(self.pos), "hash": h})
            except snapmod.SnapshotError as exc:
                logger.warning("ignoring snapshot, replaying from the start", extra={"reason": str(exc)})
        self._signatures = {k: _signature(d) for k, d in self.state.services.items()}
        self._last_bucket = self.pos.ms // self.s.checkpoint_ms if self.s.checkpoint_ms and self.pos != ZERO else None
        self.caught_up = False
        self._booted_from_zero = self.pos == ZERO
        self._lag_base = None
        self._epoch = self.log.epoch()
        self.verify()

    # -- the loop -----------------------------------------------------------------------------------------

    def step(self, timeout_ms: int | None = None) -> int:
        """One iteration: read a page (catch-up) or wait for entries (follow), fold them, do leader duties.
        Returns how many entries were consumed. Raises LogUnavailable (the caller backs off)."""
        if self.regressed is not None:
            if self.clock() - self._verify_at >= self.s.verify_interval:
                self.verify()
            return 0
        now = self.clock()
        if now - self._lead_checked >= self.s.leader_ttl_ms / 3000:
            self._refresh_leadership()
        if not self.caught_up:
            records = self.log.read_page(self.pos, self.s.page)
        else:
            block = self.s.block_ms if timeout_ms is None else timeout_ms
            records = self.log.follow(self.pos, block)
        if records:
            epoch, ours = self.log.probe(self.pos)
            if epoch != self._epoch or not ours:
                # the server restarted or failed over, or entries after ours were trimmed, since the last read:
                # what we just read may not continue our history, so check the position first (rule 3) and
                # read again on the next step
                logger.warning("stream changed under us (restart, failover or trim); checking the position",
                               extra={"pos": str(self.pos)})
                self._epoch = epoch
                self.verify()
                return 0
        if not self.caught_up and len(records) < self.s.page:
            self.caught_up = True
            logger.info("caught up", extra={"pos": str(self.pos if not records else records[-1].position)})
        if records:
            with gcpolicy.few_collections():  # a batch allocates tens of thousands of objects, most of them kept
                self._fold_batch(records)
            if self._frozen_at is None or self.applied - self._frozen_at >= liveness.FREEZE_EVERY:
                # the folded state is long-lived: keep it out of the collector's older-generation passes, which
                # would otherwise walk all of it again and again as it grows (a young pass first, then freeze)
                liveness.freeze_heap()
                self._frozen_at = self.applied
        else:
            if self.clock() - self._verify_at >= self.s.verify_interval:
                self.verify()
        self._measure_lag(idle=not records and self.caught_up)
        if self.leader:
            self._leader_duties(idle=not records)
        self.metrics.snapshot_age.set(self.wall() - self._snapshot_wall if self._snapshot_wall else 0)
        return len(records)

    def _measure_lag(self, idle: bool) -> None:
        """Entries behind the head, from the stream's ``entries-added`` counter: at an idle moment (nothing
        unread) that counter is the baseline; later, lag = added since then - applied since then. Before the
        first idle moment a replica that started from zero uses ``added - applied``; one that started from a
        snapshot reports nothing yet."""
        now = self.clock()
        if not idle and now - self._lag_at < 1.0:
            return
        self._lag_at = now
        added = self.log.entries_added()
        if idle:
            self._lag_base = (added, self.applied)
            self.metrics.lag.set(0)
        elif self._lag_base is not None:
            self.metrics.lag.set(max(0, added - self._lag_base[0] - (self.applied - self._lag_base[1])))
        elif self._booted_from_zero:
            self.metrics.lag.set(max(0, added - self.applied))

    def _fold_batch(self, records: list[logmod.Record]) -> None:
        t0 = time.perf_counter()
        bucket_ms = self.s.checkpoint_ms
        for rec in records:
            if rec.position <= self.pos:
                continue  # a re-read after a reconnect: never fold an entry twice
            if bucket_ms:
                b = rec.position.ms // bucket_ms
                if self._last_bucket is not None and b != self._last_bucket and self.pos != ZERO:
                    self.checkpoint("bucket")
                self._last_bucket = b
            self._apply(rec)
            self.pos = rec.position
            self.applied += 1
            self._since_snapshot += 1
        self.metrics.fold_latency.observe(time.perf_counter() - t0)
        self.metrics.events_applied.inc(len(records))
        self.metrics.position.set(self.pos.ms)
        if self.leader and self.s.publish:
            self._publish()

    def _apply(self, rec: logmod.Record) -> None:
        if rec.version < 1:
            reason = "entry has no valid format version field 'v'"
        elif not rec.data:
            reason = "entry has no event field 'e'"
        else:
            try:
                event = logmod.decode_record(rec)
            except codec.DecodeError as exc:
                reason = str(exc)
            else:
                try:
                    ok, note = fold.screen(self.state, event, self.s.metallb_namespaces)  # fold rule 4
                    if note is not None:
                        self.metrics.screened.labels(reason=note).inc()
                    if ok:
                        fold.apply(self.state, event)
                    else:
                        logger.warning("ignored entry", extra={"pos": str(rec.position), "reason": note})
                    return
                except Exception as exc:  # noqa: BLE001 - a fold bug must not stop the replica (rule 1)
                    reason = f"fold refused the event: {type(exc).__name__}: {exc}"
                    logger.exception("fold error", extra={"pos": str(rec.position)})
        self.log.deadletter(rec.position, reason, rec.data)  # may raise LogUnavailable: nothing counted yet
        self.dead += 1
        self.metrics.dead_letters.inc()
        logger.warning("dead-lettered entry", extra={"pos": str(rec.position), "reason": reason})

    # -- leader -------------------------------------------------------------------------------------------

    def _refresh_leadership(self) -> None:
        was = self.leader
        self.leader = self.log.try_lead(self.s.replica, self.s.leader_ttl_ms)
        self._lead_checked = self.clock()
        self.metrics.leader.set(1 if self.leader else 0)
        if self.leader != was:
            logger.info("leadership " + ("acquired" if self.leader else "lost"), extra={"replica": self.s.replica})
            if self.leader:
                self._leader_since = self.clock()
                # a new leader cannot know what its predecessor published last: its first decisions entry
                # carries every Service (a full resync for status writers), later ones only changes
                self._signatures = {}
            self.state.decided = None  # the change feed starts with the next publication (a full comparison)

    def changed_services(self, undo: dict[str, tuple | None] | None = None) -> dict[str, Any]:
        """Services whose decision changed since the last call (None: deleted). ``undo`` collects the previous
        signatures, so a failed publication can be retried with the same changes.

        Only the Services the fold re-decided since the last call are compared (``state.decided``, the core's
        change feed), so a batch costs what it changed, not O(Services); the first call after boot or after
        taking the lead, when that feed was not on, compares every Service (a full resync)."""
        out: dict[str, Any] = {}
        seen = self._signatures
        current = self.state.services
        keys = self.state.decided
        self.state.decided = set()
        if keys is None:
            keys = current.keys() | seen.keys()
        for key in sorted(keys):
            dec = current.get(key)
            old = seen.get(key)
            if dec is None:
                if key in seen:
                    out[key] = None
                    if undo is not None:
                        undo[key] = old
                    del seen[key]
                continue
            sig = _signature(dec)
            if old != sig:
                new_events = dec.events[old[3]:] if old is not None and old[3] <= len(dec.events) else dec.events
                out[key] = {"ingress": list(dec.ingress), "pool": dec.pool, "reason": dec.reason,
                            "events": [list(e) for e in new_events]}
                seen[key] = sig
                if undo is not None:
                    undo[key] = old
        return out

    def _publish(self) -> None:
        undo: dict[str, tuple | None] = {}
        changed = self.changed_services(undo)
        try:
            self._publish_changes(changed)
        except logmod.LogUnavailable:
            for key, old in undo.items():  # not published: report these changes again next time
                if old is None:
                    self._signatures.pop(key, None)
                else:
                    self._signatures[key] = old
            if self.state.decided is not None:
                self.state.decided.update(undo)
            raise

    def _publish_changes(self, changed: dict[str, Any]) -> None:
        # the state hash costs O(Services) (design.md §4: computed at checkpoints, never per event); the entry
        # carries it when the last one is older than hash_interval, and "" in between
        now = self.clock()
        h = ""
        if now - self._hashed_at >= self.s.hash_interval:
            h = decisions.state_hash(self.state)
            self._hashed_at = now
        self.log.publish_decisions(self.pos, h, _payload_encoder.encode(changed))
        lag_s = self.wall() - self.pos.ms / 1000
        if self.pos.ms:
            self.metrics.decision_latency.observe(max(0.0, lag_s))
        if self.status_writer is not None:
            try:
                self.status_writer(DecisionBatch(self.pos, h, changed, self.state))
            except Exception:  # noqa: BLE001 - write-back failures are reported, never stop the fold
                logger.exception("status writer failed", extra={"pos": str(self.pos)})

    def _leader_duties(self, idle: bool) -> None:
        now = self.clock()
        if self._since_snapshot and (self._since_snapshot >= self.s.snapshot_every
                                     or now - self._snapshot_at >= self.s.snapshot_interval):
            self.save_snapshot()
        if now - self._alloc_metrics_at >= 1.0:
            self._alloc_metrics_at = now
            self.metrics.update_allocator(self.state)

    # -- liveness (every replica) -------------------------------------------------------------------------

    def liveness_tick(self) -> list[schema.Event]:
        """One look at the heartbeat keys: append the changes (runs in the monitor thread; also callable directly).
        Judged only once caught up, so a stale fold does not make a replica append stale changes."""
        if not self.caught_up or self.regressed is not None:
            return []
        if self._frozen_at is None or self.applied - self._frozen_at >= liveness.FREEZE_EVERY:
            liveness.freeze_heap(full=self._frozen_at is None)  # no GC pause may hold this thread (see there)
            self._frozen_at = self.applied
        try:
            alive = self.liveness_log.alive_speakers()
            st = self.state
            nodes = [o.name for o in list(st.objects["Node"].values())]
            changes = self.monitor.changes(alive, nodes, set(st.speakers_down), self.clock())
            if changes:
                self.liveness_log.append(changes)
        except logmod.LogUnavailable as exc:
            if not self._liveness_down:
                logger.warning("liveness monitor: redis unreachable", extra={"error": str(exc)})
                self._liveness_down = True
            return []
        self._liveness_down = False
        for ev in changes:
            kind = type(ev).__struct_config__.tag
            self.metrics.speaker_changes.labels(kind=kind).inc()
            logger.info("speaker liveness change", extra={"event": kind, "node": ev.node})
        return changes

    def save_snapshot(self) -> None:
        h = decisions.state_hash(self.state)
        snap = logmod.Snapshot(self.pos, snapmod.SNAPSHOT_VERSION, snapmod.dump(self.state), h)
        self.log.save_snapshot(snap)
        self._since_snapshot = 0
        self._snapshot_at = self.clock()
        self._snapshot_wall = self.wall()
        self.metrics.snapshots.inc()
        logger.info("snapshot written", extra={"pos": str(self.pos), "hash": h})
        if self.s.retention:
            back = self.log.load_snapshot()
            if back is not None and back.position == snap.position and back.state_hash == h:
                n = self.log.trim_below(snap.position)
                if n:
                    logger.info("trimmed stream", extra={"below": str(snap.position), "entries": n})

    # -- positions ----------------------------------------------------------------------------------------

    def verify(self) -> None:
        """Rule 3: detect a stream that went backwards; recover from a trim that overtook a slow replica."""
        self._verify_at = self.clock()
        if self.pos == ZERO:
            # from the start: only right if the stream still holds every entry ever added
            added, length = self.log.entries_added(), self.log.length()
            if added > length:
                self._set_regressed(f"no usable snapshot, and {added - length} entries were trimmed from the "
                                    "stream: a replay from the start would fold a different history")
            else:
                self._set_regressed(None)
            return
        last = self.log.last_id()
        if last < self.pos:
            self._set_regressed(f"stream's last ID {last} is below the applied position {self.pos}")
            return
        if not self.log.has(self.pos):
            first = self.log.first()
            snap = self.log.load_snapshot()
            if first is not None and first > self.pos and snap is not None and snap.position >= self.pos:
                logger.warning("entries after our position were trimmed; reloading the snapshot",
                               extra={"pos": str(self.pos), "snapshot": str(snap.position)})
                self.boot()
                return
            self._set_regressed(f"applied entry {self.pos} is missing from the stream (first entry: {first})")
            return
        self._set_regressed(None)

    def _set_regressed(self, reason: str | None) -> None:
        if reason is not None and self.regressed is None:
            logger.error("stream went backwards; folding stopped (restore Redis or reset the cluster's keys)",
                         extra={"reason": reason, "pos": str(self.pos)})
        self.regressed = reason
        self.metrics.regressed.set(1 if reason else 0)

    def checkpoint(self, kind: str) -> dict:
        cp = {"pos": str(self.pos), "hash": decisions.state_hash(self.state), "kind": kind,
              "applied": self.applied, "dead": self.dead}
        if self.s.checkpoint_file:
            with open(self.s.checkpoint_file, "a") as f:
                f.write(json.dumps(cp) + "\n")
        logger.info("checkpoint", extra=cp)
        return cp

    # -- running ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, on_idle: Callable[[Daemon], None] | None = None) -> None:
        """Boot and loop until ``stop`` is set (or SIGTERM/SIGINT when installed by the CLI)."""
        stop = stop or self.stop_event
        ticker = self._start_monitor()
        booted = False
        was_idle = False
        while not stop.is_set():
            try:
                if not booted:
                    self.boot()
                    booted = True
                if self._down_since is not None:
                    self.verify()
                    logger.info("redis reachable again", extra={"down_s": round(self.clock() - self._down_since, 3)})
                    self._down_since = None
                n = self.step()
                self.metrics.redis_up.set(1)
                self._backoff = 0.0
                if n == 0 and self.caught_up and not was_idle:
                    if self.s.checkpoint_file:
                        self.checkpoint("idle")
                    if on_idle is not None:
                        on_idle(self)
                was_idle = n == 0 and self.caught_up
            except logmod.LogUnavailable as exc:
                self.metrics.redis_up.set(0)
                if self._down_since is None:
                    self._down_since = self.clock()
                    logger.error("redis unavailable; retrying with backoff", extra={"error": str(exc),
                                                                                    "pos": str(self.pos)})
                self.leader = False
                self.metrics.leader.set(0)
                self._lead_checked = -1e18
                self._backoff = min(self.s.backoff_max, max(0.05, self._backoff * 2))
                stop.wait(self._backoff)
        if ticker is not None:
            ticker.stop()
        self.shutdown()

    def _start_monitor(self) -> liveness.Ticker | None:
        """The liveness monitor's thread (a daemon thread: it never keeps the process alive)."""
        if self.s.monitor_interval <= 0:
            return None
        ticker = liveness.Ticker(self.liveness_tick, self.s.monitor_interval, "liveness-monitor")
        ticker.start()
        return ticker

    def shutdown(self) -> None:
        try:
            if self.leader:
                if self._since_snapshot:
                    self.save_snapshot()
                self.log.release_lead(self.s.replica)
                self.leader = False
        except logmod.LogUnavailable:
            pass
        logger.info("stopped", extra={"pos": str(self.pos), "applied": self.applied})


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, frame) -> None:  # noqa: ARG001
        logger.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def event_kind(event: schema.Event) -> str:
    return type(event).__struct_config__.tag
