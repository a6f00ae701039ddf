"""Deterministic IP assignment: MetalLB's controller semantics (metallb-behaviour.md §3–§4), made deterministic.

Theory of operation
-------------------
:func:`on_service`, :func:`on_service_deleted` and :func:`on_config` are the fold's hooks. Each one re-decides only
what its event can affect, with indexes kept beside the decisions (:class:`Index`), so one event costs O(log n)
in the number of Services and addresses (design.md §1):

* every pool has, per family, a :class:`FamilySpace`: addresses numbered in MetalLB's walk order (CIDRs in spec
  order, ranges expanded ascending, each from its lowest address up), a high-water mark below which every free
  address sits in a heap, so "lowest free address" is amortised O(log n) — also for a /64 of IPv6, which is never
  expanded;
* the fallback pools (``autoAssign`` without ``serviceAllocation``) keep, per family, a heap of the pool names
  that may still have a free address, so the first non-exhausted pool is found without walking 200 full ones;
* a Service that fails for lack of addresses waits on the (pool, family) pairs it could use, a Service whose
  requested IP is taken waits on that address; a freed address wakes only those waiters.

Where MetalLB is random or order-dependent, streamlb fixes a rule:

* Rule 1 (pool order): pinned pools (``serviceAllocation`` matching the Service) by priority ascending with 0
  last, ties by pool name; then the fallback group (``autoAssign`` pools without ``serviceAllocation``) by pool
  name. Within a group a dual-stack Service takes the first pool with both families free.
* Rule 2 (address order): CIDRs in spec order, each from its lowest address upward; ``avoidBuggyIPs`` skips every
  IPv4 address ending in .0 or .255. A Service with a sharing key takes the lowest address that is free *or*
  shareable (same key, same backends, no port overlap), as MetalLB does.
* Rule 3 (stickiness): an assignment stays as long as the configuration, the Service's own fields and the sharing
  rules allow it; nothing another Service does moves it, except Rule 4's unconfirmed case.
* Rule 4 (status first): a Service's ``status.loadBalancer.ingress`` is re-claimed before anything new is
  allocated for it; when a configuration is first loaded (or pools change), Services holding addresses converge
  before pending ones (ingress count descending, then key). A claim read from a Service's own status beats an
  assignment streamlb made for another Service that the other Service's status does not show yet (the
  "unconfirmed" holder is moved): this is what a controller restart or a watch re-list looks like, and it is
  where MetalLB lost or stole IPs (issues #1774, #2443, #2479).
* Rule 5 (freeing): when addresses are freed, the Services waiting for them are retried in service-key order
  (``namespace/name`` ascending) until the freed addresses are taken again or no waiter is left; a Service that
  waits for reasons no freed address can cure (no matching pool, unknown pool, bad request) is retried only
  when the configuration or the Service itself changes.
* Rule 6: a PreferDualStack Service with a single cluster IP gets a single IP (MetalLB's add-then-drop
  oscillation, behaviour §9.9, is not copied); with dual cluster IPs and one IP held, the other family is added
  from the same pool when possible.

Nothing here reads a clock, randomness, the environment or a set's iteration order.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field

from sortedcontainers import SortedSet

from events import schema
from reconciler import config as configmod
from reconciler import net, selectors
from reconciler.reasons import Reason
from reconciler.state import ServiceDecision, ServiceKey, State, service_key

Addr = tuple[int, int]  # (family, integer value)

ANNOTATION_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
LEGACY_PREFIX = "metallb.universe.tf/"
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
FAMILY_NAME = {net.V4: "IPv4", net.V6: "IPv6"}
GO_FAMILY = {net.V4: "ipv4", net.V6: "ipv6"}  # MetalLB's ipfamily.Family strings, as its messages print them
MAX_INT64 = 2**63 - 1


# ----------------------------------------------------------------------------------------------------------------
# Reading a Service


def annotation(svc: schema.Service, name: str) -> str | None:
    """The value of ``metallb.io/<name>``, or of the legacy ``metallb.universe.tf/<name>`` (the new one wins)."""
    ann = svc.annotations
    if not ann:
        return None
    full = _FULL_NAMES.get(name)
    if full is None:
        full = _FULL_NAMES[name] = tuple(prefix + name for prefix in ANNOTATION_PREFIXES)
    new, legacy = full
    found = None
    for k, v in ann:
        if k == new:
            return v
        if k == legacy and found is None:
            found = v
    return found


_FULL_NAMES: dict[str, tuple[str, str]] = {}  # annotation name -> (new, legacy) full keys; a cache of constants


def handled(state: State, svc: schema.Service) -> bool:
    """Is this a Service streamlb allocates for (type LoadBalancer and the load-balancer class rule, §3.1)?"""
    return svc.type == "LoadBalancer" and svc.load_balancer_class == state.lb_class


def sharing_key(svc: schema.Service) -> str:
    return annotation(svc, "allow-shared-ip") or ""


def backend_key(svc: schema.Service) -> str:
    """Local policy: the pod selector as sorted ``k=v,...``; Cluster: empty (§3.5)."""
    if svc.external_traffic_policy != "Local":
        return ""
    return ",".join(f"{k}={v}" for k, v in svc.selector)


def service_ports(svc: schema.Service) -> tuple[tuple[str, int], ...]:
    return tuple((p.protocol, p.port) for p in svc.ports)


class RequestError(ValueError):
    """A Service asks for something invalid; carries the reason code."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def go_quote(text: str) -> str:
    """Go's ``%q`` of a string (``strconv.Quote``): double quotes, backslash escapes for the unprintable."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # nothing to escape: the common case (names, addresses)
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_strings(values) -> str:
    """Go's ``%q`` of a string slice: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_plain(values) -> str:
    """Go's ``%v`` of a string slice: ``[a b]``."""
    return "[" + " ".join(values) + "]"


def family_error(ips) -> str | None:
    """The error MetalLB's ``ipfamily.ForAddresses`` gives for a list of address strings, or None (1 address, or
    2 of different families)."""
    texts = list(ips)
    fams = []
    for t in texts:
        try:
            fams.append(net.parse_ip(t)[0])
        except ValueError:
            fams.append(None)
    if len(texts) not in (1, 2):
        return f"IPFamilyForAddresses: invalid ips length {len(texts)} {go_strings(texts)}"
    if None in fams:
        return f"IPFamilyForAddresses: Invalid address {go_strings(texts)}"
    if len(texts) == 2 and fams[0] == fams[1]:
        return f"IPFamilyForAddresses: same address family {go_strings(texts)}"
    return None


def cluster_families(svc: schema.Service) -> tuple[int, ...]:
    """The Service's families from its cluster IPs, v4 first (§3.4). () when it has none yet.

    Raises RequestError with MetalLB's ``ipfamily.ForService`` text when they cannot be determined (headless, two
    of one family, more than two).
    """
    ips = svc.cluster_ips
    if not ips:
        return ()
    if len(ips) == 1:  # the common cases, read without building the error inputs
        fam = net.family_of(ips[0])
        if fam is not None:
            return (fam,)
    elif len(ips) == 2:
        a, b = net.family_of(ips[0]), net.family_of(ips[1])
        if a is not None and b is not None and a != b:
            return (a, b) if a < b else (b, a)
    err = family_error(ips)
    assert err is not None
    raise RequestError(Reason.NO_CLUSTER_IP, err)


def primary_family(svc: schema.Service, fams: tuple[int, ...]) -> int:
    if len(fams) == 1:
        return fams[0]
    return net.V6 if svc.ip_families[:1] == ("IPv6",) else net.V4


def wanted(svc: schema.Service, fams: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """(families to allocate, whether a single family is acceptable instead)."""
    if len(fams) == 2:
        if svc.ip_family_policy == "RequireDualStack":
            return fams, False
        if svc.ip_family_policy == "PreferDualStack":
            return fams, True
        return (primary_family(svc, fams),), False
    return fams, False


def requested_ips(svc: schema.Service) -> tuple[Addr, ...]:
    """The IPs the Service asks for, in the user's order; () when none. Raises RequestError with the text of
    MetalLB's ``getDesiredLbIPs`` (§3.2)."""
    ann = annotation(svc, "loadBalancerIPs")
    if ann is not None and ann != "" and svc.load_balancer_ip:
        raise RequestError(
            Reason.INVALID_REQUESTED_IP,
            "service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP",
        )
    if ann:
        out = []
        for part in ann.split(","):
            try:
                out.append(net.parse_ip(part.strip()))
            except ValueError:
                raise RequestError(
                    Reason.INVALID_REQUESTED_IP, f"invalid metallb.io/loadBalancerIPs: {go_quote(ann)}"
                ) from None
        err = family_error([_text(a) for a in out])
        if err is not None:
            raise RequestError(Reason.INVALID_REQUESTED_IP, err)
        return tuple(out)
    if svc.load_balancer_ip:
        try:
            return (net.parse_ip(svc.load_balancer_ip),)
        except ValueError:
            raise RequestError(
                Reason.INVALID_REQUESTED_IP, f"invalid spec.loadBalancerIP {go_quote(svc.load_balancer_ip)}"
            ) from None
    return ()


def _text(a: Addr) -> str:
    f, v = a
    if f == net.V4:
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    return net.to_text(f, v)


def _q(a: Addr) -> str:
    return f'"{_text(a)}"'  # go_quote of an address text: digits, hex, dots and colons never need escaping


def go_list(addrs) -> str:
    """Go's ``%q`` of an IP list: ``["1.2.3.4" "1000::"]``."""
    return "[" + " ".join(_q(a) for a in addrs) + "]"


# ----------------------------------------------------------------------------------------------------------------
# Free-address index


class FamilySpace:
    """One pool's addresses of one family, numbered in walk order (ordinal 0 = first address MetalLB tries).

    Invariant: every free ordinal below ``hw`` is in ``heap`` (the heap may also hold used or duplicate entries,
    dropped lazily). Ordinals at or above ``hw`` were never handed out by this space's walk.
    """

    __slots__ = ("family", "starts", "firsts", "by_value", "size", "hw", "heap", "avoid", "capacity", "in_use", "base")

    def __init__(self, family: int, blocks: list[net.Block], avoid: bool) -> None:
        self.family = family
        self.avoid = avoid and family == net.V4
        self.starts: list[int] = []  # ordinal of each block's first address, walk order
        self.firsts: list[int] = []
        total = 0
        for b in blocks:
            self.starts.append(total)
            self.firsts.append(b.first)
            total += b.last - b.first + 1
        self.size = total
        # value lookup: blocks sorted by first address -> (first, last, start ordinal)
        self.by_value = sorted((b.first, b.last, s) for b, s in zip(blocks, self.starts))
        self.hw = 0
        self.heap: list[tuple[int, int]] = []  # (ordinal, value)
        self.capacity = sum(net.block_capacity(b, avoid) for b in blocks)
        self.in_use = 0
        self.base = blocks[0].first if len(blocks) == 1 else None  # one block: value = base + ordinal

    def value_of(self, ordinal: int) -> int:
        if self.base is not None:
            return self.base + ordinal
        i = bisect_right(self.starts, ordinal) - 1
        return self.firsts[i] + (ordinal - self.starts[i])

    def ordinal_of(self, value: int) -> int:
        if self.base is not None:
            return value - self.base
        i = bisect_right(self.by_value, (value, 1 << 200, 0)) - 1
        first, _last, start = self.by_value[i]
        return start + (value - first)

    def lowest_free(self, used: dict) -> int | None:
        """The lowest free ordinal, or None when the space is exhausted. Amortised O(log n)."""
        heap = self.heap
        fam = self.family
        while heap:
            o, v = heap[0]
            if (fam, v) not in used:
                return o
            heapq.heappop(heap)
        while self.hw < self.size:
            o = self.hw
            v = self.value_of(o)
            if (self.avoid and (v & 0xFF) in (0, 255)) or (fam, v) in used:
                self.hw = o + 1
                continue
            return o
        return None

    def taken(self, value: int) -> None:
        """An address of this space became used (called after it is recorded as used)."""
        self.in_use += 1
        if self.hw < self.size and self.value_of(self.hw) == value:
            self.hw += 1

    def freed(self, value: int) -> None:
        self.in_use -= 1
        o = self.ordinal_of(value)
        if o < self.hw:
            heapq.heappush(self.heap, (o, value))


@dataclass(slots=True)
class Index:
    """Allocation indexes derived from the configuration and ``State.assigned`` (rebuildable, never hashed)."""

    cfg: configmod.Config
    spaces: dict[str, dict[int, FamilySpace]] = field(default_factory=dict)
    # per family: sorted [(first, last, pool name)] of every block, for "which pool owns this address"
    owners: dict[int, list[tuple[int, int, str]]] = field(default_factory=dict)
    fallback: list[configmod.Pool] = field(default_factory=list)  # autoAssign pools without serviceAllocation
    fallback_rank: dict[str, int] = field(default_factory=dict)
    avail: dict[int, list[int]] = field(default_factory=dict)  # family -> heap of fallback ranks maybe non-full
    avail_set: dict[int, set[int]] = field(default_factory=dict)
    pinned_by_ns: dict[str, list[configmod.Pool]] = field(default_factory=dict)
    pinned_selecting: list[configmod.Pool] = field(default_factory=list)  # pools with serviceSelectors / match-all
    members: dict[str, set[ServiceKey]] = field(default_factory=dict)  # pool -> Services assigned from it
    shared: dict[tuple[str, int, str, str], set[Addr]] = field(default_factory=dict)  # addresses by sharing key
    share_of: dict[ServiceKey, tuple[str, str]] = field(default_factory=dict)  # (sharing, backend) when sharing
    # (pool, family) -> pending Services, kept sorted so waking walks them in key order from any point
    waiters: dict[tuple[str, int], SortedSet] = field(default_factory=dict)
    ip_waiters: dict[Addr, SortedSet] = field(default_factory=dict)
    waiting_on: dict[ServiceKey, tuple] = field(default_factory=dict)  # key -> registrations (for removal)


def _pool_order(p: configmod.Pool) -> tuple:
    return (p.priority == 0, p.priority, p.name)


def _build_index(state: State, cfg: configmod.Config, old: Index | None = None, keep: frozenset = frozenset()) -> Index:
    """Build the index for ``cfg``; spaces of pools in ``keep`` (unchanged) are taken over from ``old``."""
    idx = Index(cfg=cfg)
    used = state.ip_users
    rebuilt: list[str] = []
    for p in cfg.pools:
        if old is not None and p.name in keep and p.name in old.spaces:
            idx.spaces[p.name] = old.spaces[p.name]
        else:
            fams: dict[int, list[net.Block]] = {}
            for b in p.blocks:
                fams.setdefault(b.family, []).append(b)
            idx.spaces[p.name] = {f: FamilySpace(f, bl, p.avoid_buggy_ips) for f, bl in sorted(fams.items())}
            rebuilt.append(p.name)
        for b in p.blocks:
            idx.owners.setdefault(b.family, []).append((b.first, b.last, p.name))
        if p.allocation is None:
            if p.auto_assign:
                idx.fallback_rank[p.name] = len(idx.fallback)
                idx.fallback.append(p)
        else:
            if p.service_selectors or p.match_all_services:
                idx.pinned_selecting.append(p)
            for ns in sorted(p.namespaces):
                idx.pinned_by_ns.setdefault(ns, []).append(p)
    for lst in idx.owners.values():
        lst.sort()
    # members, sharing keys, and in-use counts of the rebuilt spaces (addresses are counted where they lie now)
    recount = set(rebuilt)
    for key in sorted(state.assigned):
        pool, addrs = state.assigned[key]
        idx.members.setdefault(pool, set()).add(key)
        svc = state.service(key)
        sk = sharing_key(svc) if svc is not None else ""
        if sk:
            share = (sk, backend_key(svc))  # type: ignore[arg-type]
            idx.share_of[key] = share
            for a in addrs:
                idx.shared.setdefault((pool, a[0]) + share, set()).add(a)
    if recount:
        for a in sorted(used):
            owner = owning_pool(idx, a)
            if owner is not None and owner.name in recount:
                sp = idx.spaces[owner.name].get(a[0])
                if sp is not None:
                    sp.in_use += 1
    for fam in (net.V4, net.V6):
        idx.avail[fam] = [r for r, p in enumerate(idx.fallback) if fam in idx.spaces[p.name]]
        idx.avail_set[fam] = set(idx.avail[fam])
    return idx


def index(state: State) -> Index | None:
    """The allocation index for the configuration in force (built on first use, e.g. after a snapshot load)."""
    cfg = state.config
    if cfg is None:
        return None
    idx = state.alloc
    if idx is None or idx.cfg is not cfg:
        idx = state.alloc = _fresh_index(state, cfg)
    return idx


def _fresh_index(state: State, cfg: configmod.Config) -> Index:
    """An index built from scratch, with the pending Services registered as waiters (a pure function of state)."""
    idx = _build_index(state, cfg)
    for key in sorted(state.pending):
        svc = state.service(key)
        if svc is not None:
            _register_wait(state, idx, key, svc)
    return idx


def owning_pool(idx: Index, a: Addr) -> configmod.Pool | None:
    """The pool that contains ``a`` (with avoidBuggyIPs honoured), or None."""
    lst = idx.owners.get(a[0])
    if not lst:
        return None
    i = bisect_right(lst, (a[1], 1 << 200, "")) - 1
    if i < 0:
        return None
    first, last, name = lst[i]
    if not first <= a[1] <= last:
        return None
    pool = idx.cfg.pool_by_name[name]
    if pool.avoid_buggy_ips and net.is_buggy(a[0], a[1]):
        return None
    return pool


def compatible(pool: configmod.Pool, svc: schema.Service) -> bool:
    """serviceAllocation compatibility (§2.1): namespace set and service selectors."""
    if pool.allocation is None:
        return True
    if pool.namespaces and svc.namespace not in pool.namespaces:
        return False
    if pool.service_selectors and not any(selectors.matches(s, dict(svc.labels)) for s in pool.service_selectors):
        return False
    return True


def candidate_groups(idx: Index, svc: schema.Service) -> tuple[list[configmod.Pool], list[configmod.Pool]]:
    """(pinned pools in Rule 1 order, fallback pools in name order) for automatic allocation (§4.5)."""
    seen: dict[str, configmod.Pool] = {}
    for p in idx.pinned_by_ns.get(svc.namespace, ()):
        seen[p.name] = p
    for p in idx.pinned_selecting:
        seen[p.name] = p
    pinned = sorted(
        (p for p in seen.values() if p.auto_assign and compatible(p, svc)), key=_pool_order
    )
    return pinned, idx.fallback


# ----------------------------------------------------------------------------------------------------------------
# Sharing (§4.3)


def sharing_problem(state: State, key: ServiceKey, svc: schema.Service, a: Addr) -> str | None:
    """Why ``svc`` may not use address ``a`` now, or None."""
    users = state.ip_users.get(a)
    if not users:
        return None
    others = [u for u in users if u != key]
    if not others:
        return None
    sk, bk = sharing_key(svc), backend_key(svc)
    mismatch = not sk
    other_svcs = []
    for u in others:
        o = state.service(u)
        other_svcs.append(o)
        if o is None or sharing_key(o) != sk or backend_key(o) != bk or not sharing_key(o):
            mismatch = True
    if mismatch:
        return f"can't change sharing key for {go_quote(key)}, address also in use by {','.join(others)}"
    mine = service_ports(svc)
    for o in other_svcs:
        assert o is not None
        theirs = set(service_ports(o))
        for proto, port in mine:
            if (proto, port) in theirs:
                return f'port {proto}/{port} is already in use on "{_text(a)}"'
    return None


def _lowest_shareable(state: State, idx: Index, pool: str, fam: int, key: ServiceKey, svc: schema.Service):
    sk = sharing_key(svc)
    if not sk:
        return None
    cands = idx.shared.get((pool, fam, sk, backend_key(svc)))
    if not cands:
        return None
    space = idx.spaces[pool][fam]
    for o, a in sorted((space.ordinal_of(a[1]), a) for a in cands):
        if sharing_problem(state, key, svc, a) is None:
            return o
    return None


def pick(state: State, idx: Index, pool: str, fam: int, key: ServiceKey, svc: schema.Service) -> Addr | None:
    """Rule 2: the lowest free-or-shareable address of ``fam`` in ``pool`` for ``svc``."""
    space = idx.spaces[pool].get(fam)
    if space is None:
        return None
    o = space.lowest_free(state.ip_users)
    s = _lowest_shareable(state, idx, pool, fam, key, svc) if idx.shared else None  # nothing shared: nothing to find
    if s is not None and (o is None or s < o):
        o = s
    if o is None:
        return None
    return (fam, space.value_of(o))


# ----------------------------------------------------------------------------------------------------------------
# Taking and releasing


def _drop_shared(state: State, idx: Index, pool: str, a: Addr, share: tuple[str, str], key: ServiceKey) -> None:
    """Un-index ``a`` under ``share`` unless another user of ``a`` still carries that sharing key."""
    for u in state.ip_users.get(a, ()):
        if u != key and idx.share_of.get(u) == share:
            return
    k = (pool, a[0]) + share
    s = idx.shared.get(k)
    if s is not None:
        s.discard(a)
        if not s:
            del idx.shared[k]


def _take(state: State, idx: Index, key: ServiceKey, svc: schema.Service, pool: str, addrs: tuple[Addr, ...]) -> None:
    """Record ``addrs`` (all owned by ``pool``) as ``key``'s assignment; a superset of what it held, or new."""
    prev = state.assigned.get(key)
    if prev is not None and prev[0] != pool:
        m = idx.members.get(prev[0])
        if m is not None:
            m.discard(key)
            if not m:
                del idx.members[prev[0]]
    sk = sharing_key(svc)
    share = (sk, backend_key(svc)) if sk else None
    old_share = idx.share_of.get(key)
    if prev is not None and old_share is not None and (old_share != share or prev[0] != pool):
        for a in prev[1]:
            _drop_shared(state, idx, prev[0], a, old_share, key)
    if share is not None:
        idx.share_of[key] = share
    elif old_share is not None:
        del idx.share_of[key]
    state.assigned[key] = (pool, addrs)
    m = idx.members.get(pool)
    if m is None:
        idx.members[pool] = {key}
    else:
        m.add(key)
    for a in addrs:
        users = state.ip_users.get(a)
        if users is None:
            state.ip_users[a] = [key]
            sp = idx.spaces[pool].get(a[0])
            if sp is not None:
                sp.taken(a[1])
        elif key not in users:
            users.append(key)
            users.sort()
        if share is not None:
            idx.shared.setdefault((pool, a[0]) + share, set()).add(a)


def release(state: State, key: ServiceKey) -> list[tuple[str, Addr]]:
    """Drop ``key``'s assignment. Returns the (owning pool, address) pairs that became free."""
    old = state.assigned.pop(key, None)
    if old is None:
        return []
    pool, addrs = old
    idx = state.alloc
    share = None
    if idx is not None:
        share = idx.share_of.pop(key, None)
        m = idx.members.get(pool)
        if m is not None:
            m.discard(key)
            if not m:
                del idx.members[pool]
    freed = []
    for a in addrs:
        users = state.ip_users.get(a)
        if not users or key not in users:
            continue
        users.remove(key)
        if idx is None:
            if not users:
                del state.ip_users[a]
            continue
        if share is not None:
            _drop_shared(state, idx, pool, a, share, key)
        if users:
            continue
        del state.ip_users[a]
        owner = owning_pool(idx, a)
        if owner is None:
            continue
        freed.append((owner.name, a))
        sp = idx.spaces[owner.name].get(a[0])
        if sp is not None:
            sp.freed(a[1])
        r = idx.fallback_rank.get(owner.name)
        if r is not None and r not in idx.avail_set[a[0]]:
            idx.avail_set[a[0]].add(r)
            heapq.heappush(idx.avail[a[0]], r)
    return freed


# ----------------------------------------------------------------------------------------------------------------
# Waiting (Rule 5)


def _unregister_wait(idx: Index, key: ServiceKey) -> None:
    regs = idx.waiting_on.pop(key, None)
    if not regs:
        return
    for r in regs:
        table = idx.ip_waiters if isinstance(r[0], int) else idx.waiters
        s = table.get(r)
        if s is not None:
            s.discard(key)
            if not s:
                del table[r]


def _register_wait(state: State, idx: Index, key: ServiceKey, svc: schema.Service) -> None:
    """Record what a pending Service waits for; a pure function of the Service and the configuration."""
    _unregister_wait(idx, key)
    dec = state.services.get(key)
    if dec is None:
        return
    regs: list = []
    if dec.reason == Reason.PARTIAL_DUAL_STACK.value:
        held = state.assigned.get(key)
        if held is not None and len(held[1]) == 1:
            reg = (held[0], net.V6 if held[1][0][0] == net.V4 else net.V4)
            if held[0] in idx.spaces and reg[1] in idx.spaces[held[0]]:
                idx.waiters.setdefault(reg, SortedSet()).add(key)
                idx.waiting_on[key] = (reg,)
        return
    if dec.reason not in (Reason.NO_AVAILABLE_IPS.value, Reason.SHARING_CONFLICT.value):
        return
    try:
        fams = cluster_families(svc)
        req = requested_ips(svc)
    except (RequestError, ValueError):
        return
    if req:
        regs.extend(req)
        for a in req:
            idx.ip_waiters.setdefault(a, SortedSet()).add(key)
    else:
        want, _ = wanted(svc, fams)
        pool_name = annotation(svc, "address-pool")
        if pool_name:
            pools = [idx.cfg.pool_by_name[pool_name]] if pool_name in idx.cfg.pool_by_name else []
        else:
            pinned, fallback = candidate_groups(idx, svc)
            pools = pinned + fallback
        for p in pools:
            for f in want:
                if f in idx.spaces[p.name]:
                    # the fallback group waits as one: any fallback pool freeing an address of f concerns it
                    reg = ("", f) if (not pool_name and p.name in idx.fallback_rank) else (p.name, f)
                    if reg not in regs:
                        regs.append(reg)
                        idx.waiters.setdefault(reg, SortedSet()).add(key)
    if regs:
        idx.waiting_on[key] = tuple(regs)


def _wake(state: State, freed: list[tuple[str, Addr]]) -> None:
    """Rule 5: retry the Services waiting for what was freed, in key order, until it is taken again.

    The waiter sets are sorted: each step takes the smallest key above the last one tried across the relevant
    sets (O(log n) per step), so a freed address costs O(log n) however many Services wait.
    """
    idx = state.alloc
    if idx is None or (not idx.waiters and not idx.ip_waiters):
        return  # nobody waits for any address (the common case)
    rounds = 0
    while freed and rounds < 1000:
        rounds += 1
        idx = state.alloc
        if idx is None:
            return
        regs: list = []
        for pool, a in freed:
            for table, reg in ((idx.waiters, (pool, a[0])), (idx.waiters, ("", a[0])), (idx.ip_waiters, a)):
                if reg[0] == "" and pool not in idx.fallback_rank:
                    continue
                if (entry := (table is idx.ip_waiters, reg)) not in regs:
                    regs.append(entry)
        if not any((idx.ip_waiters if is_ip else idx.waiters).get(reg) for is_ip, reg in regs):
            break  # nobody waits for what was freed (the common case)
        more: list[tuple[str, Addr]] = []
        last: ServiceKey | None = None
        while not all(a in state.ip_users for _, a in freed):
            key = None
            for is_ip, reg in regs:
                s = (idx.ip_waiters if is_ip else idx.waiters).get(reg)
                if not s:
                    continue
                it = s.irange(minimum=last, inclusive=(False, True)) if last is not None else iter(s)
                k = next(it, None)
                if k is not None and (key is None or k < key):
                    key = k
            if key is None:
                break
            last = key
            if key not in state.pending:
                continue
            svc = state.service(key)
            if svc is None:
                continue
            more.extend(converge(state, svc))
        freed = more


# ----------------------------------------------------------------------------------------------------------------
# Converging one Service (§3.3)


def _set_assigned(state: State, dec: ServiceDecision, svc: schema.Service, pool: str, addrs) -> None:
    ingress = [_text(a) for a in addrs]
    changed = dec.ingress != ingress or dec.pool != pool
    dec.ingress = ingress
    dec.pool = pool
    dec.reason = None
    dec.message = ""
    if changed:
        _deprecation_warnings(dec, svc)


def _deprecation_warnings(dec: ServiceDecision, svc: schema.Service) -> None:
    for k, _ in svc.annotations:
        if k.startswith(LEGACY_PREFIX):
            dec.emit("Warning", "deprecatedAnnotation", f"Service uses deprecated annotation {k}")


def _clear(dec: ServiceDecision, reason: Reason, message: str = "") -> None:
    dec.ingress = []
    dec.pool = None
    dec.reason = reason.value
    dec.message = message


def _check_assign(
    state: State, idx: Index, key: ServiceKey, svc: schema.Service, addrs: tuple[Addr, ...]
) -> tuple[configmod.Pool | None, Reason | None, str]:
    """MetalLB's ``Assign`` checks (§4.2) without taking anything: (pool, None, "") or (None, reason, error)."""
    pool = None
    for a in addrs:
        p = owning_pool(idx, a)
        if p is None or (pool is not None and p.name != pool.name):
            return None, Reason.REQUESTED_IP_NOT_ALLOWED, f"{go_list(addrs)} is not allowed in config"
        pool = p
    if pool is None:
        return None, Reason.REQUESTED_IP_NOT_ALLOWED, f"{go_list(addrs)} is not allowed in config"
    if not compatible(pool, svc):
        return None, Reason.NO_MATCHING_POOL, f"pool {pool.name} not compatible for ip assignment"
    if len(addrs) > 2:
        return None, Reason.INVALID_REQUESTED_IP, f"more than two addresses {go_list(addrs)}"
    if len(addrs) == 2 and addrs[0][0] == addrs[1][0]:
        return None, Reason.INVALID_REQUESTED_IP, f"{_q(addrs[0])} {_q(addrs[1])} has the same family"
    for a in addrs:
        prob = sharing_problem(state, key, svc, a)
        if prob is not None:
            return None, Reason.SHARING_CONFLICT, prob
    return pool, None, ""


def _evict_unconfirmed(state: State, key: ServiceKey, svc: schema.Service, addrs: tuple[Addr, ...]) -> list[ServiceKey]:
    """Rule 4: holders of ``addrs`` whose own status does not show the address give way to a status claim."""
    victims: list[ServiceKey] = []
    for a in addrs:
        for u in state.ip_users.get(a, ()):
            if u == key:
                continue
            o = state.service(u)
            if o is None or _text(a) in o.ingress_ips:
                return []
            victims.append(u)
    return sorted(set(victims))


def converge(state: State, svc: schema.Service) -> list[tuple[str, Addr]]:
    """Bring ``svc``'s decision up to date (§3.3). Returns the (pool, address) pairs freed on the way."""
    key = service_key(svc)
    if state.decided is not None:
        state.decided.add(key)
    idx = index(state)
    if not (svc.type == "LoadBalancer" and svc.load_balancer_class == state.lb_class):  # handled(), inlined
        state.services.pop(key, None)
        state.pending.discard(key)
        if idx is not None:
            _unregister_wait(idx, key)
        return release(state, key)
    dec = state.services.get(key)
    if dec is None:
        dec = state.services[key] = ServiceDecision()
    freed = _converge(state, idx, key, svc, dec)
    if idx is not None:
        if dec.reason is None:
            state.pending.discard(key)
            _unregister_wait(idx, key)
        else:
            state.pending.add(key)
            _register_wait(state, idx, key, svc)
    elif dec.reason is not None:
        state.pending.add(key)
    return freed


def _converge(state: State, idx: Index | None, key: ServiceKey, svc: schema.Service, dec: ServiceDecision):
    # 0/1: no configuration, no pools, no cluster IPs
    if idx is None:
        _clear(dec, Reason.NO_CONFIGURATION)
        return []
    freed: list[tuple[str, Addr]] = []
    if not idx.cfg.pools:
        freed += release(state, key)
        _clear(dec, Reason.NO_CONFIGURATION)
        return freed
    # 1: no cluster IPs at all: wait silently
    if not svc.cluster_ips:
        freed += release(state, key)
        _clear(dec, Reason.NO_CLUSTER_IP)
        return freed
    # 3: RequireDualStack needs two cluster IPs (MetalLB counts them before judging their families)
    if svc.ip_family_policy == "RequireDualStack" and len(svc.cluster_ips) < 2:
        freed += release(state, key)
        msg = f"Service requires dual stack but not enough clusterips {go_plain(svc.cluster_ips)}"
        _clear(dec, Reason.NOT_ENOUGH_CLUSTER_IPS, msg)
        dec.emit("Warning", "not enough clusterips", msg)
        return freed
    try:
        fams = cluster_families(svc)
        fam_error: RequestError | None = None
    except RequestError as exc:
        fams, fam_error = (), exc

    # 2/4: current IPs (the assignment in force, else the Service's status)
    held = state.assigned.get(key)
    from_status = held is None
    current: tuple[Addr, ...] = held[1] if held is not None else ()
    if from_status and svc.ingress_ips:
        current = tuple(net.parse_ip(ip) for ip in svc.ingress_ips)
    if current:
        lb_error = family_error([_text(a) for a in current])
        if lb_error is not None:
            dec.emit("Warning", "nolbIPsIPFamily", f"Failed to retrieve LBIPs IPFamily for {go_list(current)}: {lb_error}")
        if fam_error is not None:
            # MetalLB stops here without touching the status; streamlb releases (a headless LoadBalancer Service
            # is refused by the API server anyway, so only a hand-written log gets here)
            dec.emit(
                "Warning", "noclusterIPsIPFamily",
                f"Failed to retrieve ClusterIPs IPFamily for {go_strings(svc.cluster_ips)} {svc.cluster_ips[0]}: "
                f"{fam_error}",
            )
            freed += release(state, key)
            _clear(dec, fam_error.reason, str(fam_error))
            return freed
        if lb_error is not None:
            freed += release(state, key)
            current = ()
    if fam_error is not None:
        # 7: allocateIPs judges the cluster IPs first
        freed += release(state, key)
        _clear(dec, fam_error.reason, str(fam_error))
        dec.emit("Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {fam_error}')
        return freed
    want, single_ok = wanted(svc, fams)
    if current:
        have = tuple(sorted(a[0] for a in current))
        if have != tuple(want) and not (single_ok and len(have) == 1 and have[0] in want):
            freed += release(state, key)  # the family changed under it: dropped silently
            current = ()

    try:
        req = requested_ips(svc)
        req_error: RequestError | None = None
    except RequestError as exc:
        req, req_error = (), exc
    pool_ann = annotation(svc, "address-pool") or ""

    # 5: re-claim the current IPs
    if current:
        pool, reason, err = _check_assign(state, idx, key, svc, current)
        if pool is None and reason is Reason.SHARING_CONFLICT and from_status and not pool_ann and not req:
            victims = _evict_unconfirmed(state, key, svc, current)
            if victims:
                for v in victims:
                    freed += release(state, v)
                pool, reason, err = _check_assign(state, idx, key, svc, current)
                if pool is not None:
                    _take(state, idx, key, svc, pool.name, current)
                    _set_assigned(state, dec, svc, pool.name, current)
                    for v in victims:
                        vs = state.service(v)
                        if vs is not None:
                            freed += converge(state, vs)
                    return [f for f in freed if f[1] not in state.ip_users]
        if pool is None:
            dec.emit(
                "Normal",
                "ClearAssignment",
                f'current IP for "{key}" not allowed by config, will attempt for new IP assignment: {err}',
            )
            freed += release(state, key)
            current = ()
        elif pool_ann and pool_ann != pool.name:
            freed += release(state, key)
            current = ()
        if req_error is not None:
            # MetalLB checks the requested IPs' syntax only on this path (a Service that held IPs): the event is
            # LoadBalancerFailed and nothing new is allocated; what was cleared above stays cleared
            if current and pool is not None:
                if held is None:
                    _take(state, idx, key, svc, pool.name, current)
                    _set_assigned(state, dec, svc, pool.name, current)
                dec.reason = None
                dec.message = str(req_error)
            else:
                _clear(dec, req_error.reason, str(req_error))
            dec.emit("Warning", "LoadBalancerFailed", f"invalid requested loadbalancer IPs: {req_error}")
            return freed
        if current and req and set(req) != set(current):
            freed += release(state, key)
            current = ()
        if current:
            assert pool is not None
            if held is None or held[0] != pool.name:
                _take(state, idx, key, svc, pool.name, current)
            _set_assigned(state, dec, svc, pool.name, current)
            # 6: PreferDualStack with one IP: add the other family from the same pool
            if single_ok and len(current) == 1 and len(want) == 2:
                other = want[0] if current[0][0] == want[1] else want[1]
                a = pick(state, idx, pool.name, other, key, svc)
                if a is not None:
                    both = tuple(sorted(current + (a,)))
                    _take(state, idx, key, svc, pool.name, both)
                    _set_assigned(state, dec, svc, pool.name, both)
                    dec.emit("Normal", "IPAllocated", f'Assigned additional IP "{_text(a)}"')
                else:
                    msg = (
                        f"cannot assign additional IP in PreferDualStack: no available IPs in pool {pool.name} "
                        f"for {GO_FAMILY[other]} IPFamily"
                    )
                    dec.reason = Reason.PARTIAL_DUAL_STACK.value
                    dec.message = msg
                    dec.emit("Normal", "AdditionalAssignFailed", msg)
            return freed
    if req_error is not None:
        # a Service without IPs goes through allocation, whose first step re-reads the request (§3.3 step 7)
        _clear(dec, req_error.reason, str(req_error))
        dec.emit("Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {req_error}')
        return freed

    # 7: allocate: requested IPs > pool annotation > automatic
    result = _allocate(state, idx, key, svc, fams, want, single_ok, req, pool_ann)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], Reason):
        reason, err = result
        _clear(dec, reason, err)
        dec.emit("Warning", "AllocationFailed", f'Failed to allocate IP for "{key}": {err}')
        return freed
    pool_name, addrs = result  # type: ignore[misc]
    _take(state, idx, key, svc, pool_name, addrs)
    _set_assigned(state, dec, svc, pool_name, addrs)
    dec.emit("Normal", "IPAllocated", "Assigned IP [" + " ".join([f'"{t}"' for t in dec.ingress]) + "]")
    if single_ok and len(addrs) == 1 and len(want) == 2:
        other = net.V6 if addrs[0][0] == net.V4 else net.V4
        msg = (
            f"cannot assign additional IP in PreferDualStack: no available IPs in pool {pool_name} "
            f"for {GO_FAMILY[other]} IPFamily"
        )
        dec.reason = Reason.PARTIAL_DUAL_STACK.value
        dec.message = msg
        dec.emit("Normal", "AdditionalAssignFailed", msg)
    return [f for f in freed if f[1] not in state.ip_users] if freed else freed


def _allocate(state, idx: Index, key, svc, fams, want, single_ok, req, pool_ann):
    """(pool name, addresses) or (Reason, error text), in the order of MetalLB's ``allocateIPs``."""
    if req:
        rf = tuple(sorted(a[0] for a in req))
        if rf != fams:  # MetalLB compares the families exactly (dual cluster IPs want two requested IPs)
            return (
                Reason.FAMILY_MISMATCH,
                f"requested loadBalancer IP(s) {go_list(req)} does not match the ipFamily of the service",
            )
        pool, reason, err = _check_assign(state, idx, key, svc, req)
        if pool is None:
            return reason, err
        if pool_ann and pool.name != pool_ann:
            return (
                Reason.NO_MATCHING_POOL,
                f"requested loadBalancer IP(s) {go_list(req)} is not compatible with requested address pool {pool_ann}",
            )
        return pool.name, req
    if pool_ann:
        pool = idx.cfg.pool_by_name.get(pool_ann)
        if pool is None:
            return Reason.UNKNOWN_POOL, f"unknown pool {go_quote(pool_ann)}"
        # MetalLB's AllocateFromPool: free addresses first, then the family selection, then Assign's checks
        got = _try_pool(state, idx, pool, want, single_ok, key, svc, svc_primary=primary_family(svc, fams))
        if got is None:
            families = sorted(idx.spaces[pool.name])
            if all(pick(state, idx, pool.name, f, key, svc) is None for f in families):
                return Reason.NO_AVAILABLE_IPS, f"no available IPs in pool {pool.name}"
            fam = "dual" if len(want) == 2 else GO_FAMILY[want[0]]
            return Reason.NO_AVAILABLE_IPS, f"no available IPs in pool {pool.name} for {fam} IPFamily"
        if not compatible(pool, svc):
            return Reason.NO_MATCHING_POOL, f"pool {pool.name} not compatible for ip assignment"
        return pool.name, got
    pinned, fallback = candidate_groups(idx, svc)
    if not pinned and not fallback:
        return Reason.NO_MATCHING_POOL, "no available IPs"
    prim = primary_family(svc, fams)
    got = _try_group(state, idx, pinned, want, single_ok, key, svc, prim)
    if got is None:
        if sharing_key(svc):
            got = _try_group(state, idx, fallback, want, single_ok, key, svc, prim)
        elif len(want) == 1:
            got = _fallback_fast(state, idx, want[0])
        else:
            # only pools not known to be exhausted in a wanted family can matter (same order, same answer)
            maybe = idx.avail_set[want[0]] | idx.avail_set[want[1]] if single_ok else (
                idx.avail_set[want[0]] & idx.avail_set[want[1]])
            got = _try_group(state, idx, [idx.fallback[r] for r in sorted(maybe)], want, single_ok, key, svc, prim)
    if got is None:
        return Reason.NO_AVAILABLE_IPS, "no available IPs"
    return got


def _try_pool(state, idx, pool, want, single_ok, key, svc, svc_primary):
    if len(want) == 1:  # single_ok is only ever set with two families
        a = pick(state, idx, pool.name, want[0], key, svc)
        return None if a is None else (a,)
    picks = {f: pick(state, idx, pool.name, f, key, svc) for f in want}
    if all(picks[f] is not None for f in want):
        return tuple(picks[f] for f in want)
    if single_ok:
        for f in (svc_primary,) + tuple(f for f in want if f != svc_primary):
            if picks[f] is not None:
                return (picks[f],)
    return None


def _try_group(state, idx, pools, want, single_ok, key, svc, prim):
    """First pool of the group with every wanted family; PreferDualStack falls back per §3.4."""
    first_prim = first_other = None
    for p in pools:
        picks = {f: pick(state, idx, p.name, f, key, svc) for f in want}
        r = idx.fallback_rank.get(p.name)
        if r is not None and not sharing_key(svc):
            for f, a in picks.items():
                if a is None:
                    idx.avail_set[f].discard(r)  # exhausted; re-added when an address of f is freed
        if all(picks[f] is not None for f in want):
            return p.name, tuple(picks[f] for f in want)
        if single_ok:
            for f, a in picks.items():
                if a is None:
                    continue
                if f == prim and first_prim is None:
                    first_prim = (p.name, (a,))
                elif f != prim and first_other is None:
                    first_other = (p.name, (a,))
    return first_prim or first_other


def _fallback_fast(state: State, idx: Index, fam: int):
    """First fallback pool (name order) with a free address of ``fam``: the heap of maybe-non-full pools."""
    heap = idx.avail.get(fam)
    if heap is None:
        return None
    live = idx.avail_set[fam]
    while heap:
        r = heap[0]
        p = idx.fallback[r]
        sp = idx.spaces[p.name][fam]
        o = sp.lowest_free(state.ip_users)
        if o is not None:
            return p.name, ((fam, sp.value_of(o)),)
        heapq.heappop(heap)
        live.discard(r)
    return None


# ----------------------------------------------------------------------------------------------------------------
# Fold hooks


def _same_for_allocation(state: State, old: schema.Service, svc: schema.Service, key: ServiceKey) -> bool:
    """Does nothing that can change the allocation differ? (Labels count only when serviceSelectors are in play,
    ports only for a Service with a sharing key, status only before the Service holds an assignment.)"""
    if not (
        old.type == svc.type
        and old.cluster_ips == svc.cluster_ips
        and old.annotations == svc.annotations
        and old.load_balancer_ip == svc.load_balancer_ip
        and old.ip_family_policy == svc.ip_family_policy
        and old.load_balancer_class == svc.load_balancer_class
        and old.ip_families == svc.ip_families
        and old.external_traffic_policy == svc.external_traffic_policy
    ):
        return False
    if svc.external_traffic_policy == "Local" and old.selector != svc.selector:
        return False
    if old.ports != svc.ports and sharing_key(svc):
        return False
    if old.labels != svc.labels and (state.alloc is None or state.alloc.pinned_selecting):
        return False
    if old.ingress_ips != svc.ingress_ips and key not in state.assigned:
        return False
    return True


def on_service(state: State, svc: schema.Service, old: schema.Service | None) -> None:
    """A Service was created or changed (``state.objects`` already holds ``svc``)."""
    key = f"{svc.namespace}/{svc.name}"
    if old is not None and key in state.services and _same_for_allocation(state, old, svc, key):
        return
    freed = converge(state, svc)
    if old is not None and sharing_key(old) and state.alloc is not None:
        held = state.assigned.get(service_key(svc))
        if held is not None and (old.ports != svc.ports or sharing_key(old) != sharing_key(svc)):
            freed = freed + [(held[0], a) for a in held[1]]  # ports/keys changed: sharers may now fit
    if freed:
        _wake(state, freed)


def on_service_deleted(state: State, key: ServiceKey) -> None:
    """A Service was deleted (already removed from ``state.objects``); its addresses wake the waiters."""
    if state.decided is not None:
        state.decided.add(key)
    state.services.pop(key, None)
    state.pending.discard(key)
    if state.alloc is not None:
        _unregister_wait(state.alloc, key)
    freed = release(state, key)
    if freed:
        _wake(state, freed)


def on_config(state: State, old: configmod.Config | None) -> None:
    """A new valid configuration is in force (§4.7): re-home, re-claim holders first, then retry pending.

    Only Services assigned from pools whose definition changed (or that disappeared) and pending Services are
    re-converged; an unchanged pool's assignments cannot become invalid.
    """
    cfg = state.config
    assert cfg is not None
    prev = state.alloc
    if old is not None and (prev is None or prev.cfg is not old):
        prev = _fresh_index(state, old)  # e.g. after a snapshot load: the index of the configuration replaced
    old_pools = old.pool_by_name if old is not None else {}
    unchanged = frozenset(p.name for p in cfg.pools if old_pools.get(p.name) == p)
    if prev is not None and len(unchanged) == len(cfg.pools) == len(old_pools):
        prev.cfg = cfg  # pools identical: only advertisements, peers, ... changed
        state.alloc = prev
        return
    state.alloc = _build_index(state, cfg, prev, unchanged)
    if prev is None:
        affected = set(state.services)
    else:
        affected = set(state.pending)
        for name in sorted(set(old_pools) - unchanged):
            affected.update(prev.members.get(name, ()))

    def held(key: ServiceKey) -> int:
        if key in state.assigned:
            return len(state.assigned[key][1])
        svc = state.service(key)
        return len(svc.ingress_ips) if svc is not None else 0

    freed: list[tuple[str, Addr]] = []
    for key in sorted(affected, key=lambda k: (-held(k), k)):
        svc = state.service(key)
        if svc is not None:
            freed += converge(state, svc)
    freed = [f for f in freed if f[1] not in state.ip_users]
    if freed:
        _wake(state, freed)


# ----------------------------------------------------------------------------------------------------------------
# Read-only views (pool status, effects)


def pool_status(state: State) -> dict[str, dict[str, int]]:
    """IPAddressPool.status counters per pool (§2.1, §4.9): distinct addresses in use and what is left."""
    idx = index(state)
    out: dict[str, dict[str, int]] = {}
    if idx is None:
        return out
    for p in idx.cfg.pools:
        row = {}
        for fam, tag in ((net.V4, "IPv4"), (net.V6, "IPv6")):
            sp = idx.spaces[p.name].get(fam)
            used = sp.in_use if sp is not None else 0
            cap = sum(
                net.block_capacity(b, p.avoid_buggy_ips) if b.last - b.first + 1 < 2**62 else MAX_INT64
                for b in p.blocks
                if b.family == fam
            )
            cap = min(cap, MAX_INT64)
            row[f"assigned{tag}"] = used
            row[f"available{tag}"] = cap - used if cap < MAX_INT64 else MAX_INT64
        out[p.name] = row
    return out


def status_update(state: State, key: ServiceKey) -> dict:
    """The Kubernetes status write for one Service: ingress IPs and the ip-allocated-from-pool annotation."""
    dec = state.services.get(key)
    if dec is None or not dec.ingress:
        return {"ingress": [], "annotations": {POOL_ANNOTATION: None}}
    return {"ingress": [{"ip": ip} for ip in dec.ingress], "annotations": {POOL_ANNOTATION: dec.pool}}
