"""BFD control packets (RFC 5880 §4.1): the compiled ``_bfd`` when built, else the pure twin ``_bfd_py``.

``FASTPATH_NO_EXTENSIONS=1`` forces the pure twin; ``IMPLEMENTATION`` says which is in use. ``parse_control``
raises :class:`BfdError` and nothing else.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fastpath._bfd_common import (
    HEADER_LEN, PORT_MULTI_HOP, PORT_SINGLE_HOP, SOURCE_PORTS, STATE_NAMES, BfdError, Control, Diag, State,
)
from fastpath._bfd_py import encode

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))

if TYPE_CHECKING or NO_EXTENSIONS:
    from fastpath._bfd_py import build_control, parse_control

    IMPLEMENTATION = "py"
else:
    try:
        from fastpath._bfd import build_control, parse_control

        IMPLEMENTATION = "c"
    except ImportError:  # pragma: no cover - the loaded-extension test fails in this case
        from fastpath._bfd_py import build_control, parse_control

        IMPLEMENTATION = "py"

BUILDERS = ("build_control", "parse_control")

__all__ = [*BUILDERS, "BfdError", "Control", "Diag", "State", "STATE_NAMES", "HEADER_LEN", "PORT_SINGLE_HOP",
           "PORT_MULTI_HOP", "SOURCE_PORTS", "encode", "IMPLEMENTATION"]
