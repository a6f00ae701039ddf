"""What both BFD codec twins share: the decoded packet, the one error the decoder raises, and the wire constants.

RFC 5880 §4.1, the mandatory section of a control packet (24 bytes), optionally followed by an authentication
section (type, length, data)::

    byte 0  version (3 bits) | diagnostic (5 bits)
    byte 1  state (2 bits) | P F C A D M flags
    byte 2  detect multiplier          byte 3  length (whole packet)
    4..7    my discriminator           8..11   your discriminator
    12..15  desired min TX interval    16..19  required min RX interval    20..23  required min echo RX interval

Intervals are in microseconds on the wire.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

VERSION = 1
HEADER_LEN = 24
PORT_SINGLE_HOP = 3784  # RFC 5881 §4
PORT_ECHO = 3785
PORT_MULTI_HOP = 4784  # RFC 5883 §5
SOURCE_PORTS = (49152, 65535)  # RFC 5881 §4: the source port range

FLAG_P, FLAG_F, FLAG_C, FLAG_A, FLAG_D, FLAG_M = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01


class State(enum.IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(enum.IntEnum):  # RFC 5880 §4.1
    NONE = 0
    TIME_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_DOWN = 3
    FORWARDING_RESET = 4
    PATH_DOWN = 5
    CONCAT_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCAT_PATH_DOWN = 8


STATE_NAMES = {0: "AdminDown", 1: "Down", 2: "Init", 3: "Up"}


class BfdError(ValueError):
    """A control packet RFC 5880 §6.8.6 says to discard. The decoders raise this and nothing else."""


class Control(NamedTuple):
    """One decoded control packet. ``auth`` is the raw authentication section (empty when there is none)."""

    state: int
    diag: int = 0
    detect_mult: int = 3
    my_disc: int = 1
    your_disc: int = 0
    min_tx: int = 1_000_000  # desired min TX interval, µs
    min_rx: int = 1_000_000  # required min RX interval, µs
    min_echo_rx: int = 0  # required min echo RX interval, µs
    poll: bool = False
    final: bool = False
    cpi: bool = False  # control plane independent
    auth_present: bool = False  # the A bit
    demand: bool = False
    auth: bytes = b""

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]
