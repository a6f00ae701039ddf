"""Layer-2 frames: the compiled ``_l2`` when built, else the pure twin ``_l2_py``.

``FASTPATH_NO_EXTENSIONS=1`` forces the pure twin. ``IMPLEMENTATION`` says which one is in use (``"c"`` or
``"py"``). Builders and the responder's parsers are compiled; the lossless ``decode_frame`` (for people and
tests) is pure Python in both cases.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastpath._l2_py import decode_frame

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))

if TYPE_CHECKING or NO_EXTENSIONS:
    from fastpath._l2_py import (
        build_arp_announce, build_arp_probe, build_arp_reply, build_ndp_advert, build_ndp_reply, build_ns_probe,
        checksum, link_local, parse_arp_request, parse_neighbor_solicitation, solicited_node, write_arp_burst,
        write_ndp_burst,
    )

    IMPLEMENTATION = "py"
else:
    try:
        from fastpath._l2 import (
            build_arp_announce, build_arp_probe, build_arp_reply, build_ndp_advert, build_ndp_reply, build_ns_probe,
            checksum, link_local, parse_arp_request, parse_neighbor_solicitation, solicited_node, write_arp_burst,
        write_ndp_burst,
        )

        IMPLEMENTATION = "c"
    except ImportError:  # pragma: no cover - the loaded-extension test fails in this case
        from fastpath._l2_py import (
            build_arp_announce, build_arp_probe, build_arp_reply, build_ndp_advert, build_ndp_reply, build_ns_probe,
            checksum, link_local, parse_arp_request, parse_neighbor_solicitation, solicited_node, write_arp_burst,
        write_ndp_burst,
        )

        IMPLEMENTATION = "py"

BUILDERS = ("build_arp_announce", "build_arp_reply", "build_ndp_advert", "build_ndp_reply", "checksum",
            "link_local", "write_arp_burst", "write_ndp_burst", "parse_arp_request", "parse_neighbor_solicitation",
            "build_arp_probe", "build_ns_probe", "solicited_node")

__all__ = [*BUILDERS, "decode_frame", "IMPLEMENTATION"]
