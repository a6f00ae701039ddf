"""``streamlb speak --node NAME``: the per-node agent that puts this node's decisions on the wire.

Theory of operation
-------------------
The speaker is a replica (design.md §1, §7): it loads the shared snapshot, replays the tail and follows the event
stream, folding every entry itself, and keeps :class:`reconciler.planning.NodeView` — its own node's plan — up to
date. After each folded batch the view yields ordered effects (withdrawals first); the speaker executes them:

* L2: ``L2Withdraw`` stops answering at once; ``L2Announce`` starts answering and triggers the gratuitous
  schedule (:mod:`fastpath.emit.l2`);
* BGP: one :class:`fastpath.emit.bgp.PeerTransport` per BGPPeer that selects this node; each gets the complete
  set of its prefixes (the session sends the diff, withdrawals first). Peers that stop selecting the node are
  withdrawn from and closed; a changed peer is reconnected.

Rules:

1. The wire keeps the last decisions while the log is unreachable: a Redis outage only stops folding; it is
   reported (``streamlb_speaker_redis_up`` 0, one log line per outage) and the speaker resumes from its position.
2. Bad entries are skipped and counted, never fatal (the leader of ``streamlb run`` dead-letters them).
3. The speaker never appends to the stream (design.md §2). Once caught up and synced it keeps its heartbeat key
   fresh from a thread of its own (:mod:`reconciler.runtime.daemons.liveness`); the ``streamlb run`` replicas turn
   the key's disappearance and return into ``speaker.down`` / ``speaker.up``. On a clean exit it withdraws (BGP
   Cease, L2 stops answering) and deletes the key. With ``keep_on_exit`` it closes BGP without a NOTIFICATION (a
   graceful-restart helper keeps the routes) and leaves the key alive for ``restart_grace_ms``.
   A speaker that folds a ``speaker.down`` for its own node while it runs refreshes its key at once, so the
   replicas append ``speaker.up`` again.
4. A restart re-announces from the current decisions: the first sync of a fresh view announces everything.
5. Its status (the status file and the Redis key ``streamlb:{c}:status:{node}``, design.md §2) carries what
   ``streamlb doctor`` and the leader need and the log never holds: the announcing interfaces with their addresses,
   address conflicts seen by the probes (:mod:`fastpath.emit.probe`) and when each session entered its state. The
   key is written at once when one of those changes and every ``status_publish_interval`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import socket
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from events import codec, log as logmod, schema
from events.position import ZERO, Position
from fastpath.emit.bgp import Listener, PeerSpec, PeerTransport, start_listener
from fastpath.session import Route, SessionConfig, State
from reconciler import effects as effmod
from reconciler import fold, planning, snapshot as snapmod, state as statemod
from reconciler.runtime.daemons.speaker_bfd import SpeakerBfd, peer_timers
from reconciler.runtime.daemons import liveness

logger = logging.getLogger("streamlb.speak")
STARTUP_QUIET = 5.0  # seconds at most the status waits for the first plan's sessions to start (Speaker._starting)


@contextlib.contextmanager
def _building() -> Any:
    """Build long-lived state (a snapshot's decode, the first plan) with the cyclic collector off, then freeze it.

    While millions of objects that all survive are created, every collection rescans what it cannot free: with the
    collector on, the 100,000-Service snapshot decode takes ~6x longer and the first plan ~1.5x. What the phase
    built is then frozen (``gc.freeze``) without a collection: it is long-lived and acyclic (msgspec structs,
    tuples, dicts), refcounting still frees whatever is dropped later, and a full collection of it would hold the
    GIL (and so the session loop) for seconds. The collector is process-wide, so the loop thread collects nothing
    for the phase's duration either; the next collection after it scans only what is created from then on."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_json_encoder = msgspec.json.Encoder(order="sorted")


def _json_sorted(obj: Any) -> bytes:
    return _json_encoder.encode(obj)


def _status_signature(status: dict) -> bytes:
    """The parts of a status whose change is worth a new status key at once (not counters or positions)."""
    peers = {n: (p.get("state"), p.get("last_error"), p.get("advertised")) for n, p in status.get("peers", {}).items()}
    keep = {k: status.get(k) for k in ("plan", "interfaces", "conflicts", "bfd", "log_up")}
    keep["peers"] = peers
    keep["announced"] = (status.get("l2") or {}).get("announced")
    return json.dumps(keep, sort_keys=True, default=str).encode()


@dataclass
class SpeakerSettings:
    node: str
    page: int = 1000
    block_ms: int = 500
    heartbeat_ttl_ms: int = liveness.HEARTBEAT_TTL_MS
    heartbeat_interval_ms: int = liveness.HEARTBEAT_INTERVAL_MS
    restart_grace_ms: int = liveness.RESTART_GRACE_MS  # keep_on_exit: how long the key outlives the process
    keep_on_exit: bool = False
    lb_class: str | None = None
    metallb_namespaces: tuple[str, ...] = ("metallb-system",)  # MetalLB objects elsewhere are ignored (fold rule 4)
    secrets_dir: str | None = None
    status_file: str | None = None
    status_interval: float = 1.0
    backoff_max: float = 5.0
    bgp_backoff_max: float = 120.0
    bgp_listen_port: int | None = None  # accept peers' own connections on this port (collisions: RFC 4271 §6.8)
    l2: bool = True
    bgp: bool = True
    announce_liveness: bool = True
    status_ttl_ms: int = 60_000  # the status key outlives the heartbeat, so doctor sees what a dead speaker last said
    status_publish_interval: float = 5.0  # seconds between status keys when nothing changed
    address_interval: float = 10.0  # seconds between reads of the interfaces' addresses


class SpeakerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.redis_up = Gauge("streamlb_speaker_redis_up", "1 while the event log answers.", registry=r)
        self.events_applied = Counter("streamlb_speaker_events_applied", "Entries folded by this speaker.",
                                      registry=r)
        self.events_skipped = Counter("streamlb_speaker_events_skipped", "Bad entries skipped.", registry=r)
        self.events_screened = Counter("streamlb_speaker_events_screened", "Entries in an unexpected form, by "
                                       "reason (see streamlb_events_screened).", ["reason"], registry=r)
        self.l2_announced = Gauge("streamlb_speaker_l2_announced_ips", "IPs this node answers for.", registry=r)
        self.l2_gratuitous = Gauge("metallb_layer2_gratuitous_sent", "Gratuitous ARP/NA packets sent.", registry=r)
        self.l2_requests = Gauge("metallb_layer2_requests_received", "ARP/NDP requests received.", registry=r)
        self.l2_responses = Gauge("metallb_layer2_responses_sent", "ARP/NDP responses sent.", registry=r)
        self.bgp_up = Gauge("metallb_bgp_session_up", "1 while the BGP session is Established.", ["peer"],
                            registry=r)
        self.bgp_prefixes = Gauge("metallb_bgp_announced_prefixes_total", "Prefixes advertised to the peer.",
                                  ["peer"], registry=r)
        self.bgp_updates = Gauge("metallb_bgp_updates_total", "UPDATE messages sent to the peer.", ["peer"],
                                 registry=r)
        self.bgp_notifications = Gauge("streamlb_speaker_bgp_notifications_sent", "NOTIFICATIONs sent.", ["peer"],
                                       registry=r)
        self.heartbeat_gap = Histogram(
            "streamlb_speaker_heartbeat_interval_seconds", "Time between two acknowledged heartbeat refreshes.",
            registry=r, buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
        )
        self.redis_up.set(0)

    def serve(self, port: int, addr: str = "0.0.0.0"):
        return start_http_server(port, addr=addr, registry=self.registry)


def router_id_for(node: str) -> str:
    """MetalLB's fallback router ID: CRC-32 (IEEE) of the node name, little-endian (metallb-behaviour.md §6.5)."""
    c = zlib.crc32(node.encode())
    return socket.inet_ntoa(c.to_bytes(4, "little"))


@dataclass
class _Peer:
    obj: schema.BGPPeer
    transport: PeerTransport
    desired: int = 0  # prefixes in the table handed to the session
    packing: Any = None  # the future of the table packed ahead of the first connection


@dataclass
class _Delta:
    """What one planning step (in the worker thread) hands to the event loop."""

    effects: list
    selected: dict[str, schema.BGPPeer]  # BGPPeers that select this node
    routes: dict[str, dict[str, Route]]  # the complete table of each peer whose table changed
    bfd_profiles: dict[str, Any]


class Speaker:
    def __init__(
        self,
        log: Any,
        settings: SpeakerSettings,
        *,
        l2: Any = None,
        metrics: SpeakerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        socket_factory: Callable[[int], socket.socket] | None = None,
        prober: Any = None,
        addresses: Callable[[list[str]], dict[str, list[str]]] | None = None,
        wall: Callable[[], float] = time.time,
        heartbeat_log: Any = None,
    ) -> None:
        self.log = log
        self.prober = prober
        self._addresses = addresses
        self.wall = wall
        self._iface_addrs: dict[str, list[str]] = {}
        self._addrs_at = -1e18
        self._addrs_busy = False
        self._published: tuple[bytes, float] | None = None  # (signature, when) of the last status key
        self._publishing = False
        self._publish_error: str | None = None
        self._peer_since: dict[str, tuple[str, float]] = {}
        self._bfd_since: dict[str, tuple[str, float]] = {}
        self.s = settings
        self.l2 = l2
        self.metrics = metrics or SpeakerMetrics()
        self.clock = clock
        self._socket_factory = socket_factory
        self.state = statemod.new(settings.lb_class)
        self.pos: Position = ZERO
        self.view = planning.NodeView(settings.node)
        self.peers: dict[str, _Peer] = {}
        self.listener: Listener | None = None
        self.redis_up = False
        self.skipped = 0
        self.applied = 0
        self.last_effects_at: float | None = None
        self.on_effects: Callable[[list, float], None] | None = None
        self._down_since: float | None = None
        self._status_at = -1e18
        self._booted = False
        self.bfd = SpeakerBfd(self.metrics.registry, self._drop_bgp)
        self._routes_of: dict[str, dict[str, Route]] = {}  # per selected peer: its table (worker thread's)
        self._stopping = False
        self._plan_json: tuple[Any, list | dict] | None = None  # (plan object, its JSON form)
        self._status_busy = False
        self._started_at: float | None = None  # when the first plan was applied (see _starting)
        self.heartbeat: liveness.Heartbeat | None = None
        hb_log = heartbeat_log if heartbeat_log is not None else log
        if settings.announce_liveness and hasattr(hb_log, "heartbeat"):
            link_ok = None
            if l2 is not None:  # a node cut off from its LAN stops beating (README "Failure detection")
                link_ok = liveness.LinkWatch(self._l2_interfaces).check
            self.heartbeat = liveness.Heartbeat(
                hb_log, settings.node, interval_ms=settings.heartbeat_interval_ms, ttl_ms=settings.heartbeat_ttl_ms,
                link_ok=link_ok, on_beat=self.metrics.heartbeat_gap.observe)
        self._frozen_at = 0
        self._yielded: set[str] = set()  # L2 IPs given up while cut off from the log (another node claimed them)
        responder = getattr(l2, "responder", None)
        if self.heartbeat is not None and responder is not None and hasattr(responder, "on_claim"):
            responder.on_claim = self._claimed

    # --- log side ---------------------------------------------------------------------------------------------

    def _boot(self) -> None:
        snap = self.log.load_snapshot() if hasattr(self.log, "load_snapshot") else None
        self.state, self.pos = statemod.new(self.s.lb_class), ZERO
        if snap is not None:
            try:
                if snap.version != snapmod.SNAPSHOT_VERSION:
                    raise snapmod.SnapshotError(f"snapshot format {snap.version}")
                with _building():
                    st = snapmod.load(snap.state)
                if st.lb_class != self.s.lb_class:
                    raise snapmod.SnapshotError("snapshot was taken with another --lb-class")
                self.state, self.pos = st, snap.position
                logger.info("loaded snapshot", extra={"pos": str(self.pos)})
            except snapmod.SnapshotError as exc:
                logger.warning("ignoring snapshot", extra={"reason": str(exc)})
        self.view = planning.NodeView(self.s.node)
        self._booted = True

    def _read(self, caught_up: bool) -> list[logmod.Record]:
        """Blocking read (runs in a worker thread)."""
        if not self._booted:
            self._boot()
        if hasattr(self.log, "read_page") and not caught_up:
            return self.log.read_page(self.pos, self.s.page)
        block = self.s.block_ms
        recs = self.log.follow(self.pos, block)
        if not recs and not hasattr(self.log, "read_page"):
            time.sleep(block / 1000)  # a file log does not block
        return recs

    def _fold(self, records: list[logmod.Record]) -> None:
        for rec in records:
            if rec.position <= self.pos:
                continue
            try:
                event = logmod.decode_record(rec)
                ok, note = fold.screen(self.state, event, self.s.metallb_namespaces)  # fold rule 4
                if note is not None:
                    self.metrics.events_screened.labels(reason=note).inc()
                if ok:
                    fold.apply(self.state, event)
                    if isinstance(event, schema.SpeakerDown):
                        self._folded_own_down(event)
                self.applied += 1
                self.metrics.events_applied.inc()
            except (codec.DecodeError, Exception) as exc:  # noqa: BLE001 - rule 2
                self.skipped += 1
                self.metrics.events_skipped.inc()
                logger.warning("skipped entry", extra={"pos": str(rec.position), "reason": str(exc)})
            self.pos = rec.position

    def _work(self, caught_up: bool, synced: bool) -> tuple[list[logmod.Record], bool, _Delta | None]:
        """One step off the event loop (a worker thread): read, fold and, once caught up, plan this node.

        Everything that costs O(Services) — loading the snapshot, folding the catch-up, building the plan, the
        node's first full plan, the per-peer route tables — happens here, so the session loop only executes the
        resulting effects and never waits behind planning (design.md §7)."""
        records = self._read(caught_up)
        if records:
            self._fold(records)
            if not synced:
                # catching up: the page's survivors join the frozen heap (one young collection of this page only),
                # so no collection ever rescans the state folded so far
                liveness.freeze_heap()
        if not caught_up and len(records) < self.s.page:
            caught_up = True
        delta = None
        if caught_up and (records or not synced):
            if synced:
                if self.view.primed:  # the first event after a primed first plan: the whole plan, as below
                    with _building():
                        delta = self._plan_delta()
                else:
                    delta = self._plan_delta()
            else:  # the first plan: this node's table only when it can (NodeView.prime), else the whole plan
                with _building():
                    delta = self._first_delta()
        elif synced and self.view.primed and not self._starting(self.clock()):
            # the sessions are up with the primed table: now build the plan and the view's indexes (O(Services)),
            # so the next event is planned incrementally; the diff against the primed table is empty
            with _building():
                delta = self._plan_delta()
        return records, caught_up, delta

    def _first_delta(self) -> _Delta:
        effs = self.view.prime(self.state)
        if effs is None:
            return self._plan_delta()
        info = self.view.info
        selected: dict[str, schema.BGPPeer] = {}
        if self.s.bgp and info is not None and info.problem is None:
            selected = self._peers_named(set(info.peers))
        return self._plan_delta(effs, selected)

    def _plan_delta(self, effs: list | None = None, selected: dict[str, schema.BGPPeer] | None = None) -> _Delta:
        if effs is None:
            effs = self.view.sync(self.state)
            selected = self._selected_peers() if self.s.bgp else {}
        assert selected is not None
        touched = {e.peer for e in effs if isinstance(e, (effmod.BgpAdvertise, effmod.BgpWithdraw))}
        routes: dict[str, dict[str, Route]] = {}
        for name in selected:
            if name in touched or name not in self._routes_of:
                routes[name] = {}
        if routes:
            for (peer, prefix), (lp, cs) in self.view.current.bgp.items():
                if peer in routes:
                    routes[peer][prefix] = Route(prefix, local_pref=lp, communities=tuple(cs))
        for name in list(self._routes_of):
            if name not in selected:
                del self._routes_of[name]
        self._routes_of.update(routes)
        cfg = self.state.config
        bfd_profiles = {b.name: b for b in (cfg.bfd_profiles if cfg is not None else ())}
        return _Delta(effs, selected, routes, bfd_profiles)

    def _l2_interfaces(self) -> list[str]:
        return list(getattr(getattr(self.l2, "responder", None), "ifaces", None) or ())

    def _folded_own_down(self, event: schema.SpeakerDown) -> None:
        """A live speaker reading that its node is down (its key expired during a stall, or a stale duplicate
        from a replica) re-asserts itself: refresh the key now; the replicas then append ``speaker.up``."""
        if event.node == self.s.node and self.heartbeat is not None and self.heartbeat.running:
            logger.warning("the log says this speaker is down while it runs; refreshing the heartbeat",
                           extra={"node": self.s.node})
            self.heartbeat.beat_soon()

    def _claimed(self, ip: str, iface: str, mac: bytes) -> None:
        """Another host announced an IP this node answers for. While this speaker's heartbeat has expired (it is
        cut off from Redis, so the replicas have declared it down and moved its IPs), that is the new owner: stop
        answering for the IP, or two nodes would answer. Otherwise (Redis reachable, or unreachable for everyone
        and no one took over) keep answering; ``streamlb doctor`` reports address conflicts."""
        if ip in self._yielded or self.heartbeat is None or not self.heartbeat.running:
            return
        if not self.heartbeat.expired():
            return
        ifaces = getattr(getattr(self.l2, "responder", None), "ifaces", {}) or {}
        if any(i.mac == mac for i in ifaces.values()):
            return  # our own burst, heard on another interface of this node
        logger.warning("cut off from the log and another node claims this IP: no longer answering for it",
                       extra={"ip": ip, "interface": iface, "claimed_by": mac.hex(":")})
        self._yielded.add(ip)
        self.l2.withdraw(ip)

    def _restore_yielded(self) -> None:
        """Back on the log and caught up: IPs given up while cut off that the plan still gives this node (nobody
        had taken over after all) are announced again; the others were withdrawn by the plan meanwhile."""
        if not self._yielded or self.heartbeat is None or self.heartbeat.expired():
            return
        for ip in sorted(self._yielded, key=effmod.ip_key):
            ifaces = self.view.current.l2.get(ip)
            if ifaces is not None and self.l2 is not None:
                logger.info("announcing a yielded IP again", extra={"ip": ip})
                self.l2.announce(ip, tuple(ifaces))
        self._yielded.clear()

    # --- wire side --------------------------------------------------------------------------------------------

    def sync(self) -> list:
        """Plan and bring the wire in line with the node's plan at once (tests; the daemon loop plans in a worker
        thread with :meth:`_work` and applies the result with :meth:`_apply`); returns the effects executed."""
        delta = self._plan_delta()
        self._apply(delta)
        return delta.effects

    def _apply(self, delta: _Delta) -> list:
        """Execute a planned delta on the event loop: L2 effects, BGP peers and their route tables."""
        effs = delta.effects
        if self.l2 is not None:
            for e in effs:
                if isinstance(e, (effmod.L2Withdraw, effmod.L2Announce)):
                    self._yielded.discard(e.ip)
            for e in effs:
                if isinstance(e, effmod.L2Withdraw):
                    self.l2.withdraw(e.ip)
            for e in effs:
                if isinstance(e, effmod.L2Announce):
                    self.l2.announce(e.ip, tuple(e.interfaces))
        if self.s.bgp:
            self._sync_peers(delta)
        if effs:
            self.last_effects_at = self.clock()
            if self.on_effects is not None:
                self.on_effects(effs, self.last_effects_at)
        return effs

    def _selected_peers(self) -> dict[str, schema.BGPPeer]:
        plan = planning.ensure(self.state)
        info = plan.nodes.get(self.s.node)
        cfg = self.state.config
        if info is None or cfg is None or info.problem is not None:
            names: set[str] = set()
        else:
            names = set(info.peers)
        return self._peers_named(names)

    def _peers_named(self, names: set[str]) -> dict[str, schema.BGPPeer]:
        cfg = self.state.config
        return {p.name: p for p in (cfg.peers if cfg is not None else ()) if p.name in names}

    def _password(self, peer: schema.BGPPeer) -> str | None:
        if not (peer.password_set or peer.password_secret) or not self.s.secrets_dir:
            return None
        base = Path(self.s.secrets_dir)
        cands = []
        if peer.password_secret is not None:
            cands.append(base / peer.password_secret.name / "password")
        cands.append(base / peer.name)
        for c in cands:
            if c.is_file():
                return c.read_text().strip()
        logger.warning("no password found for peer", extra={"peer": peer.name})
        return None

    def _transport(self, peer: schema.BGPPeer) -> PeerTransport:
        hold, ka, connect_retry, connect_timeout = peer_timers(peer)
        local_as = peer.local_asn or peer.my_asn
        cfg = SessionConfig(
            local_as=local_as,
            peer_as=peer.peer_asn,
            router_id=peer.router_id or "",
            hold_time=hold,
            keepalive_time=ka,
            graceful_restart=True,
            restarting=True,
            backoff_max=self.s.bgp_backoff_max,
            connect_retry=connect_retry,
        )
        spec = PeerSpec(
            name=peer.name,
            address=peer.peer_address,
            port=peer.peer_port or 179,
            source_address=peer.source_address or None,
            password=self._password(peer),
            ebgp_multihop=peer.ebgp_multi_hop,
            connect_timeout=connect_timeout,
        )
        kw = {"socket_factory": self._socket_factory} if self._socket_factory else {}
        t = PeerTransport(spec, cfg, clock=self.clock, **kw)
        t.session.router_id_fallback = router_id_for(self.s.node)
        if self.listener is not None:
            self.listener.add(t)
        return t

    def _sync_peers(self, delta: _Delta) -> None:
        selected = delta.selected
        for name in sorted(set(self.peers) - set(selected)):
            p = self.peers.pop(name)
            if self.listener is not None:
                self.listener.remove(p.transport)
            asyncio.get_running_loop().create_task(p.transport.stop(withdraw=True))
            logger.info("peer deselected", extra={"peer": name})
        for name in sorted(selected):
            obj = selected[name]
            p = self.peers.get(name)
            if p is not None and p.obj != obj:
                asyncio.get_running_loop().create_task(p.transport.stop(withdraw=True))
                p = None
            routes = delta.routes.get(name)
            if p is None:
                if routes is None:
                    routes = self._routes_of.get(name, {})
                t = self._transport(obj)
                p = self.peers[name] = _Peer(obj, t, len(routes))
                t.set_routes(routes.values())
                self._start_peer(name, p)
            elif routes is not None:
                p.desired = len(routes)
                p.transport.set_routes(routes.values())
        self.bfd.sync(selected, delta.bfd_profiles)

    def _start_peer(self, name: str, p: _Peer) -> None:
        """Start a new session once its initial table is packed: the packing (hundreds of ms for 100,000
        prefixes) runs in a worker thread before the SYN, for the local address the route to the peer gives;
        the session is not on the loop yet, so nothing else touches it meanwhile."""
        t = p.transport
        local = self._predict_local(t.spec)
        loop = asyncio.get_running_loop()

        def start(fut: asyncio.Future | None = None) -> None:
            if fut is not None and not fut.cancelled() and fut.exception() is not None:
                logger.warning("could not pack the table ahead", extra={"peer": name, "error": str(fut.exception())})
            if self.peers.get(name) is p and not self._stopping:
                t.start()
                logger.info("peer session started", extra={"peer": name, "address": p.obj.peer_address})

        if local is None or p.desired == 0:
            start()
            return
        p.packing = loop.run_in_executor(None, t.session.prepack, local)
        p.packing.add_done_callback(start)

    def _starting(self, now: float) -> bool:
        """Are the sessions of the first plan still starting? Then the status (the plan in JSON: 100,000 entries at
        scale, CPU work in a worker thread that holds the GIL in long stretches) waits: a peer's first table is
        being packed (it stands between the plan and the SYN), or a session is on its way to Established (the
        router's OPEN is answered at once). A peer that does not come up delays the status by STARTUP_QUIET at
        most."""
        if self._started_at is None or now - self._started_at > STARTUP_QUIET:
            return False
        for p in self.peers.values():
            if p.packing is not None and not p.packing.done():
                return True
            if p.transport.session.state is not State.ESTABLISHED:
                return True
        return False

    def _predict_local(self, spec: PeerSpec) -> str | None:
        """The local address a connection to the peer will have: its source address, else the kernel's choice
        for the route to it (a UDP connect sends nothing). None when sockets come from a factory (tests)."""
        if spec.source_address:
            return spec.source_address
        if self._socket_factory is not None:
            return None
        fam = socket.AF_INET6 if ":" in spec.address else socket.AF_INET
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as u:
                u.connect((spec.address, spec.port))
                return u.getsockname()[0]
        except OSError:
            return None

    def _drop_bgp(self, name: str, reason: str) -> None:
        p = self.peers.get(name)
        if p is not None:
            p.transport.drop(reason)

    # --- status -----------------------------------------------------------------------------------------------

    def status(self, with_plan: bool = True) -> dict:
        peers = {}
        for name, p in sorted(self.peers.items()):
            s = p.transport.session
            peers[name] = {
                "address": p.obj.peer_address,
                "state": s.state.value,
                "last_error": s.last_error,
                "advertised": len(s.advertised),
                "desired": p.desired,
                "counters": dict(vars(s.counters)),
                "collisions": p.transport.collisions,
            }
        l2: dict[str, Any] = {}
        if self.l2 is not None:
            c = self.l2.responder.counters
            l2 = {
                "announced": sorted(self.l2.responder.owned, key=effmod.ip_key),
                "interfaces": sorted(self.l2.responder.ifaces),
                "requests_received": c.requests_received,
                "responses_sent": c.responses_sent,
                "gratuitous_sent": c.gratuitous_sent,
                "dropped": dict(sorted(c.dropped.items())),
            }
        out = {
            "node": self.s.node,
            "position": str(self.pos),
            "applied": self.applied,
            "skipped": self.skipped,
            "log_up": self.redis_up,
            "plan": self.view.current.to_json() if with_plan else None,
            "l2": l2,
            "peers": peers,
            "bfd": self.bfd.status(),
            "heartbeat": self.heartbeat.status() if self.heartbeat is not None else None,
        }
        self._diagnostics(out)
        return out

    # --- diagnostics in the status (interfaces, conflicts, since-times; read by streamlb doctor) ------------------

    def _diagnostics(self, out: dict) -> None:
        now = self.wall()
        for name, p in out["peers"].items():
            seen = self._peer_since.get(name)
            if seen is None or seen[0] != p["state"]:
                seen = self._peer_since[name] = (p["state"], now)
            p["since"] = _iso(seen[1])
        for name in [n for n in self._peer_since if n not in out["peers"]]:
            del self._peer_since[name]
        bfd = out.get("bfd")
        if isinstance(bfd, dict):  # BFD sessions by peer name (when BFD runs): when each entered its state
            for name, b in bfd.items():
                if isinstance(b, dict) and "state" in b:
                    seen = self._bfd_since.get(name)
                    if seen is None or seen[0] != b["state"]:
                        seen = self._bfd_since[name] = (b["state"], now)
                    b["since"] = _iso(seen[1])
            for name in [n for n in self._bfd_since if n not in bfd]:
                del self._bfd_since[name]
        ifaces = []
        if self.l2 is not None:
            for name, i in sorted(self.l2.responder.ifaces.items()):
                ifaces.append({"name": name, "mac": ":".join(f"{b:02x}" for b in i.mac),
                               "addresses": list(self._iface_addrs.get(name, ()))})
        out["interfaces"] = ifaces
        out["interfaces_known"] = self._addresses is not None and self._addrs_at > -1e18
        out["conflicts"] = self.prober.conflicts() if self.prober is not None else []
        out["conflict_probe"] = self.prober is not None
        out["conflict_probe_error"] = getattr(self.prober, "last_error", None)
        out["written_at"] = _iso(now)

    def _refresh_addresses(self, loop: asyncio.AbstractEventLoop) -> None:
        """Re-read the announcing interfaces' addresses now and then, off the event loop (netlink is blocking)."""
        if self._addresses is None or self.l2 is None or self._addrs_busy:
            return
        now = self.clock()
        if now - self._addrs_at < self.s.address_interval:
            return
        self._addrs_busy = True
        names = sorted(self.l2.responder.ifaces)

        def done(fut: asyncio.Future) -> None:
            self._addrs_busy = False
            self._addrs_at = self.clock()
            try:
                self._iface_addrs = fut.result()
            except Exception as exc:  # noqa: BLE001 - a diagnostic; never fatal
                logger.warning("cannot read interface addresses", extra={"error": str(exc)})

        loop.run_in_executor(None, self._addresses, names).add_done_callback(done)

    def _publish_status(self, loop: asyncio.AbstractEventLoop, status: dict, sig: bytes | None = None,
                        payload: bytes | None = None) -> None:
        """Put the status into ``streamlb:{c}:status:{node}`` when it changed, else every publish interval
        (SET PX in a worker thread; a Redis outage only delays it). ``sig``/``payload``: already encoded."""
        if not hasattr(self.log, "publish_status") or self._publishing:
            return
        if sig is None:
            sig = _status_signature(status)
        now = self.clock()
        if self._published is not None and self._published[0] == sig and \
                now - self._published[1] < self.s.status_publish_interval:
            return
        if payload is None:
            payload = json.dumps(status, sort_keys=True).encode()
        self._publishing = True

        def put() -> None:
            self.log.publish_status(self.s.node, payload, self.s.status_ttl_ms)

        def done(fut: asyncio.Future) -> None:
            self._publishing = False
            try:
                fut.result()
                self._published = (sig, now)
                self._publish_error = None
            except logmod.LogUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001 - e.g. NOPERM: reported once per distinct error, never fatal
                if str(exc) != self._publish_error:
                    logger.warning("cannot publish the status key", extra={"error": str(exc)})
                self._publish_error = str(exc)

        loop.run_in_executor(None, put).add_done_callback(done)

    def _status_off_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The status file and key: the cheap parts are read here, on the loop; the node's plan in JSON (100,000
        entries at scale), the encodings and the file write happen in a worker thread (the plan object is never
        changed once the view published it, so reading it there is safe)."""
        status = self.status(with_plan=False)
        plan = self.view.current
        self._status_busy = True

        def work() -> tuple[dict, bytes, bytes]:
            # msgspec's encoder: the C json encoder would hold the GIL (and so the loop) ~10x longer per status
            cached = self._plan_json
            if cached is None or cached[0] is not plan:
                pj = plan.to_json()
                cached = self._plan_json = (plan, pj, hashlib.sha256(_json_sorted(pj)).digest())
            sig = _status_signature(status) + cached[2]
            status["plan"] = cached[1]
            payload = _json_sorted(status)
            self._write_status_bytes(msgspec.json.format(payload, indent=1))
            return status, sig, payload

        def done(fut: asyncio.Future) -> None:
            self._status_busy = False
            try:
                st, sig, payload = fut.result()
            except OSError as exc:
                logger.warning("cannot write status file", extra={"error": str(exc)})
                return
            self._publish_status(loop, st, sig, payload)

        loop.run_in_executor(None, work).add_done_callback(done)

    def _refresh_metrics(self) -> None:
        m = self.metrics
        m.redis_up.set(1 if self.redis_up else 0)
        if self.l2 is not None:
            c = self.l2.responder.counters
            m.l2_announced.set(len(self.l2.responder.owned))
            m.l2_gratuitous.set(c.gratuitous_sent)
            m.l2_requests.set(c.requests_received)
            m.l2_responses.set(c.responses_sent)
        for name, p in self.peers.items():
            s = p.transport.session
            m.bgp_up.labels(name).set(1 if s.state.value == "Established" else 0)
            m.bgp_prefixes.labels(name).set(len(s.advertised))
            m.bgp_updates.labels(name).set(s.counters.updates_out)
            m.bgp_notifications.labels(name).set(s.counters.notifications_out)
        self.bfd.refresh_metrics()

    def _write_status(self, status: dict | None = None) -> None:
        if not self.s.status_file:
            return
        # msgspec: the stdlib encoder takes seconds over a 100,000-entry plan (this runs on exit, on the loop)
        self._write_status_bytes(msgspec.json.format(
            _json_sorted(status if status is not None else self.status()), indent=1))

    def _write_status_bytes(self, data: bytes) -> None:
        if not self.s.status_file:
            return
        path = Path(self.s.status_file)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    # --- main loop --------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        if self.l2 is not None:
            self.l2.start()
        await self._listen()
        if self.prober is not None:
            self.prober.start()
        caught_up = False
        synced = False
        backoff = 0.0
        read: asyncio.Future | None = None
        forbidden: Exception | None = None
        while not stop.is_set():
            if self.heartbeat is not None and self.heartbeat.forbidden is not None:
                forbidden = self.heartbeat.forbidden  # the wrong Redis user: withdraw, then report and stop
                break
            now = self.clock()
            if now - self._status_at >= self.s.status_interval and not self._status_busy and not self._starting(now):
                self._status_at = now
                self._refresh_metrics()
                self._refresh_addresses(loop)
                self._status_off_loop(loop)
            if read is None:
                read = loop.run_in_executor(None, self._work, caught_up, synced)
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({read, stopper}, timeout=self.s.status_interval,
                                         return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if read not in done:
                continue
            fut, read = read, None
            try:
                records, caught_up, delta = fut.result()
            except logmod.LogUnavailable as exc:
                if self._down_since is None:
                    self._down_since = self.clock()
                    logger.error("event log unreachable; keeping the last decisions on the wire",
                                 extra={"error": str(exc), "pos": str(self.pos)})
                self.redis_up = False
                self.metrics.redis_up.set(0)
                backoff = min(self.s.backoff_max, max(0.1, backoff * 2))
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                continue
            if self._down_since is not None:
                logger.info("event log reachable again",
                            extra={"down_s": round(self.clock() - self._down_since, 3), "pos": str(self.pos)})
                self._down_since = None
            self.redis_up = True
            self.metrics.redis_up.set(1)
            backoff = 0.0
            # during catch-up only fold (no intermediate states on the wire); afterwards apply every batch's plan
            if delta is not None:
                if not synced:
                    logger.info("plan ready", extra={"pos": str(self.pos), "applied": self.applied,
                                                     "prefixes": sum(len(r) for r in delta.routes.values())})
                self._apply(delta)
                if not synced:
                    self._started_at = self.clock()
                synced = True
                if self.heartbeat is not None and not self.heartbeat.running:
                    # only now: a node is "up" once its speaker serves the current decisions; the heap's one full
                    # collection happens before the first beat (liveness.freeze_heap)
                    liveness.freeze_heap(full=True)
                    self._frozen_at = self.applied
                    self.heartbeat.start()
                elif self.applied - self._frozen_at >= liveness.FREEZE_EVERY:
                    liveness.freeze_heap()
                    self._frozen_at = self.applied
            if caught_up and self._yielded:
                self._restore_yielded()
        if read is not None:
            read.cancel()
        self._stopping = True
        await self.shutdown()
        if forbidden is not None:
            raise forbidden

    async def _listen(self) -> None:
        """Accept the peers' own connections (routers configured to connect out), if asked to; a port that cannot
        be bound is reported and the speaker runs without (it still connects out)."""
        port = self.s.bgp_listen_port
        if not self.s.bgp or not port:
            return
        kw = {"socket_factory": self._socket_factory} if self._socket_factory else {}
        for host in ("::", "0.0.0.0"):
            try:
                self.listener = await start_listener(host, port, **kw)
                logger.info("accepting BGP connections", extra={"port": port, "address": host})
                return
            except OSError as exc:
                error = exc
        logger.warning("cannot listen for BGP connections; connecting out only",
                       extra={"port": port, "error": str(error)})

    async def shutdown(self) -> None:
        keep = self.s.keep_on_exit
        if self.listener is not None:
            self.listener.close()
        await asyncio.gather(*(p.transport.stop(withdraw=not keep) for p in self.peers.values()),
                             return_exceptions=True)
        if self.prober is not None:
            await self.prober.stop()
        await self.bfd.stop()  # AdminDown: the routers must not read our exit as a path failure
        if self.l2 is not None:
            await self.l2.stop()
        if self.heartbeat is not None and self.heartbeat.running:
            # no key: the replicas append speaker.down at their next look; keep_on_exit: a restart grace
            await asyncio.get_running_loop().run_in_executor(
                None, self.heartbeat.stop, self.s.restart_grace_ms if keep else None)
        self._refresh_metrics()
        try:
            self._write_status()
        except OSError:
            pass
        logger.info("stopped", extra={"pos": str(self.pos), "keep_on_exit": keep})

