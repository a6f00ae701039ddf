"""Deterministic IP assignment (MetalLB controller semantics, made deterministic).

Theory of operation
-------------------
:func:`converge` brings one Service's decision up to date with the objects and the configuration in force; it is
called by the fold for the Services an event can affect. Where MetalLB is random, streamlb fixes a rule:

* Rule 1: candidate pools are tried by (priority > 0 ascending, then priority 0), then pool name ascending;
  pools without ``serviceAllocation`` form the fallback group, tried in name order.
* Rule 2: inside a pool, CIDRs in spec order, addresses from the lowest up; the first free address wins.
* Rule 3: an assignment is sticky: it is kept as long as the configuration allows it, whatever else happens.
* Rule 4: a Service's existing ``status.loadBalancer.ingress`` is re-claimed before anything new is allocated, and
  when the configuration changes all Services holding addresses re-claim them before pending ones allocate.
* Rule 5: when an address is freed, only Services waiting for an address are re-tried, in key order.

This module is the foundation's allocator: sharing keys, requested IPs and the full validation list grow here.
"""

from __future__ import annotations

import json

from events import schema
from reconciler import config as configmod
from reconciler import net, selectors
from reconciler.reasons import Reason
from reconciler.state import ServiceDecision, ServiceKey, State, service_key

ANNOTATION_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
POOL_ANNOTATION = "ip-allocated-from-pool"


def annotation(svc: schema.Service, name: str) -> str | None:
    """The value of ``metallb.io/<name>`` (or the legacy prefix; the new one wins)."""
    ann = dict(svc.annotations)
    for prefix in ANNOTATION_PREFIXES:
        if prefix + name in ann:
            return ann[prefix + name]
    return None


def handled(state: State, svc: schema.Service) -> bool:
    """Is this a Service streamlb allocates for (type LoadBalancer and the load-balancer class rule)?"""
    return svc.type == "LoadBalancer" and svc.load_balancer_class == state.lb_class


def _families(svc: schema.Service) -> tuple[int, ...]:
    fams: list[int] = []
    for ip in svc.cluster_ips:
        if ip == "None":
            continue
        fam = net.parse_ip(ip)[0]
        if fam not in fams:
            fams.append(fam)
    return tuple(fams)


def _go_quote_list(ips: list[str]) -> str:
    return "[" + " ".join(json.dumps(ip) for ip in ips) + "]"


def _compatible(pool: configmod.Pool, svc: schema.Service, state: State) -> bool:
    if pool.allocation is None:
        return True
    if pool.namespaces and svc.namespace not in pool.namespaces:
        return False
    if pool.service_selectors and not any(selectors.matches(s, dict(svc.labels)) for s in pool.service_selectors):
        return False
    return True


def candidate_pools(cfg: configmod.Config, svc: schema.Service, state: State) -> list[configmod.Pool]:
    pinned = [
        p
        for p in cfg.pools
        if p.auto_assign
        and p.allocation is not None
        and (svc.namespace in p.namespaces or p.service_selectors or p.match_all_services)
        and _compatible(p, svc, state)
    ]
    pinned.sort(key=lambda p: (p.priority == 0, p.priority, p.name))
    fallback = [p for p in cfg.pools if p.auto_assign and p.allocation is None]
    return pinned + fallback


def _is_free(state: State, addr: tuple[int, int], key: ServiceKey) -> bool:
    users = state.ip_users.get(addr)
    return not users or users == [key]


def _lowest_free(state: State, pool: configmod.Pool, family: int, key: ServiceKey) -> tuple[int, int] | None:
    for block in pool.blocks:
        if block.family != family:
            continue
        value = block.first
        while value <= block.last:
            if not (pool.avoid_buggy_ips and net.is_buggy(family, value)) and _is_free(state, (family, value), key):
                return (family, value)
            value += 1
    return None


def _take(state: State, key: ServiceKey, pool: str, addrs: tuple[tuple[int, int], ...]) -> None:
    release(state, key)
    state.assigned[key] = (pool, addrs)
    for a in addrs:
        users = state.ip_users.setdefault(a, [])
        if key not in users:
            users.append(key)
            users.sort()


def release(state: State, key: ServiceKey) -> bool:
    """Drop ``key``'s assignment. Returns True if an address became free."""
    old = state.assigned.pop(key, None)
    freed = False
    if old is None:
        return False
    for a in old[1]:
        users = state.ip_users.get(a)
        if users and key in users:
            users.remove(key)
            if not users:
                del state.ip_users[a]
                freed = True
    return freed


def _owning_pool(cfg: configmod.Config, addrs: tuple[tuple[int, int], ...]) -> configmod.Pool | None:
    for p in cfg.pools:
        if all(p.contains(f, v) for f, v in addrs):
            return p
    return None


def _set_assigned(dec: ServiceDecision, pool: str, addrs: tuple[tuple[int, int], ...]) -> None:
    dec.ingress = [net.to_text(f, v) for f, v in addrs]
    dec.pool = pool
    dec.reason = None
    dec.message = ""


def _fail(state: State, key: ServiceKey, dec: ServiceDecision, reason: Reason, err: str) -> None:
    dec.ingress = []
    dec.pool = None
    dec.reason = reason.value
    dec.message = err
    state.pending.add(key)


def converge(state: State, svc: schema.Service) -> bool:
    """Bring ``svc``'s decision up to date. Returns True if an address was freed (others may now allocate)."""
    key = service_key(svc)
    if not handled(state, svc):
        state.services.pop(key, None)
        state.pending.discard(key)
        return release(state, key)
    dec = state.services.setdefault(key, ServiceDecision())
    cfg = state.config
    if cfg is None:
        dec.ingress, dec.pool, dec.reason, dec.message = [], None, Reason.NO_CONFIGURATION.value, ""
        state.pending.add(key)
        return False
    try:
        fams = _families(svc)
    except ValueError:
        fams = ()
    if not fams or not cfg.pools:
        freed = release(state, key)
        reason = Reason.NO_CLUSTER_IP if not fams else Reason.NO_CONFIGURATION
        dec.ingress, dec.pool, dec.reason, dec.message = [], None, reason.value, ""
        state.pending.add(key)
        return freed
    want = fams if svc.ip_family_policy in ("RequireDualStack", "PreferDualStack") and len(fams) == 2 else fams[:1]

    # Rule 3 and 4: keep (or re-claim from status) the current addresses when the configuration allows them.
    current = state.assigned.get(key)
    addrs: tuple[tuple[int, int], ...] = current[1] if current else ()
    if not addrs and svc.ingress_ips:
        try:
            addrs = tuple(net.parse_ip(ip) for ip in svc.ingress_ips)
        except ValueError:
            addrs = ()
    freed = False
    if addrs:
        pool = _owning_pool(cfg, addrs)
        problem = None
        if pool is None:
            problem = f"{_go_quote_list([net.to_text(f, v) for f, v in addrs])} is not allowed in config"
        elif not _compatible(pool, svc, state):
            problem = f"pool {pool.name} not compatible for ip assignment"
        elif sorted({f for f, _ in addrs}) != sorted(set(want)):
            problem = "ip family mismatch"
        else:
            taken = [a for a in addrs if not _is_free(state, a, key)]
            if taken:
                f, v = taken[0]
                problem = f"address {net.to_text(f, v)} is already in use by {state.ip_users[taken[0]][0]}"
        if problem is None and pool is not None:
            _take(state, key, pool.name, addrs)
            if dec.ingress != [net.to_text(f, v) for f, v in addrs] or dec.pool != pool.name:
                newly = current is None
                _set_assigned(dec, pool.name, addrs)
                if newly and not svc.ingress_ips:
                    dec.emit("Normal", "IPAllocated", f"Assigned IP {_go_quote_list(dec.ingress)}")
            state.pending.discard(key)
            return False
        if current is not None or svc.ingress_ips:
            dec.emit(
                "Normal",
                "ClearAssignment",
                f'current IP for "{key}" not allowed by config, will attempt for new IP assignment: {problem}',
            )
        freed = release(state, key)

    # Rule 1 and 2: allocate.
    for pool in candidate_pools(cfg, svc, state):
        got = []
        for fam in want:
            a = _lowest_free(state, pool, fam, key)
            if a is None:
                break
            got.append(a)
        if len(got) == len(want):
            _take(state, key, pool.name, tuple(got))
            _set_assigned(dec, pool.name, tuple(got))
            dec.emit("Normal", "IPAllocated", f"Assigned IP {_go_quote_list(dec.ingress)}")
            state.pending.discard(key)
            return freed
    err = "no available IPs"
    _fail(state, key, dec, Reason.NO_AVAILABLE_IPS, err)
    dec.emit("Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {err}')
    return freed


def retry_pending(state: State) -> None:
    """Rule 5: re-try the Services waiting for an address, in key order, until nothing more changes."""
    progress = True
    while progress and state.pending:
        progress = False
        for key in sorted(state.pending):
            svc = state.service(key)
            if svc is None:
                state.pending.discard(key)
                continue
            before = state.assigned.get(key)
            if converge(state, svc):
                progress = True
            if state.assigned.get(key) != before:
                progress = True


def reconverge_all(state: State) -> None:
    """After a configuration change: re-home, then re-claim (Services holding addresses first), then allocate."""

    def held(key: ServiceKey) -> int:
        if key in state.assigned:
            return len(state.assigned[key][1])
        svc = state.service(key)
        return len(svc.ingress_ips) if svc is not None else 0

    for key in sorted(state.services, key=lambda k: (-held(k), k)):
        svc = state.service(key)
        if svc is not None:
            converge(state, svc)
    retry_pending(state)
