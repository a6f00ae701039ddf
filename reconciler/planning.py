"""Announcement planning kept up to date event by event: L2 owners and BGP advertisements.

Theory of operation
-------------------
:mod:`reconciler.elect` and :mod:`reconciler.bgpplan` say, from scratch, what every node announces. Re-running
them for every Service after every event would cost O(Services × nodes) per event (MetalLB re-syncs every Service
on every membership change). :class:`Plan` keeps their answers per Service plus the indexes that let an event
re-plan only what it can affect:

* a Service or EndpointSlice event re-plans that Service (and the Services that were waiting for an address, in
  case the allocator gave them one);
* a Node or speaker event re-plans the Services that node owns when it lost eligibility; when it gained
  eligibility it compares its election key with each current owner's (one SHA-256 per L2 Service, no re-ranking:
  adding a node moves an IP only if the new node sorts first); BGP output of a node is computed from the per-Service
  records when asked, so node events only mark that node as touched;
* a configuration change re-plans the Services whose pool's advertisements changed or whose allocation moved.

Every re-planned Service is recorded in the change sets of the subscribers (:func:`subscribe`), which is how a
speaker's :class:`NodeView` keeps its own node's plan incrementally.

The plan is built lazily, on first use (:func:`ensure`): a replay that never asks for announcements pays nothing.

Rules:

* Rule 1: same answers as the from-scratch reference, after any sequence of events (tested with hypothesis).
* Rule 2: nothing here decides by set or dict iteration order; output goes through ``sorted``.
* Rule 3: this module mutates only ``state.plan``; allocation decisions are read from ``state.services``.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field

from events import schema
from reconciler import bgpplan, effects, elect, selectors
from reconciler import config as configmod
from reconciler.reasons import Reason
from reconciler.state import ServiceKey, State

AdKey = tuple[str, str]  # (namespace, name)


def _ad_key(ad: schema.L2Advertisement | schema.BGPAdvertisement) -> AdKey:
    return ad.namespace, ad.name


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What decides whether a node can announce, precomputed per node."""

    labels: dict[str, str]
    problem: str | None  # speakerDown / nodeNetworkUnavailable / nodeLabeledExcludeBalancers
    l2: frozenset[AdKey]  # L2Advertisements selecting this node
    bgp: frozenset[AdKey]  # BGPAdvertisements selecting this node
    peers: tuple[str, ...]  # BGPPeers selecting this node
    pref: tuple[tuple[AdKey, int], ...] = ()  # L2Advertisements whose preferences score this node (elect Rule 1a)


@dataclass(slots=True)
class L2Rec:
    ips: tuple[str, ...]
    has_ads: bool
    owner: str | None = None
    reason: str | None = None
    ads: tuple[schema.L2Advertisement, ...] = ()
    ad_keys: frozenset[AdKey] = frozenset()
    local: frozenset[str] | None = None  # ETP Local: nodes with a serving endpoint; None for Cluster
    best: bytes = b""  # the owner's election key
    score: int = 0  # the owner's preference score (elect Rule 1a); ranks before ``best``
    anchor: bytes = b""  # the first IP as bytes (what the election hashes after "<node>#")


@dataclass(slots=True)
class BgpRec:
    ips: tuple[str, ...]
    families: frozenset[int]  # of the pool (the conflict rule looks at the pool's families)
    ads: tuple[bgpplan.BgpAd, ...]  # the pool's advertisements
    matches: tuple[bool, ...]  # ... and whether each matches the Service
    local_only: bool
    anywhere: bool
    local: frozenset[str]


@dataclass(slots=True)
class Changes:
    """What changed since a subscriber last looked."""

    keys: set[ServiceKey] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    everything: bool = False


@dataclass(slots=True)
class Plan:
    cfg: configmod.Config | None = None
    bcfg: bgpplan.BgpConfig | None = None
    pool_l2: dict[str, tuple[AdKey, ...]] = field(default_factory=dict)  # pool -> L2 ads applying to it
    pool_bgp: dict[str, tuple[bgpplan.BgpAd, ...]] = field(default_factory=dict)
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    inputs: dict[ServiceKey, tuple] = field(default_factory=dict)  # (ingress, pool, Service object)
    l2: dict[ServiceKey, L2Rec] = field(default_factory=dict)
    bgp: dict[ServiceKey, BgpRec] = field(default_factory=dict)
    ip_users: dict[str, set[ServiceKey]] = field(default_factory=dict)
    ip_owner: dict[str, tuple[str, ServiceKey]] = field(default_factory=dict)  # Rule 4 of elect
    owned_by: dict[str, set[ServiceKey]] = field(default_factory=dict)  # node -> Services it won
    pool_keys: dict[str, set[ServiceKey]] = field(default_factory=dict)
    unassigned: set[ServiceKey] = field(default_factory=set)
    cands: dict[frozenset[AdKey], tuple[list[str], list[bytes]]] = field(default_factory=dict)
    subscribers: dict[str, Changes] = field(default_factory=dict)
    # counters (observability and tests; not part of any decision)
    replanned_ips: int = 0
    compared: int = 0


# ----------------------------------------------------------------------------------------------------------------
# construction


def ensure(state: State) -> Plan:
    """The plan of ``state``, built from scratch the first time."""
    plan = state.plan
    if not isinstance(plan, Plan):
        plan = rebuild(state)
    return plan


def rebuild(state: State) -> Plan:
    """Full recomputation (the baseline incremental planning is measured and tested against)."""
    old = state.plan
    plan = Plan()
    if isinstance(old, Plan):
        plan.subscribers = old.subscribers
        for ch in plan.subscribers.values():
            ch.everything = True
    state.plan = plan
    _load_config(state, plan)
    for name in _node_names(state):
        plan.nodes[name] = _node_info(state, plan, name)
    for key in sorted(state.services):
        _plan_service(state, plan, key, refresh_ips=False)
    _refresh_ips(plan, sorted(plan.ip_users))
    return plan


def _node_names(state: State) -> list[str]:
    return [name for (_, name) in sorted(state.objects["Node"])]


def _load_config(state: State, plan: Plan) -> None:
    cfg = state.config
    plan.cfg = cfg
    plan.cands.clear()
    plan.pool_l2, plan.pool_bgp = {}, {}
    if cfg is None:
        plan.bcfg = None
        return
    plan.bcfg = bgpplan.parse(cfg)
    for pool in cfg.pools:
        plan.pool_l2[pool.name] = tuple(
            _ad_key(ad)
            for ad in cfg.l2_advertisements
            if elect.pool_matches(pool, ad.ip_address_pools, ad.ip_address_pool_selectors)
        )
        plan.pool_bgp[pool.name] = bgpplan.pool_ads(plan.bcfg, pool)


def _node_info(state: State, plan: Plan, name: str) -> NodeInfo | None:
    node = state.objects["Node"].get(("", name))
    if not isinstance(node, schema.Node):
        return None
    labels = dict(node.labels)
    cfg = plan.cfg
    l2: frozenset[AdKey] = frozenset()
    bgp: frozenset[AdKey] = frozenset()
    peers: tuple[str, ...] = ()
    pref: tuple[tuple[AdKey, int], ...] = ()
    if cfg is not None and plan.bcfg is not None:
        l2 = frozenset(_ad_key(ad) for ad in cfg.l2_advertisements if elect.ad_selects_node(ad, labels))
        bgp = frozenset(_ad_key(ad.obj) for ad in plan.bcfg.ads if elect.ad_selects_node(ad.obj, labels))
        peers = bgpplan.node_peers(plan.bcfg, labels)
        pref = elect.node_preferences(cfg.l2_advertisements, labels)
    return NodeInfo(labels=labels, problem=elect.node_problem(state, node), l2=l2, bgp=bgp, peers=peers, pref=pref)


# ----------------------------------------------------------------------------------------------------------------
# per-Service planning


def _candidates(plan: Plan, ad_keys: frozenset[AdKey]) -> tuple[list[str], list[bytes]]:
    """Eligible nodes selected by any of ``ad_keys`` (name order) and their ``b"<node>#"`` prefixes (cached)."""
    got = plan.cands.get(ad_keys)
    if got is None:
        names = [n for n in sorted(plan.nodes) if _eligible(plan.nodes[n], ad_keys)]
        got = (names, [f"{n}#".encode() for n in names])
        plan.cands[ad_keys] = got
    return got


def _eligible(info: NodeInfo | None, ad_keys: frozenset[AdKey]) -> bool:
    return info is not None and info.problem is None and not info.l2.isdisjoint(ad_keys)


def _elect(plan: Plan, rec: L2Rec) -> None:
    anchor = rec.anchor
    if rec.local is None:
        names, prefixes = _candidates(plan, rec.ad_keys)
    else:
        names = [n for n in sorted(rec.local) if _eligible(plan.nodes.get(n), rec.ad_keys)]
        prefixes = [f"{n}#".encode() for n in names]
    if not names:
        rec.reason = (Reason.NO_LOCAL_ENDPOINTS if rec.local is not None else Reason.NO_ELIGIBLE_NODES).value
        return
    sha = hashlib.sha256
    digests = [sha(p + anchor).digest() for p in prefixes]
    if not any(ad.preferred_node_selectors for ad in rec.ads):  # no preferences: the hash alone
        best = min(digests)
        rec.owner, rec.best, rec.score = names[digests.index(best)], best, 0
        return
    nodes = plan.nodes
    scores = [elect.score_of(nodes[n].pref, rec.ad_keys) for n in names]  # type: ignore[union-attr]
    i = min(range(len(names)), key=lambda j: (-scores[j], digests[j]))
    rec.owner, rec.best, rec.score = names[i], digests[i], scores[i]


def _forget(plan: Plan, key: ServiceKey) -> tuple[str, ...]:
    """Drop ``key`` from every index; returns the IPs it had."""
    old = plan.inputs.pop(key, None)
    plan.unassigned.discard(key)
    rec = plan.l2.pop(key, None)
    if rec is not None and rec.owner is not None:
        owned = plan.owned_by.get(rec.owner)
        if owned is not None:
            owned.discard(key)
            if not owned:
                del plan.owned_by[rec.owner]
    plan.bgp.pop(key, None)
    if old is None:
        return ()
    ips, pool, _ = old
    if pool is not None and pool in plan.pool_keys:
        plan.pool_keys[pool].discard(key)
        if not plan.pool_keys[pool]:
            del plan.pool_keys[pool]
    for ip in ips:
        users = plan.ip_users.get(ip)
        if users is not None:
            users.discard(key)
            if not users:
                del plan.ip_users[ip]
    return ips


def _inputs(state: State, key: ServiceKey) -> tuple | None:
    dec = state.services.get(key)
    if dec is None:
        return None
    return tuple(dec.ingress), dec.pool, state.service(key)


def _plan_service(state: State, plan: Plan, key: ServiceKey, refresh_ips: bool = True, reelect: bool = True) -> None:
    """Re-plan one Service. ``reelect=False`` (Service and EndpointSlice events) keeps the previous owner when the
    election inputs are unchanged; node and configuration changes always re-elect."""
    prev = None if reelect else plan.l2.get(key)
    old_ips = _forget(plan, key)
    inp = _inputs(state, key)
    _changed(plan, key)
    if inp is None:
        if refresh_ips:
            _refresh_ips(plan, old_ips)
        return
    plan.inputs[key] = inp
    ips, pool_name, svc = inp
    cfg = plan.cfg
    if not ips or pool_name is None or svc is None or cfg is None:
        plan.unassigned.add(key)
        if refresh_ips:
            _refresh_ips(plan, old_ips)
        return
    plan.replanned_ips += len(ips)
    plan.pool_keys.setdefault(pool_name, set()).add(key)
    for ip in ips:
        plan.ip_users.setdefault(ip, set()).add(key)
    pool = cfg.pool_by_name.get(pool_name)
    if pool is not None:
        _plan_l2(state, plan, key, ips, pool, svc, prev)
        _plan_bgp(state, plan, key, ips, pool, svc)
    if refresh_ips:
        _refresh_ips(plan, sorted(set(old_ips) | set(ips)))


def _plan_l2(state: State, plan: Plan, key: ServiceKey, ips: tuple[str, ...], pool: configmod.Pool,
             svc: schema.Service, prev: L2Rec | None = None) -> None:
    cfg = plan.cfg
    assert cfg is not None
    svc_labels = dict(svc.labels)
    wanted = set(plan.pool_l2.get(pool.name, ()))
    ads = tuple(
        ad for ad in cfg.l2_advertisements
        if _ad_key(ad) in wanted and selectors.any_matches(ad.service_selectors, svc_labels)
    )
    rec = L2Rec(ips=ips, has_ads=bool(ads), ads=ads, ad_keys=frozenset(_ad_key(a) for a in ads),
                anchor=ips[0].encode())
    plan.l2[key] = rec
    if not ads:
        return
    if elect.has_shared_ip_annotation(svc) and any(ad.service_selectors for ad in ads):
        rec.reason = Reason.SHARED_IP_WITH_SERVICE_SELECTOR.value
        return
    anywhere, local = elect.serving_nodes(state, svc)
    if not anywhere:
        rec.reason = Reason.NO_ENDPOINTS.value
        return
    rec.local = local if svc.external_traffic_policy == "Local" else None
    if (prev is not None and prev.owner is not None and prev.ips[0] == ips[0] and prev.ad_keys == rec.ad_keys
            and prev.local == rec.local and _eligible(plan.nodes.get(prev.owner), rec.ad_keys)):
        # same election inputs, and node changes are always propagated at once: the owner stands (no re-ranking)
        rec.owner, rec.best, rec.score = prev.owner, prev.best, prev.score
    else:
        _elect(plan, rec)
    if rec.owner is not None:
        plan.owned_by.setdefault(rec.owner, set()).add(key)


def _plan_bgp(state: State, plan: Plan, key: ServiceKey, ips: tuple[str, ...], pool: configmod.Pool,
              svc: schema.Service) -> None:
    ads = plan.pool_bgp.get(pool.name, ())
    if not ads:
        return
    anywhere, local = elect.serving_nodes(state, svc)
    plan.bgp[key] = BgpRec(
        ips=ips,
        families=pool.families(),
        ads=ads,
        matches=tuple(bgpplan.matches_service(ad, svc) for ad in ads),
        local_only=svc.external_traffic_policy == "Local",
        anywhere=anywhere,
        local=local,
    )


def _refresh_ips(plan: Plan, ips) -> None:
    """Rule 4 of elect: an IP's owner is the one elected for its smallest-keyed user that elected one."""
    for ip in ips:
        users = plan.ip_users.get(ip)
        new = None
        if users:
            for key in sorted(users):
                rec = plan.l2.get(key)
                if rec is not None and rec.owner is not None:
                    new = (rec.owner, key)
                    break
        old = plan.ip_owner.get(ip)
        if new is None:
            plan.ip_owner.pop(ip, None)
        else:
            plan.ip_owner[ip] = new
        if old != new and users:
            for key in users:
                _changed(plan, key)


def _changed(plan: Plan, key: ServiceKey) -> None:
    for ch in plan.subscribers.values():
        ch.keys.add(key)


def _node_touched(plan: Plan, name: str) -> None:
    for ch in plan.subscribers.values():
        ch.nodes.add(name)


# ----------------------------------------------------------------------------------------------------------------
# the fold's hooks


def before(state: State, event: schema.Event) -> object:
    """Called by the fold before ``event`` is applied: remembers what the event will overwrite."""
    if not isinstance(state.plan, Plan):
        return None
    if isinstance(event, schema.K8sUpsert) and isinstance(event.obj, schema.EndpointSlice):
        old = state.objects["EndpointSlice"].get((event.obj.namespace, event.obj.name))
        return old.service_name if isinstance(old, schema.EndpointSlice) else None
    if isinstance(event, schema.K8sDelete) and event.ref.kind == "EndpointSlice":
        old = state.objects["EndpointSlice"].get((event.ref.namespace, event.ref.name))
        return old.service_name if isinstance(old, schema.EndpointSlice) else None
    return None


def after(state: State, event: schema.Event, token: object) -> None:
    """Called by the fold after ``event`` was applied: re-plans what it can affect (nothing if not built yet)."""
    plan = state.plan
    if not isinstance(plan, Plan):
        return
    if state.config is not plan.cfg:
        _config_changed(state, plan)
        return
    match event:
        case schema.SpeakerUp(node=name) | schema.SpeakerDown(node=name):
            _node_changed(state, plan, name)
        case schema.K8sUpsert(obj=schema.Node(name=name)):
            _node_changed(state, plan, name)
        case schema.K8sDelete(ref=ref) if ref.kind == "Node":
            _node_changed(state, plan, ref.name)
        case schema.K8sUpsert(obj=schema.Service() as svc):
            _service_changed(state, plan, f"{svc.namespace}/{svc.name}")
        case schema.K8sDelete(ref=ref) if ref.kind == "Service":
            _service_changed(state, plan, f"{ref.namespace}/{ref.name}")
        case schema.K8sUpsert(obj=schema.EndpointSlice() as sl):
            _slice_changed(state, plan, sl.namespace, sl.service_name, token)
        case schema.K8sDelete(ref=ref) if ref.kind == "EndpointSlice":
            _slice_changed(state, plan, ref.namespace, None, token)
        case _:
            pass


def _service_changed(state: State, plan: Plan, key: ServiceKey) -> None:
    _plan_service(state, plan, key, reelect=False)
    # the allocator may have given a waiting Service an address (or taken one): re-plan those whose input moved
    for other in sorted(plan.unassigned):
        if other != key and plan.inputs.get(other) != _inputs(state, other):
            _plan_service(state, plan, other)


def _slice_changed(state: State, plan: Plan, ns: str, svc_name: str | None, token: object) -> None:
    names = {n for n in (svc_name, token) if isinstance(n, str) and n}
    for name in sorted(names):
        key = f"{ns}/{name}"
        if key in state.services or key in plan.inputs:
            _plan_service(state, plan, key, reelect=False)


def _node_changed(state: State, plan: Plan, name: str) -> None:
    old = plan.nodes.get(name)
    new = _node_info(state, plan, name)
    if old == new:
        return
    if new is None:
        plan.nodes.pop(name, None)
    else:
        plan.nodes[name] = new
    _node_touched(plan, name)
    plan.cands.clear()
    lost = old is not None and (new is None or new.problem is not None or not old.l2 <= new.l2)
    if lost or (old is not None and old.problem is None and new is not None and new.problem is None):
        for key in sorted(plan.owned_by.get(name, ())):
            _plan_service(state, plan, key)
    gained = new is not None and new.problem is None and (old is None or old.problem is not None or not new.l2 <= old.l2
                                                          or new.pref != old.pref)
    if not gained:
        return
    assert new is not None
    prefix = f"{name}#".encode()
    sha = hashlib.sha256
    again = []
    retry = (Reason.NO_ELIGIBLE_NODES.value, Reason.NO_LOCAL_ENDPOINTS.value)
    for key, rec in plan.l2.items():  # insertion order; the outcome per Service does not depend on the order
        if not rec.has_ads or rec.owner == name or new.l2.isdisjoint(rec.ad_keys):
            continue
        if rec.local is not None and name not in rec.local:
            continue
        if rec.owner is None:
            if rec.reason in retry:
                again.append(key)
            continue
        plan.compared += 1
        score = elect.score_of(new.pref, rec.ad_keys) if new.pref else 0  # elect Rule 1a, then the hash
        if score > rec.score or (score == rec.score and sha(prefix + rec.anchor).digest() < rec.best):
            again.append(key)
    for key in sorted(again):
        _plan_service(state, plan, key)


def _config_changed(state: State, plan: Plan) -> None:
    """A new configuration is in force (also after a Node event when validation looks at node labels)."""
    old_cfg, old_l2, old_bgp, old_bcfg = plan.cfg, plan.pool_l2, plan.pool_bgp, plan.bcfg
    _load_config(state, plan)
    cfg = state.config
    names = sorted(set(plan.nodes) | set(_node_names(state)))
    if old_bcfg is None or plan.bcfg is None or old_bcfg.peers != plan.bcfg.peers:
        for ch in plan.subscribers.values():
            ch.everything = True
    keys: set[ServiceKey] = set()
    if old_cfg is None or cfg is None or old_cfg.l2_advertisements != cfg.l2_advertisements:
        # advertisements changed: every node's eligibility may differ; re-plan every Service with an IP
        for name in names:
            info = _node_info(state, plan, name)
            if plan.nodes.get(name) != info:
                _node_touched(plan, name)
            if info is None:
                plan.nodes.pop(name, None)
            else:
                plan.nodes[name] = info
        keys.update(plan.inputs)
        keys.update(state.services)
    else:
        for name in names:  # node selectors of BGP ads or peers, or a node's own labels
            _node_changed(state, plan, name)
        for pool in sorted(set(plan.pool_l2) | set(old_l2)):
            if plan.pool_l2.get(pool) != old_l2.get(pool) or plan.pool_bgp.get(pool) != old_bgp.get(pool):
                keys.update(plan.pool_keys.get(pool, ()))
        if old_cfg.pools != cfg.pools:
            keys.update(k for k in sorted(set(state.services) | set(plan.inputs))
                        if plan.inputs.get(k) != _inputs(state, k))
    for key in sorted(keys):
        _plan_service(state, plan, key)


# ----------------------------------------------------------------------------------------------------------------
# reading the plan


def l2_map(state: State, key: ServiceKey) -> dict:
    """The replay JSON ``l2`` map of one Service: ip -> {"node", "reason"} (design.md §5)."""
    plan = ensure(state)
    rec = plan.l2.get(key)
    if rec is None or not rec.has_ads:
        return {}
    if rec.owner is None:
        return {ip: {"node": None, "reason": rec.reason} for ip in rec.ips}
    return {ip: {"node": plan.ip_owner[ip][0], "reason": None} for ip in rec.ips}


def l2_owner(state: State, ip: str) -> str | None:
    got = ensure(state).ip_owner.get(ip)
    return got[0] if got else None


def _l2_for_node(plan: Plan, key: ServiceKey, node: str, info: NodeInfo | None) -> dict[str, tuple[str, ...]]:
    rec = plan.l2.get(key)
    if rec is None or not rec.has_ads or info is None or info.problem is not None:
        return {}
    out = {}
    for ip in rec.ips:
        own = plan.ip_owner.get(ip)
        if own is None or own[0] != node:
            continue
        if not any(_ad_key(ad) in info.l2 for ad in rec.ads):
            continue  # this sharer's advertisements do not select the owner; another sharer announces it
        out[ip] = elect.interfaces_for(list(rec.ads), info.labels)
    return out


def _bgp_for_node(plan: Plan, key: ServiceKey, node: str, info: NodeInfo | None) -> tuple[str | None, list]:
    rec = plan.bgp.get(key)
    if rec is None:
        inp = plan.inputs.get(key)
        if inp is None or not inp[0]:
            return Reason.NO_IP_ALLOCATED.value, []
        return Reason.NOT_OWNER.value, []  # the pool has no BGPAdvertisement
    if info is None:
        return Reason.NOT_OWNER.value, []
    return bgpplan.service_on_node(
        rec.local_only, rec.ips, rec.families, rec.ads, rec.matches,
        lambda ad: _ad_key(ad.obj) in info.bgp, info.peers, info.problem, rec.anywhere, node in rec.local,
    )


def node_plan(state: State, node: str) -> effects.NodePlan:
    """Everything ``node`` should announce now, from the plan's per-Service records."""
    plan = ensure(state)
    info = plan.nodes.get(node)
    out = effects.NodePlan()
    if info is None or info.problem is not None:
        return out
    for key in sorted(plan.owned_by.get(node, ())) + _sharers_owned(plan, node):
        for ip, ifs in _l2_for_node(plan, key, node, info).items():
            out.l2[ip] = _union_ifaces(out.l2.get(ip), ifs)
    entries = []
    for key in sorted(plan.bgp):
        entries.extend(_bgp_for_node(plan, key, node, info)[1])
    for (peer, pfx), (lp, cs) in bgpplan.merge(entries).items():
        out.bgp[(peer, bgpplan.prefix_text(pfx))] = (lp or None, cs)
    return out


def _sharers_owned(plan: Plan, node: str) -> list[ServiceKey]:
    """Services announcing an IP ``node`` owns although their own election chose another node (Rule 4)."""
    out: set[ServiceKey] = set()
    for key in plan.owned_by.get(node, ()):
        for ip in plan.l2[key].ips:
            out.update(plan.ip_users.get(ip, ()))
    return sorted(out - plan.owned_by.get(node, set()))


def _union_ifaces(a: tuple[str, ...] | None, b: tuple[str, ...]) -> tuple[str, ...]:
    if a is None:
        return b
    if a == () or b == ():
        return ()
    return tuple(sorted(set(a) | set(b)))


def bgp_map(state: State) -> dict:
    """The replay JSON ``bgp`` map: node -> peer -> advertisements (design.md §5); empty nodes/peers omitted.

    Nodes alike for BGP (same problem, same advertisements and peers selecting them) send the same prefixes for
    every ``Cluster`` Service, so that part is computed once per kind of node; ``Local`` Services are added per
    node from an index of the nodes hosting their endpoints.
    """
    plan = ensure(state)
    local_idx: dict[str, list[ServiceKey]] = {}
    cluster_keys: list[ServiceKey] = []
    for key in sorted(plan.bgp):
        rec = plan.bgp[key]
        if rec.local_only:
            for n in sorted(rec.local):
                local_idx.setdefault(n, []).append(key)
        else:
            cluster_keys.append(key)
    groups: dict[tuple, tuple[bgpplan.Raw, list, dict]] = {}
    out = {}
    for node in _node_names(state):
        info = plan.nodes.get(node)
        if info is None or info.problem is not None:
            continue
        sig = (info.bgp, info.peers)
        if sig not in groups:
            entries = [e for key in cluster_keys for e in _bgp_for_node(plan, key, node, info)[1]]
            raw = bgpplan.merge_raw(entries)
            order = sorted(raw)
            items = {k: _bgp_item(k, raw[k]) for k in order}
            groups[sig] = (raw, order, items)
        raw, order, items = groups[sig]
        extra = [e for key in local_idx.get(node, ()) for e in _bgp_for_node(plan, key, node, info)[1]]
        if extra:
            touched = bgpplan.merge_raw(extra, into={k: raw[k] for k in {(e[0], e[1]) for e in extra} if k in raw})
            new_keys = sorted(k for k in touched if k not in raw)
            keys = list(heapq.merge(order, new_keys)) if new_keys else order
            peers = _bgp_lists(keys, items, {k: _bgp_item(k, v) for k, v in touched.items()})
        else:
            peers = _bgp_lists(order, items, {})
        if peers:
            out[node] = peers
    return out


def _bgp_item(key: tuple[str, tuple[int, int, int]], value: tuple[str, int, frozenset[str]]) -> dict:
    _, lp, cs = value
    return {"prefix": bgpplan.prefix_text(key[1]), "local_pref": lp or None,
            "communities": sorted(cs, key=bgpplan.community_key)}


def _bgp_lists(keys: list, items: dict, overrides: dict) -> dict[str, list]:
    peers: dict[str, list] = {}
    for k in keys:
        item = overrides.get(k)
        if item is None:
            item = items[k]
        lst = peers.get(k[0])
        if lst is None:
            lst = peers[k[0]] = []
        lst.append(item)
    return peers


def subscribe(state: State, name: str) -> Changes:
    """Register a consumer of changes (e.g. a speaker's :class:`NodeView`); returns its change set."""
    plan = ensure(state)
    ch = plan.subscribers.get(name)
    if ch is None:
        ch = plan.subscribers[name] = Changes(everything=True)
    return ch


class NodeView:
    """One node's plan, kept up to date from the change sets: what a speaker holds.

    ``sync(state)`` returns the effects since the previous call (the first call announces everything).
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self.current = effects.NodePlan()
        self._l2: dict[ServiceKey, dict[str, tuple[str, ...]]] = {}
        self._bgp: dict[ServiceKey, list] = {}
        self._bgp_idx: dict[tuple, set[ServiceKey]] = {}  # (peer, prefix) -> Services sending it
        self._l2_idx: dict[str, set[ServiceKey]] = {}  # ip -> Services announcing it here

    def _l2_idx_users(self, ip: str) -> set[ServiceKey]:
        return self._l2_idx.get(ip, set())

    def sync(self, state: State) -> list[effects.Effect]:
        plan = ensure(state)
        ch = subscribe(state, f"node-view:{self.node}")
        info = plan.nodes.get(self.node)
        if ch.everything or self.node in ch.nodes:
            keys = sorted(set(plan.inputs) | set(self._l2) | set(self._bgp))
            bgp_keys = keys
        else:
            keys = sorted(ch.keys)
            bgp_keys = keys
        ch.keys.clear()
        ch.nodes.clear()
        ch.everything = False
        touched_ips: set[str] = set()
        for key in keys:
            new_l2 = _l2_for_node(plan, key, self.node, info)
            old_l2 = self._l2.pop(key, {})
            if new_l2:
                self._l2[key] = new_l2
            if new_l2 != old_l2:
                for ip in old_l2:
                    users = self._l2_idx.get(ip)
                    if users is not None:
                        users.discard(key)
                        if not users:
                            del self._l2_idx[ip]
                for ip in new_l2:
                    self._l2_idx.setdefault(ip, set()).add(key)
                touched_ips.update(new_l2)
                touched_ips.update(old_l2)
        touched_bgp: set = set()
        for key in bgp_keys:
            entries = _bgp_for_node(plan, key, self.node, info)[1]
            old = self._bgp.pop(key, [])
            if entries:
                self._bgp[key] = entries
            if entries == old:
                continue
            for e in old:
                users = self._bgp_idx.get((e[0], e[1]))
                if users is not None:
                    users.discard(key)
                    if not users:
                        del self._bgp_idx[(e[0], e[1])]
                touched_bgp.add((e[0], e[1]))
            for e in entries:
                self._bgp_idx.setdefault((e[0], e[1]), set()).add(key)
                touched_bgp.add((e[0], e[1]))
        new = effects.NodePlan(l2=dict(self.current.l2), bgp=dict(self.current.bgp))
        if touched_ips:
            agg: dict[str, tuple[str, ...]] = {}
            for ip in sorted(touched_ips):
                for key in sorted(self._l2_idx_users(ip)):
                    agg[ip] = _union_ifaces(agg.get(ip), self._l2[key][ip])
            for ip in sorted(touched_ips):
                if ip in agg:
                    new.l2[ip] = agg[ip]
                else:
                    new.l2.pop(ip, None)
        for pk in sorted(touched_bgp):
            entries = [e for key in sorted(self._bgp_idx.get(pk, ())) for e in self._bgp[key] if (e[0], e[1]) == pk]
            text_key = (pk[0], bgpplan.prefix_text(pk[1]))
            if entries:
                (lp, cs), = bgpplan.merge(entries).values()
                new.bgp[text_key] = (lp or None, cs)
            else:
                new.bgp.pop(text_key, None)
        out = effects.diff(self.current, new)
        self.current = new
        return out


# ----------------------------------------------------------------------------------------------------------------
# explanations


def l2_reasons(state: State, key: ServiceKey, node: str) -> dict[str, str | None]:
    """What ``node`` does in L2 for Service ``key``: ip -> None (announces) or the reason (same as
    :func:`reconciler.elect.should_announce`, from the plan)."""
    plan = ensure(state)
    rec = plan.l2.get(key)
    inp = plan.inputs.get(key)
    if inp is None or not inp[0]:
        return {}
    ips = inp[0]
    info = plan.nodes.get(node)
    if info is None:
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    if info.problem is not None:
        return {ip: info.problem for ip in ips}
    if rec is None or not rec.has_ads:
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    if rec.reason in (Reason.SHARED_IP_WITH_SERVICE_SELECTOR.value, Reason.NO_ENDPOINTS.value):
        return {ip: rec.reason for ip in ips}
    if info.l2.isdisjoint(rec.ad_keys):
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    if rec.local is not None and node not in rec.local:
        return {ip: Reason.NO_LOCAL_ENDPOINTS.value for ip in ips}
    return {ip: (None if plan.ip_owner.get(ip, ("", ""))[0] == node else Reason.NOT_OWNER.value) for ip in ips}


def bgp_reason(state: State, key: ServiceKey, node: str) -> tuple[str | None, dict]:
    """(reason or None, peer -> advertisements) of ``node`` for Service ``key``."""
    plan = ensure(state)
    reason, entries = _bgp_for_node(plan, key, node, plan.nodes.get(node))
    return reason, (bgpplan.to_json(bgpplan.merge(entries)) if reason is None else {})


def explain(state: State, key: ServiceKey, node: str | None = None) -> dict:
    """Per node (or one node): L2 verdict per IP and BGP verdict (reason or the advertisements) for Service ``key``."""
    names = [node] if node is not None else _node_names(state)
    out: dict = {}
    for name in names:
        reason, peers = bgp_reason(state, key, name)
        out[name] = {"l2": l2_reasons(state, key, name), "bgp": {"reason": reason, "peers": peers}}
    return out


def explain_node(state: State, node: str) -> dict:
    """Everything ``node`` does and does not do, per Service: ``{service: {"l2": {ip: reason|None},
    "bgp": {"reason", "peers"}}}`` — the per-node reasons ``streamlb explain`` shows."""
    plan = ensure(state)
    out: dict = {}
    for key in sorted(state.services):
        reason, peers = bgp_reason(state, key, node)
        out[key] = {"l2": l2_reasons(state, key, node), "bgp": {"reason": reason, "peers": peers}}
    _ = plan
    return out


def l2_section(state: State, key: ServiceKey, svc: schema.Service) -> dict | None:
    """The ``l2`` section of ``streamlb explain``: per IP the owner (or why none) and every node grouped by what
    it does (``announces`` or its reason)."""
    ensure(state)
    owners = l2_map(state, key)
    dec = state.services.get(key)
    if dec is None or not dec.ingress:
        return None
    out: dict = {}
    per_node = {name: l2_reasons(state, key, name) for name in _node_names(state)}
    for ip in dec.ingress:
        groups: dict[str, list[str]] = {}
        for name, reasons in per_node.items():
            groups.setdefault(reasons.get(ip) or "announces", []).append(name)
        entry = owners.get(ip, {"node": None, "reason": Reason.NO_MATCHING_ADVERTISEMENT.value})
        out[ip] = {"owner": entry["node"], "reason": entry["reason"], "nodes": groups}
    return out


def bgp_section(state: State, key: ServiceKey, svc: schema.Service) -> dict | None:
    """The ``bgp`` section of ``streamlb explain``: what each announcing node sends to which peer, and the other
    nodes grouped by reason."""
    ensure(state)
    dec = state.services.get(key)
    if dec is None or not dec.ingress:
        return None
    announcing: dict = {}
    others: dict[str, list[str]] = {}
    for name in _node_names(state):
        reason, peers = bgp_reason(state, key, name)
        if reason is None:
            announcing[name] = peers
        else:
            others.setdefault(reason, []).append(name)
    return {"announcing": announcing, "not_announcing": others}


def plan(old: State, new: State, node: str) -> list[effects.Effect]:
    """The ordered effects that take ``node`` from what it announces in ``old`` to what it announces in ``new``
    (withdrawals first; L2 announcements carry their gratuitous burst schedule)."""
    return effects.diff(node_plan(old, node), node_plan(new, node))


def bgp_services(state: State) -> dict[ServiceKey, dict[str, tuple[str, ...]]]:
    """Per Service: node -> the BGPPeer names that node advertises the Service to (sorted), for every node that
    advertises it; Services no node advertises are omitted (MetalLB's ServiceBGPStatus view of the ``bgp`` map).

    As in :func:`bgp_map`, a ``Cluster`` Service is evaluated once per kind of node (same advertisements and peers).
    """
    plan = ensure(state)
    out: dict[ServiceKey, dict[str, tuple[str, ...]]] = {}
    nodes = [(n, plan.nodes.get(n)) for n in _node_names(state)]
    for key in sorted(plan.bgp):
        rec = plan.bgp[key]
        by_sig: dict[tuple, tuple[str, ...]] = {}
        per_node: dict[str, tuple[str, ...]] = {}
        for node, info in nodes:
            if info is None or info.problem is not None:
                continue
            if rec.local_only:
                if node not in rec.local:
                    continue
                peers = tuple(sorted({e[0] for e in _bgp_for_node(plan, key, node, info)[1]}))
            else:
                sig = (info.bgp, info.peers)
                if sig not in by_sig:
                    by_sig[sig] = tuple(sorted({e[0] for e in _bgp_for_node(plan, key, node, info)[1]}))
                peers = by_sig[sig]
            if peers:
                per_node[node] = peers
        if per_node:
            out[key] = per_node
    return out
