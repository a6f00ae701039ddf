"""``streamlb frames bfd`` and ``frames decode`` of BFD control packets: exact bytes, decode back, errors."""

from __future__ import annotations

import json
import struct

from typer.testing import CliRunner

from reconciler.runtime.cli.app import app

runner = CliRunner()


def test_bfd_builder_exact_bytes() -> None:
    res = runner.invoke(app, ["frames", "bfd", "--my-disc", "258", "--your-disc", "9", "--state", "up",
                              "--tx-ms", "300", "--rx-ms", "200", "--mult", "5", "--poll"])
    assert res.exit_code == 0, res.output
    want = struct.pack("!BBBBIIIII", 0x20, 0xE0, 5, 24, 258, 9, 300_000, 200_000, 0)
    assert res.stdout.strip() == want.hex()


def test_decode_recognises_bfd() -> None:
    pkt = struct.pack("!BBBBIIIII", 0x23, 0x50, 3, 24, 7, 0, 1_000_000, 300_000, 0)  # Down, F bit, diag 3
    res = runner.invoke(app, ["frames", "decode", pkt.hex(), "-o", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert (d["kind"], d["state_name"], d["diag_name"], d["final"], d["poll"], d["my_discriminator"],
            d["desired_min_tx_us"], d["required_min_rx_us"]) == (
        "bfd", "Down", "neighbor-down", True, False, 7, 1_000_000, 300_000)
    res = runner.invoke(app, ["frames", "decode", pkt.hex()])
    assert "state_name: Down" in res.stdout


def test_decode_bfd_errors_are_one_line() -> None:
    bad = struct.pack("!BBBBIIIII", 0x20, 0xC0, 3, 24, 7, 0, 1, 1, 0)  # Up with your discriminator 0
    res = runner.invoke(app, ["frames", "decode", "--kind", "bfd", bad.hex()])
    assert res.exit_code == 2 and "your discriminator 0" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["frames", "decode", "--kind", "bfd", "2040"])
    assert res.exit_code == 2 and "short packet" in res.output
    res = runner.invoke(app, ["frames", "bfd", "--my-disc", "1", "--state", "up"])
    assert res.exit_code == 2 and "--your-disc" in res.output
