"""The event vocabulary: frozen, tagged msgspec Structs.

Rules (they are contracts; other tools and old logs depend on them):

1. Tags are permanent. ``kind`` on an event (``k8s.upsert``, ``k8s.delete``, ``speaker.up``, ``speaker.down``) and
   ``kind`` on a Kubernetes object (``Service``, ``IPAddressPool``, ...) are never renamed or reused. A breaking
   change gets a new tag plus an upcaster in :mod:`events.upcast`.
2. New fields get defaults. Fields are never reordered or retyped once shipped.
3. Containers are tuples, never lists or dicts, so a frozen Struct is really immutable. Label and annotation maps
   are tuples of ``(key, value)`` pairs sorted by key.
4. The objects are *canonical*: only the fields that matter for decisions, addresses in canonical text form
   (dotted quad, RFC 5952 IPv6), no secrets (a ``passwordSecret`` stays a reference).
5. Fields that the Kubernetes API server itself validates (cluster IPs, status ingress IPs, endpoint addresses)
   must be canonical addresses; :func:`events.codec.validate` refuses an event that breaks this, so every replica
   folds identical values. Fields that MetalLB validates (pool addresses, requested IPs, communities) are kept
   verbatim and judged by the reconciler, which reports MetalLB's errors.
"""

from __future__ import annotations

from typing import Literal, Union

import msgspec

Pairs = tuple[tuple[str, str], ...]


class _Value(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of value types embedded in objects."""


class Requirement(_Value, kw_only=True):
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()


class LabelSelector(_Value, kw_only=True):
    match_labels: Pairs = ()
    match_expressions: tuple[Requirement, ...] = ()


class ServicePort(_Value, kw_only=True):
    protocol: str = "TCP"
    port: int


class ServiceAllocation(_Value, kw_only=True):
    priority: int = 0
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


class Endpoint(_Value, kw_only=True):
    addresses: tuple[str, ...] = ()
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None
    node_name: str = ""


class SecretRef(_Value, kw_only=True):
    namespace: str = ""
    name: str


class CommunityAlias(_Value, kw_only=True):
    name: str
    value: str


# --------------------------------------------------------------------------------------------------------------
# Kubernetes objects (tagged union on ``kind``)


class _Object(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    namespace: str = ""
    name: str
    labels: Pairs = ()


class Service(_Object, tag="Service", kw_only=True):
    annotations: Pairs = ()  # only metallb.io/* and metallb.universe.tf/* are kept
    type: str = "ClusterIP"
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str = "SingleStack"
    load_balancer_class: str | None = None
    load_balancer_ip: str = ""
    external_traffic_policy: str = "Cluster"
    selector: Pairs = ()
    ports: tuple[ServicePort, ...] = ()
    ingress_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip, in order


class Node(_Object, tag="Node", kw_only=True):
    network_unavailable: bool = False
    internal_ips: tuple[str, ...] = ()  # status.addresses of type InternalIP, canonical, in status order


class Namespace(_Object, tag="Namespace", kw_only=True):
    pass


class EndpointSlice(_Object, tag="EndpointSlice", kw_only=True):
    service_name: str = ""  # label kubernetes.io/service-name
    address_type: str = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()


class IPAddressPool(_Object, tag="IPAddressPool", kw_only=True):
    addresses: tuple[str, ...] = ()
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None


class PreferredNodeSelector(_Value, kw_only=True):
    """One ``spec.preferredNodeSelectors`` entry of an L2Advertisement (MetalLB main): a soft election preference.

    ``weight`` is kept verbatim (the reconciler judges the 1..100 range); an empty ``preference`` matches every node.
    """

    weight: int = 0
    preference: LabelSelector = LabelSelector()


class L2Advertisement(_Object, tag="L2Advertisement", kw_only=True):
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()


class BGPAdvertisement(_Object, tag="BGPAdvertisement", kw_only=True):
    aggregation_length: int | None = None
    aggregation_length_v6: int | None = None
    local_pref: int = 0
    communities: tuple[str, ...] = ()
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


class BGPPeer(_Object, tag="BGPPeer", kw_only=True):
    api_version: str = "v1beta2"
    my_asn: int = 0
    peer_asn: int = 0
    dynamic_asn: str = ""
    local_asn: int = 0
    peer_address: str = ""
    interface: str = ""
    source_address: str = ""
    peer_port: int = 179
    hold_time_ms: int | None = None
    keepalive_time_ms: int | None = None
    connect_time_ms: int | None = None
    router_id: str = ""
    node_selectors: tuple[LabelSelector, ...] = ()
    password_set: bool = False  # a plain spec.password exists; its value never enters the log
    password_secret: SecretRef | None = None
    bfd_profile: str = ""
    enable_graceful_restart: bool = False
    ebgp_multi_hop: bool = False
    vrf: str = ""
    disable_mp: bool = False
    dual_stack_address_family: bool = False


class Community(_Object, tag="Community", kw_only=True):
    communities: tuple[CommunityAlias, ...] = ()


class BFDProfile(_Object, tag="BFDProfile", kw_only=True):
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None


K8sObject = Union[
    Service,
    Node,
    Namespace,
    EndpointSlice,
    IPAddressPool,
    L2Advertisement,
    BGPAdvertisement,
    BGPPeer,
    Community,
    BFDProfile,
]

OBJECT_KINDS: tuple[str, ...] = (
    "Service",
    "Node",
    "Namespace",
    "EndpointSlice",
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
)

ObjectKind = Literal[
    "Service",
    "Node",
    "Namespace",
    "EndpointSlice",
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
]


class ObjectRef(_Value, kw_only=True):
    kind: ObjectKind
    namespace: str = ""
    name: str


# --------------------------------------------------------------------------------------------------------------
# Events (tagged union on ``kind``)


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", forbid_unknown_fields=True):
    pass


class K8sUpsert(_Event, tag="k8s.upsert", kw_only=True):
    """A Kubernetes object was created or changed (or re-listed); replaces any previous version."""

    obj: K8sObject


class K8sDelete(_Event, tag="k8s.delete", kw_only=True):
    """A Kubernetes object was deleted."""

    ref: ObjectRef


class SpeakerUp(_Event, tag="speaker.up", kw_only=True):
    """The speaker on ``node`` is alive (appended on start and when its heartbeat reappears)."""

    node: str


class SpeakerDown(_Event, tag="speaker.down", kw_only=True):
    """The speaker on ``node`` stopped (clean exit or heartbeat expiry)."""

    node: str


Event = Union[K8sUpsert, K8sDelete, SpeakerUp, SpeakerDown]

EVENT_TAGS: dict[str, type] = {
    "k8s.upsert": K8sUpsert,
    "k8s.delete": K8sDelete,
    "speaker.up": SpeakerUp,
    "speaker.down": SpeakerDown,
}


def ref_of(obj: K8sObject) -> ObjectRef:
    """The reference naming ``obj`` (what a delete carries)."""
    return ObjectRef(kind=type(obj).__struct_config__.tag, namespace=obj.namespace, name=obj.name)
