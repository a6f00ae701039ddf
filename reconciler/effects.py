"""What one node must do, as data: node plans, their diff as ordered effects, and the gratuitous-ARP schedule.

A :class:`NodePlan` is the announcement state one node should be in: the L2 IPs it answers for (with the
interfaces allowed, ``()`` = all) and the BGP prefixes it advertises per peer (with LOCAL_PREF and communities).
:func:`diff` turns two plans into the effects that take a node from the first to the second.

Rules:

* Rule 1: withdrawals come before announcements (BGP withdrawals, then L2 withdrawals, then L2 announcements,
  then BGP advertisements); inside each group, peers by name and addresses numerically (family first).
* Rule 2: ``apply(old, diff(old, new)) == new`` (tested as a law).
* Rule 3: an L2 announcement carries its gratuitous burst schedule (metallb-behaviour.md §5.6): one burst at once,
  then one per 1.1 s tick while within 5 s of the trigger — offsets 0, 1100, 2200, 3300, 4400 ms. A burst per
  interface is ARP request + ARP reply for IPv4, one unsolicited Neighbor Advertisement for IPv6. The speaker
  turns it into timers; the core never reads a clock.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Union

import msgspec

from reconciler import net

GARP_TICK_MS = 1100
GARP_WINDOW_MS = 5000


def garp_offsets_ms(window_ms: int = GARP_WINDOW_MS, tick_ms: int = GARP_TICK_MS) -> tuple[int, ...]:
    """Burst offsets for one trigger: 0, then every tick strictly inside the window."""
    return tuple(range(0, window_ms, tick_ms))


GARP_OFFSETS_MS = garp_offsets_ms()


class GarpSchedule(msgspec.Struct, frozen=True, kw_only=True):
    offsets_ms: tuple[int, ...] = GARP_OFFSETS_MS
    frames: tuple[str, ...]  # per interface and burst: ("arp-request", "arp-reply") or ("ndp-na",)


class _Effect(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Base of effects; ``kind`` names the effect in JSON."""


class BgpWithdraw(_Effect, tag="bgp.withdraw", kw_only=True):
    peer: str
    prefix: str


class L2Withdraw(_Effect, tag="l2.withdraw", kw_only=True):
    ip: str


class L2Announce(_Effect, tag="l2.announce", kw_only=True):
    ip: str
    interfaces: tuple[str, ...]  # () = every usable interface
    garp: GarpSchedule


class BgpAdvertise(_Effect, tag="bgp.advertise", kw_only=True):
    peer: str
    prefix: str
    local_pref: int | None
    communities: tuple[str, ...]


Effect = Union[BgpWithdraw, L2Withdraw, L2Announce, BgpAdvertise]


def ip_key(ip: str) -> tuple[int, int]:
    if "%" in ip:
        a = ipaddress.ip_address(ip)
        return a.version, int(a)
    return net.parse_ip(ip)


def prefix_key(prefix: str) -> tuple[int, int, int]:
    """(version, network, length) of a prefix in canonical form; sorting 100,000 of them is part of a speaker's
    first plan, so the address goes through :func:`reconciler.net.parse_ip` (``ipaddress`` is ~10x slower; it
    still judges anything unusual, with its error)."""
    addr, _, plen = prefix.partition("/")
    if plen.isdigit() and "%" not in addr:
        fam, value = net.parse_ip(addr)
        bits = 32 if fam == 4 else 128
        length = int(plen)
        if length <= bits and value & ((1 << (bits - length)) - 1) == 0:
            return fam, value, length
    n = ipaddress.ip_network(prefix)
    return n.version, int(n.network_address), n.prefixlen


def garp_for(ip: str) -> GarpSchedule:
    frames = ("arp-request", "arp-reply") if ip_key(ip)[0] == 4 else ("ndp-na",)
    return GarpSchedule(frames=frames)


@dataclass(slots=True)
class NodePlan:
    """The announcements one node should make."""

    l2: dict[str, tuple[str, ...]] = field(default_factory=dict)  # ip -> interfaces (() = all)
    bgp: dict[tuple[str, str], tuple[int | None, tuple[str, ...]]] = field(default_factory=dict)
    # (peer, prefix) -> (local_pref or None, communities)

    def to_json(self) -> dict:
        return {
            "l2": {ip: list(self.l2[ip]) for ip in sorted(self.l2, key=ip_key)},
            "bgp": [
                {"peer": peer, "prefix": pfx, "local_pref": self.bgp[(peer, pfx)][0],
                 "communities": list(self.bgp[(peer, pfx)][1])}
                for peer, pfx in sorted(self.bgp, key=lambda k: (k[0], prefix_key(k[1])))
            ],
        }


def diff(old: NodePlan, new: NodePlan, sort_keys: dict[tuple[str, str], tuple] | None = None) -> list[Effect]:
    """Rule 1: the ordered effects taking a node from ``old`` to ``new``. ``sort_keys``: (peer, prefix) -> (peer,
    ``prefix_key(prefix)``) already known to the caller (a speaker's first plan has 100,000 of them)."""
    if sort_keys:
        bgp_key = lambda k: sort_keys.get(k) or (k[0], prefix_key(k[1]))  # noqa: E731
    else:
        bgp_key = lambda k: (k[0], prefix_key(k[1]))  # noqa: E731
    out: list[Effect] = []
    for peer, pfx in sorted((k for k in old.bgp if k not in new.bgp), key=bgp_key):
        out.append(BgpWithdraw(peer=peer, prefix=pfx))
    for ip in sorted((ip for ip in old.l2 if ip not in new.l2), key=ip_key):
        out.append(L2Withdraw(ip=ip))
    for ip in sorted((ip for ip in new.l2 if old.l2.get(ip) != new.l2[ip]), key=ip_key):
        out.append(L2Announce(ip=ip, interfaces=new.l2[ip], garp=garp_for(ip)))
    for peer, pfx in sorted((k for k in new.bgp if old.bgp.get(k) != new.bgp[k]), key=bgp_key):
        lp, cs = new.bgp[(peer, pfx)]
        out.append(BgpAdvertise(peer=peer, prefix=pfx, local_pref=lp, communities=cs))
    return out


def apply(plan: NodePlan, effects: list[Effect]) -> NodePlan:
    """What a node that executed ``effects`` from ``plan`` announces (a new plan; ``plan`` is untouched)."""
    out = NodePlan(l2=dict(plan.l2), bgp=dict(plan.bgp))
    for e in effects:
        match e:
            case BgpWithdraw(peer=peer, prefix=pfx):
                out.bgp.pop((peer, pfx), None)
            case L2Withdraw(ip=ip):
                out.l2.pop(ip, None)
            case L2Announce(ip=ip, interfaces=ifs):
                out.l2[ip] = ifs
            case BgpAdvertise(peer=peer, prefix=pfx, local_pref=lp, communities=cs):
                out.bgp[(peer, pfx)] = (lp, cs)
    return out


def to_json(effects: list[Effect]) -> list[dict]:
    return [msgspec.to_builtins(e) for e in effects]
