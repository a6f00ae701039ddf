"""streamlb's event vocabulary, codec and log adapters.

``import events`` stays cheap and pure: it never imports Redis or file adapters.
"""

from events.codec import DecodeError, decode, decode_json, encode, encode_json
from events.schema import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    EndpointSlice,
    Event,
    IPAddressPool,
    K8sDelete,
    K8sUpsert,
    L2Advertisement,
    Namespace,
    Node,
    ObjectRef,
    Service,
    SpeakerDown,
    SpeakerUp,
)

__all__ = [
    "BFDProfile", "BGPAdvertisement", "BGPPeer", "Community", "DecodeError", "EndpointSlice", "Event",
    "IPAddressPool", "K8sDelete", "K8sUpsert", "L2Advertisement", "Namespace", "Node", "ObjectRef", "Service",
    "SpeakerDown", "SpeakerUp", "decode", "decode_json", "encode", "encode_json",
]
