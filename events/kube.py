"""Kubernetes objects (as the API returns them) into canonical event objects.

Pure translation, no I/O: the caller hands in parsed JSON/YAML. Each supported ``apiVersion``/``kind`` is first
checked against a *raw* msgspec Struct that mirrors the API's JSON (camelCase, unknown fields ignored), so a value of
the wrong type is refused with a path-precise reason (``Expected `int`, got `str` - at `$.spec.ports[0].port```);
then the raw object is reduced to the canonical Struct of :mod:`events.schema`.

Rules:

1. Unknown ``apiVersion``/``kind`` pairs are not errors: :func:`translate` returns :class:`Ignored` with a counted
   key such as ``v1/ConfigMap``.
2. MetalLB objects count only in the MetalLB namespaces given by the caller (MetalLB honours only its own).
3. Secrets never leave this module: a BGPPeer's ``password`` becomes ``password_set``; ``passwordSecret`` stays a
   reference.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, NamedTuple

import msgspec

from events import codec, schema


class TranslateError(ValueError):
    """The object is of a supported kind but malformed; the message is the reason."""


class Ignored(NamedTuple):
    """The object is of a kind streamlb does not use; ``key`` counts it (``apiVersion/kind``)."""

    key: str


_KEEP_ANNOTATION_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
METALLB_GROUP = "metallb.io"


# --------------------------------------------------------------------------------------------------------------
# Raw shapes (only the fields we read)


class _Raw(msgspec.Struct, rename="camel", omit_defaults=True):
    pass


class RawMeta(_Raw):
    name: str = ""
    namespace: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class RawRequirement(_Raw):
    key: str
    operator: str
    values: list[str] | None = None


class RawSelector(_Raw):
    match_labels: dict[str, str] | None = None
    match_expressions: list[RawRequirement] | None = None


class RawPort(_Raw):
    port: int
    protocol: str = "TCP"
    name: str = ""


class RawServiceSpec(_Raw):
    type: str = "ClusterIP"
    cluster_ip: str = msgspec.field(default="", name="clusterIP")
    cluster_i_ps: list[str] | None = msgspec.field(default=None, name="clusterIPs")
    ip_families: list[str] | None = None
    ip_family_policy: str = ""
    load_balancer_class: str | None = None
    load_balancer_ip: str = msgspec.field(default="", name="loadBalancerIP")
    external_traffic_policy: str = ""
    selector: dict[str, str] | None = None
    ports: list[RawPort] | None = None


class RawIngress(_Raw):
    ip: str = ""
    hostname: str = ""


class RawLBStatus(_Raw):
    ingress: list[RawIngress] | None = None


class RawServiceStatus(_Raw):
    load_balancer: RawLBStatus | None = None


class RawService(_Raw):
    metadata: RawMeta
    spec: RawServiceSpec = msgspec.field(default_factory=RawServiceSpec)
    status: RawServiceStatus | None = None


class RawCondition(_Raw):
    type: str
    status: str = ""


class RawNodeAddress(_Raw):
    type: str = ""
    address: str = ""


class RawNodeStatus(_Raw):
    conditions: list[RawCondition] | None = None
    addresses: list[RawNodeAddress] | None = None


class RawNode(_Raw):
    metadata: RawMeta
    status: RawNodeStatus | None = None


class RawNamespace(_Raw):
    metadata: RawMeta


class RawConditions(_Raw):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class RawEndpoint(_Raw):
    addresses: list[str] | None = None
    conditions: RawConditions | None = None
    node_name: str = ""


class RawEndpointSlice(_Raw):
    metadata: RawMeta
    address_type: str = "IPv4"
    endpoints: list[RawEndpoint] | None = None


class RawServiceAllocation(_Raw):
    priority: int = 0
    namespaces: list[str] | None = None
    namespace_selectors: list[RawSelector] | None = None
    service_selectors: list[RawSelector] | None = None


class RawPoolSpec(_Raw):
    addresses: list[str] | None = None
    auto_assign: bool = True
    avoid_buggy_i_ps: bool = msgspec.field(default=False, name="avoidBuggyIPs")
    service_allocation: RawServiceAllocation | None = None


class RawPool(_Raw):
    metadata: RawMeta
    spec: RawPoolSpec = msgspec.field(default_factory=RawPoolSpec)


class RawPreferred(_Raw):
    weight: int = 0
    preference: RawSelector | None = None


class RawL2Spec(_Raw):
    ip_address_pools: list[str] | None = None
    ip_address_pool_selectors: list[RawSelector] | None = None
    node_selectors: list[RawSelector] | None = None
    interfaces: list[str] | None = None
    service_selectors: list[RawSelector] | None = None
    preferred_node_selectors: list[RawPreferred] | None = None


class RawL2(_Raw):
    metadata: RawMeta
    spec: RawL2Spec = msgspec.field(default_factory=RawL2Spec)


class RawBGPAdvSpec(_Raw):
    aggregation_length: int | None = None
    aggregation_length_v6: int | None = None
    local_pref: int = 0
    communities: list[str] | None = None
    ip_address_pools: list[str] | None = None
    ip_address_pool_selectors: list[RawSelector] | None = None
    node_selectors: list[RawSelector] | None = None
    peers: list[str] | None = None
    service_selectors: list[RawSelector] | None = None


class RawBGPAdv(_Raw):
    metadata: RawMeta
    spec: RawBGPAdvSpec = msgspec.field(default_factory=RawBGPAdvSpec)


class RawSecretRef(_Raw):
    name: str = ""
    namespace: str = ""


class RawPeerSpec(_Raw):
    my_asn: int = msgspec.field(default=0, name="myASN")
    peer_asn: int = msgspec.field(default=0, name="peerASN")
    dynamic_asn: str = msgspec.field(default="", name="dynamicASN")
    local_asn: int = msgspec.field(default=0, name="localASN")
    peer_address: str = ""
    interface: str = ""
    source_address: str = ""
    peer_port: int = 179
    hold_time: str | None = None
    keepalive_time: str | None = None
    connect_time: str | None = None
    router_id: str = msgspec.field(default="", name="routerID")
    node_selectors: list[RawSelector] | None = None
    password: str = ""
    password_secret: RawSecretRef | None = None
    bfd_profile: str = ""
    enable_graceful_restart: bool = False
    ebgp_multi_hop: bool = False
    vrf: str = ""
    disable_mp: bool = msgspec.field(default=False, name="disableMP")
    dual_stack_address_family: bool = False


class RawPeer(_Raw):
    api_version: str = ""
    metadata: RawMeta = msgspec.field(default_factory=RawMeta)
    spec: RawPeerSpec = msgspec.field(default_factory=RawPeerSpec)


class RawCommunityAlias(_Raw):
    name: str = ""
    value: str = ""


class RawCommunitySpec(_Raw):
    communities: list[RawCommunityAlias] | None = None


class RawCommunity(_Raw):
    metadata: RawMeta
    spec: RawCommunitySpec = msgspec.field(default_factory=RawCommunitySpec)


class RawBFDSpec(_Raw):
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


class RawBFD(_Raw):
    metadata: RawMeta
    spec: RawBFDSpec = msgspec.field(default_factory=RawBFDSpec)


# --------------------------------------------------------------------------------------------------------------
# Helpers


def _pairs(d: dict[str, str] | None) -> schema.Pairs:
    return tuple(sorted((d or {}).items()))


def _selector(raw: RawSelector) -> schema.LabelSelector:
    return schema.LabelSelector(
        match_labels=_pairs(raw.match_labels),
        match_expressions=tuple(
            schema.Requirement(key=r.key, operator=r.operator, values=tuple(r.values or ()))
            for r in (raw.match_expressions or ())
        ),
    )


def _selectors(raws: list[RawSelector] | None) -> tuple[schema.LabelSelector, ...]:
    return tuple(_selector(r) for r in (raws or ()))


def _canonical_ip(text: str, where: str) -> str:
    try:
        return codec.canonical_ip(text.strip())
    except ValueError:
        raise TranslateError(f"{where}: {text!r} is not an IP address") from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_duration_ms(text: str, where: str) -> int:
    """A Go duration string (``90s``, ``1m30s``, ``500ms``) in whole milliseconds."""
    s = text.strip()
    if s == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise TranslateError(f"{where}: invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if not s:
        raise TranslateError(f"{where}: invalid duration {text!r}")
    return int(total)


def _convert(obj: dict[str, Any], typ: type, what: str) -> Any:
    if isinstance(obj, typ):  # already decoded from JSON into its raw Struct (events.watchjson)
        return obj
    try:
        return msgspec.convert(obj, typ, strict=True)
    except msgspec.ValidationError as exc:
        raise TranslateError(f"{what}: {exc}") from None


def _name(meta: RawMeta, what: str, namespaced: bool) -> None:
    if not meta.name:
        raise TranslateError(f"{what}: metadata.name is missing")
    if namespaced and not meta.namespace:
        raise TranslateError(f"{what} {meta.name}: metadata.namespace is missing")


# --------------------------------------------------------------------------------------------------------------
# Per kind


_V4 = codec.CANONICAL_V4  # a canonical dotted quad: kept as it is, without parsing (nearly every address)
_SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _fast_ips(texts: list[str], keep_none: bool = False) -> tuple[str, ...] | None:
    """``texts`` as they are when every one is already a canonical dotted quad (or, with ``keep_none``, the literal
    ``None`` of a headless Service): the common case, one regex match each. None: go through :func:`_ips`."""
    for ip in texts:
        if _V4(ip) is None and not (keep_none and ip == "None"):
            return None
    return tuple(texts)


def _ips(texts: list[str], field: str, keep_none: bool = False) -> tuple[str, ...]:
    """The canonical texts of ``texts``; a bad one is named ``field[i]``."""
    return tuple(ip if keep_none and ip == "None" else _canonical_ip(ip, f"{field}[{i}]")
                 for i, ip in enumerate(texts))


def _service(obj: dict[str, Any]) -> schema.Service:
    return service_of(_convert(obj, RawService, "Service"))


def service_of(raw: RawService) -> schema.Service:
    """The canonical Service of a decoded raw one (:func:`translate`'s work after the type checks)."""
    meta = raw.metadata
    name, namespace = meta.name, meta.namespace
    if not name or not namespace:
        _name(meta, "Service", True)
    spec = raw.spec
    cluster_ips = spec.cluster_i_ps or ([spec.cluster_ip] if spec.cluster_ip else ())
    if len(cluster_ips) == 1 and _V4(cluster_ips[0]) is not None:
        canon: tuple[str, ...] = (cluster_ips[0],)
    elif cluster_ips:
        canon = _fast_ips(cluster_ips, keep_none=True) or _ips(
            cluster_ips, f"Service {namespace}/{name}: spec.clusterIPs", keep_none=True)
    else:
        canon = ()
    ingress: tuple[str, ...] = ()
    status = raw.status
    if status is not None:
        lb = status.load_balancer
        if lb is not None and lb.ingress:
            ips = [ing.ip for ing in lb.ingress]
            if all(ips) and all(_V4(ip) is not None for ip in ips):
                ingress = tuple(ips)
            else:
                where = f"Service {namespace}/{name}"
                ingress = tuple(_canonical_ip(ip, f"{where}: status.loadBalancer.ingress[{i}].ip")
                                for i, ip in enumerate(ips) if ip)
    ann = meta.annotations
    if ann:
        kept = [kv for kv in ann.items() if kv[0].startswith(_KEEP_ANNOTATION_PREFIXES)]
        annotations = tuple(sorted(kept)) if kept else ()
    else:
        annotations = ()
    ports: tuple[schema.ServicePort, ...] = ()
    raw_ports = spec.ports
    if raw_ports:
        out = []
        for p in raw_ports:
            port = p.port
            if not 0 <= port <= 65535:
                i = raw_ports.index(p)  # the first equal entry is this one (an earlier one would have failed)
                raise TranslateError(f"Service {namespace}/{name}: spec.ports[{i}].port {port} out of range")
            key = (p.protocol or "TCP", port)
            out.append(_PORTS.get(key) or _port(*key))
        ports = tuple(out)
    labels, selector = meta.labels, spec.selector
    return _Service(
        namespace=namespace,
        name=name,
        labels=tuple(sorted(labels.items())) if labels else (),
        annotations=annotations,
        type=spec.type or "ClusterIP",
        cluster_ips=canon,
        ip_families=tuple(spec.ip_families) if spec.ip_families else (),
        ip_family_policy=spec.ip_family_policy or "SingleStack",
        load_balancer_class=spec.load_balancer_class,
        load_balancer_ip=spec.load_balancer_ip.strip() if spec.load_balancer_ip else "",
        external_traffic_policy=spec.external_traffic_policy or "Cluster",
        selector=tuple(sorted(selector.items())) if selector else (),
        ports=ports,
        ingress_ips=ingress,
    )


_Service = schema.Service
_PORTS: dict[tuple[str, int], schema.ServicePort] = {}


def _port(protocol: str, port: int) -> schema.ServicePort:
    """One ServicePort value per (protocol, port) (frozen values: sharing them changes nothing but memory)."""
    got = _PORTS.get((protocol, port))
    if got is None:
        if len(_PORTS) >= 65_536:
            _PORTS.clear()
        got = _PORTS[(protocol, port)] = schema.ServicePort(protocol=protocol, port=port)
    return got


def _node(obj: dict[str, Any]) -> schema.Node:
    return node_of(_convert(obj, RawNode, "Node"))


def node_of(raw: RawNode) -> schema.Node:
    """The canonical Node of a decoded raw one."""
    meta = raw.metadata
    if not meta.name:
        _name(meta, "Node", False)
    unavailable = False
    internal: list[str] = []
    status = raw.status
    if status is not None:
        for c in status.conditions or ():
            if c.type == "NetworkUnavailable" and c.status == "True":
                unavailable = True
                break
        # InternalIPs (for `router-config`): the kubelet reports them; one that does not parse is left out, not fatal
        for a in status.addresses or ():
            if a.type == "InternalIP" and _parses_ip(a.address):
                ip = str(ipaddress.ip_address(a.address.strip()))
                if ip not in internal:
                    internal.append(ip)
    labels = meta.labels
    return schema.Node(name=meta.name, labels=tuple(sorted(labels.items())) if labels else (),
                       network_unavailable=unavailable, internal_ips=tuple(internal))


def _parses_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return "%" not in text


def _namespace(obj: dict[str, Any]) -> schema.Namespace:
    return namespace_of(_convert(obj, RawNamespace, "Namespace"))


def namespace_of(raw: RawNamespace) -> schema.Namespace:
    """The canonical Namespace of a decoded raw one."""
    _name(raw.metadata, "Namespace", False)
    return schema.Namespace(name=raw.metadata.name, labels=_pairs(raw.metadata.labels))


_NO_CONDITIONS = RawConditions()


def _endpoint_slice(obj: dict[str, Any]) -> schema.EndpointSlice | Ignored:
    return endpoint_slice_of(_convert(obj, RawEndpointSlice, "EndpointSlice"))


def endpoint_slice_of(raw: RawEndpointSlice) -> schema.EndpointSlice | Ignored:
    """The canonical EndpointSlice of a decoded raw one (or the key it is ignored under)."""
    meta = raw.metadata
    name, namespace = meta.name, meta.namespace
    if not name or not namespace:
        _name(meta, "EndpointSlice", True)
    address_type = raw.address_type
    if address_type != "IPv4" and address_type != "IPv6":
        return Ignored(f"discovery.k8s.io/v1/EndpointSlice[{address_type}]")
    eps: tuple[schema.Endpoint, ...] = ()
    if raw.endpoints:
        out = []
        add = out.append
        Endpoint = schema.Endpoint
        V4 = _V4
        for ep in raw.endpoints:
            c = ep.conditions or _NO_CONDITIONS
            addresses = ep.addresses
            if addresses:
                if len(addresses) == 1 and V4(addresses[0]) is not None:
                    addresses = (addresses[0],)
                else:  # (index: the first equal endpoint is this one, an earlier one would have failed)
                    addresses = _fast_ips(addresses) or _ips(
                        addresses,
                        f"EndpointSlice {namespace}/{name}: endpoints[{raw.endpoints.index(ep)}].addresses")
            else:
                addresses = ()
            add(Endpoint(addresses=addresses, ready=c.ready, serving=c.serving, terminating=c.terminating,
                         node_name=ep.node_name))
        eps = tuple(out)
    labels = meta.labels
    return _EndpointSlice(
        namespace=namespace,
        name=name,
        labels=tuple(sorted(labels.items())) if labels else (),
        service_name=labels.get(_SERVICE_NAME_LABEL, "") if labels else "",
        address_type=address_type,
        endpoints=eps,
    )


_EndpointSlice = schema.EndpointSlice


def _pool(obj: dict[str, Any]) -> schema.IPAddressPool:
    raw: RawPool = _convert(obj, RawPool, "IPAddressPool")
    _name(raw.metadata, "IPAddressPool", True)
    sa = raw.spec.service_allocation
    return schema.IPAddressPool(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        addresses=tuple(a.strip() for a in (raw.spec.addresses or ())),
        auto_assign=raw.spec.auto_assign,
        avoid_buggy_ips=raw.spec.avoid_buggy_i_ps,
        service_allocation=None
        if sa is None
        else schema.ServiceAllocation(
            priority=sa.priority,
            namespaces=tuple(sa.namespaces or ()),
            namespace_selectors=_selectors(sa.namespace_selectors),
            service_selectors=_selectors(sa.service_selectors),
        ),
    )


def _l2(obj: dict[str, Any]) -> schema.L2Advertisement:
    raw: RawL2 = _convert(obj, RawL2, "L2Advertisement")
    _name(raw.metadata, "L2Advertisement", True)
    s = raw.spec
    return schema.L2Advertisement(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        ip_address_pools=tuple(s.ip_address_pools or ()),
        ip_address_pool_selectors=_selectors(s.ip_address_pool_selectors),
        node_selectors=_selectors(s.node_selectors),
        interfaces=tuple(s.interfaces or ()),
        service_selectors=_selectors(s.service_selectors),
        preferred_node_selectors=tuple(
            schema.PreferredNodeSelector(
                weight=p.weight,
                preference=_selector(p.preference) if p.preference is not None else schema.LabelSelector(),
            )
            for p in (s.preferred_node_selectors or ())
        ),
    )


def _bgp_adv(obj: dict[str, Any]) -> schema.BGPAdvertisement:
    raw: RawBGPAdv = _convert(obj, RawBGPAdv, "BGPAdvertisement")
    _name(raw.metadata, "BGPAdvertisement", True)
    s = raw.spec
    return schema.BGPAdvertisement(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        aggregation_length=s.aggregation_length,
        aggregation_length_v6=s.aggregation_length_v6,
        local_pref=s.local_pref,
        communities=tuple(c.strip() for c in (s.communities or ())),
        ip_address_pools=tuple(s.ip_address_pools or ()),
        ip_address_pool_selectors=_selectors(s.ip_address_pool_selectors),
        node_selectors=_selectors(s.node_selectors),
        peers=tuple(s.peers or ()),
        service_selectors=_selectors(s.service_selectors),
    )


def _peer(obj: dict[str, Any], api_version: str) -> schema.BGPPeer:
    raw: RawPeer = _convert(obj, RawPeer, "BGPPeer")
    _name(raw.metadata, "BGPPeer", True)
    s = raw.spec
    where = f"BGPPeer {raw.metadata.namespace}/{raw.metadata.name}"

    def dur(v: str | None, field: str) -> int | None:
        return None if v is None else parse_duration_ms(v, f"{where}: spec.{field}")

    secret = None
    if s.password_secret is not None and s.password_secret.name:
        secret = schema.SecretRef(namespace=s.password_secret.namespace, name=s.password_secret.name)
    return schema.BGPPeer(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        api_version=api_version.rpartition("/")[2],
        my_asn=s.my_asn,
        peer_asn=s.peer_asn,
        dynamic_asn=s.dynamic_asn,
        local_asn=s.local_asn,
        peer_address=s.peer_address.strip(),
        interface=s.interface,
        source_address=s.source_address.strip(),
        peer_port=s.peer_port,
        hold_time_ms=dur(s.hold_time, "holdTime"),
        keepalive_time_ms=dur(s.keepalive_time, "keepaliveTime"),
        connect_time_ms=dur(s.connect_time, "connectTime"),
        router_id=s.router_id.strip(),
        node_selectors=_selectors(s.node_selectors),
        password_set=bool(s.password),
        password_secret=secret,
        bfd_profile=s.bfd_profile,
        enable_graceful_restart=s.enable_graceful_restart,
        ebgp_multi_hop=s.ebgp_multi_hop,
        vrf=s.vrf,
        disable_mp=s.disable_mp,
        dual_stack_address_family=s.dual_stack_address_family,
    )


def _community(obj: dict[str, Any]) -> schema.Community:
    raw: RawCommunity = _convert(obj, RawCommunity, "Community")
    _name(raw.metadata, "Community", True)
    return schema.Community(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        communities=tuple(
            schema.CommunityAlias(name=c.name, value=c.value.strip()) for c in (raw.spec.communities or ())
        ),
    )


def _bfd(obj: dict[str, Any]) -> schema.BFDProfile:
    raw: RawBFD = _convert(obj, RawBFD, "BFDProfile")
    _name(raw.metadata, "BFDProfile", True)
    s = raw.spec
    return schema.BFDProfile(
        namespace=raw.metadata.namespace,
        name=raw.metadata.name,
        labels=_pairs(raw.metadata.labels),
        receive_interval=s.receive_interval,
        transmit_interval=s.transmit_interval,
        detect_multiplier=s.detect_multiplier,
        echo_interval=s.echo_interval,
        echo_mode=s.echo_mode,
        passive_mode=s.passive_mode,
        minimum_ttl=s.minimum_ttl,
    )


_CORE = {
    ("v1", "Service"): _service,
    ("v1", "Node"): _node,
    ("v1", "Namespace"): _namespace,
    ("discovery.k8s.io/v1", "EndpointSlice"): _endpoint_slice,
}
_METALLB = {
    ("v1beta1", "IPAddressPool"): _pool,
    ("v1beta1", "L2Advertisement"): _l2,
    ("v1beta1", "BGPAdvertisement"): _bgp_adv,
    ("v1beta1", "Community"): _community,
    ("v1beta1", "BFDProfile"): _bfd,
}
_METALLB_KINDS = {k for _, k in _METALLB} | {"BGPPeer"}


def translate(obj: Any, metallb_namespaces: tuple[str, ...] = ("metallb-system",)) -> schema.K8sObject | Ignored:
    """Translate one Kubernetes object. Raises :class:`TranslateError` for a malformed object of a known kind."""
    if not isinstance(obj, dict):
        raise TranslateError(f"expected a Kubernetes object (mapping), got {type(obj).__name__}")
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        raise TranslateError("object has no apiVersion/kind")
    key = f"{api_version}/{kind}"
    core = _CORE.get((api_version, kind))
    if core is not None:
        return core(obj)
    group, _, version = api_version.rpartition("/")
    if group == METALLB_GROUP and kind in _METALLB_KINDS:
        if kind == "BGPPeer" and version in ("v1beta1", "v1beta2"):
            result: schema.K8sObject = _peer(obj, api_version)
        elif (version, kind) in _METALLB:
            result = _METALLB[(version, kind)](obj)
        else:
            return Ignored(key)
        if result.namespace not in metallb_namespaces:
            return Ignored(f"{key}[namespace {result.namespace}]")
        return result
    return Ignored(key)


def translate_core(api_version: str, kind: str, raw: Any) -> schema.K8sObject | Ignored | None:
    """:func:`translate` for a core object (Service, Node, Namespace, EndpointSlice) already decoded into its raw
    Struct (or a subclass), as :mod:`events.watchjson` does; None for any other ``apiVersion``/``kind``."""
    fn = _CORE.get((api_version, kind))
    return None if fn is None else fn(raw)


def reference(obj: Any, metallb_namespaces: tuple[str, ...] = ("metallb-system",)) -> schema.ObjectRef | Ignored:
    """The reference of a deleted object (only its identity is needed). Raises :class:`TranslateError`."""
    if not isinstance(obj, dict):
        raise TranslateError(f"expected a Kubernetes object (mapping), got {type(obj).__name__}")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name, namespace = meta.get("name"), meta.get("namespace", "")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise TranslateError("object has no apiVersion/kind")
    if not isinstance(name, str) or not name:
        raise TranslateError(f"{kind}: metadata.name is missing")
    if not isinstance(namespace, str):
        raise TranslateError(f"{kind} {name}: metadata.namespace is not a string")
    key = f"{api_version}/{kind}"
    group, _, version = api_version.rpartition("/")
    known = (api_version, kind) in _CORE or (group == METALLB_GROUP and kind in _METALLB_KINDS)
    if not known or (kind == "EndpointSlice" and obj.get("addressType", "IPv4") not in ("IPv4", "IPv6")):
        return Ignored(key)
    if group == METALLB_GROUP and namespace not in metallb_namespaces:
        return Ignored(f"{key}[namespace {namespace}]")
    if kind in ("Node", "Namespace"):
        namespace = ""
    return schema.ObjectRef(kind=kind, namespace=namespace, name=name)
