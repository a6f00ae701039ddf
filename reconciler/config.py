"""MetalLB configuration objects into one validated :class:`Config` (pure).

Rules:

1. The configuration is judged as a whole (MetalLB ``internal/config``): any error makes it invalid, and the
   caller keeps the previous valid configuration in force.
2. Errors name the object and the field (``IPAddressPool metallb-system/p: spec.addresses[0]: invalid CIDR``) and
   are sorted, so identical inputs give identical error lists.
3. Pools are kept in name order; nothing here depends on dict or set iteration order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from events import schema
from reconciler import net, selectors


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    labels: dict[str, str]
    entries: tuple[tuple[net.Block, ...], ...]  # per spec.addresses entry, its blocks (ascending)
    auto_assign: bool
    avoid_buggy_ips: bool
    allocation: schema.ServiceAllocation | None
    namespaces: frozenset[str]  # resolved serviceAllocation.namespaces + namespaceSelectors
    service_selectors: tuple[schema.LabelSelector, ...]
    match_all_services: bool  # serviceAllocation present with no namespaces/selectors (priority only)

    @property
    def blocks(self) -> tuple[net.Block, ...]:
        return tuple(b for entry in self.entries for b in entry)

    @property
    def priority(self) -> int:
        return self.allocation.priority if self.allocation else 0

    def families(self) -> frozenset[int]:
        return frozenset(b.family for b in self.blocks)

    def contains(self, family: int, value: int) -> bool:
        if self.avoid_buggy_ips and net.is_buggy(family, value):
            return False
        return any(b.contains(family, value) for b in self.blocks)

    def capacity(self, family: int) -> int:
        return sum(net.block_capacity(b, self.avoid_buggy_ips) for b in self.blocks if b.family == family)


@dataclass(frozen=True, slots=True)
class Config:
    pools: tuple[Pool, ...] = ()  # sorted by name
    l2_advertisements: tuple[schema.L2Advertisement, ...] = ()
    bgp_advertisements: tuple[schema.BGPAdvertisement, ...] = ()
    peers: tuple[schema.BGPPeer, ...] = ()
    communities: tuple[schema.Community, ...] = ()
    bfd_profiles: tuple[schema.BFDProfile, ...] = ()
    pool_by_name: dict[str, Pool] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return True


def _where(obj: schema.K8sObject) -> str:
    return f"{type(obj).__name__} {obj.namespace}/{obj.name}"


def _check_selectors(errors: list[str], where: str, field_name: str, sels: tuple[schema.LabelSelector, ...]) -> None:
    seen: list[schema.LabelSelector] = []
    for i, sel in enumerate(sels):
        p = selectors.problem(sel)
        if p:
            errors.append(f"{where}: {field_name}[{i}]: {p}")
        if sel in seen:
            errors.append(f"{where}: {field_name}[{i}]: duplicate selector")
        seen.append(sel)


def build(
    pools: list[schema.IPAddressPool],
    l2ads: list[schema.L2Advertisement],
    bgpads: list[schema.BGPAdvertisement],
    peers: list[schema.BGPPeer],
    communities: list[schema.Community],
    bfds: list[schema.BFDProfile],
    namespaces: dict[str, dict[str, str]],
) -> tuple[Config | None, list[str]]:
    """Validate and build. Returns ``(config, [])`` or ``(None, errors)``. Inputs may come in any order."""
    errors: list[str] = []
    built: list[Pool] = []
    owner_of: list[tuple[net.Block, str, str]] = []  # (block, pool, entry text) for the overlap check
    seen_names: set[str] = set()
    for p in sorted(pools, key=lambda o: (o.name, o.namespace)):
        where = _where(p)
        if p.name in seen_names:
            errors.append(f"{where}: duplicate definition of pool {p.name!r}")
            continue
        seen_names.add(p.name)
        if not p.addresses:
            errors.append(f"{where}: spec.addresses: pool has no prefixes defined")
        entries: list[tuple[net.Block, ...]] = []
        for i, text in enumerate(p.addresses):
            try:
                blocks = net.parse_entry(text)
            except ValueError as exc:
                errors.append(f"{where}: spec.addresses[{i}]: {exc}")
                continue
            entries.append(tuple(blocks))
            for b in blocks:
                for other, other_pool, other_text in owner_of:
                    if b.family == other.family and b.first <= other.last and other.first <= b.last:
                        errors.append(
                            f"{where}: spec.addresses[{i}]: CIDR {str(b)!r} in pool {p.name!r} overlaps with "
                            f"already defined CIDR {str(other)!r} (pool {other_pool!r}, entry {other_text!r})"
                        )
                owner_of.append((b, p.name, text))
        sa = p.service_allocation
        resolved: set[str] = set()
        svc_sels: tuple[schema.LabelSelector, ...] = ()
        match_all = False
        if sa is not None:
            if len(set(sa.namespaces)) != len(sa.namespaces):
                errors.append(f"{where}: spec.serviceAllocation.namespaces: duplicate definition in namespaces field")
            _check_selectors(errors, where, "spec.serviceAllocation.namespaceSelectors", sa.namespace_selectors)
            _check_selectors(errors, where, "spec.serviceAllocation.serviceSelectors", sa.service_selectors)
            resolved.update(sa.namespaces)
            for ns_name in sorted(namespaces):
                if any(selectors.matches(s, namespaces[ns_name]) for s in sa.namespace_selectors):
                    resolved.add(ns_name)
            svc_sels = sa.service_selectors
            match_all = not sa.namespaces and not sa.namespace_selectors and not sa.service_selectors
        built.append(
            Pool(
                name=p.name,
                labels=dict(p.labels),
                entries=tuple(entries),
                auto_assign=p.auto_assign,
                avoid_buggy_ips=p.avoid_buggy_ips,
                allocation=sa,
                namespaces=frozenset(resolved),
                service_selectors=svc_sels,
                match_all_services=match_all,
            )
        )
    for ad in sorted(l2ads, key=lambda o: (o.name, o.namespace)):
        where = _where(ad)
        if len(set(ad.ip_address_pools)) != len(ad.ip_address_pools):
            errors.append(f"{where}: spec.ipAddressPools: duplicate definition of pools")
        _check_selectors(errors, where, "spec.ipAddressPoolSelectors", ad.ip_address_pool_selectors)
        _check_selectors(errors, where, "spec.nodeSelectors", ad.node_selectors)
        _check_selectors(errors, where, "spec.serviceSelectors", ad.service_selectors)
    if errors:
        return None, sorted(errors)
    return (
        Config(
            pools=tuple(built),
            l2_advertisements=tuple(sorted(l2ads, key=lambda o: (o.name, o.namespace))),
            bgp_advertisements=tuple(sorted(bgpads, key=lambda o: (o.name, o.namespace))),
            peers=tuple(sorted(peers, key=lambda o: (o.name, o.namespace))),
            communities=tuple(sorted(communities, key=lambda o: (o.name, o.namespace))),
            bfd_profiles=tuple(sorted(bfds, key=lambda o: (o.name, o.namespace))),
            pool_by_name={p.name: p for p in built},
        ),
        [],
    )
