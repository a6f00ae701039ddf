"""Announcement planning kept up to date event by event: L2 owners and BGP advertisements.

Theory of operation
-------------------
:mod:`reconciler.elect` and :mod:`reconciler.bgpplan` say, from scratch, what every node announces. Re-running
them for every Service after every event would cost O(Services × nodes) per event (MetalLB re-syncs every Service
on every membership change). :class:`Plan` keeps their answers per Service plus the indexes that let an event
re-plan only what it can affect:

* a Service or EndpointSlice event re-plans that Service (and the Services that were waiting for an address, in
  case the allocator gave them one);
* a Node or speaker event re-runs only the L2 elections of the Services that node owned when it lost
  eligibility; when it gained eligibility it compares its election key with each current owner's (one SHA-256 per
  L2 Service, no re-ranking: adding a node moves an IP only if the new node sorts first, and then it simply takes
  it); a change that leaves its eligibility alone (labels, BGP advertisements, peers) re-plans nothing. BGP output
  of a node is computed from the per-Service records when asked — Rule 1 of bgpplan decided once per shape of
  Service and kind of node (:func:`_outcome`) — so node events only mark that node as touched;
* a configuration change re-plans the Services whose pool's advertisements changed or whose allocation moved.

The fold's hook (:func:`after`) only records what an event names; the re-planning runs when the plan is next
read (:func:`ensure`: a hash, a snapshot, a speaker's sync, a query) or before a configuration change, once per
named Service and once per named node. Until then the plan is the right one for the inputs and node information it
holds, so a batch that moves a node down and up again, or updates a Service ten times, costs what it changed. A
node back from a problem (speaker down, ...) with the advertisements it left with compares only the Services
re-elected while it was away (a journal), not every L2 Service.

Every re-planned Service is recorded in the change sets of the subscribers (:func:`subscribe`), which is how a
speaker's :class:`NodeView` keeps its own node's plan incrementally.

The plan is built lazily, on first use (:func:`ensure`): a replay that never asks for announcements pays nothing.
After a snapshot load it is rebuilt from the recorded L2 owners (:class:`Seed`) in O(Services + nodes), without
re-running the elections. :func:`hash_rows` gives the per-Service part of the state hash (design.md §4) and
:func:`bgp_map` the replay ``bgp`` map from shared parts.

Rules:

* Rule 1: same answers as the from-scratch reference, after any sequence of events (tested with hypothesis).
* Rule 2: nothing here decides by set or dict iteration order; output goes through ``sorted``.
* Rule 3: this module mutates only ``state.plan``; allocation decisions are read from ``state.services``.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field

import msgspec

from events import schema
from reconciler import bgpplan, effects, elect, net, selectors
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
    prefs: bool = False  # some of its advertisements carry preferredNodeSelectors (elect Rule 1a applies)
    anchor: bytes = b""  # the first IP as bytes (what the election hashes after "<node>#")
    # the runner-up: the candidate with the next key, kept while known (a node joining between the two updates it;
    # checked for eligibility when used); None when unknown — then losing the owner means a full election
    second: str | None = None
    second_key: bytes = b""


@dataclass(slots=True)
class BgpRec:
    pool: str  # its advertisements are the pool's (``ads``): within one configuration, the pool names them
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
    pool_families: dict[str, frozenset[int]] = field(default_factory=dict)
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
    outcomes: dict[tuple, list | None] = field(default_factory=dict)  # see _outcome; cleared with the config
    pool_l2_ads: dict[str, tuple] = field(default_factory=dict)  # pool -> (its L2 ads, their keys, any selects
    #                                                               Services); cleared with the config
    subscribers: dict[str, Changes] = field(default_factory=dict)
    # nodes that lost eligibility by a problem alone (speaker down, ...): node -> (its L2 advertisements and
    # preferences when it was eligible, journal position when it left); see _node_changed
    away: dict[str, tuple[frozenset[AdKey], tuple, int]] = field(default_factory=dict)
    journal: list[ServiceKey] = field(default_factory=list)  # Services whose L2 election was set, while any is away
    journal_base: int = 0  # absolute position of journal[0]
    pending_nodes: set[str] = field(default_factory=set)  # nodes whose events are not planned yet (see after)
    # Services whose events are not planned yet: key -> whether a Service event (True) or only an EndpointSlice
    # event (False) named it
    pending_services: dict[ServiceKey, bool] = field(default_factory=dict)
    # counters (observability and tests; not part of any decision)
    replanned_ips: int = 0
    compared: int = 0


# ----------------------------------------------------------------------------------------------------------------
# construction


@dataclass(frozen=True, slots=True)
class Seed:
    """What a snapshot knows of the plan (the elected L2 owners): the plan is rebuilt from it on first use."""

    owners: dict[ServiceKey, str]


def ensure(state: State) -> Plan:
    """The plan of ``state``, built from scratch the first time (from a snapshot's :class:`Seed` if there is one)."""
    plan = state.plan
    if not isinstance(plan, Plan):
        plan = rebuild(state, plan.owners if isinstance(plan, Seed) else None)
    elif plan.pending_nodes or plan.pending_services:
        _flush(state, plan)
    return plan


def _flush(state: State, plan: Plan) -> None:
    """Plan the events deferred by :func:`after`: first every Service named by a Service or EndpointSlice event,
    once, with the node information the plan holds (so a Service whose inputs are unchanged keeps its owner), and
    the waiting Services the allocator may have moved; then each node once, from the information the plan holds
    for it to its current one (a node that went down and came back in between costs nothing)."""
    if plan.pending_services:
        pending = sorted(plan.pending_services.items())
        plan.pending_services.clear()
        for key, by_service in pending:
            if by_service or key in state.services or key in plan.inputs:
                _plan_service(state, plan, key, reelect=False)
        if any(by_service for _, by_service in pending):
            # the allocator may have given a waiting Service an address (or taken one)
            for other in sorted(plan.unassigned):
                if plan.inputs.get(other) != _inputs(state, other):
                    _plan_service(state, plan, other)
    names = sorted(plan.pending_nodes)
    plan.pending_nodes.clear()
    for name in names:
        _node_changed(state, plan, name)


def rebuild(state: State, owners: dict[ServiceKey, str] | None = None) -> Plan:
    """Full recomputation (the baseline incremental planning is measured and tested against).

    ``owners`` (Service -> the L2 owner it had; a snapshot carries them, see :mod:`reconciler.snapshot`) skips the
    election where the recorded owner is still a candidate: the election is a pure function of the state, so an
    owner recorded for the same state is the one it would elect, and the rebuild costs O(Services + nodes)
    instead of O(Services × nodes) SHA-256 rankings."""
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
        _plan_service(state, plan, key, refresh_ips=False, hint=owners.get(key) if owners else None)
    _refresh_ips(plan, sorted(plan.ip_users))
    return plan


def owners(state: State) -> dict[ServiceKey, str]:
    """Service -> its elected L2 owner (what a snapshot records so a loader need not re-run the elections)."""
    plan = ensure(state)
    return {key: rec.owner for key, rec in sorted(plan.l2.items()) if rec.owner is not None}


def _node_names(state: State) -> list[str]:
    return [name for (_, name) in sorted(state.objects["Node"])]


def _load_config(state: State, plan: Plan) -> None:
    cfg = state.config
    plan.cfg = cfg
    plan.cands.clear()
    plan.outcomes = {}
    plan.pool_l2_ads = {}
    plan.pool_l2, plan.pool_bgp = {}, {}
    if cfg is None:
        plan.bcfg = None
        return
    plan.bcfg = bgpplan.parse(cfg)
    plan.pool_families = {pool.name: pool.families() for pool in cfg.pools}
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
    if rec.prefs:  # elect Rule 1a: the preference score, then the hash
        nodes = plan.nodes
        scores = [elect.score_of(nodes[n].pref, rec.ad_keys) for n in names]  # type: ignore[union-attr]
        i = min(range(len(names)), key=lambda j: (-scores[j], digests[j]))
        rec.owner, rec.best, rec.score = names[i], digests[i], scores[i]
        rec.second, rec.second_key = None, b""  # no runner-up shortcut: scores move with labels, re-elect in full
        return
    best = min(digests)
    i = digests.index(best)
    rec.owner = names[i]
    rec.best = best
    rec.score = 0
    rec.second, rec.second_key = None, b""
    if len(digests) > 1:
        digests[i] = b"\xff" * 33  # above any SHA-256 digest
        second = min(digests)
        rec.second, rec.second_key = names[digests.index(second)], second


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


def _plan_service(state: State, plan: Plan, key: ServiceKey, refresh_ips: bool = True, reelect: bool = True,
                  hint: str | None = None) -> None:
    """Re-plan one Service. ``reelect=False`` (Service and EndpointSlice events) keeps the previous owner when the
    election inputs are unchanged; node and configuration changes always re-elect. ``hint``: see :func:`rebuild`."""
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
        served = elect.serving_nodes(state, svc)
        _plan_l2(state, plan, key, ips, pool, svc, prev, hint, served)
        _plan_bgp(state, plan, key, ips, pool, svc, served)
    if refresh_ips:
        _refresh_ips(plan, sorted(set(old_ips) | set(ips)))


def _plan_l2(state: State, plan: Plan, key: ServiceKey, ips: tuple[str, ...], pool: configmod.Pool,
             svc: schema.Service, prev: L2Rec | None = None, hint: str | None = None,
             served: tuple[bool, frozenset[str]] | None = None) -> None:
    cfg = plan.cfg
    assert cfg is not None
    common = plan.pool_l2_ads.get(pool.name)
    if common is None:
        wanted = set(plan.pool_l2.get(pool.name, ()))
        pool_ads = tuple(ad for ad in cfg.l2_advertisements if _ad_key(ad) in wanted)
        keys = frozenset(_ad_key(a) for a in pool_ads)
        common = plan.pool_l2_ads[pool.name] = (pool_ads, keys, any(ad.service_selectors for ad in pool_ads))
    ads, ad_keys, by_service = common
    if by_service:  # some advertisement of the pool looks at the Service's labels
        svc_labels = dict(svc.labels)
        ads = tuple(ad for ad in ads if selectors.any_matches(ad.service_selectors, svc_labels))
        ad_keys = frozenset(_ad_key(a) for a in ads)
    rec = L2Rec(ips=ips, has_ads=bool(ads), ads=ads, ad_keys=ad_keys, anchor=ips[0].encode(),
                prefs=any(ad.preferred_node_selectors for ad in ads))
    plan.l2[key] = rec
    if plan.away:
        _journal(plan, key)
    if not ads:
        return
    if elect.has_shared_ip_annotation(svc) and any(ad.service_selectors for ad in ads):
        rec.reason = Reason.SHARED_IP_WITH_SERVICE_SELECTOR.value
        return
    anywhere, local = served if served is not None else elect.serving_nodes(state, svc)
    if not anywhere:
        rec.reason = Reason.NO_ENDPOINTS.value
        return
    rec.local = local if svc.external_traffic_policy == "Local" else None
    if hint is not None and _eligible(plan.nodes.get(hint), rec.ad_keys) and (rec.local is None or hint in rec.local):
        rec.owner = hint  # recorded by a snapshot of this very state (see rebuild)
        rec.best = hashlib.sha256(f"{hint}#".encode() + rec.anchor).digest()
        if rec.prefs:
            rec.score = elect.score_of(plan.nodes[hint].pref, rec.ad_keys)  # type: ignore[union-attr]
    elif (prev is not None and prev.owner is not None and prev.ips[0] == ips[0] and prev.ad_keys == rec.ad_keys
            and prev.local == rec.local and _eligible(plan.nodes.get(prev.owner), rec.ad_keys)):
        # same election inputs, and node changes are always propagated at once: the owner stands (no re-ranking)
        rec.owner, rec.best, rec.score = prev.owner, prev.best, prev.score
    else:
        _elect(plan, rec)
    if rec.owner is not None:
        plan.owned_by.setdefault(rec.owner, set()).add(key)


def _plan_bgp(state: State, plan: Plan, key: ServiceKey, ips: tuple[str, ...], pool: configmod.Pool,
              svc: schema.Service, served: tuple[bool, frozenset[str]] | None = None) -> None:
    ads = plan.pool_bgp.get(pool.name, ())
    if not ads:
        return
    anywhere, local = served if served is not None else elect.serving_nodes(state, svc)
    plan.bgp[key] = BgpRec(
        pool=pool.name,
        ips=ips,
        families=plan.pool_families.get(pool.name) or pool.families(),
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
    plan = state.plan
    if type(plan) is Seed:
        ensure(state)  # the recorded owners hold for the state as loaded, not after this event
    elif type(plan) is not Plan:
        return None
    t = type(event)
    if t is schema.K8sUpsert:
        obj = event.obj  # type: ignore[union-attr]
        if type(obj) is not schema.EndpointSlice:
            return None
        key = (obj.namespace, obj.name)
    elif t is schema.K8sDelete and event.ref.kind == "EndpointSlice":  # type: ignore[union-attr]
        key = (event.ref.namespace, event.ref.name)  # type: ignore[union-attr]
    else:
        return None
    old = state.objects["EndpointSlice"].get(key)
    return old.service_name if type(old) is schema.EndpointSlice else None


def after(state: State, event: schema.Event, token: object) -> None:
    """Called by the fold after ``event`` was applied: re-plans what it can affect (nothing if not built yet)."""
    plan = state.plan
    if type(plan) is not Plan:
        return
    if state.config is not plan.cfg:
        if plan.pending_nodes or plan.pending_services:
            _flush(state, plan)
        _config_changed(state, plan)
        return
    # events are planned when the plan is next read (ensure) or the configuration changes (_flush): until then the
    # plan is the right one for the Service inputs and the node information it holds (plan.inputs, plan.l2,
    # plan.nodes), and the flush takes it to the current ones, once per Service and per node
    t = type(event)
    if t is schema.K8sUpsert:
        obj = event.obj  # type: ignore[union-attr]
        k = type(obj)
        if k is schema.EndpointSlice:
            _slice_changed(state, plan, obj.namespace, obj.service_name, token)
        elif k is schema.Service:
            _service_changed(state, plan, f"{obj.namespace}/{obj.name}")
        elif k is schema.Node:
            plan.pending_nodes.add(obj.name)
    elif t is schema.K8sDelete:
        ref = event.ref  # type: ignore[union-attr]
        kind = ref.kind
        if kind == "EndpointSlice":
            _slice_changed(state, plan, ref.namespace, None, token)
        elif kind == "Service":
            _service_changed(state, plan, f"{ref.namespace}/{ref.name}")
        elif kind == "Node":
            plan.pending_nodes.add(ref.name)
    elif t is schema.SpeakerUp or t is schema.SpeakerDown:
        plan.pending_nodes.add(event.node)  # type: ignore[union-attr]


def _service_changed(state: State, plan: Plan, key: ServiceKey) -> None:
    plan.pending_services[key] = True


def _slice_changed(state: State, plan: Plan, ns: str, svc_name: str | None, token: object) -> None:
    for name in (svc_name, token):
        if isinstance(name, str) and name:
            key = f"{ns}/{name}"
            plan.pending_services.setdefault(key, False)


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
    _update_candidates(plan, name, new)
    back = plan.away.pop(name, None) if new is None or new.problem is None else None
    if old is not None and old.problem is None and new is not None and new.problem is not None:
        # it leaves for a problem alone: remember where the journal stood (before its Services are re-elected)
        plan.away[name] = (old.l2, old.pref, plan.journal_base + len(plan.journal))
    lost = old is not None and (new is None or new.problem is not None or not old.l2 <= new.l2)
    if lost:
        for key in sorted(plan.owned_by.get(name, ())):
            _reelect(plan, key)
    elif old is not None and new is not None and new.problem is None and old.pref != new.pref:
        # still eligible, but its preference score changed: the Services it owns whose advertisements carry
        # preferences are re-elected (elect Rule 1a); the others keep it
        for key in sorted(plan.owned_by.get(name, ())):
            if plan.l2[key].prefs:
                _reelect(plan, key)
    # otherwise the Services this node owns keep it: their candidates are the same or more of the same node
    # (labels, BGP advertisements and peers are read when a node's announcements are asked for)
    gained = new is not None and new.problem is None and (old is None or old.problem is not None or not new.l2 <= old.l2
                                                          or new.pref != old.pref)
    if not gained:
        _trim_journal(plan)
        return
    assert new is not None
    prefix = f"{name}#".encode()
    sha = hashlib.sha256
    again: list[tuple[ServiceKey, bytes | None]] = []
    retry = (Reason.NO_ELIGIBLE_NODES.value, Reason.NO_LOCAL_ENDPOINTS.value)
    if (back is not None and old is not None and old.problem is not None and back[0] == new.l2
            and back[1] == new.pref and back[2] >= plan.journal_base):
        # back from a problem with the advertisements and preferences it left with: when it left it beat no
        # owner it did not hold (it was a candidate of every election it could win), and the Services it held
        # were re-elected after its journal mark; an election it did not take part in since is journaled. So
        # only the journaled Services can now rank it before their owner or runner-up: O(what changed while it
        # was away), not O(Services)
        l2 = plan.l2
        recs = [(key, l2[key]) for key in dict.fromkeys(plan.journal[back[2] - plan.journal_base:]) if key in l2]
    else:
        recs = plan.l2.items()  # type: ignore[assignment]
    _trim_journal(plan)
    for key, rec in recs:  # the outcome per Service does not depend on the order
        if not rec.has_ads or rec.owner == name or new.l2.isdisjoint(rec.ad_keys):
            continue
        if rec.local is not None and name not in rec.local:
            continue
        if rec.owner is None:
            if rec.reason in retry:
                again.append((key, None))
            continue
        plan.compared += 1
        if rec.prefs:  # elect Rule 1a: a higher score wins, an equal one goes to the hash
            score = elect.score_of(new.pref, rec.ad_keys) if new.pref else 0
            if score > rec.score or (score == rec.score and sha(prefix + rec.anchor).digest() < rec.best):
                again.append((key, None))  # re-elected in full (no runner-up for preference elections)
            continue
        digest = sha(prefix + rec.anchor).digest()
        if digest < rec.best:
            again.append((key, digest))  # it sorts before the owner, which sorted before every other candidate
        elif rec.second is not None and digest < rec.second_key:
            rec.second, rec.second_key = name, digest  # between the owner and the runner-up
    for key, digest in sorted(again):
        _reelect(plan, key, name if digest is not None else None, digest or b"")


def _journal(plan: Plan, key: ServiceKey) -> None:
    """Record that ``key``'s L2 election was set while some node is away (see :func:`_node_changed`)."""
    plan.journal.append(key)
    if len(plan.journal) > 2 * (len(plan.l2) + 4096):
        _trim_journal(plan)


def _trim_journal(plan: Plan) -> None:
    """Drop the journal entries no away node needs. A node away for longer than the journal may grow (more
    elections than Services + 4096 since it left) loses its mark: its return then compares every Service."""
    if not plan.away:
        plan.journal_base += len(plan.journal)
        plan.journal.clear()
        return
    end = plan.journal_base + len(plan.journal)
    floor = end - (len(plan.l2) + 4096)
    if floor > plan.journal_base:
        for name in [n for n, (_, _, at) in plan.away.items() if at < floor]:
            del plan.away[name]
        if not plan.away:
            _trim_journal(plan)
            return
    low = min(at for (_, _, at) in plan.away.values())
    if low - plan.journal_base > len(plan.journal) // 2:
        del plan.journal[:low - plan.journal_base]
        plan.journal_base = low


def _update_candidates(plan: Plan, name: str, info: NodeInfo | None) -> None:
    """Keep the cached candidate lists (name order) right for node ``name``: O(lists × log nodes), not a rebuild."""
    prefix = f"{name}#".encode()
    for ad_keys, (names, prefixes) in plan.cands.items():
        i = bisect.bisect_left(names, name)
        present = i < len(names) and names[i] == name
        if _eligible(info, ad_keys):
            if not present:
                names.insert(i, name)
                prefixes.insert(i, prefix)
        elif present:
            del names[i]
            del prefixes[i]


def _reelect(plan: Plan, key: ServiceKey, winner: str | None = None, best: bytes = b"") -> None:
    """Re-run only the L2 election of ``key`` (a node's eligibility changed; nothing else of the Service did), or
    install ``winner`` when it is known to sort first (its election key ``best``)."""
    rec = plan.l2[key]
    if rec.owner is not None:
        owned = plan.owned_by.get(rec.owner)
        if owned is not None:
            owned.discard(key)
            if not owned:
                del plan.owned_by[rec.owner]
    old_owner, old_best = rec.owner, rec.best
    rec.owner, rec.reason, rec.best = None, None, b""
    if plan.away:
        _journal(plan, key)
    if winner is not None:  # it sorts before the owner: the owner becomes the runner-up
        rec.owner, rec.best = winner, best
        rec.second, rec.second_key = (old_owner, old_best) if old_owner is not None else (None, b"")
    elif (rec.second is not None and rec.second != old_owner and _eligible(plan.nodes.get(rec.second), rec.ad_keys)
          and (rec.local is None or rec.second in rec.local)):
        rec.owner, rec.best = rec.second, rec.second_key  # the owner left: the runner-up is next
        rec.second, rec.second_key = None, b""
    else:
        _elect(plan, rec)
    if rec.owner is not None:
        plan.owned_by.setdefault(rec.owner, set()).add(key)
    plan.replanned_ips += len(rec.ips)
    _changed(plan, key)
    _refresh_ips(plan, rec.ips)


def _config_changed(state: State, plan: Plan) -> None:
    """A new configuration is in force (also after a Node event when validation looks at node labels)."""
    old_cfg, old_l2, old_bgp, old_bcfg = plan.cfg, plan.pool_l2, plan.pool_bgp, plan.bcfg
    plan.away.clear()  # node infos and elections may move without the journal: returns compare every Service
    _trim_journal(plan)
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
    if info.problem is None and (node in rec.local if rec.local_only else rec.anywhere):
        outcome = _outcome(plan.outcomes, rec, (info.bgp, info.peers))
        if outcome is not None:  # announces: the entries of its shape (what service_on_node gives, faster)
            out: list = []
            _entries(rec, outcome, out)
            return None, out
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
    entries: list = []
    sig = (info.bgp, info.peers)
    outcomes = plan.outcomes
    for key in sorted(plan.bgp):  # Rule 1 decided once per shape of Service (see bgp_map), prefixes per Service
        rec = plan.bgp[key]
        if node in rec.local if rec.local_only else rec.anywhere:
            _entries(rec, _outcome(outcomes, rec, sig), entries)
    for (peer, pfx), (lp, cs) in bgpplan.merge(entries).items():
        out.bgp[(peer, _prefix_text(pfx))] = (lp or None, cs)
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



def _split_bgp(plan: Plan) -> tuple[dict[str, list[ServiceKey]], list[ServiceKey], dict[tuple, list[BgpRec]]]:
    """The BGP Services in key order, split: ``Local`` ones indexed by the nodes hosting their endpoints, the
    ``Cluster`` ones listed, and those of the latter with endpoints grouped by shape (pool, advertisements
    matching it, families)."""
    local_idx: dict[str, list[ServiceKey]] = {}
    cluster_keys: list[ServiceKey] = []
    shapes: dict[tuple, list[BgpRec]] = {}
    for key in sorted(plan.bgp):
        rec = plan.bgp[key]
        if rec.local_only:
            for n in sorted(rec.local):
                local_idx.setdefault(n, []).append(key)
        else:
            cluster_keys.append(key)
            if rec.anywhere:
                shapes.setdefault((rec.pool, rec.matches, rec.families), []).append(rec)
    return local_idx, cluster_keys, shapes

def bgp_map(state: State, only: list[str] | None = None) -> dict:
    """The replay JSON ``bgp`` map: node -> peer -> advertisements (design.md §5); empty nodes/peers omitted.

    Built from shared parts: nodes alike for BGP (same problem, same advertisements and peers selecting them) send
    the same prefixes for every ``Cluster`` Service, so that part is computed once per kind of node, and every
    node of that kind whose ``Local`` Services add nothing to a peer gets the very same list object for that peer
    (one item dict per (peer, prefix) is shared too). ``Local`` Services are merged per node from an index of the
    nodes hosting their endpoints. Writers (``reconciler.runtime.replay``) format each shared list once.
    ``only``: just these nodes (benchmarks sample the map with it).
    """
    plan = ensure(state)
    local_idx, cluster_keys, _ = _split_bgp(plan)
    groups: dict[tuple, tuple[bgpplan.Raw, dict, dict, dict]] = {}
    outcomes = plan.outcomes
    out = {}
    for node in _node_names(state) if only is None else sorted(only):
        info = plan.nodes.get(node)
        if info is None or info.problem is not None:
            continue
        sig = (info.bgp, info.peers)
        group = groups.get(sig)
        if group is None:
            entries: list = []
            for key in cluster_keys:
                rec = plan.bgp[key]
                if rec.anywhere:
                    _entries(rec, _outcome(outcomes, rec, sig), entries)
            raw = bgpplan.merge_raw(entries)
            items = {k: _bgp_item(k, raw[k]) for k in sorted(raw)}
            by_peer: dict[str, list] = {}
            for k in items:
                by_peer.setdefault(k[0], []).append(k)
            group = groups[sig] = (raw, items, _bgp_lists(list(items), items, {}), by_peer)
        raw, items, shared, by_peer = group
        extra: list = []
        for key in local_idx.get(node, ()):
            _entries(plan.bgp[key], _outcome(outcomes, plan.bgp[key], sig), extra)
        if not extra:
            if shared:
                out[node] = dict(shared)
            continue
        touched = bgpplan.merge_raw(extra, into={k: raw[k] for k in {(e[0], e[1]) for e in extra} if k in raw})
        peers = dict(shared)
        for peer in sorted({k[0] for k in touched}):
            keys = list(by_peer.get(peer, ()))
            lst = list(shared.get(peer, ()))
            for k in sorted(k for k in touched if k[0] == peer):  # a few, spliced into a copy of the shared list
                i = bisect.bisect_left(keys, k)
                item = _bgp_item(k, touched[k])
                if i < len(keys) and keys[i] == k:
                    lst[i] = item
                else:
                    keys.insert(i, k)
                    lst.insert(i, item)
            peers[peer] = lst
        out[node] = {p: peers[p] for p in sorted(peers)}
    return out


def _outcome(cache: dict, rec: BgpRec, sig: tuple) -> list | None:
    """Rule 1 of bgpplan for a problem-free node of kind ``sig`` and a Service of ``rec``'s shape, cached per
    shape: None (the node sends nothing) or [(advertisement, peers)]; serving endpoints are checked by the caller."""
    ck = (rec.pool, rec.matches, rec.families, sig)
    if ck in cache:
        return cache[ck]
    ad_keys, peers_on_node = sig
    selecting = [i for i, ad in enumerate(rec.ads) if _ad_key(ad.obj) in ad_keys]
    matching = [rec.ads[i] for i in selecting if rec.matches[i]]
    got = None
    if matching and bgpplan.conflict(matching, rec.families) is None:
        got = [(ad, [p for p in peers_on_node if p in ad.peers] if ad.peers else list(peers_on_node))
               for ad in matching]
    cache[ck] = got
    return got


_PREFIXES: dict[tuple, tuple[int, int, int]] = {}  # memo of a pure function: (ip, agg4, agg6) -> prefix


def _prefix(ad: bgpplan.BgpAd, ip: str) -> tuple[int, int, int]:
    k = (ip, ad.agg4, ad.agg6)
    got = _PREFIXES.get(k)
    if got is None:
        if len(_PREFIXES) >= 1 << 18:
            _PREFIXES.clear()
        got = _PREFIXES[k] = ad.prefix(ip)
    return got


def _entries(rec: BgpRec, outcome: list | None, out: list) -> None:
    """Append the (peer, prefix, ad name, local_pref, communities) entries of ``outcome`` for ``rec``'s IPs (the
    same as ``bgpplan.service_on_node`` gives for a node of that kind, in the same order)."""
    if outcome is None:
        return
    for ad, targets in outcome:
        for ip in rec.ips:
            pfx = _prefix(ad, ip)
            for peer in targets:
                out.append((peer, pfx, ad.name, ad.local_pref, ad.communities))


_SORTED_COMMUNITIES: dict[frozenset[str], tuple[str, ...]] = {}


def _bgp_item(key: tuple[str, tuple[int, int, int]], value: tuple[str, int, frozenset[str]]) -> dict:
    _, lp, cs = value
    got = _SORTED_COMMUNITIES.get(cs)
    if got is None:
        if len(_SORTED_COMMUNITIES) >= 4096:
            _SORTED_COMMUNITIES.clear()
        got = _SORTED_COMMUNITIES[cs] = tuple(sorted(cs, key=bgpplan.community_key))
    return {"prefix": _prefix_text(key[1]), "local_pref": lp or None, "communities": list(got)}


def _prefix_text(pfx: tuple[int, int, int]) -> str:
    fam, v, length = pfx
    if fam == 4:
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}/{length}"
    return bgpplan.prefix_text(pfx)


bgp_item = _bgp_item  # for writers of the map (reconciler.runtime.replay)
prefix_text = _prefix_text


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


@dataclass(frozen=True, slots=True)
class BgpRun:
    """A sorted run of one peer's list in the replay ``bgp`` map: prefixes and their merged values (Rule 3 of
    bgpplan: first advertisement name, its LOCAL_PREF, united communities), the same whatever peer it goes to."""

    keys: list[tuple[int, int, int]]
    vals: list[tuple[str, int, frozenset[str]]]


@dataclass(slots=True)
class BgpLayout:
    """The replay ``bgp`` map as shared parts (what :func:`bgp_map` expands; writers format each part once).

    ``kinds[i]``: per kind of node (same advertisements and peers selecting it), peer -> runs whose concatenation is
    that peer's list for the ``Cluster`` Services. ``nodes``: (name, kind, changes) for every problem-free node in
    name order, ``changes`` being None or the (peer, prefix) -> value its ``Local`` Services add or alter (merged
    with the kind's value) — spliced into the kind's lists. A node whose lists end up empty is not in the map."""

    kinds: list[dict[str, tuple[BgpRun, ...]]]
    nodes: list[tuple[str, int, dict | None]]
    _flat: dict = field(default_factory=dict)

    def flat(self, kind: int, peer: str) -> tuple[list, list]:
        """The kind's whole list for ``peer`` as (prefixes, values), sorted (built on first use)."""
        got = self._flat.get((kind, peer))
        if got is None:
            runs = self.kinds[kind].get(peer, ())
            if len(runs) == 1:
                got = (runs[0].keys, runs[0].vals)
            else:
                got = ([k for r in runs for k in r.keys], [v for r in runs for v in r.vals])
            self._flat[(kind, peer)] = got
        return got


def bgp_layout(state: State) -> BgpLayout:
    """The replay ``bgp`` map of :func:`bgp_map` as shared parts, in O(Services + kinds of node × peers × runs).

    A ``Cluster`` Service's entries on a node depend only on its shape (pool, advertisements matching it, families)
    and on which of the pool's advertisements send to a peer from that kind of node; so the entries of every
    Service of a shape, for one such set of advertisements, are merged once into a sorted :class:`BgpRun` and
    reused by every kind of node and peer with that set. Shapes of different pools hold disjoint prefixes, so a
    peer's list is most often its runs laid end to end; when runs interleave they are merged, and when two of them
    hold the same prefix the list is merged again from the entries in Service order, exactly as :func:`bgp_map`
    does (Rule 3 keeps the first advertisement by name: the order of equal names must not change)."""
    plan = ensure(state)
    local_idx, cluster_keys, shapes = _split_bgp(plan)
    outcomes = plan.outcomes
    runs: dict[tuple, BgpRun] = {}
    kind_of: dict[tuple, int] = {}
    layout = BgpLayout(kinds=[], nodes=[])
    for node in _node_names(state):
        info = plan.nodes.get(node)
        if info is None or info.problem is not None:
            continue
        sig = (info.bgp, info.peers)
        kind = kind_of.get(sig)
        if kind is None:
            kind = kind_of[sig] = len(layout.kinds)
            layout.kinds.append(_kind_lists(plan, sig, shapes, runs, cluster_keys))
        extra: list = []
        for key in local_idx.get(node, ()):
            rec = plan.bgp[key]
            _entries(rec, _outcome(outcomes, rec, sig), extra)
        changes = None
        if extra:
            into = {}
            for k in {(e[0], e[1]) for e in extra}:
                keys, vals = layout.flat(kind, k[0])
                i = bisect.bisect_left(keys, k[1])
                if i < len(keys) and keys[i] == k[1]:
                    into[k] = vals[i]
            changes = bgpplan.merge_raw(extra, into=into)
        layout.nodes.append((node, kind, changes))
    return layout


def _kind_lists(plan: Plan, sig: tuple, shapes: dict[tuple, list[BgpRec]], runs: dict[tuple, BgpRun],
                cluster_keys: list[ServiceKey]) -> dict[str, tuple[BgpRun, ...]]:
    per_peer: dict[str, list[BgpRun]] = {}
    for shape, recs in shapes.items():
        outcome = _outcome(plan.outcomes, recs[0], sig)
        if not outcome:
            continue
        sends: dict[str, list[bgpplan.BgpAd]] = {}  # peer -> the advertisements sending to it, in outcome order
        for ad, targets in outcome:
            for peer in targets:
                sends.setdefault(peer, []).append(ad)
        for peer, ads in sends.items():
            ck = (shape, tuple(map(id, ads)))  # the advertisements are the plan's, alive while it is
            run = runs.get(ck)
            if run is None:
                run = runs[ck] = _run(recs, ads)
            per_peer.setdefault(peer, []).append(run)
    out: dict[str, tuple[BgpRun, ...]] = {}
    for peer in sorted(per_peer):
        lst = sorted(per_peer[peer], key=lambda r: r.keys[0])
        if all(a.keys[-1] < b.keys[0] for a, b in zip(lst, lst[1:])):
            out[peer] = tuple(lst)
            continue
        merged = {k: v for r in lst for k, v in zip(r.keys, r.vals)}
        if len(merged) != sum(len(r.keys) for r in lst):  # a prefix in two runs: merged in Service order
            entries: list = []
            for key in cluster_keys:
                rec = plan.bgp[key]
                if rec.anywhere:
                    _entries(rec, _outcome(plan.outcomes, rec, sig), entries)
            raw = bgpplan.merge_raw([e for e in entries if e[0] == peer])
            merged = {k[1]: v for k, v in raw.items()}
        keys = sorted(merged)
        out[peer] = (BgpRun(keys, [merged[k] for k in keys]),)
    return out


def _run(recs: list[BgpRec], ads: list[bgpplan.BgpAd]) -> BgpRun:
    """The merged entries of ``ads`` for the IPs of ``recs`` (Rule 3 of bgpplan, in the order of bgp_map)."""
    raw: dict[tuple[int, int, int], tuple[str, int, frozenset[str]]] = {}
    for rec in recs:
        for ad in ads:
            name, lp, cs = ad.name, ad.local_pref, frozenset(ad.communities)
            for ip in rec.ips:
                pfx = _prefix(ad, ip)
                got = raw.get(pfx)
                if got is None:
                    raw[pfx] = (name, lp, cs)
                elif name < got[0]:
                    raw[pfx] = (name, lp, got[2] | cs)
                else:
                    raw[pfx] = (got[0], got[1], got[2] | cs)
    keys = sorted(raw)
    return BgpRun(keys, [raw[k] for k in keys])


def hash_rows(state: State) -> list[tuple]:
    """The per-Service part of the state hash (design.md §4), in Service key order: (key, ingress, pool, reason,
    L2 owners, BGP record digest or None). Cost O(Services + nodes × peers), never O(nodes × peers × prefixes).

    A Service's BGP record is the function node -> what that node sends for it, inverted: for each distinct
    outcome (peer, family, aggregation length, LOCAL_PREF, communities — applied to the Service's IPs it gives the
    prefixes) the set of nodes with that outcome. Nodes alike for BGP (same advertisements and peers selecting
    them, no problem) are grouped once; a ``Cluster`` Service's record depends only on its pool's advertisements,
    their match with the Service and its IP families, so it is computed once per such shape and shared, node sets
    included (each set hashed once); a ``Local`` Service lists its few endpoint nodes. Equal decisions give equal
    records: the record is the node -> outcome function itself, whatever the grouping.
    """
    plan = ensure(state)
    groups: dict[tuple, list[str]] = {}
    for node in _node_names(state):
        info = plan.nodes.get(node)
        if info is not None and info.problem is None:
            groups.setdefault((info.bgp, info.peers), []).append(node)
    sig_list = list(groups)  # in order of each group's first node name: deterministic
    sig_of = {n: i for i, sig in enumerate(sig_list) for n in groups[sig]}
    outcome_cache: dict[tuple, tuple | None] = {}
    shape_cache: dict[tuple, bytes] = {}
    set_cache: dict[frozenset[int], bytes] = {}

    def outcome(rec: BgpRec, fams: tuple[int, ...], sig_i: int) -> tuple | None:
        ck = (rec.pool, rec.matches, rec.families, fams, sig_i)
        if ck in outcome_cache:
            return outcome_cache[ck]
        ad_keys, peers_on_node = sig_list[sig_i]
        got = _normal_outcome(rec, fams, ad_keys, peers_on_node)
        outcome_cache[ck] = got
        return got

    def node_set(sigs: frozenset[int]) -> bytes:
        d = set_cache.get(sigs)
        if d is None:
            names = sorted(n for i in sigs for n in groups[sig_list[i]])
            d = set_cache[sigs] = hashlib.sha256("\0".join(names).encode()).digest()
        return d

    rows = []
    for key in sorted(state.services):
        dec = state.services[key]
        rec = plan.bgp.get(key)
        digest = None
        if rec is not None and (rec.local if rec.local_only else rec.anywhere):
            fams = tuple(sorted({6 if ":" in ip else 4 for ip in rec.ips}))
            if rec.local_only:
                parts: dict[tuple, list[str]] = {}
                for n in sorted(rec.local):
                    si = sig_of.get(n)
                    got = None if si is None else outcome(rec, fams, si)
                    if got:
                        parts.setdefault(got, []).append(n)
                digest = _encoder_digest(sorted(
                    (hashlib.sha256("\0".join(ns).encode()).digest(), o) for o, ns in parts.items())) if parts else None
            else:
                sk = (rec.pool, rec.matches, rec.families, fams)
                if sk in shape_cache:
                    digest = shape_cache[sk]
                else:
                    by_out: dict[tuple, set[int]] = {}
                    for si in range(len(sig_list)):
                        got = outcome(rec, fams, si)
                        if got:
                            by_out.setdefault(got, set()).add(si)
                    digest = shape_cache[sk] = _encoder_digest(sorted(
                        (node_set(frozenset(sis)), o) for o, sis in by_out.items())) if by_out else None
        rows.append((key, dec.ingress, dec.pool, dec.reason, _l2_rows(plan, key), digest))
    return rows


def _normal_outcome(rec: BgpRec, fams: tuple[int, ...], ad_keys: frozenset[AdKey],
                    peers_on_node: tuple[str, ...]) -> tuple:
    """What a problem-free node selected by ``ad_keys`` with sessions to ``peers_on_node`` sends for a Service of
    this shape, as sorted (peer, family, length, local_pref, communities); () when nothing (Rule 1 of bgpplan)."""
    reason, entries = bgpplan.service_on_node(
        False, (), rec.families, rec.ads, rec.matches, lambda ad: _ad_key(ad.obj) in ad_keys, peers_on_node, None,
        True, True)
    if reason is not None:
        return ()
    matching = [ad for i, ad in enumerate(rec.ads) if rec.matches[i] and _ad_key(ad.obj) in ad_keys]
    merged: dict[tuple, tuple[str, int, frozenset[str]]] = {}
    for ad in matching:
        targets = [p for p in peers_on_node if p in ad.peers] if ad.peers else list(peers_on_node)
        for fam in fams:
            length = ad.agg4 if fam == 4 else ad.agg6
            for peer in targets:
                k = (peer, fam, length)
                got = merged.get(k)
                if got is None:
                    merged[k] = (ad.name, ad.local_pref, frozenset(ad.communities))
                else:
                    name, lp = (ad.name, ad.local_pref) if ad.name < got[0] else (got[0], got[1])
                    merged[k] = (name, lp, got[2] | frozenset(ad.communities))
    return tuple(sorted((k[0], k[1], k[2], lp, tuple(sorted(cs, key=bgpplan.community_key)))
                        for k, (_, lp, cs) in merged.items()))


_hash_encoder = msgspec.msgpack.Encoder()


def _encoder_digest(value) -> bytes:
    return hashlib.sha256(_hash_encoder.encode(value)).digest()


def _l2_rows(plan: Plan, key: ServiceKey) -> tuple:
    rec = plan.l2.get(key)
    if rec is None or not rec.has_ads:
        return ()
    if rec.owner is None:
        return tuple((ip, None, rec.reason) for ip in rec.ips)
    return tuple((ip, plan.ip_owner[ip][0], None) for ip in rec.ips)


def subscribe(state: State, name: str) -> Changes:
    """Register a consumer of changes (e.g. a speaker's :class:`NodeView`); returns its change set."""
    plan = ensure(state)
    ch = plan.subscribers.get(name)
    if ch is None:
        ch = plan.subscribers[name] = Changes(everything=True)
    return ch


_COMMUNITY_ORDER: dict[tuple[str, ...], tuple[str, ...]] = {}  # memo: an ad's communities as bgpplan.merge gives them


def _sorted_communities(cs: tuple[str, ...]) -> tuple[str, ...]:
    got = _COMMUNITY_ORDER.get(cs)
    if got is None:
        if len(_COMMUNITY_ORDER) >= 4096:
            _COMMUNITY_ORDER.clear()
        got = _COMMUNITY_ORDER[cs] = tuple(sorted(frozenset(cs), key=bgpplan.community_key))
    return got


def _first_bgp(state: State, scratch: Plan, node: str, info: NodeInfo, first: dict, more: dict) -> None:
    """The BGP entries ``node`` (problem-free, of kind ``info``) sends, straight from the state (see
    :meth:`NodeView.prime`): the same per-Service rule as :func:`node_plan` (:func:`_outcome` once per shape of
    Service, then its prefixes), with the serving-endpoint check reduced to the boolean it needs. Merging (bgpplan
    Rule 3) is commutative, so the Services are visited in the state's own order; the caller sorts."""
    sig = (info.bgp, info.peers)
    svc_objs = state.objects["Service"]
    slice_objs = state.objects["EndpointSlice"]
    slices_of = state.slices_by_service
    # pool -> None (no BGPAdvertisement) or [its ads, families, any looks at Service labels, outcome when none does]
    pools: dict[str, list | None] = {}
    shapes: dict[tuple, list | None] = {}  # (pool, matches) -> steps (see steps())
    cfg = scratch.cfg
    assert cfg is not None
    parse_v4 = net.parse_v4
    service_t, slice_t = schema.Service, schema.EndpointSlice

    def steps(pool_name: str, ads: tuple, families: frozenset[int], matches: tuple) -> list | None:
        """The outcome of a shape as (ad, v4 mask, v4 length, entry fields, peers) per advertisement."""
        rec = BgpRec(pool=pool_name, ips=(), families=families, ads=ads, matches=matches,
                     local_only=False, anywhere=True, local=frozenset())
        outcome = _outcome(scratch.outcomes, rec, sig)
        if outcome is None:
            return None
        return [(ad, ((1 << ad.agg4) - 1) << (32 - ad.agg4), ad.agg4, (ad.name, ad.local_pref, ad.communities),
                 tuple(targets)) for ad, targets in outcome]

    for key, dec in state.services.items():
        ips = dec.ingress
        pool_name = dec.pool
        if not ips or pool_name is None:
            continue
        p = pools.get(pool_name, False)
        if p is False:
            pool = cfg.pool_by_name.get(pool_name)
            ads = scratch.pool_bgp.get(pool_name, ()) if pool is not None else ()
            p = pools[pool_name] = [
                ads, scratch.pool_families.get(pool_name) or pool.families(),
                any(ad.obj.service_selectors for ad in ads), False] if ads else None  # type: ignore[union-attr]
        if p is None:
            continue
        ns, _, name = key.partition("/")
        svc = svc_objs.get((ns, name))
        if type(svc) is not service_t and not isinstance(svc, service_t):
            continue
        local_only = svc.external_traffic_policy == "Local"  # type: ignore[union-attr]
        serving = False
        for sname in slices_of.get((ns, name), ()):  # a boolean: the slices' order does not matter
            sl = slice_objs.get((ns, sname))
            if type(sl) is not slice_t and not isinstance(sl, slice_t):
                continue
            for ep in sl.endpoints:  # type: ignore[union-attr]
                if ep.addresses and (ep.ready is None or ep.ready or ep.serving) and (
                        not local_only or ep.node_name == node):
                    serving = True
                    break
            if serving:
                break
        if not serving:
            continue
        if p[2]:  # some advertisement of the pool looks at the Service's labels
            matches = tuple(bgpplan.matches_service(ad, svc) for ad in p[0])  # type: ignore[arg-type]
            sk = (pool_name, matches)
            todo = shapes[sk] if sk in shapes else shapes.setdefault(sk, steps(pool_name, p[0], p[1], matches))
        else:
            todo = p[3]
            if todo is False:
                todo = p[3] = steps(pool_name, p[0], p[1], (True,) * len(p[0]))
        if todo is None:
            continue
        for ad, mask4, agg4, fields, targets in todo:
            for ip in ips:
                v = parse_v4(ip)  # a dotted quad (as net.parse_ip reads it), aggregated; anything else as bgpplan
                pfx = (4, v & mask4, agg4) if v is not None else ad.prefix(ip)
                for peer in targets:
                    k = (peer, pfx)
                    if k in first:
                        got = more.get(k)
                        if got is None:
                            got = more[k] = [(peer, pfx, *first[k])]
                        got.append((peer, pfx, *fields))
                    else:
                        first[k] = fields


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
        # set by prime(): ``current`` was computed straight from the state, the per-Service indexes above are empty
        # and the next sync rebuilds them (and the plan) from scratch; ``info`` is the node's as prime() saw it
        self.primed = False
        self.info: NodeInfo | None = None

    def prime(self, state: State) -> list[effects.Effect] | None:
        """The first sync, without building the plan: when this node has no L2Advertisement (so announces no IP
        in L2, whoever owns it), its BGP table follows from the state in one pass over the Services — no
        elections, no per-Service records, no indexes — at a small constant cost per prefix. Returns the effects
        (the same as ``sync`` would give: announcements of the whole plan, in diff order), or None when the fast
        path does not apply (the node has L2 advertisements, or this view already synced): then call ``sync``.

        The plan (:func:`ensure`) and this view's indexes are built by the next ``sync``, which then diffs against
        ``current`` as usual (law: prime == sync from an empty view; tests/unit/reconciler/test_plan_laws.py)."""
        if self.current.l2 or self.current.bgp or self._bgp or self._l2:
            return None
        scratch = Plan()
        _load_config(state, scratch)
        info = _node_info(state, scratch, self.node)
        if info is not None and info.l2:
            return None
        self.info = info
        self.primed = True
        out = effects.NodePlan()
        effs: list[effects.Effect] = []
        if info is None or info.problem is not None or scratch.cfg is None:
            self.current = out
            return effs
        first: dict[tuple, tuple] = {}  # (peer, prefix) -> (ad name, local_pref, communities) of its first sender
        more: dict[tuple, list] = {}  # (peer, prefix) -> every entry, when several Services send it
        _first_bgp(state, scratch, self.node, info, first, more)
        bgp = out.bgp
        advertise = effects.BgpAdvertise
        text = _prefix_text
        for k in sorted(first):  # (peer, (family, network, length)): diff's order (effects Rule 1)
            peer, pfx = k
            got = more.get(k)
            if got is None:
                _, lp, cs = first[k]
                value = (lp or None, _sorted_communities(cs))
            else:
                (lp, cs), = bgpplan.merge(got).values()
                value = (lp or None, cs)
            fam, v, length = pfx
            t = f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}/{length}" if fam == 4 else text(pfx)
            bgp[(peer, t)] = value
            effs.append(advertise(peer=peer, prefix=t, local_pref=value[0], communities=value[1]))
        self.current = out
        return effs

    def _l2_idx_users(self, ip: str) -> set[ServiceKey]:
        return self._l2_idx.get(ip, set())

    def sync(self, state: State) -> list[effects.Effect]:
        plan = ensure(state)
        ch = subscribe(state, f"node-view:{self.node}")
        info = plan.nodes.get(self.node)
        primed, self.primed = self.primed, False
        if primed or ch.everything or self.node in ch.nodes:
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
        # after prime() the indexes were empty: every announced key is touched now, so the plan starts empty
        new = effects.NodePlan() if primed else effects.NodePlan(l2=dict(self.current.l2), bgp=dict(self.current.bgp))
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
        sort_keys: dict[tuple[str, str], tuple] = {}
        for pk in sorted(touched_bgp):
            entries = [e for key in sorted(self._bgp_idx.get(pk, ())) for e in self._bgp[key] if (e[0], e[1]) == pk]
            text_key = (pk[0], bgpplan.prefix_text(pk[1]))
            sort_keys[text_key] = pk
            if len(entries) == 1:  # one Service sends it (the common case): merging is sorting its communities
                e = entries[0]
                new.bgp[text_key] = (e[3] or None, _sorted_communities(e[4]))
            elif entries:
                (lp, cs), = bgpplan.merge(entries).values()
                new.bgp[text_key] = (lp or None, cs)
            else:
                new.bgp.pop(text_key, None)
        out = effects.diff(self.current, new, sort_keys)
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
