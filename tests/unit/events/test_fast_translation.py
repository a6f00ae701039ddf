"""Laws: the producer's and the replay's fast input path agree with the plain one, outcome for outcome.

* ``kube.translate`` (whose core kinds were rewritten for speed) equals a plain oracle — the straightforward
  translation kept here, field by field — on random, messy and mistyped objects: the same canonical object, the
  same ignored key, or the same refusal text.
* A watch line gives the same outcomes through ``inputs.line_outcomes`` (typed msgspec decoding straight into raw
  Structs, events not validated a second time) as through the generic path (``json.loads`` → dicts → translate →
  ``codec.validate``), rejects and their reasons included; and whatever the typed path returns is canonical.
* ``inputs.encode_lines`` (what ``events append`` sends) equals encoding the generic path's accepted events,
  record by record, with the same refusals (numbered by record) and the same count of ignored objects.
"""

from __future__ import annotations

import ipaddress
import json

import msgspec
from hypothesis import given, settings, strategies as st

from events import codec, inputs, kube, schema, watchjson

OPTS = inputs.Options()

# --------------------------------------------------------------------------------------------------------------
# The oracle: the core kinds translated plainly (as before the fast path), one field at a time.


def _oracle_service(obj) -> schema.Service:
    raw = kube._convert(obj, kube.RawService, "Service")
    kube._name(raw.metadata, "Service", True)
    where = f"Service {raw.metadata.namespace}/{raw.metadata.name}"
    spec = raw.spec
    cluster_ips = list(spec.cluster_i_ps or ([spec.cluster_ip] if spec.cluster_ip else []))
    canon = [ip if ip == "None" else kube._canonical_ip(ip, f"{where}: spec.clusterIPs[{i}]")
             for i, ip in enumerate(cluster_ips)]
    ingress = []
    lb = raw.status.load_balancer if raw.status else None
    for i, ing in enumerate((lb.ingress if lb else None) or ()):
        if ing.ip:
            ingress.append(kube._canonical_ip(ing.ip, f"{where}: status.loadBalancer.ingress[{i}].ip"))
    annotations = {k: v for k, v in (raw.metadata.annotations or {}).items()
                   if k.startswith(("metallb.io/", "metallb.universe.tf/"))}
    ports = []
    for i, p in enumerate(spec.ports or ()):
        if not 0 <= p.port <= 65535:
            raise kube.TranslateError(f"{where}: spec.ports[{i}].port {p.port} out of range")
        ports.append(schema.ServicePort(protocol=p.protocol or "TCP", port=p.port))
    return schema.Service(
        namespace=raw.metadata.namespace, name=raw.metadata.name, labels=kube._pairs(raw.metadata.labels),
        annotations=kube._pairs(annotations), type=spec.type or "ClusterIP", cluster_ips=tuple(canon),
        ip_families=tuple(spec.ip_families or ()), ip_family_policy=spec.ip_family_policy or "SingleStack",
        load_balancer_class=spec.load_balancer_class, load_balancer_ip=spec.load_balancer_ip.strip(),
        external_traffic_policy=spec.external_traffic_policy or "Cluster", selector=kube._pairs(spec.selector),
        ports=tuple(ports), ingress_ips=tuple(ingress),
    )


def _oracle_node(obj) -> schema.Node:
    raw = kube._convert(obj, kube.RawNode, "Node")
    kube._name(raw.metadata, "Node", False)
    conds = (raw.status.conditions if raw.status else None) or ()
    internal = []
    for a in (raw.status.addresses if raw.status else None) or ():
        if a.type == "InternalIP" and kube._parses_ip(a.address):
            ip = str(ipaddress.ip_address(a.address.strip()))
            if ip not in internal:
                internal.append(ip)
    return schema.Node(name=raw.metadata.name, labels=kube._pairs(raw.metadata.labels),
                       network_unavailable=any(c.type == "NetworkUnavailable" and c.status == "True" for c in conds),
                       internal_ips=tuple(internal))


def _oracle_namespace(obj) -> schema.Namespace:
    raw = kube._convert(obj, kube.RawNamespace, "Namespace")
    kube._name(raw.metadata, "Namespace", False)
    return schema.Namespace(name=raw.metadata.name, labels=kube._pairs(raw.metadata.labels))


def _oracle_slice(obj) -> schema.EndpointSlice | kube.Ignored:
    raw = kube._convert(obj, kube.RawEndpointSlice, "EndpointSlice")
    kube._name(raw.metadata, "EndpointSlice", True)
    if raw.address_type not in ("IPv4", "IPv6"):
        return kube.Ignored(f"discovery.k8s.io/v1/EndpointSlice[{raw.address_type}]")
    where = f"EndpointSlice {raw.metadata.namespace}/{raw.metadata.name}"
    eps = []
    for i, ep in enumerate(raw.endpoints or ()):
        c = ep.conditions or kube.RawConditions()
        eps.append(schema.Endpoint(
            addresses=tuple(kube._canonical_ip(a, f"{where}: endpoints[{i}].addresses[{j}]")
                            for j, a in enumerate(ep.addresses or ())),
            ready=c.ready, serving=c.serving, terminating=c.terminating, node_name=ep.node_name))
    labels = raw.metadata.labels or {}
    return schema.EndpointSlice(namespace=raw.metadata.namespace, name=raw.metadata.name, labels=kube._pairs(labels),
                                service_name=labels.get("kubernetes.io/service-name", ""),
                                address_type=raw.address_type, endpoints=tuple(eps))


_ORACLE = {("v1", "Service"): _oracle_service, ("v1", "Node"): _oracle_node, ("v1", "Namespace"): _oracle_namespace,
           ("discovery.k8s.io/v1", "EndpointSlice"): _oracle_slice}


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except kube.TranslateError as exc:
        return ("refused", str(exc))


# --------------------------------------------------------------------------------------------------------------
# Random objects: messy addresses, odd shapes, and any JSON value in any place

octet = st.one_of(st.integers(0, 255).map(str), st.integers(0, 300).map(lambda v: f"0{v}"), st.just("1a"))
ipv4 = st.tuples(octet, octet, octet, octet).map(".".join)
ipv6 = st.one_of(
    st.integers(0, 2**128 - 1).map(lambda v: ":".join(f"{(v >> (16 * i)) & 0xFFFF:x}" for i in range(8))),
    st.sampled_from(["fd00::1", "FD00:0::01", "::", "::ffff:1.2.3.4", "fe80::1%eth0", "fd00:::1", "fd96::0:0"]),
)
addresses = st.one_of(ipv4, ipv4, ipv6, ipv4.map(lambda t: f" {t} "), st.text(max_size=6))
names = st.sampled_from(["", "a", "svc-1", "x.y", "Upper", "{brace}"])
label_maps = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["app", "kubernetes.io/service-name", "metallb.io/address-pool", "zone", "b", "a"]),
    st.text(max_size=4), max_size=4))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=6)
    | addresses,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def meta(namespaced: bool):
    """Namespaced kinds mostly carry a namespace; cluster-scoped ones sometimes do too (it must be dropped)."""
    ns = {"namespace": st.sampled_from(["default", "web"]) | names} if namespaced else {"namespace": names}
    return st.fixed_dictionaries({"name": names}, optional={
        "labels": label_maps, "annotations": label_maps, "uid": st.text(max_size=4), **ns})


services = st.fixed_dictionaries({
    "apiVersion": st.just("v1"), "kind": st.just("Service"), "metadata": meta(True),
    "spec": st.fixed_dictionaries({
        "clusterIPs": st.lists(st.one_of(addresses, st.just("None")), max_size=2),
        "ports": st.lists(st.fixed_dictionaries({"port": st.integers(-5, 70000)}, optional={
            "protocol": st.sampled_from(["TCP", "UDP", ""]), "name": st.just("http")}), max_size=3),
    }, optional={
        "type": st.sampled_from(["LoadBalancer", "ClusterIP", ""]),
        "clusterIP": st.one_of(addresses, st.just("None")),
        "ipFamilies": st.lists(st.sampled_from(["IPv4", "IPv6"]), max_size=2),
        "loadBalancerIP": addresses, "loadBalancerClass": st.one_of(st.none(), st.just("x")),
        "selector": label_maps,
    }),
    "status": st.fixed_dictionaries({"loadBalancer": st.fixed_dictionaries({
        "ingress": st.lists(st.fixed_dictionaries({"ip": addresses}, optional={"hostname": st.just("h")}),
                            max_size=3)})}),
})
slices = st.fixed_dictionaries({
    "apiVersion": st.just("discovery.k8s.io/v1"), "kind": st.just("EndpointSlice"), "metadata": meta(True),
    "endpoints": st.lists(st.fixed_dictionaries({"addresses": st.lists(addresses, max_size=3)}, optional={
        "nodeName": names,
        "conditions": st.fixed_dictionaries({}, optional={"ready": st.booleans(), "serving": st.booleans(),
                                                          "terminating": st.none()})}), max_size=3),
}, optional={"addressType": st.sampled_from(["IPv4", "IPv6", "FQDN"])})
nodes = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("Node"), "metadata": meta(False)},
                              optional={"status": st.fixed_dictionaries({}, optional={
                                  "addresses": st.lists(st.fixed_dictionaries({
                                      "type": st.sampled_from(["InternalIP", "ExternalIP"]), "address": addresses}),
                                      max_size=3),
                                  "conditions": st.lists(st.fixed_dictionaries({
                                      "type": st.sampled_from(["Ready", "NetworkUnavailable"]),
                                      "status": st.sampled_from(["True", "False"])}), max_size=2)})})
namespaces = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("Namespace"),
                                    "metadata": meta(False)})
objects = st.one_of(services, slices, nodes, namespaces)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated(draw, base=objects):
    """An object, sometimes with a value somewhere replaced by any JSON value, or a key dropped."""
    obj = draw(base)
    if draw(st.integers(0, 2)) == 0:
        paths = [p for p in _paths(obj) if len(p) > 1]
        if paths:
            path = draw(st.sampled_from(paths))
            parent = obj
            for k in path[:-1]:
                parent = parent[k]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values)
    return obj


watch_lines = st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "SYNC"]),
                        mutated()).map(lambda t: json.dumps({"type": t[0], "object": t[1]}))


def generic(line: str) -> list:
    """The generic path: the standard library's JSON into dicts, translated and validated."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        return [inputs.Rejected(f"invalid JSON: {exc}")]
    return inputs._from_json_value(value, OPTS)


# --------------------------------------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_translate_equals_the_plain_oracle(obj) -> None:
    oracle = _ORACLE[(obj["apiVersion"], obj["kind"])]
    assert outcome(kube.translate, obj) == outcome(oracle, obj)


@settings(max_examples=500, deadline=None)
@given(mutated())
def test_typed_raw_structs_translate_as_the_dicts_do(obj) -> None:
    """The typed decoder's Structs (JSON straight into raw Structs) give what the dicts give, or are refused by
    the decoder (and then the line takes the generic path)."""
    line = json.dumps({"type": "ADDED", "object": obj})
    try:
        raw = watchjson._decoder.decode(line).object
    except msgspec.DecodeError:
        return
    fn = watchjson._KINDS[type(raw)][1]
    assert outcome(fn, raw) == outcome(kube.translate, obj)


@settings(max_examples=800, deadline=None)
@given(watch_lines)
def test_a_watch_line_has_the_same_outcomes_on_the_fast_and_the_generic_path(line: str) -> None:
    fast = watchjson.translate_line(line)
    if fast is not None and not isinstance(fast, kube.Ignored):
        codec.validate(fast)  # canonical by construction: the reason it is not validated again
    assert inputs.line_outcomes(line, OPTS) == generic(line)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(watch_lines, st.sampled_from(["", "   ", "{", "[1]", '{"type": "BOOKMARK", "object": {}}'])),
                max_size=12),
       st.integers(0, 3), st.integers(0, 12))
def test_encode_lines_equals_encoding_the_generic_outcomes(lines: list[str], start: int, length: int) -> None:
    got = inputs.encode_lines(lines, OPTS, start, start + length)
    blobs, refusals, ignored, n = [], [], 0, 0
    for line in lines[start:start + length]:
        if not line or line.isspace():
            continue
        n += 1
        outcomes = generic(line)
        reasons = [o.reason for o in outcomes if isinstance(o, inputs.Rejected)]
        if reasons:
            refusals.extend((n, r) for r in reasons)
            continue
        blobs.extend(codec.encode(o.event) for o in outcomes if isinstance(o, inputs.Accepted))
        ignored += sum(isinstance(o, inputs.Ignored) for o in outcomes)
    assert (got.blobs, got.refusals, got.ignored, got.records) == (blobs, refusals, ignored, n)
