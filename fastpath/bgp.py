"""BGP-4 messages: the compiled ``_bgp`` builders when built, else the pure twin ``_bgp_py``.

``FASTPATH_NO_EXTENSIONS=1`` forces the pure twin; ``IMPLEMENTATION`` says which is in use. Decoding
(``decode``, ``split``, ``message_length``, ``is_end_of_rib``) and the general ``encode`` of message values are
pure Python in both cases: they are not hot.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastpath._bgp_decode import decode, is_end_of_rib, message_length, split
from fastpath._bgp_py import encode
from fastpath.model import BgpError

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))

if TYPE_CHECKING or NO_EXTENSIONS:
    from fastpath._bgp_py import (
        build_end_of_rib, build_keepalive, build_notification, build_open, build_route_refresh, encode_attrs,
        pack_updates, pack_withdrawals,
    )

    IMPLEMENTATION = "py"
else:
    try:
        from fastpath._bgp import (
            build_end_of_rib, build_keepalive, build_notification, build_open, build_route_refresh, encode_attrs,
            pack_updates, pack_withdrawals,
        )

        IMPLEMENTATION = "c"
    except ImportError:  # pragma: no cover - the loaded-extension test fails in this case
        from fastpath._bgp_py import (
            build_end_of_rib, build_keepalive, build_notification, build_open, build_route_refresh, encode_attrs,
            pack_updates, pack_withdrawals,
        )

        IMPLEMENTATION = "py"

BUILDERS = ("build_end_of_rib", "build_keepalive", "build_notification", "build_open", "build_route_refresh",
            "encode_attrs", "pack_updates", "pack_withdrawals")

__all__ = [*BUILDERS, "BgpError", "decode", "encode", "is_end_of_rib", "message_length", "split",
           "IMPLEMENTATION"]
