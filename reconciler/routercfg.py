"""The router's side of BGP mode: what a router at one address needs to peer with the cluster (design.md §10).

:func:`derive` reads the folded state and returns a :class:`RouterConfig`, a vendor-neutral description; one
renderer per vendor (:data:`RENDERERS`) turns it into configuration text. Pure: no I/O, no clock; every list is
built in a sorted order, so equal states give byte-identical configurations.

Rules:

1. The router is the ``peerAddress`` of one or more BGPPeers; their ``peerASN`` is its AS (``dynamicASN:
   internal`` means the nodes' AS; ``external`` needs the AS from the caller). Peers naming the same address with
   different router ASes are an error.
2. One neighbor per Node that such a BGPPeer selects (``nodeSelectors``, empty = every node), at the Node's
   InternalIP of the router's family, or at the peer's ``sourceAddress`` when it sets one. Remote AS = the peer's
   ``localASN`` if set, else ``myASN`` — so peers that differ by node selector give per-node ASes. Nodes labelled
   ``node.kubernetes.io/exclude-from-external-load-balancers`` never open a session (streamlb's speaker stays
   silent there) and are left out with a note. A selected node without an address of the family is an error.
3. Import policy per neighbor = exactly the prefixes its node may announce to this peer: for every
   BGPAdvertisement that selects the node and names the peer (or no peer), every address block of every pool it
   applies to, at the advertisement's ``aggregationLength`` (v4) / ``aggregationLengthV6`` (v6). A block at least
   as wide as the aggregation gives "prefixes of exactly that length inside the block"; a narrower block (a range
   entry's small piece) gives its one covering aggregate. With ``avoidBuggyIPs`` and /32 announcements, the .0 and
   .255 host routes are refused explicitly (up to :data:`MAX_EXCLUDES` of them). Neighbors with equal policies share
   one. Only the router's address family is carried (streamlb sends IPv4 over IPv4 sessions, IPv6 over IPv6).
4. The maximum-prefix guard of a policy is the number of distinct prefixes it accepts (capped at 2^32-1).
5. Nothing is sent to the nodes (streamlb ignores what it receives); the router never opens the connection
   (streamlb's speaker always does); ECMP over all neighbors, with AS-path "multipath relax" when the eBGP
   neighbors' ASes differ.
6. BFD: the peer's profile mirrored for the router (its receive interval is the node's transmit interval and
   vice versa, so both sides negotiate the profile's rates); unset values take FRR's defaults (300 ms, 300 ms, 3),
   as MetalLB renders them. Echo mode is the node's business and is not enabled on the router.
7. Secrets never appear: a peer with a password gets :data:`PASSWORD_PLACEHOLDER` and a note naming the Secret.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from events import schema
from reconciler import bgpplan, elect, selectors
from reconciler import config as configmod
from reconciler.state import State

PASSWORD_PLACEHOLDER = "STREAMLB-PASSWORD-PLACEHOLDER"
MAX_EXCLUDES = 512  # explicit refusals of avoidBuggyIPs host routes per policy; beyond that only a note
MAX_U32 = 0xFFFFFFFF
BFD_DEFAULTS = (300, 300, 3)  # receive ms, transmit ms, detect multiplier (FRR's defaults, MetalLB's rendering)


class RouterConfigError(ValueError):
    """The state cannot give a configuration for that router (message names the cause)."""


@dataclass(frozen=True, slots=True, order=True)
class Rule:
    """Accept prefixes of length ``length`` inside ``network`` (exactly ``network`` when its length equals it)."""

    family: int
    value: int  # network address as an integer
    plen: int  # network prefix length
    length: int  # accepted prefix length (the aggregation length)

    @property
    def network(self) -> str:
        addr = ipaddress.IPv4Address(self.value) if self.family == 4 else ipaddress.IPv6Address(self.value)
        return f"{addr}/{self.plen}"

    @property
    def exact(self) -> bool:
        return self.plen == self.length

    def count(self) -> int:
        return 1 << (self.length - self.plen)


@dataclass(frozen=True, slots=True)
class Policy:
    """An import policy: what neighbors sharing it may announce."""

    name: str
    family: int
    rules: tuple[Rule, ...]  # sorted
    excludes: tuple[str, ...]  # host routes refused before the rules (avoidBuggyIPs), sorted numerically
    max_prefixes: int
    pools: tuple[str, ...]  # names, for comments
    advertisements: tuple[str, ...]  # names, for comments
    communities: tuple[str, ...]  # what the advertisements attach (canonical text), sorted
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bfd:
    """A BFD profile as the router applies it (mirrored, rule 6)."""

    name: str
    receive_ms: int
    transmit_ms: int
    multiplier: int
    minimum_ttl: int | None  # multi-hop sessions only
    node_echo: bool  # the node runs echo mode (informational)
    node_passive: bool  # the node waits for the router's first packet (informational)


@dataclass(frozen=True, slots=True)
class Neighbor:
    node: str
    address: str
    remote_as: int
    peer: str  # BGPPeer "namespace/name"
    policy: str
    hold_s: int | None
    keepalive_s: int | None
    connect_s: int | None
    multihop: bool
    password: str | None  # the placeholder, or None
    password_source: str  # where the real password lives (empty when none)
    bfd: str | None  # profile name
    port: int  # the port the node connects to on the router


@dataclass(frozen=True, slots=True)
class RouterConfig:
    router: str
    family: int
    asn: int
    router_id: str | None
    peers: tuple[str, ...]  # BGPPeer "namespace/name"
    neighbors: tuple[Neighbor, ...]  # node name order
    policies: tuple[Policy, ...]
    bfd_profiles: tuple[Bfd, ...]
    communities: tuple[tuple[str, str], ...]  # (list name, canonical value), by value
    skipped: tuple[tuple[str, str], ...]  # (node, why)
    notes: tuple[str, ...]

    @property
    def afi(self) -> str:
        return "ipv4" if self.family == 4 else "ipv6"

    @property
    def multipath_relax(self) -> bool:
        return len({n.remote_as for n in self.neighbors if n.remote_as != self.asn}) > 1

    @property
    def has_ibgp(self) -> bool:
        return any(n.remote_as == self.asn for n in self.neighbors)

    @property
    def has_ebgp(self) -> bool:
        return any(n.remote_as != self.asn for n in self.neighbors)

    def policy(self, name: str) -> Policy:
        return next(p for p in self.policies if p.name == name)

    def bfd(self, name: str) -> Bfd:
        return next(b for b in self.bfd_profiles if b.name == name)


# ----------------------------------------------------------------------------------------------------------------
# derivation


def _canonical(ip: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        if "%" in ip:
            raise ValueError
        return ipaddress.ip_address(ip.strip())
    except ValueError:
        raise RouterConfigError(f"{what} {ip!r} is not an IP address") from None


def _peer_ref(p: schema.BGPPeer) -> str:
    return f"{p.namespace}/{p.name}"


def _timers(p: schema.BGPPeer) -> tuple[int | None, int | None]:
    """(hold, keepalive) in whole seconds as MetalLB derives them (one given: the other is x3 or /3)."""
    hold, ka = p.hold_time_ms, p.keepalive_time_ms
    if hold is None and ka is None:
        return None, None
    if hold is None:
        hold = 3 * ka  # type: ignore[operator]
    if ka is None:
        ka = hold // 3
    return hold // 1000, ka // 1000


def _rules_for(pool: configmod.Pool, family: int, length: int) -> list[Rule]:
    out = []
    bits = 32 if family == 4 else 128
    for b in pool.blocks:
        if b.family != family:
            continue
        if b.prefixlen <= length:
            out.append(Rule(family, b.first, b.prefixlen, length))
        else:  # a piece narrower than the aggregation: its covering aggregate
            mask = ((1 << length) - 1) << (bits - length)
            out.append(Rule(family, b.first & mask, length, length))
    return out


def _excludes(pool: configmod.Pool, rules: list[Rule]) -> list[int]:
    """avoidBuggyIPs host routes (x.0, x.255) inside the /32 rules of ``pool``."""
    if not pool.avoid_buggy_ips:
        return []
    out: list[int] = []
    for r in rules:
        if r.family != 4 or r.length != 32:
            continue
        first, last = r.value, r.value + r.count() - 1
        base = first & ~0xFF
        while base <= last:
            for v in (base, base | 0xFF):
                if first <= v <= last:
                    out.append(v)
            base += 0x100
            if len(out) > MAX_EXCLUDES:
                return out
    return out


def _bfd(profile: schema.BFDProfile, multihop: bool) -> Bfd:
    rx = profile.receive_interval if profile.receive_interval is not None else BFD_DEFAULTS[0]
    tx = profile.transmit_interval if profile.transmit_interval is not None else BFD_DEFAULTS[1]
    mult = profile.detect_multiplier if profile.detect_multiplier is not None else BFD_DEFAULTS[2]
    return Bfd(
        name=profile.name,
        receive_ms=tx,  # mirrored: the router expects what the node sends ...
        transmit_ms=rx,  # ... and sends what the node expects
        multiplier=mult,
        minimum_ttl=(profile.minimum_ttl if profile.minimum_ttl is not None else 254) if multihop else None,
        node_echo=profile.echo_mode,
        node_passive=profile.passive_mode,
    )


def derive(state: State, router: str, router_asn: int | None = None, router_id: str | None = None) -> RouterConfig:
    """The configuration of the router at ``router``. Raises :class:`RouterConfigError`."""
    addr = _canonical(router, "--router")
    family = addr.version
    cfg = state.config
    if cfg is None:
        errs = "; ".join(state.config_errors[:3])
        raise RouterConfigError("the log holds no valid configuration" + (f" ({errs})" if errs else ""))
    notes: list[str] = []
    if not state.config_valid:
        notes.append("the newest configuration in the log is invalid; this is the previous valid one, in force")
    peers = [p for p in cfg.peers if p.peer_address and _same(p.peer_address, addr)]
    if not peers:
        known = sorted({p.peer_address for p in cfg.peers if p.peer_address})
        raise RouterConfigError(
            f"no BGPPeer has peerAddress {addr} (peer addresses in the log: {', '.join(known) or 'none'})"
        )
    asns: dict[int, list[str]] = {}
    for p in peers:
        if p.peer_asn:
            asn = p.peer_asn
        elif p.dynamic_asn == "internal":
            asn = p.local_asn or p.my_asn
        elif router_asn is not None:
            asn = router_asn
        else:
            raise RouterConfigError(
                f"BGPPeer {_peer_ref(p)} has dynamicASN: {p.dynamic_asn or 'unset'}, so the log does not say the "
                "router's AS: give --router-asn"
            )
        asns.setdefault(asn, []).append(_peer_ref(p))
    if len(asns) > 1:
        detail = "; ".join(f"AS {a}: {', '.join(names)}" for a, names in sorted(asns.items()))
        raise RouterConfigError(f"the BGPPeers with peerAddress {addr} disagree on the router's AS ({detail})")
    (asn,) = asns
    if router_asn is not None and router_asn != asn:
        raise RouterConfigError(f"--router-asn {router_asn} contradicts the BGPPeers' peerASN {asn}")
    if router_id is not None:
        rid = _canonical(router_id, "--router-id")
        if rid.version != 4:
            raise RouterConfigError(f"--router-id {router_id!r} must be an IPv4 address")
        router_id = str(rid)
    elif family == 4:
        router_id = str(addr)

    bcfg = bgpplan.parse(cfg)
    nodes = elect.nodes(state)
    profiles = {b.name: b for b in cfg.bfd_profiles}
    neighbors: list[Neighbor] = []
    skipped: list[tuple[str, str]] = []
    missing: list[str] = []
    policies: dict[tuple, Policy] = {}
    bfds: dict[str, Bfd] = {}
    for node in nodes:
        labels = dict(node.labels)
        mine = [p for p in peers if selectors.any_matches(p.node_selectors, labels)]
        if not mine:
            continue
        peer = mine[0]  # a valid configuration has at most one (peers meeting on a node differ in address)
        if any(k == elect.EXCLUDE_LABEL for k, _ in node.labels):
            skipped.append((node.name, f"labelled {elect.EXCLUDE_LABEL}: its speaker opens no session"))
            continue
        if peer.source_address:
            address = str(_canonical(peer.source_address, f"BGPPeer {_peer_ref(peer)} sourceAddress"))
        else:
            ips = [ip for ip in node.internal_ips if ipaddress.ip_address(ip).version == family]
            if not ips:
                missing.append(node.name)
                continue
            address = ips[0]
        policy = _policy(cfg, bcfg, peer, labels, family, policies)
        hold, ka = _timers(peer)
        bfd_name = None
        if peer.bfd_profile and peer.bfd_profile in profiles:
            b = _bfd(profiles[peer.bfd_profile], peer.ebgp_multi_hop)
            bfd_name = b.name
            bfds[b.name] = b
        secret = ""
        if peer.password_secret is not None:
            ns = peer.password_secret.namespace or peer.namespace
            secret = f"key 'password' of Secret {ns}/{peer.password_secret.name}"
        elif peer.password_set:
            secret = f"spec.password of BGPPeer {_peer_ref(peer)}"
        neighbors.append(
            Neighbor(
                node=node.name,
                address=address,
                remote_as=peer.local_asn or peer.my_asn,
                peer=_peer_ref(peer),
                policy=policy.name,
                hold_s=hold,
                keepalive_s=ka,
                connect_s=None if peer.connect_time_ms is None else peer.connect_time_ms // 1000,
                multihop=peer.ebgp_multi_hop,
                password=PASSWORD_PLACEHOLDER if secret else None,
                password_source=secret,
                bfd=bfd_name,
                port=peer.peer_port or 179,
            )
        )
    if missing:
        fam = "IPv4" if family == 4 else "IPv6"
        raise RouterConfigError(
            f"node(s) {', '.join(missing)} have no {fam} InternalIP in the log (Node status.addresses), so their "
            "neighbor address is unknown"
        )
    seen: dict[str, str] = {}
    for n in neighbors:
        if n.address in seen:
            raise RouterConfigError(f"nodes {seen[n.address]} and {n.node} would both be neighbor {n.address}")
        seen[n.address] = n.node
    if not neighbors:
        raise RouterConfigError(
            f"the BGPPeers with peerAddress {addr} ({', '.join(_peer_ref(p) for p in peers)}) select no node that "
            "opens a session"
        )
    for p in peers:
        if p.dual_stack_address_family:
            notes.append(f"BGPPeer {_peer_ref(p)} sets dualStackAddressFamily; streamlb's speaker sends only the "
                         "session's own address family, so only that family is accepted")
    for p in sorted({n.port for n in neighbors}):
        if p != 179:
            notes.append(f"the nodes connect to port {p}: the router must accept BGP on that port")
    used = sorted({c for pol in policies.values() for c in pol.communities}, key=bgpplan.community_key)
    alias_of = {}
    aliases, _ = bgpplan.aliases(cfg)
    for name in sorted(aliases):
        parsed = bgpplan.parse_community(aliases[name])
        if parsed is not None:
            alias_of.setdefault(parsed[1], name)
    communities = tuple((_list_name(alias_of.get(c), c), c) for c in used)
    return RouterConfig(
        router=str(addr),
        family=family,
        asn=asn,
        router_id=router_id,
        peers=tuple(_peer_ref(p) for p in peers),
        neighbors=tuple(neighbors),
        policies=tuple(sorted(policies.values(), key=lambda p: p.name)),
        bfd_profiles=tuple(bfds[k] for k in sorted(bfds)),
        communities=communities,
        skipped=tuple(skipped),
        notes=tuple(notes),
    )


def _same(text: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == addr
    except ValueError:
        return False


def _list_name(alias: str | None, value: str) -> str:
    base = alias if alias else value.replace(":", "-")
    return "streamlb-" + re.sub(r"[^A-Za-z0-9_-]", "-", base)


def _policy(
    cfg: configmod.Config,
    bcfg: bgpplan.BgpConfig,
    peer: schema.BGPPeer,
    labels: dict[str, str],
    family: int,
    policies: dict[tuple, Policy],
) -> Policy:
    rules: set[Rule] = set()
    excl: set[int] = set()
    pools: set[str] = set()
    ads: set[str] = set()
    comms: set[str] = set()
    notes: list[str] = []
    for ad in bcfg.ads:
        if ad.peers and peer.name not in ad.peers:
            continue
        if not elect.ad_selects_node(ad.obj, labels):
            continue
        length = ad.agg4 if family == 4 else ad.agg6
        for pool in cfg.pools:
            if not elect.pool_matches(pool, ad.obj.ip_address_pools, ad.obj.ip_address_pool_selectors):
                continue
            got = _rules_for(pool, family, length)
            if not got:
                continue
            rules.update(got)
            pools.add(pool.name)
            ads.add(ad.name)
            comms.update(ad.communities)
            ex = _excludes(pool, got)
            if len(ex) > MAX_EXCLUDES:
                notes.append(f"pool {pool.name} avoids .0/.255 addresses in too many /24s to list them")
            else:
                excl.update(ex)
    if len(excl) > MAX_EXCLUDES:
        notes.append("too many avoidBuggyIPs host routes to refuse one by one")
        excl = set()
    ordered = tuple(sorted(rules))
    excludes = tuple(f"{ipaddress.IPv4Address(v)}/32" for v in sorted(excl))
    key = (ordered, excludes)
    got = policies.get(key)
    if got is not None:
        return got
    total = sum(r.count() for r in ordered) - len(excludes)
    name = "streamlb-in" if not policies else f"streamlb-in-{len(policies) + 1}"
    pol = Policy(
        name=name,
        family=family,
        rules=ordered,
        excludes=excludes,
        max_prefixes=max(1, min(total, MAX_U32)),
        pools=tuple(sorted(pools)),
        advertisements=tuple(sorted(ads)),
        communities=tuple(sorted(comms, key=bgpplan.community_key)),
        notes=tuple(notes),
    )
    policies[key] = pol
    return pol


# ----------------------------------------------------------------------------------------------------------------
# rendering helpers


def _header(rc: RouterConfig, vendor: str, comment: str) -> list[str]:
    c = comment
    out = [
        f"{c} streamlb router-config --vendor {vendor}: router {rc.router}, AS {rc.asn}",
        f"{c} BGPPeers with this peerAddress: {', '.join(rc.peers)}",
        f"{c} {len(rc.neighbors)} neighbor(s), one per node; imports exactly the prefixes the BGPAdvertisements may",
        f"{c} announce, exports nothing; the nodes always open the sessions (the router stays passive).",
    ]
    for node, why in rc.skipped:
        out.append(f"{c} node {node} left out: {why}")
    for n in rc.notes:
        out.append(f"{c} note: {n}")
    for n in rc.neighbors:
        if n.password is not None:
            out.append(f"{c} {n.address} ({n.node}): replace {PASSWORD_PLACEHOLDER} with the {n.password_source}")
    if rc.router_id is None:
        out.append(f"{c} no router ID: the router's address is IPv6; give --router-id or set one yourself")
    return out


def _policy_comment(p: Policy, c: str) -> list[str]:
    out = [f"{c} {p.name}: pools {', '.join(p.pools) or '-'}; BGPAdvertisements {', '.join(p.advertisements) or '-'};"
           f" at most {p.max_prefixes} prefixes"]
    if p.communities:
        out.append(f"{c} {p.name}: the nodes attach communities {' '.join(p.communities)}")
    if not p.rules:
        out.append(f"{c} {p.name}: no advertisement lets these nodes announce anything to this router")
    out += [f"{c} {p.name}: note: {n}" for n in p.notes]
    return out


def _multipath(rc: RouterConfig, cap: int) -> int:
    return max(1, min(len(rc.neighbors), cap))


def _large(value: str) -> bool:
    return value.startswith("large:")


def _plain(value: str) -> str:
    return value[len("large:"):] if _large(value) else value


# ----------------------------------------------------------------------------------------------------------------
# FRR (frr.conf syntax; bgpd + bfdd)


def render_frr(rc: RouterConfig) -> str:
    fam = "ip" if rc.family == 4 else "ipv6"
    out = ["!"] + _header(rc, "frr", "!") + ["!"]
    for p in rc.policies:
        out += _policy_comment(p, "!")
        seq = 5
        for e in p.excludes:
            out.append(f"{fam} prefix-list {p.name} seq {seq} deny {e}")
            seq += 5
        for r in p.rules:
            ge = "" if r.exact else f" ge {r.length} le {r.length}"
            out.append(f"{fam} prefix-list {p.name} seq {seq} permit {r.network}{ge}")
            seq += 5
        if p.rules:
            out += [f"route-map {p.name} permit 10", f" match {fam} address prefix-list {p.name}", "exit"]
        out += [f"route-map {p.name} deny 100", "exit", "!"]
    out += ["route-map streamlb-out deny 10", "exit", "!"]
    for name, value in rc.communities:
        kind = "large-community-list" if _large(value) else "community-list"
        out.append(f"bgp {kind} standard {name} seq 5 permit {_plain(value)}")
    if rc.communities:
        out.append("!")
    if rc.bfd_profiles:
        out.append("bfd")
        for b in rc.bfd_profiles:
            out += [f" profile {b.name}", f"  detect-multiplier {b.multiplier}", f"  receive-interval {b.receive_ms}",
                    f"  transmit-interval {b.transmit_ms}"]
            if b.minimum_ttl is not None:
                out.append(f"  minimum-ttl {b.minimum_ttl}")
            out.append(" exit")
        out += ["exit", "!"]
    out.append(f"router bgp {rc.asn}")
    if rc.router_id:
        out.append(f" bgp router-id {rc.router_id}")
    out.append(" no bgp default ipv4-unicast")
    if rc.multipath_relax:
        out.append(" bgp bestpath as-path multipath-relax")
    for n in rc.neighbors:
        a = n.address
        out += [f" neighbor {a} remote-as {n.remote_as}", f" neighbor {a} description streamlb {n.node} ({n.peer})",
                f" neighbor {a} passive"]
        if n.multihop:
            out.append(f" neighbor {a} ebgp-multihop 255")
        if n.hold_s is not None:
            out.append(f" neighbor {a} timers {n.keepalive_s} {n.hold_s}")
        if n.connect_s is not None:
            out.append(f" neighbor {a} timers connect {n.connect_s}")
        if n.password is not None:
            out.append(f" neighbor {a} password {n.password}")
        if n.bfd is not None:
            out.append(f" neighbor {a} bfd profile {n.bfd}")
    out.append(" !")
    out.append(f" address-family {rc.afi} unicast")
    if rc.has_ebgp:
        out.append(f"  maximum-paths {_multipath(rc, 256)}")
    if rc.has_ibgp:
        out.append(f"  maximum-paths ibgp {_multipath(rc, 256)}")
    for n in rc.neighbors:
        a = n.address
        pol = rc.policy(n.policy)
        out += [f"  neighbor {a} activate", f"  neighbor {a} route-map {n.policy} in",
                f"  neighbor {a} route-map streamlb-out out", f"  neighbor {a} maximum-prefix {pol.max_prefixes} force"]
    out += [" exit-address-family", "exit", "!"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# BIRD 2 (a complete bird.conf)


def _bird_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def render_bird(rc: RouterConfig) -> str:
    chan = rc.afi
    out = _header(rc, "bird", "#")
    if rc.router_id:
        out.append(f"router id {rc.router_id};")
    out += ["", "protocol device {", "}", "",
            "# ECMP: routes from several nodes for one prefix become one multipath route in the kernel",
            "protocol kernel {",
            f"  {chan} {{ export where source = RTS_BGP; }};",
            f"  merge paths on limit {_multipath(rc, 256)};",
            "}", ""]
    for p in rc.policies:
        fn = _bird_name(p.name)
        out += _policy_comment(p, "#")
        out.append(f"filter {fn} {{")
        if p.excludes:
            out.append(f"  if net ~ [ {', '.join(p.excludes)} ] then reject;")
        if p.rules:
            items = ", ".join(r.network if r.exact else f"{r.network}{{{r.length},{r.length}}}" for r in p.rules)
            out.append(f"  if net ~ [ {items} ] then accept;")
        out += ["  reject;", "}", ""]
    for name, value in rc.communities:
        parts = _plain(value).split(":")
        out.append(f"define {_bird_name(name)} = ({', '.join(parts)});")
    if rc.communities:
        out.append("")
    if rc.bfd_profiles:
        out += ["# the BGP sessions below ask for BFD sessions with their own rates", "protocol bfd {", "}", ""]
    names: set[str] = set()
    for n in rc.neighbors:
        base = "streamlb_" + _bird_name(n.node)
        name, i = base, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.add(name)
        pol = rc.policy(n.policy)
        out += [f"protocol bgp {name} {{", f"  description \"streamlb {n.node} ({n.peer})\";",
                f"  local {rc.router} as {rc.asn};", f"  neighbor {n.address} as {n.remote_as};",
                "  passive on;"]
        if n.multihop:
            out += ["  # multi-hop: BIRD resolves the next hop through its IGP table (master), which needs a route",
                    "  # toward the node (from protocol direct, static or kernel)", "  multihop;"]
        elif n.remote_as == rc.asn:
            out.append("  direct;")
        if n.hold_s is not None:
            out += [f"  hold time {n.hold_s};", f"  keepalive time {n.keepalive_s};"]
        if n.connect_s is not None:
            out.append(f"  connect retry time {n.connect_s};")
        if n.password is not None:
            out.append(f"  password \"{n.password}\";")
        if n.bfd is not None:
            b = rc.bfd(n.bfd)
            out += [f"  # BFD profile {b.name}, mirrored (the router receives at the node's transmit rate)",
                    "  bfd {", f"    min rx interval {b.receive_ms} ms;", f"    min tx interval {b.transmit_ms} ms;",
                    f"    multiplier {b.multiplier};", "  };"]
        out += ["  graceful restart on;", f"  {chan} {{", f"    import filter {_bird_name(n.policy)};",
                "    export none;", f"    receive limit {pol.max_prefixes} action restart;"]
        if not n.multihop:
            out.append("    gateway direct;")
        out += ["  };", "}", ""]
    return "\n".join(out).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Cisco NX-OS (not tested on a real system: checked against Cisco's command references)


def _note_unsupported(rc: RouterConfig, c: str, vendor_has_connect: bool) -> list[str]:
    out = []
    if not vendor_has_connect and any(n.connect_s is not None for n in rc.neighbors):
        out.append(f"{c} note: connectTime has no per-neighbor equivalent here; the router never connects anyway")
    return out


def _eq(r: Rule) -> str:
    return "" if r.exact else f" eq {r.length}"


def _nx_ms(ms: int) -> int:
    return max(50, min(ms, 999))  # NX-OS takes 50..999 ms


def render_nxos(rc: RouterConfig) -> str:
    fam = "ip" if rc.family == 4 else "ipv6"
    af = f"{rc.afi} unicast"
    out = _header(rc, "cisco-nxos", "!") + _note_unsupported(rc, "!", False) + ["feature bgp"]
    if rc.bfd_profiles:
        out.append("feature bfd")
    out.append("")
    for p in rc.policies:
        out += _policy_comment(p, "!")
        seq = 5
        for e in p.excludes:
            out.append(f"{fam} prefix-list {p.name} seq {seq} deny {e}")
            seq += 5
        for r in p.rules:
            out.append(f"{fam} prefix-list {p.name} seq {seq} permit {r.network}{_eq(r)}")
            seq += 5
        if p.rules:
            out += [f"route-map {p.name} permit 10", f"  match {fam} address prefix-list {p.name}"]
        out += [f"route-map {p.name} deny 100", ""]
    out += ["route-map streamlb-out deny 10", ""]
    for name, value in rc.communities:
        kind = "large-community-list" if _large(value) else "community-list"
        out.append(f"ip {kind} standard {name} permit {_plain(value)}")
    if rc.communities:
        out.append("")
    single = [rc.bfd(n.bfd) for n in rc.neighbors if n.bfd is not None and not n.multihop]
    if single:
        b = single[0]
        out.append(f"! BFD rates of profile {b.name}, mirrored (the router receives at the node's transmit rate);")
        out.append("! single-hop rates are global or per interface on NX-OS")
        if len({x.name for x in single}) > 1:
            out.append("! note: several single-hop profiles: the first one's rates apply to all")
        out += [f"bfd interval {_nx_ms(b.transmit_ms)} min_rx {_nx_ms(b.receive_ms)} multiplier {b.multiplier}", ""]
    if any(n.bfd is not None and n.remote_as == rc.asn for n in rc.neighbors):
        out += ["! note: single-hop iBGP with BFD on NX-OS needs 'update-source <interface toward the nodes>'", ""]
    out.append(f"router bgp {rc.asn}")
    if rc.router_id:
        out.append(f"  router-id {rc.router_id}")
    if rc.multipath_relax:
        out.append("  bestpath as-path multipath-relax")
    out.append(f"  address-family {af}")
    if rc.has_ebgp:
        out.append(f"    maximum-paths {_multipath(rc, 64)}")
    if rc.has_ibgp:
        out.append(f"    maximum-paths ibgp {_multipath(rc, 64)}")
    for n in rc.neighbors:
        pol = rc.policy(n.policy)
        out += [f"  neighbor {n.address}", f"    remote-as {n.remote_as}",
                f"    description streamlb {n.node} ({n.peer})", "    transport connection-mode passive"]
        if n.multihop:
            out.append("    ebgp-multihop 255")
        if n.hold_s is not None:
            out.append(f"    timers {n.keepalive_s} {n.hold_s}")
        if n.password is not None:
            out.append(f"    password 0 {n.password}")
        if n.bfd is not None and n.multihop:
            b = rc.bfd(n.bfd)
            out += ["    bfd multihop", f"    bfd multihop interval {_nx_ms(b.transmit_ms)} min_rx "
                                       f"{_nx_ms(b.receive_ms)} multiplier {b.multiplier}"]
        elif n.bfd is not None:
            out.append("    bfd")
        out += [f"    address-family {af}", f"      route-map {n.policy} in", "      route-map streamlb-out out",
                f"      maximum-prefix {pol.max_prefixes}"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Arista EOS (not tested on a real system: checked against Arista's EOS user manual)


def render_eos(rc: RouterConfig) -> str:
    fam = "ip" if rc.family == 4 else "ipv6"
    out = _header(rc, "arista-eos", "!") + _note_unsupported(rc, "!", False) + ["!"]
    for p in rc.policies:
        out += _policy_comment(p, "!")
        out.append(f"{fam} prefix-list {p.name}")
        seq = 10
        for e in p.excludes:
            out.append(f"   seq {seq} deny {e}")
            seq += 10
        for r in p.rules:
            out.append(f"   seq {seq} permit {r.network}{_eq(r)}")
            seq += 10
        out.append("!")
        if p.rules:
            out += [f"route-map {p.name} permit 10", f"   match {fam} address prefix-list {p.name}", "!"]
        out += [f"route-map {p.name} deny 100", "!"]
    out += ["route-map streamlb-out deny 10", "!"]
    for name, value in rc.communities:
        kind = "large-community-list" if _large(value) else "community-list"
        out.append(f"ip {kind} {name} permit {_plain(value)}")
    if rc.communities:
        out.append("!")
    mp = _multipath(rc, 128)
    out.append(f"router bgp {rc.asn}")
    if rc.router_id:
        out.append(f"   router-id {rc.router_id}")
    out += ["   no bgp default ipv4-unicast", f"   maximum-paths {mp} ecmp {mp}"]
    if rc.multipath_relax:
        out.append("   bgp bestpath as-path multipath-relax")
    for n in rc.neighbors:
        a = n.address
        pol = rc.policy(n.policy)
        out += [f"   neighbor {a} remote-as {n.remote_as}", f"   neighbor {a} description streamlb {n.node} ({n.peer})",
                f"   neighbor {a} transport connection-mode passive"]
        if n.multihop:
            out.append(f"   neighbor {a} ebgp-multihop 255")
        if n.hold_s is not None:
            out.append(f"   neighbor {a} timers {n.keepalive_s} {n.hold_s}")
        if n.password is not None:
            out.append(f"   neighbor {a} password 0 {n.password}")
        if n.bfd is not None:
            b = rc.bfd(n.bfd)
            out += [f"   ! BFD profile {b.name}, mirrored: on the interface toward the nodes set",
                    f"   ! bfd interval {b.transmit_ms} min-rx {b.receive_ms} multiplier {b.multiplier}",
                    f"   neighbor {a} bfd"]
        out += [f"   neighbor {a} route-map {n.policy} in", f"   neighbor {a} route-map streamlb-out out",
                f"   neighbor {a} maximum-routes {pol.max_prefixes}"]
    out.append("   !")
    out.append(f"   address-family {rc.afi}")
    for n in rc.neighbors:
        out.append(f"      neighbor {n.address} activate")
    out.append("!")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Junos (not tested on a real system: checked against Juniper's configuration statement references)


def render_junos(rc: RouterConfig) -> str:
    inet = "inet" if rc.family == 4 else "inet6"
    out = ["/*"] + [" *" + line[1:] for line in _header(rc, "junos", "#")]
    out += [" *" + line[1:] for line in _note_unsupported(rc, "#", False)] + [" */"]
    out += ["policy-options {"]
    for p in rc.policies:
        out += ["    /*"] + [f"     *{line[1:]}" for line in _policy_comment(p, "#")] + ["     */"]
        out.append(f"    policy-statement {p.name} {{")
        if p.excludes:
            out += ["        term avoid-buggy-ips {", "            from {"]
            out += [f"                route-filter {e} exact;" for e in p.excludes]
            out += ["            }", "            then reject;", "        }"]
        if p.rules:
            out += ["        term pools {", "            from {"]
            for r in p.rules:
                how = "exact" if r.exact else f"prefix-length-range /{r.length}-/{r.length}"
                out.append(f"                route-filter {r.network} {how};")
            out += ["            }", "            then accept;", "        }"]
        out += ["        then reject;", "    }"]
    out += ["    policy-statement streamlb-out {", "        then reject;", "    }",
            "    policy-statement streamlb-ecmp {", "        then {", "            load-balance per-packet;",
            "        }", "    }"]
    for name, value in rc.communities:
        out.append(f"    community {name} members {value};")
    out += ["}", "routing-options {"]
    if rc.router_id:
        out.append(f"    router-id {rc.router_id};")
    out += [f"    autonomous-system {rc.asn};", "    forwarding-table {", "        export streamlb-ecmp;", "    }",
            "}", "protocols {", "    bgp {"]
    groups = [("streamlb-ebgp", "external", [n for n in rc.neighbors if n.remote_as != rc.asn]),
              ("streamlb-ibgp", "internal", [n for n in rc.neighbors if n.remote_as == rc.asn])]
    for gname, gtype, members in groups:
        if not members:
            continue
        out += [f"        group {gname} {{", f"            type {gtype};", f"            local-address {rc.router};",
                "            passive;", "            export streamlb-out;"]
        if gtype == "external" and rc.multipath_relax:
            out += ["            multipath {", "                multiple-as;", "            }"]
        else:
            out.append("            multipath;")
        for n in members:
            pol = rc.policy(n.policy)
            out += [f"            neighbor {n.address} {{", f"                description \"streamlb {n.node} ({n.peer})\";",
                    f"                import {n.policy};"]
            if gtype == "external":
                out.append(f"                peer-as {n.remote_as};")
            if n.multihop:
                out += ["                multihop {", "                    ttl 255;", "                }"]
            if n.hold_s is not None:
                out.append(f"                hold-time {n.hold_s};")
            if n.password is not None:
                out.append(f"                authentication-key \"{n.password}\";")
            if n.bfd is not None:
                b = rc.bfd(n.bfd)
                out += ["                bfd-liveness-detection {",
                        f"                    minimum-receive-interval {b.receive_ms};",
                        "                    transmit-interval {",
                        f"                        minimum-interval {b.transmit_ms};", "                    }",
                        f"                    multiplier {b.multiplier};"]
                if n.multihop:
                    out.append("                    session-mode multihop;")
                out.append("                }")
            out += [f"                family {inet} {{", "                    unicast {",
                    "                        prefix-limit {", f"                            maximum {pol.max_prefixes};",
                    "                            teardown;", "                        }", "                    }",
                    "                }", "            }"]
        out.append("        }")
    out += ["    }", "}"]
    return "\n".join(out) + "\n"


RENDERERS = {
    "frr": render_frr,
    "bird": render_bird,
    "cisco-nxos": render_nxos,
    "arista-eos": render_eos,
    "junos": render_junos,
}
