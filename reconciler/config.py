"""MetalLB configuration objects into one validated :class:`Config` (pure).

Rules:

1. The configuration is judged as a whole (MetalLB ``internal/config``, metallb-behaviour.md §2): any error makes
   it invalid, and the caller keeps the previous valid configuration in force.
2. Errors name the object and the field (``IPAddressPool metallb-system/p: spec.addresses[0]: invalid CIDR``) and
   are sorted, so identical inputs give identical error lists. Errors about references that may appear later
   (an unknown BFD profile or community alias) are prefixed ``transient:`` — MetalLB does not load such a
   configuration yet either.
3. Validation follows MetalLB's default frr-k8s mode (IPv6 BGP, large communities, BFD are valid).
4. Pools are kept in name order; nothing here depends on dict or set iteration order.
5. Validation is split for the fold (design.md §9): :func:`prepare` judges everything that does not look at Nodes
   and turns each rule that compares node sets (LOCAL_PREF consistency, BGPPeers meeting on a node) into a
   :class:`NodeRule`; :class:`NodeChecks` keeps, per rule, how many nodes both sides select, so a Node event is
   re-checked in O(rules). :func:`build` is the same check from scratch (and what the law tests compare with).

Checked (tags as in metallb-behaviour.md): pools — addresses present, each a CIDR or an ``A-B`` range of one family
with A ≤ B, no CIDR overlapping another (same or other pool), unique names, no duplicate namespaces or selectors in
``serviceAllocation``, valid selectors; L2 and BGP advertisements — no duplicate pool names/selectors/peers,
valid selectors, L2 ``preferredNodeSelectors`` weights within 1..100, aggregation lengths within 1..32 / 1..128
and not longer than any covered pool entry's widest block, ``serviceSelectors`` only with default aggregation, communities (``A:B`` of uint16, ``large:A:B:C`` of
uint32, or a known alias, no duplicates), LOCAL_PREF consistency between advertisements of one pool; peers —
ASNs, exactly one of peerASN/dynamicASN and of peerAddress/interface, addresses that parse, port, timers, connect
time, password vs passwordSecret, eBGP multihop on iBGP, BFD profile reference, frr-mode router ID / identifier /
ASN agreement of peers that share a node, BFD echo with IPv6 pools; communities — unique names, valid values;
BFD profiles — unique names and value ranges.
"""

from __future__ import annotations

import ipaddress
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


# ----------------------------------------------------------------------------------------------------------------
# Values


def parse_community(text: str) -> tuple[str, tuple[int, ...]] | None:
    """``A:B`` -> ("standard", (A, B)); ``large:A:B:C`` -> ("large", (A, B, C)); None if not of those shapes.

    Raises ValueError when the shape is right but a number is out of range or malformed.
    """
    parts = text.split(":")
    if len(parts) == 4 and parts[0] == "large":
        nums = []
        for p in parts[1:]:
            if not p.isdigit() or int(p) > 0xFFFFFFFF:
                raise ValueError(f"invalid large community value {text!r}: {p!r} is not a 32-bit number")
            nums.append(int(p))
        return "large", tuple(nums)
    if len(parts) == 2:
        nums = []
        for p in parts:
            if not p.isdigit() or int(p) > 0xFFFF:
                raise ValueError(f"invalid community value {text!r}: {p!r} is not a 16-bit number")
            nums.append(int(p))
        return "standard", tuple(nums)
    return None


_ENTRY_CACHE: dict[str, tuple[net.Block, ...] | str] = {}  # memo of a pure function (entry text -> blocks/error)
_POOL_CACHE: dict = {}  # memo: (IPAddressPool, resolved namespaces) -> Pool (pure; equal inputs, equal Pool)


def _parse_entry(text: str) -> tuple[net.Block, ...]:
    got = _ENTRY_CACHE.get(text)
    if got is None:
        try:
            got = tuple(net.parse_entry(text))
        except ValueError as exc:
            got = str(exc)
        if len(_ENTRY_CACHE) < 100_000:
            _ENTRY_CACHE[text] = got
    if isinstance(got, str):
        raise ValueError(got)
    return got


def _where(obj: schema.K8sObject) -> str:
    return f"{type(obj).__name__} {obj.namespace}/{obj.name}"


def _check_selectors(errors: list[str], where: str, field_name: str, sels: tuple[schema.LabelSelector, ...]) -> None:
    seen: list[schema.LabelSelector] = []
    for i, sel in enumerate(sels):
        p = selectors.problem(sel)
        if p:
            errors.append(f"{where}: {field_name}[{i}]: invalid selector: {p}")
        exprs = [(r.key, r.operator, r.values) for r in sel.match_expressions]
        if len(set(exprs)) != len(exprs):
            errors.append(f"{where}: {field_name}[{i}]: duplicate match expression")
        for j, r in enumerate(sel.match_expressions):
            if len(set(r.values)) != len(r.values):
                errors.append(f"{where}: {field_name}[{i}].matchExpressions[{j}]: duplicate value in expression")
        if sel in seen:
            errors.append(f"{where}: {field_name}[{i}]: duplicate definition of selector")
        seen.append(sel)


def _check_preferences(errors: list[str], where: str, prefs: tuple[schema.PreferredNodeSelector, ...]) -> None:
    """L2Advertisement ``preferredNodeSelectors``: weight 1..100 (MetalLB's CRD; the API server's wording) and a
    valid preference selector (MetalLB's parser)."""
    for i, p in enumerate(prefs):
        f = f"spec.preferredNodeSelectors[{i}].weight"
        if p.weight < 1:
            errors.append(f"{where}: {f}: Invalid value: {p.weight}: {f} in body should be greater than or equal to 1")
        elif p.weight > 100:
            errors.append(f"{where}: {f}: Invalid value: {p.weight}: {f} in body should be less than or equal to 100")
        prob = selectors.problem(p.preference)
        if prob:
            errors.append(f"{where}: spec.preferredNodeSelectors[{i}].preference: invalid preferred node selector: {prob}")


def _dups(values: tuple[str, ...]) -> list[str]:
    seen: set[str] = set()
    out = []
    for v in values:
        if v in seen and v not in out:
            out.append(v)
        seen.add(v)
    return out


def _parses(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


# ----------------------------------------------------------------------------------------------------------------
# Build


def build(
    pools: list[schema.IPAddressPool],
    l2ads: list[schema.L2Advertisement],
    bgpads: list[schema.BGPAdvertisement],
    peers: list[schema.BGPPeer],
    communities: list[schema.Community],
    bfds: list[schema.BFDProfile],
    namespaces: dict[str, dict[str, str]],
    nodes: dict[str, dict[str, str]] | None = None,
) -> tuple[Config | None, list[str]]:
    """Validate and build. Returns ``(config, [])`` or ``(None, errors)``. Inputs may come in any order.

    ``nodes`` (name -> labels) resolves advertisement and peer node selectors for the rules that compare node
    sets (LOCAL_PREF consistency, frr peer agreement); without it those rules assume no nodes are known.
    This is the from-scratch check; the fold keeps the same verdicts incrementally with :func:`prepare` and
    :class:`NodeChecks` (law-tested against this function).
    """
    prep = prepare(pools, l2ads, bgpads, peers, communities, bfds, namespaces)
    checks = NodeChecks(prep.rules)
    for name in sorted(nodes or ()):
        checks.set(name, (nodes or {})[name])
    errors = prep.errors + checks.errors()
    if errors:
        return None, sorted(errors)
    return prep.config, []


@dataclass(frozen=True, slots=True)
class NodeRule:
    """A validation error that holds while some node is selected by both ``a`` and ``b`` (node selectors).

    ``without_nodes``: the error also holds when no node is known at all (peers are assumed to meet then)."""

    a: tuple[schema.LabelSelector, ...]
    b: tuple[schema.LabelSelector, ...]
    errors: tuple[str, ...]
    without_nodes: bool


@dataclass(frozen=True, slots=True)
class Prepared:
    """Everything validation decides without looking at Nodes: the errors, the rules that compare node sets, and
    the configuration those objects give when no rule fires (None when ``errors`` is not empty)."""

    config: Config | None
    errors: list[str]
    rules: tuple[NodeRule, ...]


def prepare(
    pools: list[schema.IPAddressPool],
    l2ads: list[schema.L2Advertisement],
    bgpads: list[schema.BGPAdvertisement],
    peers: list[schema.BGPPeer],
    communities: list[schema.Community],
    bfds: list[schema.BFDProfile],
    namespaces: dict[str, dict[str, str]],
) -> Prepared:
    """The node-independent part of :func:`build` (inputs in any order)."""
    errors: list[str] = []
    rules: list[NodeRule] = []
    built = _pools(pools, namespaces, errors)
    by_name = {p.name: p for p in built}
    for ad in sorted(l2ads, key=lambda o: (o.name, o.namespace)):
        where = _where(ad)
        for d in _dups(ad.ip_address_pools):
            errors.append(f"{where}: spec.ipAddressPools: duplicate definition of pool {d!r}")
        _check_selectors(errors, where, "spec.ipAddressPoolSelectors", ad.ip_address_pool_selectors)
        _check_selectors(errors, where, "spec.nodeSelectors", ad.node_selectors)
        _check_selectors(errors, where, "spec.serviceSelectors", ad.service_selectors)
        _check_preferences(errors, where, ad.preferred_node_selectors)
    aliases = _communities(communities, errors)
    bfd_by_name = _bfd_profiles(bfds, errors)
    _bgp_ads(bgpads, built, aliases, rules, errors)
    _peers(peers, bfd_by_name, rules, errors)
    _bfd_echo(bgpads, built, peers, bfd_by_name, errors)
    cfg = None
    if not errors:
        cfg = Config(
            pools=tuple(built),
            l2_advertisements=tuple(sorted(l2ads, key=lambda o: (o.name, o.namespace))),
            bgp_advertisements=tuple(sorted(bgpads, key=lambda o: (o.name, o.namespace))),
            peers=tuple(sorted(peers, key=lambda o: (o.name, o.namespace))),
            communities=tuple(sorted(communities, key=lambda o: (o.name, o.namespace))),
            bfd_profiles=tuple(sorted(bfds, key=lambda o: (o.name, o.namespace))),
            pool_by_name=by_name,
        )
    return Prepared(config=cfg, errors=errors, rules=tuple(rules))


class NodeChecks:
    """The node-dependent validation rules kept up to date one Node at a time.

    Each distinct node-selector tuple of the rules gets a bit; every node is kept as the mask of the selector
    tuples that select it, and every rule as the number of nodes both of its sides select. A Node event costs
    O(selector tuples + rules), whatever the number of nodes; :meth:`errors` lists the errors of the rules that
    hold, exactly as the from-scratch :func:`build` would.
    """

    __slots__ = ("rules", "_sels", "_bits", "_masks", "_counts")

    def __init__(self, rules: tuple[NodeRule, ...]) -> None:
        self.rules = rules
        sels: list[tuple[schema.LabelSelector, ...]] = []
        for r in rules:
            for s in (r.a, r.b):
                if s not in sels:
                    sels.append(s)
        self._sels = sels
        self._bits = [(sels.index(r.a), sels.index(r.b)) for r in rules]
        self._masks: dict[str, int] = {}
        self._counts = [0] * len(rules)

    def _mask(self, labels: dict[str, str]) -> int:
        m = 0
        for i, s in enumerate(self._sels):
            if selectors.any_matches(s, labels):
                m |= 1 << i
        return m

    def set(self, node: str, labels: dict[str, str] | None) -> None:
        """Node ``node`` now has ``labels`` (None: it is gone)."""
        old = self._masks.pop(node, None)
        new = None if labels is None else self._mask(labels)
        if new is not None:
            self._masks[node] = new
        if old == new or not self.rules:
            return
        for i, (a, b) in enumerate(self._bits):
            if old is not None and old >> a & 1 and old >> b & 1:
                self._counts[i] -= 1
            if new is not None and new >> a & 1 and new >> b & 1:
                self._counts[i] += 1

    def errors(self) -> list[str]:
        none = not self._masks
        out: list[str] = []
        for rule, count in zip(self.rules, self._counts):
            if count or (none and rule.without_nodes):
                out.extend(rule.errors)
        return out


def _pools(pools: list[schema.IPAddressPool], namespaces: dict[str, dict[str, str]], errors: list[str]) -> list[Pool]:
    built: list[Pool] = []
    placed: dict[int, list[tuple[int, int, str, str]]] = {}  # family -> (first, last, cidr text, pool)
    seen_names: set[str] = set()
    for p in sorted(pools, key=lambda o: (o.name, o.namespace)):
        where = _where(p)
        if p.name in seen_names:
            errors.append(f"{where}: metadata.name: duplicate definition of pool {p.name!r}")
            continue
        seen_names.add(p.name)
        if not p.addresses:
            errors.append(f"{where}: spec.addresses: pool has no prefixes defined")
        entries: list[tuple[net.Block, ...]] = []
        for i, text in enumerate(p.addresses):
            try:
                blocks = _parse_entry(text)
            except ValueError as exc:
                errors.append(f"{where}: spec.addresses[{i}]: {exc}")
                continue
            entries.append(blocks)
            for b in blocks:
                placed.setdefault(b.family, []).append((b.first, b.last, b, p.name))
        sa = p.service_allocation
        resolved: set[str] = set()
        svc_sels: tuple[schema.LabelSelector, ...] = ()
        match_all = False
        if sa is not None:
            for d in _dups(sa.namespaces):
                errors.append(f"{where}: spec.serviceAllocation.namespaces: duplicate definition in namespaces field ({d!r})")
            _check_selectors(errors, where, "spec.serviceAllocation.namespaceSelectors", sa.namespace_selectors)
            _check_selectors(errors, where, "spec.serviceAllocation.serviceSelectors", sa.service_selectors)
            resolved.update(sa.namespaces)
            if sa.namespace_selectors:
                for ns_name in sorted(namespaces):
                    if any(selectors.matches(s, namespaces[ns_name]) for s in sa.namespace_selectors):
                        resolved.add(ns_name)
            svc_sels = sa.service_selectors
            match_all = not sa.namespaces and not sa.namespace_selectors and not sa.service_selectors
        cache_key = (p, tuple(sorted(resolved)))
        cached = _POOL_CACHE.get(cache_key)
        if cached is not None and cached.entries == tuple(entries):
            built.append(cached)
            continue
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
        if len(_POOL_CACHE) > 10_000:
            _POOL_CACHE.clear()
        _POOL_CACHE[cache_key] = built[-1]
    # overlaps: sort by first address; a block overlaps the one with the furthest end seen so far
    for fam in sorted(placed):
        blocks = sorted(placed[fam], key=lambda t: (t[0], t[1], t[3]))
        reach: tuple | None = None
        for b in blocks:
            if reach is not None and b[0] <= reach[1]:
                errors.append(
                    f"IPAddressPool {_ns_of(pools, b[3])}/{b[3]}: spec.addresses: CIDR {str(b[2])!r} in pool "
                    f"{b[3]!r} overlaps with already defined CIDR {str(reach[2])!r} (pool {reach[3]!r})"
                )
            if reach is None or b[1] > reach[1]:
                reach = b
    return built


def _ns_of(pools: list[schema.IPAddressPool], name: str) -> str:
    for p in sorted(pools, key=lambda o: (o.name, o.namespace)):
        if p.name == name:
            return p.namespace
    return ""


def _communities(communities: list[schema.Community], errors: list[str]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for c in sorted(communities, key=lambda o: (o.name, o.namespace)):
        where = _where(c)
        for i, alias in enumerate(c.communities):
            if alias.name in aliases:
                errors.append(f"{where}: spec.communities[{i}].name: duplicate definition of community {alias.name!r}")
                continue
            try:
                if parse_community(alias.value) is None:
                    raise ValueError(f"invalid community value {alias.value!r}")
            except ValueError as exc:
                errors.append(f"{where}: spec.communities[{i}].value: parsing community {alias.name!r}: {exc}")
                continue
            aliases[alias.name] = alias.value
    return aliases


_BFD_RANGES = (
    ("receive_interval", "spec.receiveInterval", 10, 60000),
    ("transmit_interval", "spec.transmitInterval", 10, 60000),
    ("detect_multiplier", "spec.detectMultiplier", 2, 255),
    ("echo_interval", "spec.echoInterval", 10, 60000),
    ("minimum_ttl", "spec.minimumTtl", 1, 254),
)


def _bfd_profiles(bfds: list[schema.BFDProfile], errors: list[str]) -> dict[str, schema.BFDProfile]:
    out: dict[str, schema.BFDProfile] = {}
    for b in sorted(bfds, key=lambda o: (o.name, o.namespace)):
        where = _where(b)
        if b.name in out:
            errors.append(f"{where}: metadata.name: duplicate definition of bfd profile {b.name!r}")
            continue
        out[b.name] = b
        for attr, fname, lo, hi in _BFD_RANGES:
            v = getattr(b, attr)
            if v is not None and not lo <= v <= hi:
                errors.append(f"{where}: {fname}: {v} is out of range {lo}..{hi}")
    return out


def _ad_pools(ad: schema.BGPAdvertisement | schema.L2Advertisement, pools: list[Pool]) -> list[Pool]:
    """Pools an advertisement applies to: listed ∪ selected; both empty = all pools."""
    if not ad.ip_address_pools and not ad.ip_address_pool_selectors:
        return list(pools)
    return [
        p
        for p in pools
        if p.name in ad.ip_address_pools or any(selectors.matches(s, p.labels) for s in ad.ip_address_pool_selectors)
    ]


def _bgp_ads(
    ads: list[schema.BGPAdvertisement],
    pools: list[Pool],
    aliases: dict[str, str],
    rules: list[NodeRule],
    errors: list[str],
) -> None:
    ordered = sorted(ads, key=lambda o: (o.name, o.namespace))
    for ad in ordered:
        where = _where(ad)
        agg4 = 32 if ad.aggregation_length is None else ad.aggregation_length
        agg6 = 128 if ad.aggregation_length_v6 is None else ad.aggregation_length_v6
        if not 1 <= agg4 <= 32:
            errors.append(f"{where}: spec.aggregationLength: invalid aggregation length {agg4} for IPv4")
        if not 1 <= agg6 <= 128:
            errors.append(f"{where}: spec.aggregationLengthV6: invalid aggregation length {agg6} for IPv6")
        if ad.service_selectors and (agg4 != 32 or agg6 != 128):
            errors.append(
                f"{where}: spec.serviceSelectors: serviceSelectors can't be used together with aggregation length"
            )
        if ad.local_pref < 0 or ad.local_pref > 0xFFFFFFFF:
            errors.append(f"{where}: spec.localPref: {ad.local_pref} is not a 32-bit number")
        for d in _dups(ad.ip_address_pools):
            errors.append(f"{where}: spec.ipAddressPools: duplicate definition of pool {d!r}")
        for d in _dups(ad.peers):
            errors.append(f"{where}: spec.peers: duplicate definition of peer {d!r}")
        for d in _dups(ad.communities):
            errors.append(f"{where}: spec.communities: duplicate definition of community {d!r}")
        _check_selectors(errors, where, "spec.ipAddressPoolSelectors", ad.ip_address_pool_selectors)
        _check_selectors(errors, where, "spec.nodeSelectors", ad.node_selectors)
        _check_selectors(errors, where, "spec.serviceSelectors", ad.service_selectors)
        for i, c in enumerate(ad.communities):
            try:
                shape = parse_community(c)
            except ValueError as exc:
                errors.append(f"{where}: spec.communities[{i}]: {exc}")
                continue
            if shape is None and c not in aliases:
                errors.append(f"{where}: spec.communities[{i}]: transient: community alias {c!r} not found")
        for p in _ad_pools(ad, pools):
            for entry_i, entry in enumerate(p.entries):
                if not entry:
                    continue
                widest = min(b.prefixlen for b in entry)
                agg = agg4 if entry[0].family == net.V4 else agg6
                if agg < widest:
                    errors.append(
                        f"{where}: spec.aggregationLength{'V6' if entry[0].family == net.V6 else ''}: prefix "
                        f"{widest} in this pool is more specific than the aggregation length for addresses "
                        f"{_entry_text(entry)} (pool {p.name!r})"
                    )
    # LOCAL_PREF consistency between advertisements (without serviceSelectors) of one pool; two advertisements
    # whose node sets do not meet never conflict, so the error is a rule on their node selectors
    plain = [a for a in ordered if not a.service_selectors]
    for i, a in enumerate(plain):
        pa = {p.name: p for p in _ad_pools(a, pools)}
        for b in plain[i + 1:]:
            if a.local_pref == b.local_pref:
                continue
            for p in _ad_pools(b, pools):
                if p.name not in pa:
                    continue
                if _localpref_exempt(a, b, p):
                    continue
                rules.append(NodeRule(a.node_selectors, b.node_selectors, (
                    f"{_where(b)}: spec.localPref: invalid local preference {b.local_pref}: local preference "
                    f"{a.local_pref} was already set for the same type of BGP update by {_where(a)} (pool {p.name!r})",
                ), without_nodes=False))
                break


def _entry_text(entry: tuple[net.Block, ...]) -> str:
    if len(entry) == 1:
        return str(entry[0])
    return f"{net.to_text(entry[0].family, entry[0].first)}-{net.to_text(entry[-1].family, entry[-1].last)}"


def _localpref_exempt(a: schema.BGPAdvertisement, b: schema.BGPAdvertisement, pool: Pool) -> bool:
    """The node-independent exemptions (the node sets are compared by the :class:`NodeRule`)."""
    fams = pool.families()
    a4, b4 = a.aggregation_length or 32, b.aggregation_length or 32
    a6, b6 = a.aggregation_length_v6 or 128, b.aggregation_length_v6 or 128
    if fams == {net.V4} and a4 != b4:
        return True
    if fams == {net.V6} and a6 != b6:
        return True
    if fams == {net.V4, net.V6} and a4 != b4 and a6 != b6:
        return True
    return bool(a.peers and b.peers and not set(a.peers) & set(b.peers))


def _peers(
    peers: list[schema.BGPPeer],
    bfds: dict[str, schema.BFDProfile],
    rules: list[NodeRule],
    errors: list[str],
) -> None:
    ordered = sorted(peers, key=lambda o: (o.name, o.namespace))
    for p in ordered:
        where = _where(p)
        if p.my_asn == 0:
            errors.append(f"{where}: spec.myASN: missing local ASN")
        if not 0 <= p.my_asn <= 0xFFFFFFFF:
            errors.append(f"{where}: spec.myASN: {p.my_asn} is not a 32-bit number")
        if p.peer_asn and p.dynamic_asn:
            errors.append(f"{where}: spec.peerASN: both peer ASN and dynamicASN specified")
        elif not p.peer_asn and not p.dynamic_asn:
            errors.append(f"{where}: spec.peerASN: missing peer ASN and dynamicASN")
        if p.dynamic_asn and p.dynamic_asn not in ("internal", "external"):
            errors.append(f"{where}: spec.dynamicASN: must be internal or external, not {p.dynamic_asn!r}")
        if not 0 <= p.peer_asn <= 0xFFFFFFFF:
            errors.append(f"{where}: spec.peerASN: {p.peer_asn} is not a 32-bit number")
        if not 0 <= p.local_asn <= 0xFFFFFFFF:
            errors.append(f"{where}: spec.localASN: {p.local_asn} is not a 32-bit number")
        if p.peer_address and p.interface:
            errors.append(f"{where}: spec.peerAddress: peerAddress and interface are mutually exclusive")
        elif not p.peer_address and not p.interface:
            errors.append(f"{where}: spec.peerAddress: missing peer address or interface")
        if p.peer_address and not _parses(p.peer_address):
            errors.append(f"{where}: spec.peerAddress: invalid BGPPeer address {p.peer_address!r}")
        if p.source_address and not _parses(p.source_address):
            errors.append(f"{where}: spec.sourceAddress: invalid source address {p.source_address!r}")
        if p.router_id and not _parses(p.router_id):
            errors.append(f"{where}: spec.routerID: invalid router ID {p.router_id!r}")
        if not 1 <= p.peer_port <= 16384:
            errors.append(f"{where}: spec.peerPort: {p.peer_port} is out of range 1..16384")
        hold, ka = p.hold_time_ms, p.keepalive_time_ms
        if hold is None and ka is not None:
            hold = 3 * ka
        if ka is None and hold is not None:
            ka = hold // 3
        if hold is not None:
            secs = hold // 1000
            if secs != 0 and secs < 3:
                errors.append(f"{where}: spec.holdTime: invalid hold time {hold}ms: must be 0 or >=3s")
            if ka is not None and ka > hold:
                errors.append(f"{where}: spec.keepaliveTime: keepalive {ka}ms is larger than hold time {hold}ms")
        if p.connect_time_ms is not None:
            ct = p.connect_time_ms
            if ct % 1000 or not 1000 <= ct <= 65535000:
                errors.append(f"{where}: spec.connectTime: must be a whole number of seconds in 1s..65535s, not {ct}ms")
        if p.password_set and p.password_secret is not None:
            errors.append(f"{where}: spec.password: password and passwordSecret are mutually exclusive")
        if p.ebgp_multi_hop and p.peer_asn and p.peer_asn == p.my_asn:
            errors.append(f"{where}: spec.ebgpMultiHop: invalid ebgp-multihop parameter set for an ibgp peer")
        if p.bfd_profile and p.bfd_profile not in bfds:
            errors.append(f"{where}: spec.bfdProfile: transient: bfd profile {p.bfd_profile!r} not found")
        _check_selectors(errors, where, "spec.nodeSelectors", p.node_selectors)
    # frr / frr-k8s: peers that meet on a node must agree (no nodes known: assume they meet)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1:]:
            found: list[str] = []
            if a.router_id != b.router_id:
                found.append(
                    f"{_where(b)}: spec.routerID: BGPPeers {a.name!r} and {b.name!r} select the same node but have "
                    f"different router IDs ({a.router_id!r} vs {b.router_id!r})"
                )
            ida = (a.peer_address or a.interface) + (f"-{a.vrf}" if a.vrf else "")
            idb = (b.peer_address or b.interface) + (f"-{b.vrf}" if b.vrf else "")
            if ida == idb:
                found.append(f"{_where(b)}: spec.peerAddress: duplicate BGPPeer {idb!r} (also {_where(a)})")
            if a.vrf == b.vrf and a.my_asn != b.my_asn:
                found.append(
                    f"{_where(b)}: spec.myASN: BGPPeers {a.name!r} and {b.name!r} select the same node with "
                    f"different local ASNs ({a.my_asn} vs {b.my_asn}) in the same VRF"
                )
            if found:
                rules.append(NodeRule(a.node_selectors, b.node_selectors, tuple(found), without_nodes=True))


def _bfd_echo(
    ads: list[schema.BGPAdvertisement],
    pools: list[Pool],
    peers: list[schema.BGPPeer],
    bfds: dict[str, schema.BFDProfile],
    errors: list[str],
) -> None:
    echo_peers = [p for p in sorted(peers, key=lambda o: o.name) if p.bfd_profile in bfds and bfds[p.bfd_profile].echo_mode]
    if not echo_peers:
        return
    for ad in sorted(ads, key=lambda o: (o.name, o.namespace)):
        v6 = [p.name for p in _ad_pools(ad, pools) if net.V6 in p.families()]
        if not v6:
            continue
        for peer in echo_peers:
            if ad.peers and peer.name not in ad.peers:
                continue
            errors.append(
                f"{_where(peer)}: spec.bfdProfile: peer {peer.name!r} has bfd echo enabled, which is not possible "
                f"with IPv6 pool {v6[0]!r} advertised by {_where(ad)}"
            )
