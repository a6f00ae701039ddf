"""Every refusal has a name: the stable camelCase reason codes of decisions (design.md §4).

The values are a contract (replay JSON, metrics labels, ``streamlb explain``); never rename one. MetalLB's names
are used where MetalLB has one.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    # allocation (per Service)
    NO_CONFIGURATION = "noConfiguration"
    NO_CLUSTER_IP = "noClusterIP"
    NO_MATCHING_POOL = "noMatchingPool"
    NO_AVAILABLE_IPS = "noAvailableIPs"
    UNKNOWN_POOL = "unknownPool"
    SHARING_CONFLICT = "sharingConflict"
    INVALID_REQUESTED_IP = "invalidRequestedIP"
    REQUESTED_IP_NOT_ALLOWED = "requestedIPNotAllowed"
    FAMILY_MISMATCH = "familyMismatch"
    NOT_ENOUGH_CLUSTER_IPS = "notEnoughClusterIPs"
    PARTIAL_DUAL_STACK = "partialDualStack"
    # announcement (per IP / node)
    NO_IP_ALLOCATED = "noIPAllocated"
    NOT_OWNER = "notOwner"
    NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
    NO_ENDPOINTS = "noEndpoints"  # MetalLB's name (BGP); renamed from noServingEndpoints (issue 13)
    NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
    NO_ELIGIBLE_NODES = "noEligibleNodes"
    CONFLICTING_ADVERTISEMENTS = "conflictingAdvertisements"
    NODE_NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
    NODE_LABELED_EXCLUDE_BALANCERS = "nodeLabeledExcludeBalancers"
    SPEAKER_DOWN = "speakerDown"
    SHARED_IP_WITH_SERVICE_SELECTOR = "sharedIPWithServiceSelector"
