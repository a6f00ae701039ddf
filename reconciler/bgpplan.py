"""BGP advertisement planning (MetalLB ``speaker/bgp_controller.go``, metallb-behaviour.md §6.1–§6.4).

For one Service on one node: which prefixes go to which BGPPeer, with which LOCAL_PREF and communities — or the
named reason the node advertises nothing. Pure, from scratch; :mod:`reconciler.planning` calls it per Service and
per node and caches the parts that do not depend on the node.

Rules:

* Rule 1 (who announces, §6.1, checked in MetalLB's order): an advertisement of the IP's pool selects the node
  (else ``notOwner``); one of those matches the Service (else ``noMatchingAdvertisement``); the matching ones pass
  the LOCAL_PREF consistency rule (else ``conflictingAdvertisements``); the node's own problems (speaker down,
  NetworkUnavailable, exclude label); a serving endpoint on this node for ``externalTrafficPolicy: Local`` (else
  ``noLocalEndpoints``), anywhere for ``Cluster`` (else ``noEndpoints``).
  Every node passing them announces — ECMP.
* Rule 2 (what, §6.3): per IP and matching advertisement, the IP masked to ``aggregationLength`` (v4, default 32)
  or ``aggregationLengthV6`` (v6, default 128), with the advertisement's LOCAL_PREF (0 = unset ⇒ ``null``) and
  communities (aliases resolved; standard ``A:B`` sort as the large community ``(A<<16|B, 0, 0)``), to the
  advertisement's ``peers`` (empty = every peer) among the peers whose ``nodeSelectors`` select the node.
* Rule 3 (merging): one entry per (node, peer, prefix); communities are united, the LOCAL_PREF of the first
  advertisement by name is kept.
* Rule 4 (conflicts, §2.3): two matching advertisements with different LOCAL_PREF conflict unless their aggregation
  differs (v4-only pool: v4 length; v6-only: v6 length; dual: both) or both name peers and share none. (Their node
  sets cannot be disjoint: both select this node.)
* Rule 5: an advertisement this module cannot understand (bad community, unknown alias, aggregation out of range)
  is reported by :func:`problems` and never used. The configuration validator may call :func:`problems` to refuse
  the whole configuration, as MetalLB does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from events import schema
from reconciler import config as configmod
from reconciler import elect, net, selectors
from reconciler.reasons import Reason

CommunityKey = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class BgpAd:
    """One BGPAdvertisement, parsed."""

    name: str
    agg4: int
    agg6: int
    local_pref: int  # 0 = not set
    communities: tuple[str, ...]  # canonical text, sorted by community key
    peers: tuple[str, ...]  # () = every peer
    obj: schema.BGPAdvertisement

    def prefix(self, ip: str) -> tuple[int, int, int]:
        """(family, network as int, length) of ``ip`` aggregated by this advertisement."""
        version, value = net.parse_ip(ip)
        length = self.agg4 if version == 4 else self.agg6
        bits = 32 if version == 4 else 128
        return version, value & (((1 << length) - 1) << (bits - length)), length


def parse_community(text: str) -> tuple[CommunityKey, str] | None:
    """``A:B`` or ``large:A:B:C`` -> (sort key, canonical text); None if it is not of those shapes.

    Raises ValueError for those shapes with numbers out of range.
    """
    parts = text.split(":")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        a, b = int(parts[0]), int(parts[1])
        if a > 0xFFFF or b > 0xFFFF:
            raise ValueError(f"invalid community {text!r}: each part must fit 16 bits")
        return ((a << 16) | b, 0, 0), f"{a}:{b}"
    if len(parts) == 4 and parts[0] == "large" and all(p.isdigit() for p in parts[1:]):
        a, b, c = (int(p) for p in parts[1:])
        if max(a, b, c) > 0xFFFFFFFF:
            raise ValueError(f"invalid large community {text!r}: each part must fit 32 bits")
        return (a, b, c), f"large:{a}:{b}:{c}"
    if len(parts) >= 2 and (parts[0] == "large" or all(p.isdigit() for p in parts[:2])):
        raise ValueError(f"invalid community {text!r}")
    return None


def aliases(cfg: configmod.Config) -> tuple[dict[str, str], list[str]]:
    """Community alias name -> value text, and the problems found (duplicates, bad values)."""
    out: dict[str, str] = {}
    errors: list[str] = []
    for obj in cfg.communities:
        for alias in obj.communities:
            if alias.name in out:
                errors.append(f"Community {obj.namespace}/{obj.name}: duplicate definition of community {alias.name!r}")
                continue
            try:
                if parse_community(alias.value) is None:
                    raise ValueError(f"invalid community value {alias.value!r}")
            except ValueError as exc:
                errors.append(f"Community {obj.namespace}/{obj.name}: parsing community {alias.name!r}: {exc}")
                continue
            out[alias.name] = alias.value
    return out, errors


def parse_ad(ad: schema.BGPAdvertisement, alias: Mapping[str, str]) -> tuple[BgpAd | None, list[str]]:
    where = f"BGPAdvertisement {ad.namespace}/{ad.name}"
    errors: list[str] = []
    agg4 = 32 if ad.aggregation_length is None else ad.aggregation_length
    agg6 = 128 if ad.aggregation_length_v6 is None else ad.aggregation_length_v6
    if not 1 <= agg4 <= 32:
        errors.append(f"{where}: spec.aggregationLength: invalid aggregation length {agg4}")
    if not 1 <= agg6 <= 128:
        errors.append(f"{where}: spec.aggregationLengthV6: invalid aggregation length {agg6}")
    if not 0 <= ad.local_pref <= 0xFFFFFFFF:
        errors.append(f"{where}: spec.localPref: {ad.local_pref} out of range")
    if len(set(ad.communities)) != len(ad.communities):
        errors.append(f"{where}: spec.communities: duplicate community")
    if len(set(ad.peers)) != len(ad.peers):
        errors.append(f"{where}: spec.peers: duplicate peer")
    comms: dict[CommunityKey, str] = {}
    for i, text in enumerate(ad.communities):
        try:
            parsed = parse_community(text)
            if parsed is None:
                if text not in alias:
                    errors.append(f"{where}: spec.communities[{i}]: unknown community alias {text!r}")
                    continue
                parsed = parse_community(alias[text])
        except ValueError as exc:
            errors.append(f"{where}: spec.communities[{i}]: {exc}")
            continue
        if parsed is not None:
            comms[parsed[0]] = parsed[1]
    if errors:
        return None, errors
    return (
        BgpAd(
            name=ad.name,
            agg4=agg4,
            agg6=agg6,
            local_pref=ad.local_pref,
            communities=tuple(comms[k] for k in sorted(comms)),
            peers=tuple(sorted(ad.peers)),
            obj=ad,
        ),
        [],
    )


@dataclass(frozen=True, slots=True)
class BgpConfig:
    ads: tuple[BgpAd, ...]  # usable advertisements, name order
    peers: tuple[schema.BGPPeer, ...]  # name order
    errors: tuple[str, ...]


def parse(cfg: configmod.Config) -> BgpConfig:
    alias, errors = aliases(cfg)
    ads = []
    for obj in cfg.bgp_advertisements:
        ad, errs = parse_ad(obj, alias)
        if ad is not None:
            errs = _aggregation_problems(cfg, ad)
        errors.extend(errs)
        if ad is not None and not errs:
            ads.append(ad)
    return BgpConfig(ads=tuple(ads), peers=cfg.peers, errors=tuple(sorted(errors)))


def _aggregation_problems(cfg: configmod.Config, ad: BgpAd) -> list[str]:
    """An aggregation length may not be longer-reaching than an address entry's widest block (§2.3)."""
    out = []
    for pool in cfg.pools:
        if not elect.pool_matches(pool, ad.obj.ip_address_pools, ad.obj.ip_address_pool_selectors):
            continue
        for i, entry in enumerate(pool.entries):
            if not entry:
                continue
            widest = min(b.prefixlen for b in entry)
            length = ad.agg4 if entry[0].family == 4 else ad.agg6
            if length < widest:
                out.append(
                    f"BGPAdvertisement {ad.obj.namespace}/{ad.name}: prefix {widest} in this pool is more specific "
                    f"than the aggregation length for addresses {str(entry[0])} (pool {pool.name!r}, entry {i})"
                )
    return out


def problems(cfg: configmod.Config) -> list[str]:
    """Configuration errors of the BGP part (for the whole-configuration validator)."""
    return list(parse(cfg).errors)


def pool_ads(bcfg: BgpConfig, pool: configmod.Pool) -> tuple[BgpAd, ...]:
    """The advertisements that apply to ``pool`` (name order)."""
    return tuple(
        ad for ad in bcfg.ads if elect.pool_matches(pool, ad.obj.ip_address_pools, ad.obj.ip_address_pool_selectors)
    )


def matches_service(ad: BgpAd, svc: schema.Service) -> bool:
    return selectors.any_matches(ad.obj.service_selectors, dict(svc.labels))


def conflict(ads: list[BgpAd], families: frozenset[int]) -> tuple[str, str] | None:
    """Rule 4: the first pair (by name) of conflicting advertisements, or None."""
    for i, a in enumerate(ads):
        for b in ads[i + 1 :]:
            if a.local_pref == b.local_pref:
                continue
            v4_differs = a.agg4 != b.agg4
            v6_differs = a.agg6 != b.agg6
            if families == frozenset({4}) and v4_differs:
                continue
            if families == frozenset({6}) and v6_differs:
                continue
            if families == frozenset({4, 6}) and v4_differs and v6_differs:
                continue
            if a.peers and b.peers and not set(a.peers) & set(b.peers):
                continue
            return a.name, b.name
    return None


def node_peers(bcfg: BgpConfig, labels: Mapping[str, str]) -> tuple[str, ...]:
    """BGPPeers that open a session from a node with ``labels`` (§6.2), name order."""
    return tuple(p.name for p in bcfg.peers if selectors.any_matches(p.node_selectors, labels))


Entry = tuple[str, tuple[int, int, int], str, int, tuple[str, ...]]  # (peer, prefix, ad name, local_pref, comms)


def service_on_node(
    local_only: bool,
    ips: tuple[str, ...],
    families: frozenset[int],
    ads_of_pool: tuple[BgpAd, ...],
    matches: tuple[bool, ...],
    selects_node: Callable[[BgpAd], bool],
    peers_on_node: tuple[str, ...],
    node_problem: str | None,
    anywhere: bool,
    on_node_endpoint: bool,
) -> tuple[str | None, list[Entry]]:
    """Rule 1 and 2 for one Service on one node: (reason or None, entries before merging).

    ``matches[i]`` says whether ``ads_of_pool[i]`` matches the Service (its serviceSelectors).
    """
    selecting = [i for i, ad in enumerate(ads_of_pool) if selects_node(ad)]
    if not selecting:
        return Reason.NOT_OWNER.value, []
    matching = [ads_of_pool[i] for i in selecting if matches[i]]
    if not matching:
        return Reason.NO_MATCHING_ADVERTISEMENT.value, []
    if conflict(matching, families) is not None:
        return Reason.CONFLICTING_ADVERTISEMENTS.value, []
    if node_problem is not None:
        return node_problem, []
    if local_only:
        if not on_node_endpoint:
            return Reason.NO_LOCAL_ENDPOINTS.value, []
    elif not anywhere:
        return Reason.NO_ENDPOINTS.value, []
    out: list[Entry] = []
    for ad in matching:
        targets = [p for p in peers_on_node if p in ad.peers] if ad.peers else list(peers_on_node)
        for ip in ips:
            pfx = ad.prefix(ip)
            for peer in targets:
                out.append((peer, pfx, ad.name, ad.local_pref, ad.communities))
    return None, out


def community_key(text: str) -> CommunityKey:
    parsed = parse_community(text)
    assert parsed is not None
    return parsed[0]


Raw = dict[tuple[str, tuple[int, int, int]], tuple[str, int, frozenset[str]]]


def merge_raw(entries: list[Entry], into: Raw | None = None) -> Raw:
    """Rule 3, before sorting: (peer, prefix) -> (first ad name, its local_pref, united communities).

    With ``into``, the entries are merged into a copy of an earlier result (merging is associative).
    """
    out: Raw = dict(into) if into is not None else {}
    for peer, pfx, ad_name, lp, cs in entries:
        k = (peer, pfx)
        got = out.get(k)
        if got is None:
            out[k] = (ad_name, lp, frozenset(cs))
        else:
            name, keep_lp = (ad_name, lp) if ad_name < got[0] else (got[0], got[1])
            out[k] = (name, keep_lp, got[2] | frozenset(cs))
    return out


def finish(raw: Raw) -> dict[tuple[str, tuple[int, int, int]], tuple[int, tuple[str, ...]]]:
    return {k: (lp, tuple(sorted(cs, key=community_key))) for k, (_, lp, cs) in raw.items()}


def merge(entries: list[Entry]) -> dict[tuple[str, tuple[int, int, int]], tuple[int, tuple[str, ...]]]:
    """Rule 3: (peer, prefix) -> (local_pref of the first ad by name, united communities sorted)."""
    return finish(merge_raw(entries))


def prefix_text(pfx: tuple[int, int, int]) -> str:
    fam, value, length = pfx
    if fam == 4:  # the dotted quad directly (a speaker's first plan formats 100,000 of them)
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}/{length}"
    return f"{ipaddress.IPv6Address(value)}/{length}"


def to_json(merged: Mapping[tuple[str, tuple[int, int, int]], tuple[int, tuple[str, ...]]]) -> dict:
    """peer -> [{"prefix", "local_pref", "communities"}] sorted by (family, address, length) (design.md §5)."""
    out: dict[str, list] = {}
    for peer, pfx in sorted(merged, key=lambda k: (k[0], k[1])):
        lp, cs = merged[(peer, pfx)]
        out.setdefault(peer, []).append(
            {"prefix": prefix_text(pfx), "local_pref": lp or None, "communities": list(cs)}
        )
    return out
