"""Status write-back: the leader of ``streamlb run --write-status`` puts its decisions into the cluster.

What is written, per Service streamlb owns (type LoadBalancer and the load-balancer class rule):

* ``status.loadBalancer.ingress`` = ``[{"ip": ...}]`` in decision order (MetalLB writes only ``ip``);
* the annotation ``metallb.io/ip-allocated-from-pool`` = the pool (removed when nothing is assigned);
* a Warning Event ``IPNotInNodeSubnet``, once per Service, when an L2 IP lies outside every subnet of its
  owner's announcing interfaces (judged from the speakers' status keys; never without them);
* one Kubernetes Event per decision event (``IPAllocated``, ``AllocationFailed``, ``ClearAssignment`` ... with
  MetalLB's types and texts), reported by ``streamlb-controller``;

per IPAddressPool its ``status`` counters (``assignedIPv4/IPv6``, ``availableIPv4/IPv6``), and per Service with a
layer-2 owner a MetalLB-style ``ServiceL2Status`` object in the MetalLB namespace (``status.node``,
``serviceName``, ``serviceNamespace``; labels ``metallb.io/node``, ``metallb.io/service-name``,
``metallb.io/service-namespace``), re-created when the owner moves (MetalLB's fields are immutable) and deleted
when nobody announces; and per (Service, node) advertising it over BGP a ``ServiceBGPStatus`` object (``status.node``,
``serviceName``, ``serviceNamespace``, ``peers``; the same labels), created when the node starts advertising,
its peers updated when they change, deleted when it stops.

Rules:

1. Idempotent: the current object is read first and nothing is written when it already says what was decided.
   Events get deterministic names (Service uid + position + content), so re-sending one after a restart is a
   409 AlreadyExists, not a second Event.
2. Conflict-safe: every write carries the ``resourceVersion`` it was computed from; a 409 re-reads and
   recomputes (bounded retries). Nothing is ever overwritten blindly.
3. Nothing is written for a Service streamlb does not own: another load-balancer class, another type, or a
   Service that no longer exists (404 is "deleted", not an error).
4. Outages lose nothing: a failed Service is reported in :attr:`WriteResult.failed` and the caller calls again
   with the same decisions (the writer is level-triggered: it writes the difference, whatever happened before).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.runtime.kube import api as kube_api

logger = logging.getLogger("streamlb.status")

POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
SUBNET_REASON = "IPNotInNodeSubnet"  # Warning Event: an L2 IP outside every subnet of its owner's interfaces
MAX_INT64 = 2**63 - 1


@dataclass
class WriteResult:
    status_written: list[str] = field(default_factory=list)
    annotation_written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_owned: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    events_created: int = 0
    events_existing: int = 0
    conflicts: int = 0
    pools_written: list[str] = field(default_factory=list)
    l2_created: list[str] = field(default_factory=list)
    l2_deleted: list[str] = field(default_factory=list)
    bgp_created: list[str] = field(default_factory=list)  # "namespace/name@node"
    bgp_updated: list[str] = field(default_factory=list)
    bgp_deleted: list[str] = field(default_factory=list)
    subnet_warnings: list[str] = field(default_factory=list)  # Services warned IPNotInNodeSubnet
    failed: dict[str, str] = field(default_factory=dict)  # key -> reason; call again later

    @property
    def ok(self) -> bool:
        return not self.failed


def _micro(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _second(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Conflict(Exception):
    pass


class StatusWriter:
    def __init__(
        self,
        api: Any,
        lb_class: str | None = None,
        metallb_namespace: str = "metallb-system",
        identity: str = "streamlb",
        max_conflict_retries: int = 5,
        max_consecutive_outages: int = 3,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.lb_class = lb_class
        self.metallb_namespace = metallb_namespace
        self.identity = identity
        self.max_conflict_retries = max_conflict_retries
        self.max_consecutive_outages = max_consecutive_outages
        self.wall = wall
        self._events_done: dict[tuple[str, str], int] = {}  # (service key, uid) -> events already written

    # ----------------------------------------------------------------------------------------------------------

    def owned(self, svc: dict) -> bool:
        spec = svc.get("spec") or {}
        return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") == self.lb_class

    def write(
        self,
        decisions: dict[str, Any],
        pools: dict[str, dict[str, int]] | None = None,
        only: Iterable[str] | None = None,
    ) -> WriteResult:
        """Write ``decisions`` (the replay JSON shape: ``{"services": {key: {...}}}``) and pool counters."""
        result = WriteResult()
        services = decisions.get("services") or {}
        keys = sorted(services) if only is None else sorted(k for k in set(only) if k in services)
        outages = 0
        for key in keys:
            if outages >= self.max_consecutive_outages:
                result.failed[key] = "skipped: the API server is unavailable"
                continue
            try:
                self._service(key, services[key], result)
                outages = 0
            except kube_api.ApiError as exc:
                result.failed[key] = str(exc)
                outages = outages + 1 if exc.transient else 0
                logger.warning("status of %s not written: %s", key, exc)
        for name in sorted(pools or {}):
            if outages >= self.max_consecutive_outages:
                result.failed[f"IPAddressPool/{name}"] = "skipped: the API server is unavailable"
                continue
            try:
                self._pool(name, (pools or {})[name], result)
                outages = 0
            except kube_api.ApiError as exc:
                result.failed[f"IPAddressPool/{name}"] = str(exc)
                outages = outages + 1 if exc.transient else 0
        return result

    # ----------------------------------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        ns, _, name = key.partition("/")
        return f"/api/v1/namespaces/{ns}/services/{name}"

    def _get(self, path: str) -> dict | None:
        try:
            return kube_api.request(self.api, "GET", path, timeout=10.0)
        except kube_api.ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _patch(self, path: str, body: dict) -> dict:
        try:
            return kube_api.request(self.api, "PATCH", path, body=body,
                                    content_type="application/merge-patch+json", timeout=10.0)
        except kube_api.ApiError as exc:
            if exc.status == 409:
                raise _Conflict() from None
            raise

    def _service(self, key: str, dec: dict[str, Any], result: WriteResult) -> None:
        path = self._path(key)
        want_ips = list(dec.get("ingress") or [])
        want_pool = dec.get("pool") if want_ips else None
        for attempt in range(self.max_conflict_retries + 1):
            svc = self._get(path)
            if svc is None:
                result.missing.append(key)
                return
            if not self.owned(svc):
                result.not_owned.append(key)
                return
            try:
                changed = self._converge_service(key, path, svc, want_ips, want_pool, result)
            except _Conflict:
                result.conflicts += 1
                continue
            except kube_api.ApiError as exc:
                if exc.status == 404:
                    result.missing.append(key)
                    return
                raise
            if not changed:
                result.unchanged.append(key)
            self._events(key, svc, dec.get("events") or [], result)
            return
        raise kube_api.ApiError(409, "Conflict", f"{key}: still conflicting after {self.max_conflict_retries} "
                                                 "retries")

    def _converge_service(self, key: str, path: str, svc: dict, want_ips: list[str], want_pool: str | None,
                          result: WriteResult) -> bool:
        meta = svc.get("metadata") or {}
        rv = meta.get("resourceVersion")
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        have_ips = [i.get("ip") for i in ingress]
        changed = False
        if have_ips != want_ips or any(set(i) - {"ip", "ipMode"} for i in ingress):
            # merge patch: null removes the list, as MetalLB leaves an empty loadBalancer status
            new_ingress = [{"ip": ip} for ip in want_ips] if want_ips else None
            body = {"metadata": {"resourceVersion": rv}, "status": {"loadBalancer": {"ingress": new_ingress}}}
            updated = self._patch(path + "/status", body)
            rv = (updated.get("metadata") or {}).get("resourceVersion", rv)
            result.status_written.append(key)
            changed = True
        have_pool = (meta.get("annotations") or {}).get(POOL_ANNOTATION)
        if have_pool != want_pool:
            body = {"metadata": {"resourceVersion": rv, "annotations": {POOL_ANNOTATION: want_pool}}}
            self._patch(path, body)
            result.annotation_written.append(key)
            changed = True
        return changed

    def _events(self, key: str, svc: dict, events: list[dict], result: WriteResult) -> None:
        meta = svc.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        done_key = (key, uid)
        start = self._events_done.get(done_key, 0)
        ns, _, name = key.partition("/")
        for index in range(start, len(events)):
            ev = events[index]
            digest = hashlib.sha256(
                f"{uid}\0{index}\0{ev['type']}\0{ev['reason']}\0{ev['message']}".encode()
            ).hexdigest()[:16]
            now = self.wall()
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{name}.{digest}", "namespace": ns},
                "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": ns, "name": name,
                                   "uid": uid, "resourceVersion": meta.get("resourceVersion")},
                "type": ev["type"],
                "reason": ev["reason"],
                "message": ev["message"],
                "source": {"component": "streamlb-controller"},
                "reportingComponent": "streamlb-controller",
                "reportingInstance": self.identity,
                "firstTimestamp": _second(now),
                "lastTimestamp": _second(now),
                "eventTime": None,
                "count": 1,
            }
            body = {k: v for k, v in body.items() if v is not None}
            try:
                kube_api.request(self.api, "POST", f"/api/v1/namespaces/{ns}/events", body=body, timeout=10.0)
                result.events_created += 1
            except kube_api.ApiError as exc:
                if exc.status != 409:
                    raise
                result.events_existing += 1
            self._events_done[done_key] = index + 1

    def warn(self, key: str, reason: str, message: str) -> bool | None:
        """Post one Warning Event on Service ``key``, at most once per Service object (the Event's name comes from
        the Service uid and ``reason``, so a second call, or another leader's, is a 409). True when created, False
        when it already existed, None when the Service is gone or not streamlb's."""
        svc = self._get(self._path(key))
        if svc is None or not self.owned(svc):
            return None
        meta = svc.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        ns, _, name = key.partition("/")
        digest = hashlib.sha256(f"{uid}\0{reason}".encode()).hexdigest()[:16]
        now = self.wall()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{name}.{digest}", "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": ns, "name": name, "uid": uid,
                               "resourceVersion": meta.get("resourceVersion")},
            "type": "Warning", "reason": reason, "message": message,
            "source": {"component": "streamlb-controller"}, "reportingComponent": "streamlb-controller",
            "reportingInstance": self.identity, "firstTimestamp": _second(now), "lastTimestamp": _second(now),
            "count": 1,
        }
        try:
            kube_api.request(self.api, "POST", f"/api/v1/namespaces/{ns}/events", body=body, timeout=10.0)
        except kube_api.ApiError as exc:
            if exc.status != 409:
                raise
            return False
        return True

    def _pool(self, name: str, counts: dict[str, int], result: WriteResult) -> None:
        path = f"/apis/metallb.io/v1beta1/namespaces/{self.metallb_namespace}/ipaddresspools/{name}"
        want = {k: min(int(v), MAX_INT64) for k, v in counts.items()}
        for _ in range(self.max_conflict_retries + 1):
            pool = self._get(path)
            if pool is None:
                return
            have = pool.get("status") or {}
            if all(have.get(k) == v for k, v in want.items()):
                return
            try:
                self._patch(path + "/status", {"metadata": {"resourceVersion": pool["metadata"]["resourceVersion"]},
                                               "status": want})
            except _Conflict:
                result.conflicts += 1
                continue
            result.pools_written.append(name)
            return
        raise kube_api.ApiError(409, "Conflict", f"pool {name}: still conflicting")


L2_LABELS = ("metallb.io/service-namespace", "metallb.io/service-name", "metallb.io/node")
MANAGED = ("app.kubernetes.io/managed-by", "streamlb")


def l2_object_name(key: str) -> str:
    return "l2-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def write_l2_statuses(writer: StatusWriter, owners: dict[str, str | None], result: WriteResult) -> None:
    """Make the ServiceL2Status objects say ``owners`` (service key -> node or None), for every Service.

    Objects streamlb made for Services not in ``owners`` are deleted. Raises kube_api.ApiError (caller retries).
    """
    ns = writer.metallb_namespace
    base = f"/apis/metallb.io/v1beta1/namespaces/{ns}/servicel2statuses"
    listed = kube_api.request(writer.api, "GET", base, query={"labelSelector": "=".join(MANAGED)}, timeout=30.0)
    have: dict[str, dict] = {}
    for o in listed.get("items") or ():
        labels = (o.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED[0]) != MANAGED[1]:
            continue  # MetalLB's own objects are not ours to touch
        have[f"{labels.get(L2_LABELS[0])}/{labels.get(L2_LABELS[1])}"] = o
    for key in sorted(set(have) | set(owners)):
        want = owners.get(key)
        cur = have.get(key)
        cur_node = ((cur or {}).get("status") or {}).get("node")
        if cur is not None and cur_node == want:
            continue
        if cur is not None:
            _delete(writer, f"{base}/{cur['metadata']['name']}")
            result.l2_deleted.append(key)
        if want is None:
            continue
        svc_ns, _, svc_name = key.partition("/")
        status = {"node": want, "serviceName": svc_name, "serviceNamespace": svc_ns, "interfaces": []}
        _create_status_object(writer, base, "ServiceL2Status", l2_object_name(key), ns, want, status)
        result.l2_created.append(key)


def _create_status_object(writer: StatusWriter, base: str, kind: str, name: str, ns: str, node: str,
                          status: dict) -> None:
    """Create a MetalLB-style per-(Service, node) status object (a 409 means it exists) and set its status."""
    labels = {L2_LABELS[0]: status["serviceNamespace"], L2_LABELS[1]: status["serviceName"], L2_LABELS[2]: node,
              MANAGED[0]: MANAGED[1]}
    body = {"apiVersion": "metallb.io/v1beta1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "status": status}
    try:
        kube_api.request(writer.api, "POST", base, body=body, timeout=10.0)
    except kube_api.ApiError as exc:
        if exc.status != 409:
            raise
    # the API server ignores status on create when the status subresource is on: set it through it
    kube_api.request(writer.api, "PATCH", f"{base}/{name}/status", body={"status": status},
                     content_type="application/merge-patch+json", timeout=10.0)


def l2_owners(state: Any) -> dict[str, str | None]:
    """Service key -> the node announcing it in layer 2 (None when nobody does), for Services with L2."""
    from reconciler import decisions as decisionsmod

    out: dict[str, str | None] = {}
    for key, dec in decisionsmod.services(state, with_events=False).items():
        if dec["l2"]:
            first = dec["ingress"][0]
            out[key] = dec["l2"][first]["node"]
    return out


BGP_SUFFIX = "servicebgpstatuses"


def bgp_object_name(key: str, node: str) -> str:
    return "bgp-" + hashlib.sha256(f"{key}\0{node}".encode()).hexdigest()[:12]


def bgp_peers(state: Any) -> dict[str, dict[str, list[str]]]:
    """Service key -> node -> BGPPeer names that node advertises the Service to (only advertising nodes)."""
    from reconciler import planning

    return {key: {node: list(peers) for node, peers in nodes.items()}
            for key, nodes in planning.bgp_services(state).items()}


def write_bgp_statuses(writer: StatusWriter, want: dict[str, dict[str, list[str]]], result: WriteResult) -> None:
    """Make the ServiceBGPStatus objects say ``want`` (service key -> node -> peers): one object per (Service,
    node). A node whose peers changed gets its ``status.peers`` patched (with the resourceVersion it was read at;
    a 409 re-reads and retries); (Service, node) pairs no longer advertising are deleted. Only objects labelled as
    made by streamlb are touched. Raises kube_api.ApiError (the caller retries with the next batch).
    """
    ns = writer.metallb_namespace
    base = f"/apis/metallb.io/v1beta1/namespaces/{ns}/{BGP_SUFFIX}"
    listed = kube_api.request(writer.api, "GET", base, query={"labelSelector": "=".join(MANAGED)}, timeout=30.0)
    have: dict[tuple[str, str], dict] = {}
    extra: list[dict] = []
    for o in sorted(listed.get("items") or (), key=lambda o: (o.get("metadata") or {}).get("name", "")):
        labels = (o.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED[0]) != MANAGED[1]:
            continue  # MetalLB's own objects are not ours to touch
        pair = (f"{labels.get(L2_LABELS[0])}/{labels.get(L2_LABELS[1])}", str(labels.get(L2_LABELS[2])))
        if pair in have:
            extra.append(o)  # a duplicate (e.g. two leaders raced): keep one
        else:
            have[pair] = o
    for o in extra:
        _delete(writer, f"{base}/{o['metadata']['name']}")
    wanted = {(key, node): list(peers) for key, nodes in want.items() for node, peers in nodes.items()}
    for pair in sorted(set(have) | set(wanted)):
        key, node = pair
        label = f"{key}@{node}"
        peers = wanted.get(pair)
        cur = have.get(pair)
        svc_ns, _, svc_name = key.partition("/")
        fixed = {"node": node, "serviceName": svc_name, "serviceNamespace": svc_ns}
        if cur is not None:
            st = cur.get("status") or {}
            if peers is not None and any(st.get(k) != v for k, v in fixed.items()):
                peers_now = None  # identity fields are immutable in MetalLB: re-create
            else:
                peers_now = st.get("peers")
            if peers is None or peers_now is None:
                _delete(writer, f"{base}/{cur['metadata']['name']}")
                result.bgp_deleted.append(label)
                cur = None
            elif list(peers_now) == peers:
                continue
        if peers is None:
            continue
        status = {**fixed, "peers": peers}
        if cur is None:
            _create_status_object(writer, base, "ServiceBGPStatus", bgp_object_name(key, node), ns, node, status)
            result.bgp_created.append(label)
            continue
        _update_bgp_peers(writer, f"{base}/{cur['metadata']['name']}", cur, status, result)
        result.bgp_updated.append(label)


def _delete(writer: StatusWriter, path: str) -> None:
    try:
        kube_api.request(writer.api, "DELETE", path, timeout=10.0)
    except kube_api.ApiError as exc:
        if exc.status != 404:
            raise


def _update_bgp_peers(writer: StatusWriter, path: str, cur: dict, status: dict, result: WriteResult) -> None:
    for _ in range(writer.max_conflict_retries + 1):
        body = {"metadata": {"resourceVersion": cur["metadata"]["resourceVersion"]}, "status": {"peers": status["peers"]}}
        try:
            kube_api.request(writer.api, "PATCH", path + "/status", body=body,
                             content_type="application/merge-patch+json", timeout=10.0)
            return
        except kube_api.ApiError as exc:
            if exc.status != 409:
                raise
        result.conflicts += 1
        got = writer._get(path)
        if got is None:
            raise kube_api.ApiError(404, "NotFound", f"{path}: deleted while updating (re-created next time)")
        if list((got.get("status") or {}).get("peers") or ()) == status["peers"]:
            return
        cur = got
    raise kube_api.ApiError(409, "Conflict", f"{path}: still conflicting after {writer.max_conflict_retries} retries")


def write_status(decisions: dict[str, Any], api: Any, *, pools: dict[str, dict[str, int]] | None = None,
                 lb_class: str | None = None, metallb_namespace: str = "metallb-system") -> WriteResult:
    """One-shot write (see :class:`StatusWriter`; keep a writer to avoid re-sending Events)."""
    return StatusWriter(api, lb_class=lb_class, metallb_namespace=metallb_namespace).write(decisions, pools)


def pool_counts(state: Any) -> dict[str, dict[str, int]]:
    """IPAddressPool status counters from a reconciler state: distinct assigned IPs and what is left, per family.

    A shared IP counts once (MetalLB). Capacities of 2^62 or more saturate at MaxInt64, as MetalLB reports them.
    """
    from reconciler import net

    cfg = state.config
    if cfg is None:
        return {}
    used: dict[str, set[tuple[int, int]]] = {p.name: set() for p in cfg.pools}
    for key in sorted(state.assigned):
        pool, addrs = state.assigned[key]
        if pool in used:
            used[pool].update(addrs)
    out: dict[str, dict[str, int]] = {}
    for p in cfg.pools:
        counts: dict[str, int] = {}
        for fam, label in ((net.V4, "IPv4"), (net.V6, "IPv6")):
            assigned = sum(1 for f, _ in used[p.name] if f == fam)
            cap = min(p.capacity(fam), MAX_INT64)
            counts[f"assigned{label}"] = assigned
            counts[f"available{label}"] = max(cap - assigned, 0) if cap < MAX_INT64 else MAX_INT64
        out[p.name] = counts
    return out


class DaemonStatusWriter:
    """The ``streamlb run --write-status`` hook: called by the leader with each published decision batch.

    A batch names the Services whose decisions changed (``None`` for a Service that is gone) and carries the
    state; the full event history of each changed Service is taken from the state so Event names stay stable.
    Services whose write failed are kept and retried with the next batch (rule 4), and pool counters are written
    only when they differ from what this writer last wrote.
    """

    def __init__(self, writer: StatusWriter, l2_interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, subnet_interval: float = 30.0) -> None:
        self.writer = writer
        self.l2_interval = l2_interval
        self.clock = clock
        self._l2_at: float | None = None
        self._l2_written: dict[str, str | None] | None = None
        self._bgp_written: dict[str, dict[str, list[str]]] | None = None
        self.retry: set[str] = set()
        self._pools_written: dict[str, dict[str, int]] = {}
        self.last: WriteResult | None = None
        # node -> speaker status (the status keys); set by ``streamlb run``. Feeds the IPNotInNodeSubnet warning.
        self.speaker_statuses: Callable[[], dict[str, dict]] | None = None
        self._subnet_warned: set[str] = set()
        self.subnet_interval = subnet_interval  # the check costs a node plan per owner: not with every batch
        self._subnet_at: float | None = None

    def _warn_subnets(self, state: Any, result: WriteResult) -> None:
        """Warn once per Service whose L2 IP lies outside every subnet of its owner's announcing interfaces (from the
        speakers' status keys; an IP without speaker data is never judged). Speaker data never enters the fold."""
        if self.speaker_statuses is None:
            return
        now = self.clock()
        if self._subnet_at is not None and now - self._subnet_at < self.subnet_interval:
            return
        self._subnet_at = now
        from reconciler.runtime import doctor

        try:
            statuses = self.speaker_statuses()
        except Exception as exc:  # noqa: BLE001 - a diagnostic: never stop the write-back
            logger.warning("cannot read speaker status keys: %s", exc)
            return
        keys = [k for k in sorted(state.services) if k not in self._subnet_warned]
        for key, ips in doctor.l2_subnets(state, statuses, keys).items():
            bad = [v for v in ips.values() if v["verdict"] == "no"]
            if not bad:
                continue
            message = "; ".join(v["why"] for v in bad)
            try:
                if self.writer.warn(key, SUBNET_REASON, message) is not None:
                    result.subnet_warnings.append(key)
                self._subnet_warned.add(key)
            except kube_api.ApiError as exc:
                result.failed[f"{SUBNET_REASON}/{key}"] = str(exc)

    def __call__(self, batch: Any) -> WriteResult:
        state = batch.state
        # ownership follows the daemon's own load-balancer class (the state is built with it)
        self.writer.lb_class = state.lb_class
        keys = {k for k, v in batch.changed.items() if v is not None} | self.retry
        services: dict[str, Any] = {}
        for key in sorted(keys):
            dec = state.services.get(key)
            if dec is None:
                continue  # gone from the decisions since: nothing to write
            services[key] = {"ingress": list(dec.ingress), "pool": dec.pool, "reason": dec.reason,
                             "events": [{"type": t, "reason": r, "message": m} for t, r, m in dec.events]}
        counts = pool_counts(state)
        pools = {n: c for n, c in counts.items() if self._pools_written.get(n) != c}
        result = self.writer.write({"services": services}, pools)
        self.retry = {k for k in result.failed if "/" in k and not k.startswith("IPAddressPool/")}  # Service keys only
        for n, c in pools.items():
            if f"IPAddressPool/{n}" not in result.failed:
                self._pools_written[n] = c
        # L2 owners and BGP advertising nodes move with nodes, peers and endpoints, not only with the Services that
        # changed: recomputed for all Services at most every l2_interval seconds, written when they differ from
        # what was written.
        now = self.clock()
        if self._l2_at is None or now - self._l2_at >= self.l2_interval:
            self._l2_at = now
            owners = l2_owners(state)
            if owners != self._l2_written:
                try:
                    write_l2_statuses(self.writer, owners, result)
                    self._l2_written = owners
                except kube_api.ApiError as exc:
                    result.failed["ServiceL2Status"] = str(exc)
                    self._l2_at = None  # retry with the next batch
            self._warn_subnets(state, result)
            bgp = bgp_peers(state)
            if bgp != self._bgp_written:
                try:
                    write_bgp_statuses(self.writer, bgp, result)
                    self._bgp_written = bgp
                except kube_api.ApiError as exc:
                    result.failed["ServiceBGPStatus"] = str(exc)
                    self._l2_at = None  # retry with the next batch
        self.last = result
        if result.failed:
            logger.warning("status write-back: %d object(s) to retry", len(result.failed))
        return result


def daemon_writer_factory(options: dict[str, Any]) -> DaemonStatusWriter:
    """Factory registered with ``streamlb run`` (see :mod:`reconciler.runtime.cli.run`)."""
    import os
    import socket

    api = kube_api.make_client(options.get("kubeconfig"), options.get("context"))
    writer = StatusWriter(
        api,
        lb_class=options["lb_class"] if "lb_class" in options else os.environ.get("STREAMLB_LB_CLASS") or None,
        metallb_namespace=options.get("metallb_namespace") or os.environ.get("STREAMLB_METALLB_NAMESPACE",
                                                                           "metallb-system"),
        identity=options.get("replica") or f"{socket.gethostname()}-{os.getpid()}",
    )
    return DaemonStatusWriter(writer)
