"""Allocation laws over random histories (hypothesis stateful testing).

After every event: no address is held by two Services unless the sharing rules allow it; every address lies in its
pool (avoidBuggyIPs honoured) and the pool's rules allow the Service; decisions, assignments and indexes agree;
assignments are stable under events about other Services; a state restored from a snapshot and fed the same tail
equals the original. A brute-force oracle checks "lowest free address" for plain new Services. A subprocess test
replays a feature-rich log under several PYTHONHASHSEED values and compares the bytes.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from events import logfile, schema
from reconciler import allocate, config as configmod, fold, net, snapshot, state as statemod

ROOT = Path(__file__).resolve().parents[3]
NS = "metallb-system"
BLOCKS = ["10.0.0.0/30", "10.0.0.4/31", "10.0.0.254/31", "10.0.1.0/31", "10.0.2.0/29", "2001:db8::/126",
          "2001:db8::10/127", "2001:db8:1::/64"]
ADDRS = ["10.0.0.1", "10.0.0.5", "10.0.0.255", "10.0.1.0", "10.0.2.3", "2001:db8::2", "2001:db8::11", "10.9.9.9"]
POOLS = ["a", "b", "c"]
SVCS = [f"s{i}" for i in range(7)]
NAMESPACES = ["ns0", "ns1"]
TIER = schema.LabelSelector(match_labels=(("tier", "x"),))
PORTS = [("TCP", 80), ("TCP", 443), ("UDP", 53)]


@st.composite
def pool_objects(draw) -> schema.IPAddressPool:
    name = draw(st.sampled_from(POOLS))
    blocks = draw(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=3, unique=True))
    sa = draw(st.sampled_from([None, "ns1", "prio", "tier"]))
    alloc = {
        None: None,
        "ns1": schema.ServiceAllocation(priority=draw(st.integers(0, 3)), namespaces=("ns1",)),
        "prio": schema.ServiceAllocation(priority=draw(st.integers(1, 3))),
        "tier": schema.ServiceAllocation(service_selectors=(TIER,)),
    }[sa]
    return schema.IPAddressPool(
        namespace=NS, name=name, addresses=tuple(blocks), auto_assign=draw(st.booleans()) or draw(st.booleans()),
        avoid_buggy_ips=draw(st.booleans()), service_allocation=alloc,
    )


@st.composite
def service_objects(draw) -> schema.Service:
    fam = draw(st.sampled_from(["v4", "v4", "v6", "dual"]))
    cips = {"v4": ("10.96.0.1",), "v6": ("fd00::1",), "dual": ("10.96.0.1", "fd00::1")}[fam]
    policy = draw(st.sampled_from(["RequireDualStack", "PreferDualStack"])) if fam == "dual" else "SingleStack"
    ann: dict[str, str] = {}
    if draw(st.integers(0, 3)) == 0:
        ann["metallb.io/allow-shared-ip"] = draw(st.sampled_from(["k1", "k2"]))
    if draw(st.integers(0, 5)) == 0:
        ann[draw(st.sampled_from(["metallb.io/address-pool", "metallb.universe.tf/address-pool"]))] = draw(
            st.sampled_from(POOLS + ["zz"]))
    lbip = ""
    if draw(st.integers(0, 5)) == 0:
        lbip = draw(st.sampled_from(ADDRS))
    local = draw(st.booleans())
    return schema.Service(
        namespace=draw(st.sampled_from(NAMESPACES)), name=draw(st.sampled_from(SVCS)),
        labels=(("tier", "x"),) if draw(st.booleans()) else (),
        annotations=tuple(sorted(ann.items())),
        type="LoadBalancer" if draw(st.integers(0, 6)) else "ClusterIP",
        cluster_ips=cips, ip_family_policy=policy, load_balancer_ip=lbip,
        external_traffic_policy="Local" if local else "Cluster",
        selector=(("app", draw(st.sampled_from(["a", "b"]))),),
        ports=tuple(schema.ServicePort(protocol=p, port=n) for p, n in draw(
            st.lists(st.sampled_from(PORTS), min_size=1, max_size=2, unique=True))),
        ingress_ips=(draw(st.sampled_from(ADDRS)),) if draw(st.integers(0, 4)) == 0 else (),
    )


def _sharing_ok(state: statemod.State, users: list[str]) -> bool:
    svcs = [state.service(u) for u in users]
    if any(s is None for s in svcs):
        return False
    keys = {(allocate.sharing_key(s), allocate.backend_key(s)) for s in svcs}  # type: ignore[arg-type]
    if len(keys) != 1 or not next(iter(keys))[0]:
        return False
    seen: set = set()
    for s in svcs:
        ports = set(allocate.service_ports(s))  # type: ignore[arg-type]
        if ports & seen:
            return False
        seen |= ports
    return True


class AllocationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = statemod.new()
        self.shadow: statemod.State | None = None  # restored from a snapshot, fed the same tail
        self.before: dict[str, tuple[str | None, list[str]]] = {}

    def _apply(self, event: schema.Event) -> None:
        self.before = {k: (d.reason, list(d.ingress)) for k, d in self.state.services.items()}
        fold.apply(self.state, event)
        if self.shadow is not None:
            fold.apply(self.shadow, event)
            assert snapshot.dump(self.shadow) == snapshot.dump(self.state)

    @rule(obj=pool_objects())
    def upsert_pool(self, obj) -> None:
        self._apply(schema.K8sUpsert(obj=obj))

    @rule(name=st.sampled_from(POOLS))
    def delete_pool(self, name) -> None:
        self._apply(schema.K8sDelete(ref=schema.ObjectRef(kind="IPAddressPool", namespace=NS, name=name)))

    @rule(obj=service_objects())
    def upsert_service(self, obj) -> None:
        key = f"{obj.namespace}/{obj.name}"
        plain_new = (
            key not in self.state.services and obj.type == "LoadBalancer" and not obj.annotations
            and not obj.load_balancer_ip and obj.ip_family_policy == "SingleStack" and not obj.ingress_ips
        )
        oracle = self._lowest_free_oracle(obj) if plain_new else None
        self._apply(schema.K8sUpsert(obj=obj))
        self._check_unrelated_stable(key)
        if plain_new and self.state.config is not None and key in self.state.assigned:
            assert self.state.assigned[key][1] == oracle, (self.state.assigned[key], oracle)

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(SVCS))
    def write_back_status(self, ns, name) -> None:
        """The status writer publishes the decision: the Service's status now confirms its addresses."""
        key = f"{ns}/{name}"
        svc = self.state.service(key)
        if svc is None or key not in self.state.services:
            return
        import msgspec

        self._apply(schema.K8sUpsert(obj=msgspec.structs.replace(
            svc, ingress_ips=tuple(self.state.services[key].ingress))))
        self._check_unrelated_stable(key)
        assert self.state.services[key].ingress == list(self.before[key][1]) or self.before[key][0] is not None

    @rule(ns=st.sampled_from(NAMESPACES), name=st.sampled_from(SVCS))
    def delete_service(self, ns, name) -> None:
        self._apply(schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=name)))
        self._check_unrelated_stable(f"{ns}/{name}")

    @rule(ns=st.sampled_from(NAMESPACES), env=st.sampled_from(["", "prod"]))
    def namespace_labels(self, ns, env) -> None:
        self._apply(schema.K8sUpsert(obj=schema.Namespace(name=ns, labels=(("env", env),) if env else ())))

    @precondition(lambda self: self.shadow is None)
    @rule()
    def take_snapshot(self) -> None:
        self.shadow = snapshot.load(snapshot.dump(self.state))

    # ---- oracles and invariants ----

    def _lowest_free_oracle(self, svc: schema.Service):
        """Brute force: the first candidate pool (Rule 1) with a free address of the family, lowest in walk order."""
        cfg = self.state.config
        if cfg is None:
            return None
        fam = net.parse_ip(svc.cluster_ips[0])[0]
        pinned = sorted(
            (p for p in cfg.pools if p.allocation is not None and p.auto_assign
             and (svc.namespace in p.namespaces or p.service_selectors or p.match_all_services)
             and allocate.compatible(p, svc)),
            key=lambda p: (p.priority == 0, p.priority, p.name))
        fallback = [p for p in cfg.pools if p.allocation is None and p.auto_assign]
        for group in (pinned, fallback):
            for p in group:
                for b in p.blocks:
                    if b.family != fam:
                        continue
                    for v in range(b.first, min(b.last, b.first + 4096) + 1):
                        if p.avoid_buggy_ips and net.is_buggy(fam, v):
                            continue
                        if (fam, v) not in self.state.ip_users:
                            return ((fam, v),)
        return None

    def _check_unrelated_stable(self, key: str) -> None:
        """Other Services keep their addresses; only an unconfirmed holder may yield to a status claim (Rule 4)."""
        claimant = self.state.service(key)
        claims = set(claimant.ingress_ips) if claimant is not None else set()
        for other, (reason, ingress) in self.before.items():
            if other == key or other not in self.state.services or not ingress:
                continue
            o = self.state.service(other)
            if claims & set(ingress) and o is not None and not claims & set(o.ingress_ips):
                continue
            now = self.state.services[other].ingress
            assert set(ingress) <= set(now), (other, ingress, now)

    @invariant()
    def no_double_assignment_unless_shared(self) -> None:
        for a, users in self.state.ip_users.items():
            assert users, a
            if len(users) > 1:
                assert _sharing_ok(self.state, users), (a, users)

    @invariant()
    def addresses_inside_their_pool_and_allowed(self) -> None:
        cfg = self.state.config
        for key, (pool_name, addrs) in self.state.assigned.items():
            assert cfg is not None
            pool = cfg.pool_by_name[pool_name]
            svc = self.state.service(key)
            assert svc is not None and allocate.handled(self.state, svc)
            for f, v in addrs:
                assert pool.contains(f, v), (key, pool_name, net.to_text(f, v))
            assert allocate.compatible(pool, svc)
            assert len(addrs) <= 2 and len({f for f, _ in addrs}) == len(addrs)

    @invariant()
    def decisions_assignments_and_indexes_agree(self) -> None:
        s = self.state
        users: dict = {}
        for key, (pool_name, addrs) in s.assigned.items():
            dec = s.services[key]
            assert dec.ingress == [net.to_text(f, v) for f, v in addrs] and dec.pool == pool_name
            for a in addrs:
                users.setdefault(a, []).append(key)
        assert {a: sorted(u) for a, u in users.items()} == {a: sorted(u) for a, u in s.ip_users.items()}
        for key, dec in s.services.items():
            assert (dec.reason is None) == (key not in s.pending), (key, dec.reason)
            if key not in s.assigned:
                assert dec.ingress == [] and dec.pool is None and dec.reason is not None
        if s.config is not None:
            status = allocate.pool_status(s)
            for p in s.config.pools:
                for fam, tag in ((net.V4, "IPv4"), (net.V6, "IPv6")):
                    used = {a for a in s.ip_users if a[0] == fam and p.contains(*a)}
                    assert status[p.name][f"assigned{tag}"] == len(used), (p.name, tag)


TestAllocationLaws = AllocationMachine.TestCase
TestAllocationLaws.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)


# --------------------------------------------------------------------------------------------------------------
# Determinism across processes


def _rich_log(seed: int, n: int) -> list[schema.Event]:
    rng = random.Random(seed)
    log: list[schema.Event] = [
        schema.K8sUpsert(obj=schema.Namespace(name="ns1", labels=(("env", "prod"),))),
        schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name="gen", addresses=("10.0.0.0/27", "2001:db8::/120"))),
        schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name="alt", addresses=("10.1.0.0/28",), avoid_buggy_ips=True)),
        schema.K8sUpsert(obj=schema.IPAddressPool(
            namespace=NS, name="pin", addresses=("10.2.0.0/29",),
            service_allocation=schema.ServiceAllocation(priority=1, namespace_selectors=(
                schema.LabelSelector(match_labels=(("env", "prod"),)),)))),
    ]
    for _ in range(n):
        r = rng.random()
        i = rng.randrange(40)
        ns = "ns1" if i % 3 == 0 else "default"
        if r < 0.6:
            ann = {}
            if i % 4 == 0:
                ann["metallb.io/allow-shared-ip"] = f"k{i % 2}"
            if i % 11 == 0:
                ann["metallb.io/address-pool"] = "alt"
            dual = i % 7 == 0
            log.append(schema.K8sUpsert(obj=schema.Service(
                namespace=ns, name=f"s{i}", type="LoadBalancer",
                cluster_ips=("10.96.0.1", "fd00::1") if dual else ("10.96.0.1",),
                ip_family_policy=rng.choice(["RequireDualStack", "PreferDualStack"]) if dual else "SingleStack",
                annotations=tuple(sorted(ann.items())),
                ports=(schema.ServicePort(port=rng.choice([80, 443, 8080])),),
                labels=(("rev", str(rng.randrange(3))),),
            )))
        elif r < 0.85:
            log.append(schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=f"s{i}")))
        elif r < 0.95:
            log.append(schema.K8sUpsert(obj=schema.Namespace(name="ns1", labels=(("env", rng.choice(["prod", "dev"])),))))
        else:
            last = rng.choice(["10.0.0.0/27", "10.0.0.0/28", "10.0.0.8/29"])
            log.append(schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name="gen", addresses=(last, "2001:db8::/120"))))
    return log


def test_rich_replay_is_byte_identical_across_hash_seeds(tmp_path: Path) -> None:
    path = tmp_path / "rich.evlog"
    path.write_bytes(logfile.encode_file(_rich_log(3, 1500)))
    outs = []
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "reconciler", "replay", str(path), "--output", "json"],
                              capture_output=True, env=env, cwd=ROOT, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        outs.append(proc.stdout)
    assert outs[0] == outs[1] == outs[2]
    assert outs[0].count(b'"IPAllocated"') > 20


def test_rich_log_snapshot_plus_tail_equals_full_replay() -> None:
    events = _rich_log(5, 800)
    full = fold.fold(events, statemod.new())
    for cut in (10, 200, 555):
        resumed = fold.fold(events[cut:], snapshot.load(snapshot.dump(fold.fold(events[:cut], statemod.new()))))
        assert snapshot.dump(resumed) == snapshot.dump(full)


def test_naive_reference_agrees_on_a_plain_history() -> None:
    """A list-scan reference allocator and the indexed one agree on who gets what for plain Services."""
    rng = random.Random(11)
    pools = [("p0", ["10.0.0.0/29", "10.0.5.0/30"]), ("p1", ["10.0.1.0/30"])]
    events: list[schema.Event] = [
        schema.K8sUpsert(obj=schema.IPAddressPool(namespace=NS, name=n, addresses=tuple(a))) for n, a in pools
    ]
    order = [ipaddress.ip_address(x) for n, a in pools for c in a for x in ipaddress.ip_network(c)]
    ref: dict[str, str] = {}
    pending: list[str] = []
    for step in range(400):
        name = f"s{rng.randrange(25)}"
        if name in ref or name in pending:
            events.append(schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace="d", name=name)))
            if name in ref:
                ref.pop(name)
                if pending:
                    w = sorted(pending)[0]
                    pending.remove(w)
                    ref[w] = next(str(x) for x in order if str(x) not in ref.values())
            else:
                pending.remove(name)
        else:
            events.append(schema.K8sUpsert(obj=schema.Service(namespace="d", name=name, type="LoadBalancer",
                                                              cluster_ips=("10.96.0.1",))))
            free = [str(x) for x in order if str(x) not in ref.values()]
            if free:
                ref[name] = free[0]
            else:
                pending.append(name)
    st_ = fold.fold(events, statemod.new())
    got = {k.split("/")[1]: d.ingress[0] for k, d in st_.services.items() if d.ingress}
    assert got == ref
    assert sorted(k.split("/")[1] for k in st_.pending) == sorted(pending)
    _ = configmod
