"""Layer-2 election: which node answers ARP/NDP for a Service's IPs (MetalLB ``speaker/layer2_controller.go``).

Every replica evaluates the same inputs from :class:`State` (speaker liveness from events, Node conditions and
labels, L2Advertisements, EndpointSlices), so every replica elects the same node without talking to the others.

* Rule 1: candidates are ranked by SHA-256 of the UTF-8 string ``"<node>#<ip>"`` (raw bytes, ascending), where
  ``<ip>`` is the Service's first ingress IP; the first wins and announces all of the Service's IPs. This is
  MetalLB's ranking, so a mixed or migrating cluster elects the same node.
* Rule 2: no serving endpoint anywhere ⇒ nobody announces; ``externalTrafficPolicy: Local`` ⇒ only nodes with a
  serving endpoint are candidates.
"""

from __future__ import annotations

import hashlib

from events import schema
from reconciler import selectors
from reconciler import config as configmod
from reconciler.reasons import Reason
from reconciler.state import State

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def ads_for(cfg: configmod.Config, pool: configmod.Pool, svc: schema.Service) -> list[schema.L2Advertisement]:
    """The L2Advertisements that apply to ``pool`` and match ``svc`` (name order)."""
    out = []
    svc_labels = dict(svc.labels)
    for ad in cfg.l2_advertisements:
        if ad.ip_address_pools or ad.ip_address_pool_selectors:
            listed = pool.name in ad.ip_address_pools
            selected = any(selectors.matches(s, pool.labels) for s in ad.ip_address_pool_selectors)
            if not (listed or selected):
                continue
        if ad.service_selectors and not selectors.any_matches(ad.service_selectors, svc_labels):
            continue
        out.append(ad)
    return out


def serving_nodes(state: State, svc: schema.Service) -> tuple[bool, set[str]]:
    """(has a serving endpoint anywhere, nodes hosting one)."""
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
    return anywhere, nodes


def rank(nodes: list[str], ip: str) -> list[str]:
    """Nodes in MetalLB's election order for ``ip``."""
    return sorted(nodes, key=lambda n: hashlib.sha256(f"{n}#{ip}".encode()).digest())


def l2_owner(state: State, svc: schema.Service, pool_name: str, first_ip: str) -> tuple[bool, str | None, str | None]:
    """(pool has a matching L2Advertisement, owner node or None, reason or None)."""
    cfg = state.config
    if cfg is None:
        return False, None, None
    pool = cfg.pool_by_name.get(pool_name)
    if pool is None:
        return False, None, None
    ads = ads_for(cfg, pool, svc)
    if not ads:
        return False, None, None
    anywhere, local = serving_nodes(state, svc)
    if not anywhere:
        return True, None, Reason.NO_SERVING_ENDPOINTS.value
    candidates = []
    for (_, name), node in sorted(state.objects["Node"].items()):
        assert isinstance(node, schema.Node)
        labels = dict(node.labels)
        if name in state.speakers_down or node.network_unavailable or EXCLUDE_LABEL in labels:
            continue
        if not any(selectors.any_matches(ad.node_selectors, labels) for ad in ads):
            continue
        if svc.external_traffic_policy == "Local" and name not in local:
            continue
        candidates.append(name)
    if not candidates:
        reason = Reason.NO_LOCAL_ENDPOINTS if svc.external_traffic_policy == "Local" else Reason.NO_ELIGIBLE_NODES
        return True, None, reason.value
    return True, rank(candidates, first_ip)[0], None
