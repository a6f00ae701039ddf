"""``streamlb watch``: the Kubernetes producer. Lists and watches the cluster and appends canonical events.

Theory of operation
-------------------
One thread per watched resource runs the list/watch protocol against the API server (through the ``kubernetes``
client's :class:`ApiClient`, so in-cluster config, kubeconfig, TLS and tokens behave as everywhere else) and puts
what it sees on one queue. One loop takes from the queue, translates objects with :mod:`events.kube`, drops what
would not change the log, appends the rest (only while it holds the Lease) and checkpoints.

Rules:

1. The log is the truth about what was appended. The watcher keeps a *ledger*: for every object it appended, a
   fingerprint of the last event for it. An event whose fingerprint equals the ledger's is not appended again,
   so a re-list (after ``410 Gone``, a restart or a leadership change) appends only real differences, and a
   DELETED for an object the ledger does not hold appends nothing.
2. A re-list is diffed against the ledger: objects listed and changed are upserted, objects of that resource in
   the ledger but not listed are deleted (the watcher missed their DELETED while it was away).
3. Resume: the checkpoint (``--state FILE``) holds the ledger, the resourceVersion per resource and the log head
   after the last append. At start, if the log head still equals the checkpoint's, nothing was appended since, so
   the watches resume from the stored resourceVersions (no re-list). Otherwise (the process died between append
   and checkpoint, or another replica appended as leader) the ledger is brought up to date from the log records
   after the checkpoint's head (or from the snapshot's objects when the snapshot is newer: the stream may be
   trimmed below it), and every resource is re-listed and diffed (rule 2). Either way nothing is appended twice
   and nothing is missed.
4. ``BOOKMARK`` events only advance the resourceVersion. A watch ``ERROR`` with code 410 (or an HTTP 410) means the
   resourceVersion is too old: the resource is re-listed (rule 2). Other errors back off and retry the watch.
5. Secrets are never listed or watched; a BGPPeer's password is reduced to ``password_set`` by the translation.
6. Only the holder of the Lease appends. A replica that loses the Lease stops its watches at once and, if it wins
   again, starts over from rule 3.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from events import codec, kube, log as evlog, schema
from events.position import ZERO, Position
from reconciler.runtime.kube import api as kube_api

logger = logging.getLogger("streamlb.watch")


@dataclass(frozen=True, slots=True)
class Resource:
    """One list/watch endpoint."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespace: str = ""  # watched in this namespace only (MetalLB objects); "" = cluster-wide
    namespaced_in_metallb: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{ns}{self.plural}.{self.group or 'core'}"

    def path(self) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        ns = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{base}{ns}/{self.plural}"


CLUSTER_RESOURCES = (
    Resource("", "v1", "services", "Service"),
    Resource("", "v1", "nodes", "Node"),
    Resource("", "v1", "namespaces", "Namespace"),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
)
METALLB_RESOURCES = (
    ("v1beta1", "ipaddresspools", "IPAddressPool"),
    ("v1beta1", "l2advertisements", "L2Advertisement"),
    ("v1beta1", "bgpadvertisements", "BGPAdvertisement"),
    ("v1beta2", "bgppeers", "BGPPeer"),
    ("v1beta1", "communities", "Community"),
    ("v1beta1", "bfdprofiles", "BFDProfile"),
)


def resources(metallb_namespaces: tuple[str, ...] = ("metallb-system",)) -> tuple[Resource, ...]:
    out = list(CLUSTER_RESOURCES)
    for ns in metallb_namespaces:
        for version, plural, kind in METALLB_RESOURCES:
            out.append(Resource("metallb.io", version, plural, kind, namespace=ns, namespaced_in_metallb=True))
    return tuple(out)


RESOURCES = resources()


# --------------------------------------------------------------------------------------------------------------
# Ledger and checkpoint


def object_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def fingerprint(event: schema.Event) -> str:
    return hashlib.blake2b(codec.encode(event), digest_size=16).hexdigest()


class Checkpoint(msgspec.Struct, forbid_unknown_fields=False):
    version: int = 1
    head: str = "0-0"  # log head after the last append this checkpoint includes
    rvs: dict[str, str] = {}  # Resource.key -> resourceVersion to resume from
    ledger: dict[str, str] = {}  # object key -> fingerprint of its last appended upsert


def load_checkpoint(path: Path | None) -> Checkpoint | None:
    if path is None or not path.exists():
        return None
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=Checkpoint)
    except (msgspec.DecodeError, OSError) as exc:
        logger.warning("checkpoint %s unreadable (%s): starting from the log", path, exc)
        return None


def save_checkpoint(path: Path, cp: Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(msgspec.msgpack.encode(cp))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ledger_from_log(log: evlog.EventLog, ledger: dict[str, str], after: Position = ZERO) -> Position:
    """Bring ``ledger`` up to date with the log records after ``after``; returns the last position read."""
    last = after
    while True:
        batch = list(log.read(last, limit=10_000))
        if not batch:
            return last
        for rec in batch:
            last = rec.position
            try:
                event = evlog.decode_record(rec)
            except codec.DecodeError:
                continue
            if isinstance(event, schema.K8sUpsert):
                o = event.obj
                ledger[object_key(type(o).__struct_config__.tag, o.namespace, o.name)] = fingerprint(event)
            elif isinstance(event, schema.K8sDelete):
                ledger.pop(object_key(event.ref.kind, event.ref.namespace, event.ref.name), None)


def ledger_from_snapshot(log: evlog.EventLog) -> tuple[dict[str, str], Position] | None:
    """The ledger as of the log's snapshot: every object in the snapshot's state is the last upsert for it.

    Needed once the stream is trimmed below the snapshot (retention): the entries before it are gone, the state
    that folds them is not. ``None`` when there is no snapshot or it cannot be read.
    """
    from reconciler import snapshot as snapmod

    try:
        snap = log.load_snapshot()
        if snap is None:
            return None
        state = snapmod.load(snap.state)
    except Exception as exc:  # noqa: BLE001 - an unreadable snapshot only costs a full read of the log
        logger.warning("snapshot not usable for the ledger (%s): reading the log", exc)
        return None
    ledger: dict[str, str] = {}
    for kind in sorted(state.objects):
        for (_, _), obj in sorted(state.objects[kind].items()):
            ledger[object_key(kind, obj.namespace, obj.name)] = fingerprint(schema.K8sUpsert(obj=obj))
    return ledger, snap.position


# --------------------------------------------------------------------------------------------------------------
# The watcher


@dataclass
class Stats:
    appended: int = 0
    skipped_unchanged: int = 0
    rejected: int = 0
    relists: int = 0
    gone: int = 0
    bookmarks: int = 0
    errors: int = 0
    sessions: int = 0


@dataclass
class _Session:
    resume: bool
    rvs: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    streams: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Watcher:
    """List+watch producer. ``run`` returns when ``stop`` is set (or ``duration`` seconds passed)."""

    def __init__(
        self,
        api: Any,
        log: evlog.EventLog,
        metallb_namespaces: tuple[str, ...] = ("metallb-system",),
        state_path: Path | None = None,
        elector: Any = None,
        watch_timeout: int = 300,
        page_size: int = 500,
        checkpoint_interval: float = 1.0,
        backoff: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self.api = api
        self.log = log
        self.metallb_namespaces = metallb_namespaces
        self.resources = resources(metallb_namespaces)
        self.state_path = state_path
        self.elector = elector
        self.watch_timeout = watch_timeout
        self.page_size = page_size
        self.checkpoint_interval = checkpoint_interval
        self.backoff = backoff
        self.stats = Stats()
        self.ledger: dict[str, str] = {}
        self.head: Position = ZERO
        self._queue: queue.Queue = queue.Queue()
        self._last_checkpoint = 0.0
        self._dirty = False

    # -- start of a leadership session (rule 3) ------------------------------------------------------------

    def _begin(self) -> _Session:
        cp = load_checkpoint(self.state_path)
        head = self.log.head()
        if cp is not None and Position.parse(cp.head) == head:
            self.ledger = dict(cp.ledger)
            self.head = head
            logger.info("resuming watches from the checkpoint (log head %s)", head)
            return _Session(resume=True, rvs=dict(cp.rvs))
        self.ledger = dict(cp.ledger) if cp is not None else {}
        after = Position.parse(cp.head) if cp is not None else ZERO
        if cp is not None and after > head:
            logger.warning("checkpoint is ahead of the log (%s > %s): rebuilding from the log", after, head)
            self.ledger, after = {}, ZERO
        # The newest base wins: a snapshot newer than the checkpoint (or no checkpoint) also covers entries the
        # stream may have trimmed below it; entries after the newest snapshot are never trimmed.
        from_snapshot = ledger_from_snapshot(self.log)
        if from_snapshot is not None and from_snapshot[1] >= after and from_snapshot[1] <= head:
            self.ledger, after = from_snapshot
        self.head = ledger_from_log(self.log, self.ledger, after)
        logger.info("re-listing everything (log head %s, %d objects known)", self.head, len(self.ledger))
        return _Session(resume=False, rvs={})

    # -- per-resource threads (list/watch protocol) --------------------------------------------------------

    def _list(self, res: Resource, session: _Session) -> tuple[list[dict], str]:
        items: list[dict] = []
        query: dict[str, Any] = {"limit": self.page_size}
        while True:
            body = kube_api_request(self.api, "GET", res.path(), query)
            for it in body.get("items") or ():
                it.setdefault("apiVersion", res.api_version)  # typed lists leave these out
                it.setdefault("kind", res.kind)
                items.append(it)
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return items, str(meta.get("resourceVersion") or "")
            if session.stop.is_set():
                raise _Stopped()
            query = {"limit": self.page_size, "continue": cont}

    def _run_resource(self, res: Resource, session: _Session) -> None:
        rv = session.rvs.get(res.key) if session.resume else None
        delay = self.backoff[0]
        while not session.stop.is_set():
            try:
                if rv is None:
                    items, rv = self._list(res, session)
                    self._queue.put(("relist", session, res, items, rv))
                query = {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": self.watch_timeout}
                stream = kube_api_watch(self.api, res.path(), query, self.watch_timeout + 30)
                with session.lock:
                    session.streams[res.key] = stream
                if session.stop.is_set():
                    stream.close()
                    return
                for ev in stream.events():
                    typ = ev.get("type")
                    obj = ev.get("object") or {}
                    if typ == "ERROR":
                        code = obj.get("code")
                        if code == 410:
                            self._queue.put(("gone", session, res))
                            rv = None
                            break
                        raise kube_api.ApiError(int(code or 0), str(obj.get("reason")), str(obj.get("message")))
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if typ == "BOOKMARK":
                        if new_rv:
                            rv = new_rv
                            self._queue.put(("bookmark", session, res, new_rv))
                        continue
                    self._queue.put(("event", session, res, typ, obj, new_rv))
                    if new_rv:
                        rv = new_rv
                delay = self.backoff[0]
            except _Stopped:
                return
            except kube_api.ApiError as exc:
                if session.stop.is_set():
                    return
                if exc.status == 410:
                    self._queue.put(("gone", session, res))
                    rv = None
                    continue
                self._queue.put(("error", session, res, str(exc)))
                session.stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])

    def _start_threads(self, session: _Session) -> None:
        for res in self.resources:
            t = threading.Thread(target=self._run_resource, args=(res, session), name=f"watch-{res.key}",
                                 daemon=True)
            session.threads.append(t)
            t.start()

    def _end(self, session: _Session) -> None:
        session.stop.set()
        with session.lock:
            streams = list(session.streams.values())
        for s in streams:
            s.close()
        for t in session.threads:
            t.join(timeout=5)

    # -- the single appending loop -------------------------------------------------------------------------

    def _translate(self, typ: str, obj: dict, res: Resource) -> tuple[str, schema.Event | None]:
        """``(ledger key, event or None)``; raises kube.TranslateError for a malformed object."""
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        if typ == "DELETED":
            ref = kube.reference(obj, self.metallb_namespaces)
            if isinstance(ref, kube.Ignored):
                return "", None
            return object_key(ref.kind, ref.namespace, ref.name), schema.K8sDelete(ref=ref)
        got = kube.translate(obj, self.metallb_namespaces)
        if isinstance(got, kube.Ignored):
            return "", None
        event = schema.K8sUpsert(obj=got)
        codec.validate(event)
        return object_key(res.kind, got.namespace, got.name), event

    def _plan(self, item: tuple, tentative: dict[str, str | None], out: list[schema.Event],
              rvs: dict[str, str]) -> None:
        """Turn one queue item into events to append (rules 1, 2, 4), against the tentative ledger."""

        def known(key: str) -> str | None:
            return tentative[key] if key in tentative else self.ledger.get(key)

        def upsert_or_delete(typ: str, obj: dict, res: Resource) -> str | None:
            try:
                key, event = self._translate(typ, obj, res)
            except (kube.TranslateError, codec.DecodeError) as exc:
                self.stats.rejected += 1
                logger.warning("%s %s: not appended: %s", typ, res.kind, exc)
                return None
            if event is None:
                return None
            if isinstance(event, schema.K8sDelete):
                if known(key) is not None:
                    out.append(event)
                    tentative[key] = None
                return key
            fp = fingerprint(event)
            if known(key) == fp:
                self.stats.skipped_unchanged += 1
            else:
                out.append(event)
                tentative[key] = fp
            return key

        kind = item[0]
        res: Resource = item[2]
        if kind == "event":
            _, _, _, typ, obj, new_rv = item
            upsert_or_delete(typ, obj, res)
            if new_rv:
                rvs[res.key] = new_rv
        elif kind == "relist":
            _, _, _, items, rv = item
            self.stats.relists += 1
            seen = set()
            for obj in items:
                key = upsert_or_delete("ADDED", obj, res)
                if key:
                    seen.add(key)
            prefix = f"{res.kind}/"
            candidates = set(self.ledger) | {k for k, v in tentative.items() if v is not None}
            for key in sorted(candidates):
                if not key.startswith(prefix) or key in seen or known(key) is None:
                    continue
                ns = key.split("/", 2)[1]
                if res.namespace and ns != res.namespace:
                    continue
                _, ns, name = key.split("/", 2)
                out.append(schema.K8sDelete(ref=schema.ObjectRef(kind=res.kind, namespace=ns, name=name)))
                tentative[key] = None
            rvs[res.key] = rv
        elif kind == "bookmark":
            self.stats.bookmarks += 1
            rvs[res.key] = item[3]
        elif kind == "gone":
            self.stats.gone += 1
            rvs.pop(res.key, None)
        elif kind == "error":
            self.stats.errors += 1
            logger.warning("watch %s: %s", res.key, item[3])

    def _append(self, events: list[schema.Event], session: _Session) -> bool:
        """Append with retries while leading. False if the session ended before it succeeded."""
        delay = self.backoff[0]
        while not session.stop.is_set():
            if self.elector is not None and not self.elector.is_leader:
                return False
            try:
                positions = self.log.append(events)
            except evlog.LogUnavailable as exc:
                logger.warning("log unavailable, retrying: %s", exc)
                session.stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            if positions:
                self.head = positions[-1]
            return True
        return False

    def _checkpoint(self, rvs: dict[str, str], force: bool = False) -> None:
        if self.state_path is None or not self._dirty:
            return
        now = time.monotonic()
        if not force and now - self._last_checkpoint < self.checkpoint_interval:
            return
        save_checkpoint(self.state_path, Checkpoint(head=str(self.head), rvs=dict(rvs), ledger=dict(self.ledger)))
        self._last_checkpoint = now
        self._dirty = False

    def _lead(self, stop: threading.Event, deadline: float | None) -> None:
        session = self._begin()
        self.stats.sessions += 1
        rvs = dict(session.rvs)
        self._queue = queue.Queue()
        self._start_threads(session)
        next_renew = time.monotonic()
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if self.elector is not None and time.monotonic() >= next_renew:
                    self.elector.step()
                    next_renew = time.monotonic() + self.elector.lease_seconds / 3
                if self.elector is not None and not self.elector.is_leader:
                    return
                try:
                    items = [self._queue.get(timeout=0.2)]
                except queue.Empty:
                    self._checkpoint(rvs)
                    continue
                while len(items) < 1000:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                tentative: dict[str, str | None] = {}
                new_rvs = dict(rvs)
                out: list[schema.Event] = []
                for item in items:
                    if item[1] is session:
                        self._plan(item, tentative, out, new_rvs)
                if out:
                    if not self._append(out, session):
                        return  # not appended: the checkpoint stays behind, the next session re-lists
                    self.stats.appended += len(out)
                for key, fp in tentative.items():
                    if fp is None:
                        self.ledger.pop(key, None)
                    else:
                        self.ledger[key] = fp
                if new_rvs != rvs or out:
                    self._dirty = True
                rvs = new_rvs
                self._checkpoint(rvs)
        finally:
            self._end(session)
            if self.elector is None or self.elector.is_leader:
                self._checkpoint(rvs, force=True)

    def run(self, stop: threading.Event | None = None, duration: float | None = None) -> Stats:
        stop = stop or threading.Event()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if self.elector is not None and not self.elector.step():
                    stop.wait(min(1.0, self.elector.lease_seconds / 5))
                    continue
                self._lead(stop, deadline)
        finally:
            if self.elector is not None:
                self.elector.release()
        return self.stats


class _Stopped(Exception):
    pass


def kube_api_request(api: Any, method: str, path: str, query: dict[str, Any]) -> Any:
    return kube_api.request(api, method, path, query=query, timeout=(10.0, 120.0))


def kube_api_watch(api: Any, path: str, query: dict[str, Any], read_timeout: float) -> Any:
    return kube_api.watch(api, path, query, read_timeout)


def serve_metrics(watcher: Watcher, port: int, addr: str = "0.0.0.0") -> None:
    """Prometheus metrics of the watcher, read from its counters at scrape time."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class _Collector:
        def collect(self):  # noqa: ANN202 - prometheus_client protocol
            s = watcher.stats
            for name, value, doc in (
                ("appended", s.appended, "events appended to the log"),
                ("unchanged", s.skipped_unchanged, "watch events that changed nothing streamlb reads"),
                ("rejected", s.rejected, "malformed objects not appended"),
                ("relists", s.relists, "LISTs diffed against the ledger"),
                ("gone", s.gone, "watches expired with 410 Gone"),
                ("bookmarks", s.bookmarks, "BOOKMARK events"),
                ("errors", s.errors, "watch errors (retried)"),
                ("sessions", s.sessions, "leadership sessions started"),
            ):
                yield CounterMetricFamily(f"streamlb_watch_{name}", doc, value=value)
            leading = watcher.elector.is_leader if watcher.elector is not None else True
            yield GaugeMetricFamily("streamlb_watch_leader", "1 while this replica appends", value=int(leading))
            yield GaugeMetricFamily("streamlb_watch_objects", "objects in the ledger", value=len(watcher.ledger))

    registry = CollectorRegistry()
    registry.register(_Collector())
    start_http_server(port, addr=addr, registry=registry)
