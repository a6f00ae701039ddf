"""``streamlb frames``: exact hex lines (design.md §6), decode back, and exit 2 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastpath import bgp
from reconciler.runtime.cli.app import app
from tests import golden_hex

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def lines(args: list[str]) -> list[str]:
    res = runner.invoke(app, ["frames", *args])
    assert res.exit_code == 0, res.output
    out = res.stdout.splitlines()
    assert all(line == line.lower() and bytes.fromhex(line) for line in out)
    return out


def bad(args: list[str]) -> str:
    res = runner.invoke(app, ["frames", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return res.stderr


GOLDEN_COMMANDS = [
    (["arp", "--mac", "02:00:00:00:00:01", "--ip", "10.200.0.100"], "l2-garp-request.hex"),
    (["arp", "--mac", "02:00:00:00:00:01", "--ip", "10.200.0.100", "--op", "reply"], "l2-garp-reply.hex"),
    (["ndp", "--mac", "02:00:00:00:00:01", "--ip", "2001:db8::100"], "l2-ndp-unsolicited-na.hex"),
    (["bgp-open", "--asn", "65002", "--hold", "90", "--router-id", "185.236.240.39"], "bgp-open-metallb-65002.hex"),
    (["bgp-open", "--asn", "4200000000", "--hold", "90", "--router-id", "10.0.0.1", "--capabilities", "metallb"],
     "bgp-open-metallb-4200000000.hex"),
    (["bgp-update", "--local-as", "65000", "--peer-as", "65001", "--next-hop", "192.168.123.10",
      "--prefix", "172.16.0.0/24", "--community", "0:1234", "--community", "0:2345", "--no-peer-4byte"],
     "bgp-update-ebgp-as2.hex"),
    (["bgp-update", "--local-as", "64512", "--peer-as", "64512", "--next-hop", "10.0.0.5", "--prefix", "10.20.30.1/32"],
     "bgp-update-ibgp.hex"),
    (["bgp-update", "--local-as", "4200000000", "--peer-as", "65001", "--next-hop", "10.0.0.5",
      "--prefix", "198.51.100.0/24"], "bgp-update-ebgp-as4.hex"),
    (["bgp-withdraw", "--prefix", "10.20.30.1/32", "--prefix", "10.20.30.0/24"], "bgp-withdraw.hex"),
    (["bgp-keepalive"], "bgp-keepalive.hex"),
]


@pytest.mark.parametrize(("args", "golden"), GOLDEN_COMMANDS, ids=[g for _, g in GOLDEN_COMMANDS])
def test_commands_print_the_golden_bytes(args: list[str], golden: str) -> None:
    assert lines(args) == [golden_hex.load(golden).hex()]


def test_arp_is_42_bytes_unpadded() -> None:
    assert len(bytes.fromhex(lines(["arp", "--mac", "aa-bb-cc-dd-ee-ff", "--ip", "192.0.2.1"])[0])) == 42


def test_ndp_with_explicit_source() -> None:
    out = bytes.fromhex(lines(["ndp", "--mac", "02:00:00:00:00:01", "--ip", "2001:db8::1", "--src", "fe80::1"])[0])
    assert out[22:38] == bytes.fromhex("fe800000000000000000000000000001")


def test_many_prefixes_split_into_4096_byte_updates_in_input_order() -> None:
    prefixes = [f"198.18.{i >> 8}.{i & 255}/32" for i in range(2000)][::-1]  # descending: order must be kept
    args = ["bgp-update", "--local-as", "64513", "--peer-as", "65000", "--next-hop", "10.200.0.1",
            "--community", "64513:100"]
    for p in prefixes:
        args += ["--prefix", p]
    out = lines(args)
    msgs = [bytes.fromhex(x) for x in out]
    assert len(msgs) == 3 and all(len(m) <= 4096 for m in msgs)
    got = [p for m in msgs for p in bgp.decode(m).nlri]
    assert [f"198.18.{a >> 8 & 255}.{a & 255}/{n}" for a, n in got] == prefixes
    assert len(bgp.decode(msgs[0]).nlri) == 809


def test_ibgp_local_pref_default_and_override() -> None:
    base = ["bgp-update", "--local-as", "64512", "--peer-as", "64512", "--next-hop", "10.0.0.5", "--prefix", "10.0.0.0/8"]
    assert bgp.decode(bytes.fromhex(lines(base)[0])).attrs.local_pref == 100
    assert bgp.decode(bytes.fromhex(lines(base + ["--local-pref", "250"])[0])).attrs.local_pref == 250


def test_ebgp_has_no_local_pref_and_says_so() -> None:
    res = runner.invoke(app, ["frames", "bgp-update", "--local-as", "1", "--peer-as", "2", "--next-hop", "10.0.0.5",
                              "--prefix", "10.0.0.0/8", "--local-pref", "250", "--med", "7"])
    assert res.exit_code == 0 and "ignored" in res.stderr
    attrs = bgp.decode(bytes.fromhex(res.stdout.strip())).attrs
    assert attrs.local_pref is None and attrs.med == 7


def test_ipv6_update_and_withdraw() -> None:
    out = lines(["bgp-update", "--local-as", "65000", "--peer-as", "65001", "--next-hop", "2001:db8::1",
                 "--prefix", "2001:db8:1::/48", "--large-community", "65000:1:2"])
    m = bgp.decode(bytes.fromhex(out[0]))
    assert m.mp_reach.afi == 2 and m.mp_reach.nlri == ((0x20010DB80001 << 80, 48),)
    assert m.attrs.large_communities == ((65000, 1, 2),) and m.attrs.next_hop is None
    w = bgp.decode(bytes.fromhex(lines(["bgp-withdraw", "--prefix", "2001:db8:1::/48"])[0]))
    assert w.mp_unreach.withdrawn == ((0x20010DB80001 << 80, 48),)


def test_full_capabilities() -> None:
    out = lines(["bgp-open", "--asn", "65002", "--hold", "90", "--router-id", "10.0.0.1", "--capabilities", "full"])
    assert [c.code for c in bgp.decode(bytes.fromhex(out[0])).capabilities] == [1, 1, 65, 2, 64, 6]


@pytest.mark.parametrize("golden", [g for _, g in GOLDEN_COMMANDS] + ["l2-arp-reply.hex", "l2-ndp-solicited-na.hex",
                                                                      "bgp-end-of-rib-ipv6.hex"])
def test_decode_json_every_golden(golden: str) -> None:
    res = runner.invoke(app, ["frames", "decode", golden_hex.load(golden).hex(), "--output", "json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["length"] == len(golden_hex.load(golden))
    assert obj["kind"] == {"l2-garp": "arp", "l2-arp-": "arp", "l2-ndp-": "ndp", "bgp-ope": "open",
                           "bgp-upd": "update", "bgp-wit": "update", "bgp-kee": "keepalive",
                           "bgp-end": "update"}[golden[:7]]


def test_decode_fields() -> None:
    arp = json.loads(runner.invoke(app, ["frames", "decode", golden_hex.load("l2-garp-reply.hex").hex(),
                                         "-o", "json"]).stdout)
    assert (arp["op_name"], arp["sender_ip"], arp["target_ip"], arp["target_mac"], arp["gratuitous"]) == (
        "reply", "10.200.0.100", "10.200.0.100", "ff:ff:ff:ff:ff:ff", True)
    upd = json.loads(runner.invoke(app, ["frames", "decode", golden_hex.load("bgp-update-ebgp-as2.hex").hex(),
                                         "-o", "json"]).stdout)
    assert upd["as4"] is False and upd["nlri"] == ["172.16.0.0/24"]
    assert upd["attrs"]["communities"] == ["0:1234", "0:2345"] and upd["attrs"]["next_hop"] == "192.168.123.10"
    op = json.loads(runner.invoke(app, ["frames", "decode", golden_hex.load("bgp-open-metallb-4200000000.hex").hex(),
                                        "-o", "json"]).stdout)
    assert op["asn"] == 4200000000 and op["my_as"] == 23456 and op["router_id"] == "10.0.0.1"


def test_decode_text_and_separators() -> None:
    hexed = " ".join(golden_hex.load("bgp-keepalive.hex").hex()[i:i + 2] for i in range(0, 38, 2))
    res = runner.invoke(app, ["frames", "decode", hexed])
    assert res.exit_code == 0 and "kind: keepalive" in res.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["arp", "--mac", "02:00:00:00:00", "--ip", "10.0.0.1"], "--mac"),
        (["arp", "--mac", "02:00:00:00:00:01", "--ip", "2001:db8::1"], "--ip"),
        (["arp", "--mac", "02:00:00:00:00:01", "--ip", "10.0.0.1", "--op", "nop"], "--op"),
        (["ndp", "--mac", "02:00:00:00:00:01", "--ip", "10.0.0.1"], "--ip"),
        (["bgp-open", "--asn", "1", "--hold", "2", "--router-id", "10.0.0.1"], "--hold"),
        (["bgp-open", "--asn", "0", "--hold", "90", "--router-id", "10.0.0.1"], "--asn"),
        (["bgp-open", "--asn", "1", "--hold", "90", "--router-id", "x"], "--router-id"),
        (["bgp-update", "--local-as", "1", "--peer-as", "2", "--next-hop", "10.0.0.1", "--prefix", "10.0.0.1/8"],
         "--prefix"),
        (["bgp-update", "--local-as", "1", "--peer-as", "2", "--next-hop", "10.0.0.1", "--prefix", "2001:db8::/32"],
         "--next-hop"),
        (["bgp-update", "--local-as", "1", "--peer-as", "2", "--next-hop", "10.0.0.1", "--prefix", "10.0.0.0/8",
          "--community", "70000:1"], "--community"),
        (["bgp-update", "--local-as", "1", "--peer-as", "2", "--next-hop", "10.0.0.1", "--prefix", "10.0.0.0/8",
          "--large-community", "1:2"], "--large-community"),
        (["bgp-withdraw", "--prefix", "10.0.0.0/8", "--prefix", "2001:db8::/32"], "--prefix"),
        (["decode", "zz"], "HEX"),
        (["decode", "ffffffffffffffffffffffffffffffff001409"], "cannot decode"),
        (["decode", "0000"], "cannot decode"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], needle: str) -> None:
    err = bad(args)
    assert needle in err


def test_help() -> None:
    res = runner.invoke(app, ["frames", "--help"])
    assert res.exit_code == 0
    for cmd in ("arp", "ndp", "bgp-open", "bgp-update", "bgp-withdraw", "bgp-keepalive", "decode"):
        assert cmd in res.stdout


def test_as_a_process() -> None:
    res = subprocess.run([sys.executable, "-m", "reconciler", "frames", "bgp-keepalive"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert res.returncode == 0 and res.stdout == "ff" * 16 + "001304\n"
