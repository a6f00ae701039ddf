"""Protocol numbers used by the fast path: the single source for both twins.

The ``.pyx`` modules copy what they need from here into typed module globals at import; nothing here is
duplicated by hand. Every group cites the RFC that defines it.
"""

from __future__ import annotations

import enum

# --- Ethernet / ARP / IPv6 / ICMPv6 -------------------------------------------------------------------------------

ETH_HEADER_LEN = 14
ETH_BROADCAST = b"\xff" * 6
ETH_ALL_NODES = bytes.fromhex("333300000001")  # RFC 2464 §7: 33:33 + low 32 bits of ff02::1
IPV6_ALL_NODES = 0xFF020000000000000000000000000001  # ff02::1, RFC 4291 §2.7.1
ARP_FRAME_LEN = 42  # 14 Ethernet + 28 ARP, unpadded (design.md §6)
NDP_NA_FRAME_LEN = 86  # 14 Ethernet + 40 IPv6 + 24 NA + 8 target link-layer option
NDP_HOP_LIMIT = 255  # RFC 4861 §7.1.1/§7.1.2: NDP packets must carry hop limit 255


class EtherType(enum.IntEnum):
    """IEEE 802 EtherTypes."""

    IPV4 = 0x0800
    ARP = 0x0806
    IPV6 = 0x86DD


class ArpOp(enum.IntEnum):
    """ARP opcodes, RFC 826."""

    REQUEST = 1
    REPLY = 2


ARP_HTYPE_ETHERNET = 1  # RFC 826 ar$hrd
IP_PROTO_ICMPV6 = 58  # RFC 4443


class Icmp6Type(enum.IntEnum):
    """ICMPv6 types used by NDP, RFC 4861 §4."""

    NEIGHBOR_SOLICITATION = 135
    NEIGHBOR_ADVERTISEMENT = 136


class NdpOption(enum.IntEnum):
    """NDP option types, RFC 4861 §4.6."""

    SOURCE_LL_ADDRESS = 1
    TARGET_LL_ADDRESS = 2


# Neighbor Advertisement flags, RFC 4861 §4.4 (first byte of the 32-bit flags word).
NA_FLAG_ROUTER = 0x80
NA_FLAG_SOLICITED = 0x40
NA_FLAG_OVERRIDE = 0x20


class DropReason(enum.StrEnum):
    """Why the L2 responder ignored a packet (MetalLB's ``dropReason``, named, camelCase).

    The parsers return one of these instead of a request; the responder adds ``notAnnounced`` when the target is
    not an address this node owns on the interface.
    """

    TRUNCATED = "truncated"
    NOT_ARP = "notArp"
    BAD_ARP_HEADER = "badArpHeader"
    NOT_ARP_REQUEST = "notArpRequest"
    NOT_FOR_US = "notForUs"  # Ethernet destination neither broadcast nor ours (MetalLB's rule)
    NOT_IPV6 = "notIpv6"
    NOT_ICMPV6 = "notIcmpv6"
    NOT_NEIGHBOR_SOLICITATION = "notNeighborSolicitation"
    BAD_HOP_LIMIT = "badHopLimit"  # RFC 4861 §7.1.1
    BAD_ICMP_CODE = "badIcmpCode"  # RFC 4861 §7.1.1
    BAD_CHECKSUM = "badChecksum"
    MULTICAST_TARGET = "multicastTarget"  # RFC 4861 §7.1.1
    BAD_OPTION = "badOption"  # an option of length zero, or overrunning the packet (RFC 4861 §7.1.1)
    NO_SOURCE_LL_ADDRESS = "noSourceLinkLayerAddress"  # MetalLB ignores NS without it (also covers DAD probes)
    NOT_ANNOUNCED = "notAnnounced"  # target not owned here (decided by the responder, not the parser)


# --- BGP ----------------------------------------------------------------------------------------------------------

BGP_MARKER = b"\xff" * 16  # RFC 4271 §4.1
BGP_HEADER_LEN = 19
BGP_MAX_MESSAGE = 4096  # RFC 4271 §4.1
BGP_MAX_EXTENDED = 65535  # RFC 8654
BGP_VERSION = 4
AS_TRANS = 23456  # RFC 6793 §9
DEFAULT_LOCAL_PREF = 100  # what FRR sends on iBGP when nothing is configured (design.md §6)


class MsgType(enum.IntEnum):
    """BGP message types, RFC 4271 §4.1 and RFC 2918 §3."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class AttrFlag(enum.IntFlag):
    """Path attribute flags, RFC 4271 §4.3."""

    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class AttrType(enum.IntEnum):
    """Path attribute type codes (RFC 4271 §5, RFC 1997, RFC 4760, RFC 6793, RFC 8092)."""

    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITIES = 32


class Origin(enum.IntEnum):
    """ORIGIN values, RFC 4271 §5.1.1."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class AsSegmentType(enum.IntEnum):
    """AS_PATH segment types, RFC 4271 §4.3 and RFC 5065."""

    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class Afi(enum.IntEnum):
    """Address family identifiers (IANA), RFC 4760."""

    IPV4 = 1
    IPV6 = 2


class Safi(enum.IntEnum):
    """Subsequent address family identifiers, RFC 4760."""

    UNICAST = 1


class Capability(enum.IntEnum):
    """Capability codes in OPEN, RFC 5492 and the RFCs named."""

    MULTIPROTOCOL = 1  # RFC 4760
    ROUTE_REFRESH = 2  # RFC 2918
    EXTENDED_MESSAGE = 6  # RFC 8654
    GRACEFUL_RESTART = 64  # RFC 4724
    FOUR_OCTET_AS = 65  # RFC 6793
    ADD_PATH = 69  # RFC 7911


OPT_PARAM_CAPABILITIES = 2  # RFC 5492 §4


class ErrorCode(enum.IntEnum):
    """NOTIFICATION error codes, RFC 4271 §4.5 and RFC 7313 §5."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH_MESSAGE = 7


class HeaderError(enum.IntEnum):
    """Message Header Error subcodes, RFC 4271 §6.1."""

    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenError(enum.IntEnum):
    """OPEN Message Error subcodes, RFC 4271 §6.2 and RFC 5492."""

    UNSPECIFIC = 0
    UNSUPPORTED_VERSION = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7


class UpdateError(enum.IntEnum):
    """UPDATE Message Error subcodes, RFC 4271 §6.3."""

    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN = 6
    INVALID_NEXT_HOP = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class RouteRefreshError(enum.IntEnum):
    """ROUTE-REFRESH Message Error subcodes, RFC 7313 §5."""

    INVALID_MESSAGE_LENGTH = 1
