"""Layer-2 eligibility and election (MetalLB ``speaker/layer2_controller.go``, metallb-behaviour.md §5.1–§5.2).

This module is the *reference*: every function computes from the state alone, from scratch, the way each MetalLB
speaker evaluates ``ShouldAnnounce`` for itself. :mod:`reconciler.planning` keeps the same answers incrementally
(one event re-plans only the IPs it can affect) and is tested to agree with this module.

Rules:

* Rule 1: candidates are ranked by preference score (descending), then by SHA-256 of the UTF-8 string
  ``"<node>#<ip>"`` (raw bytes, ascending), where ``<ip>`` is the Service's first ingress IP; the first wins and
  announces all of the Service's IPs. This is MetalLB's ranking, so a mixed or migrating cluster elects the same
  node.
* Rule 1a (``preferredNodeSelectors``, MetalLB main): a node's score is the sum, over every L2Advertisement of the
  IP's pool that matches the Service, of the weights of that advertisement's preferences matching the node's labels
  — counted only when the advertisement's own ``nodeSelectors`` select the node. Advertisements are never merged
  here, so two advertisements carrying preferences both count (MetalLB never de-duplicates those), and one
  advertisement reaching a pool by name and by selector counts once (MetalLB attaches it once). Without
  preferences every score is 0 and the order is the hash order.
* Rule 2: a candidate has a live speaker (no ``speaker.down`` since its last ``speaker.up``), no
  ``NetworkUnavailable`` condition, no ``node.kubernetes.io/exclude-from-external-load-balancers`` label, and is
  selected by at least one L2Advertisement of the IP's pool that matches the Service.
* Rule 3: no serving endpoint anywhere ⇒ nobody announces; ``externalTrafficPolicy: Local`` ⇒ only nodes hosting a
  serving endpoint are candidates.
* Rule 4 (streamlb's rule where MetalLB can split): services sharing an IP always get one owner for it — the owner
  elected for the Service with the smallest key among the IP's users that elected one. MetalLB elects per Service
  on its first IP, so two sharers whose first IPs or candidate sets differ could answer from two nodes.
* Rule 5: nothing here iterates a set or dict to decide; node lists are sorted by name first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from events import schema
from reconciler import config as configmod
from reconciler import selectors
from reconciler.reasons import Reason
from reconciler.state import ServiceKey, State

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SHARED_IP_ANNOTATIONS = ("metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip")


def digest(node: str, ip: str) -> bytes:
    """The election key of ``node`` for ``ip``: SHA-256 of ``"<node>#<ip>"``."""
    return hashlib.sha256(f"{node}#{ip}".encode()).digest()


def rank(nodes: Iterable[str], ip: str, scores: Mapping[str, int] | None = None) -> list[str]:
    """Nodes in MetalLB's election order for ``ip`` (first = winner): score descending, then the hash."""
    if not scores:
        return sorted(nodes, key=lambda n: digest(n, ip))
    return sorted(nodes, key=lambda n: (-scores.get(n, 0), digest(n, ip)))


def election_key(node: str, ip: str, score: int = 0) -> tuple[int, bytes]:
    """What :func:`rank` sorts by: the smallest key wins."""
    return -score, digest(node, ip)


def ad_preference(ad: schema.L2Advertisement, labels: Mapping[str, str]) -> int:
    """Rule 1a for one advertisement: the weights of its preferences matching a node with ``labels``; 0 when the
    advertisement's ``nodeSelectors`` do not select the node."""
    if not ad.preferred_node_selectors or not selectors.any_matches(ad.node_selectors, labels):
        return 0
    return sum(p.weight for p in ad.preferred_node_selectors if selectors.matches(p.preference, labels))


def preference_score(ads: Iterable[schema.L2Advertisement], labels: Mapping[str, str]) -> int:
    """Rule 1a: a node's score over the advertisements that match the Service."""
    return sum(ad_preference(ad, labels) for ad in ads)


def node_preferences(
    ads: Iterable[schema.L2Advertisement], labels: Mapping[str, str]
) -> tuple[tuple[tuple[str, str], int], ...]:
    """Rule 1a precomputed for one node: ((namespace, name) of each advertisement scoring it, weight), sorted —
    what the incremental plan keeps per node (a label change that changes a score changes this)."""
    return tuple(sorted(((ad.namespace, ad.name), w) for ad in ads if (w := ad_preference(ad, labels))))


def score_of(prefs: tuple[tuple[tuple[str, str], int], ...], ad_keys: frozenset[tuple[str, str]]) -> int:
    """A node's score for a Service from :func:`node_preferences`, given the keys of the Service's advertisements."""
    return sum(w for k, w in prefs if k in ad_keys) if prefs else 0


def has_shared_ip_annotation(svc: schema.Service) -> bool:
    return any(k in SHARED_IP_ANNOTATIONS for k, _ in svc.annotations)


def pool_matches(pool: configmod.Pool, names: tuple[str, ...], sels: tuple[schema.LabelSelector, ...]) -> bool:
    """Does an advertisement listing ``names`` and ``sels`` apply to ``pool``? (both empty ⇒ every pool)."""
    if not names and not sels:
        return True
    return pool.name in names or any(selectors.matches(s, pool.labels) for s in sels)


def l2_ads_for(cfg: configmod.Config, pool: configmod.Pool, svc: schema.Service) -> list[schema.L2Advertisement]:
    """The L2Advertisements that apply to ``pool`` and match ``svc`` (name order)."""
    svc_labels = dict(svc.labels)
    return [
        ad
        for ad in cfg.l2_advertisements
        if pool_matches(pool, ad.ip_address_pools, ad.ip_address_pool_selectors)
        and selectors.any_matches(ad.service_selectors, svc_labels)
    ]


def serving_nodes(state: State, svc: schema.Service) -> tuple[bool, frozenset[str]]:
    """(a serving endpoint exists anywhere, the nodes hosting one).

    An endpoint serves when it has an address and ``ready`` is unset or true, or ``serving`` is true (a terminating
    but still serving endpoint counts, as in MetalLB).
    """
    anywhere = False
    nodes: set[str] = set()
    for name in sorted(state.slices_by_service.get((svc.namespace, svc.name), ())):
        sl = state.objects["EndpointSlice"].get((svc.namespace, name))
        if not isinstance(sl, schema.EndpointSlice):
            continue
        for ep in sl.endpoints:
            if ep.addresses and (ep.ready is None or ep.ready or ep.serving):
                anywhere = True
                if ep.node_name:
                    nodes.add(ep.node_name)
    return anywhere, frozenset(nodes)


def node_problem(state: State, node: schema.Node) -> str | None:
    """Why ``node`` can announce nothing at all (speaker, condition, exclude label), or None."""
    if node.name in state.speakers_down:
        return Reason.SPEAKER_DOWN.value
    if node.network_unavailable:
        return Reason.NODE_NETWORK_UNAVAILABLE.value
    if any(k == EXCLUDE_LABEL for k, _ in node.labels):
        return Reason.NODE_LABELED_EXCLUDE_BALANCERS.value
    return None


def nodes(state: State) -> list[schema.Node]:
    """Every Node object, in name order."""
    out = []
    for key in sorted(state.objects["Node"]):
        obj = state.objects["Node"][key]
        if isinstance(obj, schema.Node):
            out.append(obj)
    return out


def ad_selects_node(ad: schema.L2Advertisement | schema.BGPAdvertisement, labels: Mapping[str, str]) -> bool:
    return selectors.any_matches(ad.node_selectors, labels)


class ServiceL2:
    """The from-scratch L2 verdict for one Service (see :func:`evaluate`)."""

    __slots__ = ("has_ads", "owner", "reason", "candidates", "ads", "local", "scores")

    def __init__(self) -> None:
        self.has_ads = False  # its pool has an L2Advertisement matching the Service (⇒ it appears in the l2 map)
        self.owner: str | None = None
        self.reason: str | None = None  # why nobody owns it (owner is None)
        self.candidates: list[str] = []  # in election order
        self.ads: list[schema.L2Advertisement] = []
        self.local: frozenset[str] = frozenset()
        self.scores: dict[str, int] = {}  # Rule 1a, per candidate (every candidate, 0 included)


def evaluate(state: State, key: ServiceKey) -> ServiceL2 | None:
    """Elect the owner of Service ``key`` from scratch. None when the Service has no IP (not in the l2 map)."""
    dec = state.services.get(key)
    svc = state.service(key)
    cfg = state.config
    out = ServiceL2()
    if dec is None or svc is None or cfg is None or not dec.ingress or dec.pool is None:
        return None
    pool = cfg.pool_by_name.get(dec.pool)
    if pool is None:
        return out
    out.ads = l2_ads_for(cfg, pool, svc)
    if not out.ads:
        return out
    out.has_ads = True
    if has_shared_ip_annotation(svc) and any(ad.service_selectors for ad in out.ads):
        out.reason = Reason.SHARED_IP_WITH_SERVICE_SELECTOR.value
        return out
    anywhere, out.local = serving_nodes(state, svc)
    if not anywhere:
        out.reason = Reason.NO_ENDPOINTS.value
        return out
    local_only = svc.external_traffic_policy == "Local"
    cands = []
    for node in nodes(state):
        if node_problem(state, node) is not None:
            continue
        labels = dict(node.labels)
        if not any(ad_selects_node(ad, labels) for ad in out.ads):
            continue
        if local_only and node.name not in out.local:
            continue
        cands.append(node.name)
        out.scores[node.name] = preference_score(out.ads, labels)
    if not cands:
        out.reason = (Reason.NO_LOCAL_ENDPOINTS if local_only else Reason.NO_ELIGIBLE_NODES).value
        return out
    out.candidates = rank(cands, dec.ingress[0], out.scores)
    out.owner = out.candidates[0]
    return out


def ip_owners(state: State) -> dict[str, tuple[str | None, str]]:
    """Rule 4 from scratch: every announced IP -> (owner, the Service key whose election gave it)."""
    users: dict[str, list[str]] = {}
    for key in sorted(state.services):
        for ip in state.services[key].ingress:
            users.setdefault(ip, []).append(key)
    verdicts: dict[str, ServiceL2 | None] = {}
    out: dict[str, tuple[str | None, str]] = {}
    for ip in sorted(users):
        for key in users[ip]:  # key order
            if key not in verdicts:
                verdicts[key] = evaluate(state, key)
            v = verdicts[key]
            if v is not None and v.owner is not None:
                out[ip] = (v.owner, key)
                break
    return out


def l2_map(state: State, key: ServiceKey, owners: dict[str, tuple[str | None, str]] | None = None) -> dict:
    """The replay JSON ``l2`` map of one Service, from scratch: ip -> {"node", "reason"}."""
    v = evaluate(state, key)
    if v is None or not v.has_ads:
        return {}
    dec = state.services[key]
    if v.owner is None:
        return {ip: {"node": None, "reason": v.reason} for ip in dec.ingress}
    owners = ip_owners(state) if owners is None else owners
    return {ip: {"node": owners[ip][0], "reason": None} for ip in dec.ingress}


def should_announce(state: State, key: ServiceKey, node: str) -> dict[str, str | None]:
    """What ``node`` does, computed by itself from the state: ip -> None (announce) or the reason it does not.

    MetalLB's order of checks: the node's own problems, endpoints, advertisements, local endpoints, ownership.
    """
    dec = state.services.get(key)
    if dec is None or not dec.ingress:
        return {}
    ips = list(dec.ingress)
    nobj = state.objects["Node"].get(("", node))
    v = evaluate(state, key)
    if v is None:
        return {}
    if not isinstance(nobj, schema.Node):
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    problem = node_problem(state, nobj)
    if problem is not None:
        return {ip: problem for ip in ips}
    if not v.has_ads:
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    if v.reason == Reason.SHARED_IP_WITH_SERVICE_SELECTOR.value:
        return {ip: v.reason for ip in ips}
    if v.reason == Reason.NO_ENDPOINTS.value:
        return {ip: v.reason for ip in ips}
    labels = dict(nobj.labels)
    if not any(ad_selects_node(ad, labels) for ad in v.ads):
        return {ip: Reason.NO_MATCHING_ADVERTISEMENT.value for ip in ips}
    svc = state.service(key)
    if svc is not None and svc.external_traffic_policy == "Local" and node not in v.local:
        return {ip: Reason.NO_LOCAL_ENDPOINTS.value for ip in ips}
    owners = ip_owners(state)
    return {ip: (None if owners.get(ip, (None, ""))[0] == node else Reason.NOT_OWNER.value) for ip in ips}


def interfaces_for(ads: list[schema.L2Advertisement], labels: Mapping[str, str]) -> tuple[str, ...]:
    """Interfaces to announce from on a node with ``labels``: the union over the ads that select it; ``()`` = all."""
    out: set[str] = set()
    for ad in ads:
        if not ad_selects_node(ad, labels):
            continue
        if not ad.interfaces:
            return ()
        out.update(ad.interfaces)
    return tuple(sorted(out))
