"""Seeded generators of realistic event logs, shared by benchmarks and tests (msgspec's generate_data idea).

``make_event_log(n_events, n_services, n_nodes, n_pools, seed)`` returns a list of events: configuration first
(pools, one L2Advertisement, namespaces, nodes), then a stream of Service creates/updates/deletes and
EndpointSlice churn, drawn with ``random.Random(seed)`` so the same arguments always give the same log.
"""

from __future__ import annotations

import ipaddress
import random

from events import schema

NAMESPACES = ("default", "web", "payments", "staging", "batch")


def _pool(i: int, size_v4: int) -> schema.IPAddressPool:
    base = ipaddress.IPv4Address("10.0.0.0") + i * size_v4
    prefix = 32 - (size_v4 - 1).bit_length()
    return schema.IPAddressPool(
        namespace="metallb-system",
        name=f"pool-{i:04d}",
        labels=(("zone", f"z{i % 4}"),),
        addresses=(f"{base}/{prefix}", f"fd00:{i:x}::/112"),
    )


def _service(rng: random.Random, idx: int, version: int) -> schema.Service:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    dual = idx % 10 == 0
    v6 = str(ipaddress.IPv6Address(f"fd96::{idx >> 16:x}:{idx & 0xFFFF:x}"))  # valid beyond 65,535 services
    cips = (f"172.30.{(idx >> 8) & 255}.{idx & 255}",) + ((v6,) if dual else ())
    return schema.Service(
        namespace=ns,
        name=f"svc-{idx:06d}",
        labels=(("app", f"app-{idx % 97}"), ("rev", str(version))),
        type="LoadBalancer",
        cluster_ips=cips,
        ip_family_policy="RequireDualStack" if dual else "SingleStack",
        external_traffic_policy="Local" if idx % 3 == 0 else "Cluster",
        selector=(("app", f"app-{idx % 97}"),),
        ports=(schema.ServicePort(protocol="TCP", port=80 + (version % 3)),),
    )


def _slice(rng: random.Random, idx: int, n_nodes: int) -> schema.EndpointSlice:
    ns = NAMESPACES[idx % len(NAMESPACES)]
    eps = tuple(
        schema.Endpoint(
            addresses=(f"10.244.{rng.randrange(256)}.{rng.randrange(1, 255)}",),
            ready=rng.random() > 0.1,
            node_name=f"node-{rng.randrange(n_nodes):04d}",
        )
        for _ in range(rng.randint(1, 3))
    )
    return schema.EndpointSlice(
        namespace=ns,
        name=f"svc-{idx:06d}-eps",
        labels=(("kubernetes.io/service-name", f"svc-{idx:06d}"),),
        service_name=f"svc-{idx:06d}",
        endpoints=eps,
    )


def make_config(n_nodes: int, n_pools: int, pool_size: int) -> list[schema.Event]:
    out: list[schema.Event] = []
    for ns in NAMESPACES:
        out.append(schema.K8sUpsert(obj=schema.Namespace(name=ns, labels=(("team", ns),))))
    for i in range(n_pools):
        out.append(schema.K8sUpsert(obj=_pool(i, pool_size)))
    out.append(schema.K8sUpsert(obj=schema.L2Advertisement(namespace="metallb-system", name="l2")))
    for n in range(n_nodes):
        out.append(
            schema.K8sUpsert(obj=schema.Node(name=f"node-{n:04d}", labels=(("kubernetes.io/hostname", f"node-{n:04d}"),)))
        )
    return out


def make_event_log(
    n_events: int,
    n_services: int = 1000,
    n_nodes: int = 20,
    n_pools: int = 4,
    seed: int = 42,
) -> list[schema.Event]:
    """A log of exactly ``n_events`` events (configuration first, then churn)."""
    rng = random.Random(seed)
    pool_size = 1 << max(4, (2 * n_services // max(1, n_pools)).bit_length())
    log = make_config(n_nodes, n_pools, pool_size)
    live: dict[int, int] = {}  # service index -> version
    next_idx = 0
    while len(log) < n_events:
        r = rng.random()
        if (r < 0.35 and next_idx < n_services) or not live:
            idx = next_idx
            next_idx += 1
            live[idx] = 0
            log.append(schema.K8sUpsert(obj=_service(rng, idx, 0)))
        elif r < 0.55:
            idx = rng.choice(sorted(live)) if len(live) < 64 else rng.randrange(next_idx)
            if idx in live:
                live[idx] += 1
                log.append(schema.K8sUpsert(obj=_service(rng, idx, live[idx])))
        elif r < 0.9:
            idx = rng.randrange(next_idx)
            if idx in live:
                log.append(schema.K8sUpsert(obj=_slice(rng, idx, n_nodes)))
        elif r < 0.95:
            idx = rng.randrange(next_idx)
            if idx in live:
                del live[idx]
                ns = NAMESPACES[idx % len(NAMESPACES)]
                log.append(schema.K8sDelete(ref=schema.ObjectRef(kind="Service", namespace=ns, name=f"svc-{idx:06d}")))
        else:
            node = f"node-{rng.randrange(n_nodes):04d}"
            log.append(schema.SpeakerDown(node=node) if rng.random() < 0.5 else schema.SpeakerUp(node=node))
    return log[:n_events]


def watch_log_lines(n_services: int, *, node: str = "lbnode", peer_address: str = "127.0.0.1",
                    peer_port: int = 179, source_address: str = "", peer_asn: int = 64512, my_asn: int = 64513,
                    seed: int = 42) -> list[bytes]:
    """A Kubernetes watch log (``kubectl get -w -o json --output-watch-events`` JSON lines) of a BGP cluster with
    ``n_services`` LoadBalancer Services, each with one EndpointSlice serving on ``node``: one IPAddressPool big
    enough for all of them, one BGPAdvertisement, one BGPPeer (``peer_address:peer_port``, eBGP multi-hop) and
    the Node, then ``2 * n_services`` ADDED events — 200,006 lines for 100,000 Services, the issue-17 scale.

    The objects look like what the API server sends (uids, resourceVersions, managed fields left out), so the
    producer translates and drops the same fields it does for a real cluster."""
    import json

    rng = random.Random(seed)
    bits = max(8, (n_services * 2 - 1).bit_length())
    pool = f"11.0.0.0/{32 - bits}" if bits <= 24 else "11.0.0.0/8"
    ms = "metallb-system"

    def line(obj: dict, kind: str = "ADDED") -> bytes:
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode()

    def meta(name: str, ns: str | None = None, **extra) -> dict:
        m = {"name": name, "uid": f"{rng.getrandbits(64):016x}",
             "resourceVersion": str(rng.randrange(10**6, 10**7)), "creationTimestamp": "2026-01-01T00:00:00Z",
             **extra}
        if ns is not None:
            m["namespace"] = ns
        return m

    peer_spec = {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": peer_address, "peerPort": peer_port,
                 "ebgpMultiHop": True, "holdTime": "90s"}
    if source_address:
        peer_spec["sourceAddress"] = source_address
    out = [
        line({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": meta("bgp-pool", ms),
              "spec": {"addresses": [pool]}}),
        line({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement", "metadata": meta("bgp", ms),
              "spec": {"ipAddressPools": ["bgp-pool"]}}),
        line({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer", "metadata": meta("router", ms),
              "spec": peer_spec}),
        line({"apiVersion": "v1", "kind": "Node",
              "metadata": meta(node, labels={"kubernetes.io/hostname": node, "kubernetes.io/os": "linux"}),
              "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        line({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("default", labels={"team": "web"})}),
        line({"apiVersion": "v1", "kind": "Namespace", "metadata": meta("web", labels={"team": "web"})}),
    ]
    for i in range(n_services):
        ns = ("default", "web")[i % 2]
        name = f"svc-{i:06d}"
        cip = f"172.{20 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
        out.append(line({
            "apiVersion": "v1", "kind": "Service",
            "metadata": meta(name, ns, labels={"app": name, "tier": ("web", "api", "db")[i % 3]},
                             annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"}),
            "spec": {"type": "LoadBalancer", "clusterIP": cip, "clusterIPs": [cip], "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "externalTrafficPolicy": "Cluster", "sessionAffinity": "None",
                     "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                                "nodePort": 30000 + i % 2000}]},
            "status": {"loadBalancer": {}},
        }))
        out.append(line({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": meta(f"{name}-{rng.getrandbits(20):05x}", ns, labels={"kubernetes.io/service-name": name}),
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"],
                           "conditions": {"ready": True, "serving": True, "terminating": False},
                           "nodeName": node}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }))
    return out
