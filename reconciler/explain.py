"""Why a Service has these IPs, or none (pure): the data behind ``streamlb explain``.

:func:`explain` returns a JSON-ready dict with one entry per *section*. The ``allocation`` section lists the pools
in the order the allocator considers them (Rule 1 of :mod:`reconciler.allocate`), each with a verdict code and a
human detail — ``selected``, ``namespaceNotAllowed``, ``selectorMismatch``, ``autoAssignDisabled``,
``notInFallbackGroup``, ``familyMissing``, ``exhausted``, ``sharingConflict``, ``notRequested``, ``notTried``,
``available`` — plus the Service's decision, what it asks for and its events. Other modules add sections (L2
owner, BGP advertisements) by registering a function in :data:`SECTIONS`; the CLI renders every section present.

Read-only: nothing here changes the state; availability is judged on the state as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events import schema
from reconciler import allocate, net
from reconciler.state import ServiceKey, State

Section = Callable[[State, ServiceKey, schema.Service], "dict[str, Any] | None"]


def _families_text(fams: tuple[int, ...]) -> list[str]:
    return [allocate.FAMILY_NAME[f] for f in fams]


def _free_text(state: State, idx: allocate.Index, pool: str, fam: int) -> str:
    sp = idx.spaces[pool].get(fam)
    if sp is None:
        return f"no {allocate.FAMILY_NAME[fam]} addresses"
    cap = sp.capacity
    return f"{sp.in_use} of {cap} {allocate.FAMILY_NAME[fam]} addresses in use"


def _conflicts(state: State, key: ServiceKey, svc: schema.Service, pool: str, fam: int, limit: int = 3) -> list[str]:
    """Sharing conflicts on the lowest used addresses of a pool (for a Service with a sharing key)."""
    out = []
    idx = state.alloc
    if idx is None:
        return out
    sp = idx.spaces[pool].get(fam)
    if sp is None:
        return out
    used = sorted(
        (sp.ordinal_of(a[1]), a) for a in state.ip_users if a[0] == fam and allocate.owning_pool(idx, a) is not None
        and allocate.owning_pool(idx, a).name == pool  # type: ignore[union-attr]
    )
    for _, a in used[:64]:
        p = allocate.sharing_problem(state, key, svc, a)
        if p:
            out.append(p)
        if len(out) >= limit:
            break
    return out


def _pool_verdicts(state: State, key: ServiceKey, svc: schema.Service) -> list[dict[str, Any]]:
    idx = allocate.index(state)
    if idx is None:
        return []
    dec = state.services.get(key)
    held = state.assigned.get(key)
    try:
        fams = allocate.cluster_families(svc)
    except allocate.RequestError:
        fams = ()
    want, single_ok = allocate.wanted(svc, fams) if fams else ((), False)
    try:
        req = allocate.requested_ips(svc)
    except allocate.RequestError:
        req = ()
    pool_ann = allocate.annotation(svc, "address-pool") or ""
    pinned, fallback = allocate.candidate_groups(idx, svc)
    rows: list[dict[str, Any]] = []
    order: list[tuple[str, Any]] = []
    if req:
        owner = allocate.owning_pool(idx, req[0])
        if owner is not None:
            order.append(("requested", owner))
    elif pool_ann:
        p = idx.cfg.pool_by_name.get(pool_ann)
        if p is not None:
            order.append(("annotation", p))
    else:
        order += [("pinned", p) for p in pinned] + [("fallback", p) for p in fallback]
    listed = {p.name for _, p in order}
    order += [("excluded", p) for p in idx.cfg.pools if p.name not in listed]
    chosen_seen = False
    status = allocate.pool_status(state)  # IPAddressPool.status counters, per pool
    for group, p in order:
        verdict, detail = "available", ""
        if held is not None and held[0] == p.name:
            verdict = "selected"
            detail = "holds " + ", ".join(net.to_text(f, v) for f, v in held[1])
            chosen_seen = True
        elif group == "excluded":
            if req:
                verdict, detail = "notRequested", "the requested IPs are not in this pool"
            elif pool_ann:
                verdict, detail = "notRequested", f"the address-pool annotation names {pool_ann!r}"
            elif not allocate.compatible(p, svc):
                if p.namespaces and svc.namespace not in p.namespaces:
                    verdict = "namespaceNotAllowed"
                    detail = f"serviceAllocation allows namespaces {sorted(p.namespaces)}"
                else:
                    verdict, detail = "selectorMismatch", "no serviceAllocation.serviceSelectors matches the labels"
            elif not p.auto_assign:
                verdict, detail = "autoAssignDisabled", "autoAssign is false: only by request or annotation"
            else:
                verdict = "notInFallbackGroup"
                detail = "has serviceAllocation that does not pin this Service, so it is not a fallback pool"
        else:
            if group in ("annotation", "requested") and not allocate.compatible(p, svc):
                verdict, detail = "namespaceNotAllowed" if p.namespaces and svc.namespace not in p.namespaces else (
                    "selectorMismatch"), f"pool {p.name} not compatible for ip assignment"
            else:
                missing = [f for f in want if f not in idx.spaces[p.name]]
                full = [f for f in want if f not in missing and allocate.pick(state, idx, p.name, f, key, svc) is None]
                if missing and not (single_ok and len(missing) < len(want)):
                    verdict = "familyMissing"
                    detail = "no " + "/".join(allocate.FAMILY_NAME[f] for f in missing) + " addresses"
                elif full and not (single_ok and len(full) + len(missing) < len(want)):
                    conflicts = _conflicts(state, key, svc, p.name, full[0]) if allocate.sharing_key(svc) else []
                    if conflicts:
                        verdict, detail = "sharingConflict", "; ".join(conflicts)
                    else:
                        verdict = "exhausted"
                        detail = "; ".join(_free_text(state, idx, p.name, f) for f in full)
                else:
                    verdict = "notTried" if chosen_seen else "available"
                    detail = "; ".join(_free_text(state, idx, p.name, f) for f in want if f in idx.spaces[p.name])
        rows.append({"pool": p.name, "group": group, "priority": p.priority, "verdict": verdict, "detail": detail,
                     "status": status.get(p.name, {})})
    _ = dec
    return rows


def allocation(state: State, key: ServiceKey, svc: schema.Service) -> dict[str, Any]:
    dec = state.services.get(key)
    try:
        fams: tuple[int, ...] = allocate.cluster_families(svc)
        fam_error = None
    except allocate.RequestError as exc:
        fams, fam_error = (), str(exc)
    try:
        req: Any = [net.to_text(f, v) for f, v in allocate.requested_ips(svc)]
    except allocate.RequestError as exc:
        req = {"error": str(exc)}
    return {
        "ingress": list(dec.ingress) if dec else [],
        "pool": dec.pool if dec else None,
        "reason": dec.reason if dec else None,
        "message": dec.message if dec else "",
        "families": _families_text(fams),
        "family_error": fam_error,
        "ip_family_policy": svc.ip_family_policy,
        "requested": req,
        "pool_annotation": allocate.annotation(svc, "address-pool"),
        "sharing_key": allocate.sharing_key(svc) or None,
        "backend_key": allocate.backend_key(svc) or None,
        "ports": [f"{p}/{n}" for p, n in allocate.service_ports(svc)],
        "configuration": "none" if state.config is None else ("valid" if state.config_valid else "invalid (previous in force)"),
        "pools": _pool_verdicts(state, key, svc),
        "events": [{"type": t, "reason": r, "message": m} for t, r, m in (dec.events if dec else [])],
    }


SECTIONS: dict[str, Section] = {"allocation": allocation}


def not_handled_reason(state: State, svc: schema.Service) -> str | None:
    if svc.type != "LoadBalancer":
        return f"type is {svc.type}, not LoadBalancer"
    if svc.load_balancer_class != state.lb_class:
        want = state.lb_class or "no class"
        return f"loadBalancerClass {svc.load_balancer_class!r} is not handled (this instance handles {want})"
    return None


def explain(state: State, key: ServiceKey) -> dict[str, Any] | None:
    """Everything streamlb can say about one Service, or None when the Service is unknown."""
    svc = state.service(key)
    if svc is None:
        return None
    why = not_handled_reason(state, svc)
    out: dict[str, Any] = {"service": key, "handled": why is None, "not_handled": why}
    if why is None:
        for name in sorted(SECTIONS):
            section = SECTIONS[name](state, key, svc)
            if section is not None:
                out[name] = section
    return out


# Announcement sections (owned by reconciler.planning).
from reconciler import elect as _elect  # noqa: E402
from reconciler import planning as _planning  # noqa: E402


def l2_section(state: State, key: ServiceKey, svc: schema.Service) -> dict[str, Any] | None:
    """:func:`reconciler.planning.l2_section` plus the election's inputs per IP: ``scores`` — every node an
    L2Advertisement matching the Service selects, with its ``preferredNodeSelectors`` score (0 without
    preferences) — and ``ranking``, the candidates in election order (score first, then MetalLB's hash)."""
    out = _planning.l2_section(state, key, svc)
    if out is None:
        return None
    verdict = _elect.evaluate(state, key)
    ads = verdict.ads if verdict is not None else []
    scores: dict[str, int] = {}
    if ads:
        for node in _elect.nodes(state):
            labels = dict(node.labels)
            if any(_elect.ad_selects_node(ad, labels) for ad in ads):
                scores[node.name] = _elect.preference_score(ads, labels)
    ranking = list(verdict.candidates) if verdict is not None else []
    for entry in out.values():
        entry["scores"] = dict(scores)
        entry["ranking"] = list(ranking)
    return out


SECTIONS["l2"] = l2_section
SECTIONS["bgp"] = _planning.bgp_section
