"""tshark as an independent dissector of our BFD control packets (UDP to 3784 / 4784): every field tshark reads
equals what the builder was asked for; no malformed packet, no expert warning."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fastpath import bfd
from tests.integration.test_tshark_frames import IP, Ether, Raw, dissect, tshark  # noqa: F401 - fixture

from scapy.layers.inet import UDP  # noqa: E402

pytestmark = pytest.mark.integration


def test_control_packets(tshark: str, tmp_path: Path) -> None:  # noqa: F811
    rng = random.Random(5)
    asked = []
    for i in range(40):
        state = rng.randrange(4)
        a = dict(state=state, diag=rng.randrange(9), detect_mult=rng.randrange(1, 256),
                 my_disc=rng.randrange(1, 2**32), your_disc=rng.randrange(1, 2**32) if state > 1 else 0,
                 min_tx=rng.randrange(2**32), min_rx=rng.randrange(2**32), min_echo_rx=rng.randrange(2**32),
                 poll=i % 3 == 1, final=i % 3 == 2, cpi=rng.random() < 0.5, demand=rng.random() < 0.2)
        asked.append(a)
    pkts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2", ttl=255)
            / UDP(sport=49152 + i, dport=4784 if i % 2 else 3784) / Raw(bfd.build_control(**a))
            for i, a in enumerate(asked)]
    for a, f in zip(asked, dissect(tshark, tmp_path, pkts)):
        assert f["bfd.version"] == ["1"]
        assert int(f["bfd.diag"][0], 0) == a["diag"]
        assert int(f["bfd.sta"][0], 0) == a["state"]
        assert [f[k][0] for k in ("bfd.flags.p", "bfd.flags.f", "bfd.flags.c", "bfd.flags.d", "bfd.flags.a",
                                  "bfd.flags.m")] == [str(int(a[k])) for k in ("poll", "final", "cpi", "demand")] + [
            "0", "0"]
        assert int(f["bfd.detect_time_multiplier"][0]) == a["detect_mult"]
        assert int(f["bfd.message_length"][0]) == 24
        assert int(f["bfd.my_discriminator"][0], 0) == a["my_disc"]
        assert int(f["bfd.your_discriminator"][0], 0) == a["your_disc"]
        assert int(f["bfd.desired_min_tx_interval"][0]) == a["min_tx"]
        assert int(f["bfd.required_min_rx_interval"][0]) == a["min_rx"]
        assert int(f["bfd.required_min_echo_interval"][0]) == a["min_echo_rx"]
