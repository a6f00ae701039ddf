"""``streamlb frames``: wire bytes for people and test tools (design.md §6).

Every command prints each frame or message as one lowercase hex line, in input order. ``frames decode`` reads any
of them back (BGP messages are recognised by their all-ones marker, BFD control packets by version 1 and a length
field equal to their size, everything else is read as an Ethernet frame; ``--kind`` overrides the guess).
Bad input exits with status 2 and one line naming the option, no traceback.
"""

from __future__ import annotations

import ipaddress
import json
import re
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console

from fastpath import bfd, bgp, l2, model
from fastpath.constants import Capability, MsgType

app = typer.Typer(
    help="Print ARP/NDP frames and BGP messages as hex (one per line), or decode them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    _err.print(f"streamlb: error: {message}", markup=False)
    return typer.Exit(2)


def _emit(frames: list[bytes]) -> None:
    for f in frames:
        typer.echo(f.hex())


# --- argument parsing (each failure names its option) ----------------------------------------------------------------

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-]?)[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")


def _mac(text: str, option: str = "--mac") -> bytes:
    if not _MAC_RE.match(text.strip()):
        raise _fail(f"{option}: {text!r} is not a MAC address (like 02:00:00:00:00:01)")
    return bytes.fromhex(re.sub(r"[:-]", "", text.strip()))


def _addr(text: str, option: str, version: int | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        a = ipaddress.ip_address(text.strip())
    except ValueError:
        raise _fail(f"{option}: {text!r} is not an IP address") from None
    if version is not None and a.version != version:
        raise _fail(f"{option}: {text!r} is not an IPv{version} address")
    return a


def _prefix(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise _fail(f"--prefix: {text!r}: {exc}") from None


def _prefixes(texts: list[str]) -> tuple[int, list[tuple[int, int]]]:
    nets = [_prefix(t) for t in texts]
    versions = {n.version for n in nets}
    if len(versions) > 1:
        raise _fail("--prefix: give prefixes of one family per command (IPv4 and IPv6 travel in separate UPDATEs)")
    return nets[0].version, [(int(n.network_address), n.prefixlen) for n in nets]


def _u32_parts(text: str, option: str, parts: int, bits: int) -> tuple[int, ...]:
    pieces = text.strip().split(":")
    try:
        values = tuple(int(p, 10) for p in pieces)
    except ValueError:
        values = ()
    if len(pieces) != parts or len(values) != parts or not all(0 <= v < 1 << bits for v in values):
        shape = ":".join("ABC"[:parts])
        raise _fail(f"{option}: {text!r} must be {shape} with each part in 0..{(1 << bits) - 1}")
    return values


class Op(str, Enum):
    request = "request"
    reply = "reply"


class Caps(str, Enum):
    metallb = "metallb"
    full = "full"


class Output(str, Enum):
    json = "json"
    text = "text"


class Kind(str, Enum):
    auto = "auto"
    bgp = "bgp"
    bfd = "bfd"
    l2 = "l2"


class BfdState(str, Enum):
    admin_down = "admin-down"
    down = "down"
    init = "init"
    up = "up"


# --- commands --------------------------------------------------------------------------------------------------------


@app.command()
def arp(
    mac: Annotated[str, typer.Option("--mac", help="Interface MAC (sender).")],
    ip: Annotated[str, typer.Option("--ip", help="The IPv4 address announced.")],
    op: Annotated[Op, typer.Option("--op", help="ARP operation.")] = Op.request,
) -> None:
    """A gratuitous ARP: broadcast, sender IP = target IP, target MAC all ones (42 bytes, unpadded)."""
    addr = _addr(ip, "--ip", 4)
    _emit([l2.build_arp_announce(1 if op is Op.request else 2, _mac(mac), int(addr))])


@app.command()
def ndp(
    mac: Annotated[str, typer.Option("--mac", help="Interface MAC (target link-layer address).")],
    ip: Annotated[str, typer.Option("--ip", help="The IPv6 address announced.")],
    src: Annotated[Optional[str], typer.Option("--src", help="IPv6 source (default: link-local from the MAC).")] = None,
) -> None:
    """An unsolicited Neighbor Advertisement to ff02::1 (S=0, O=1, target link-layer option, hop limit 255)."""
    target = _addr(ip, "--ip", 6)
    source = None if src is None else int(_addr(src, "--src", 6))
    _emit([l2.build_ndp_advert(_mac(mac), int(target), source)])


@app.command("bfd")
def bfd_control(
    my_disc: Annotated[int, typer.Option("--my-disc", help="My discriminator.", min=1, max=2**32 - 1)],
    your_disc: Annotated[int, typer.Option("--your-disc", help="Your discriminator (0: not known yet).",
                                           min=0, max=2**32 - 1)] = 0,
    state: Annotated[BfdState, typer.Option("--state", help="Session state.")] = BfdState.down,
    diag: Annotated[int, typer.Option("--diag", help="Diagnostic code.", min=0, max=31)] = 0,
    tx_ms: Annotated[int, typer.Option("--tx-ms", help="Desired min TX interval, ms.", min=0, max=4294967)] = 1000,
    rx_ms: Annotated[int, typer.Option("--rx-ms", help="Required min RX interval, ms.", min=0, max=4294967)] = 300,
    mult: Annotated[int, typer.Option("--mult", help="Detect multiplier.", min=1, max=255)] = 3,
    poll: Annotated[bool, typer.Option("--poll", help="Set the P bit.")] = False,
    final: Annotated[bool, typer.Option("--final", help="Set the F bit.")] = False,
) -> None:
    """A BFD control packet (RFC 5880 §4.1, 24 bytes: the UDP payload sent to port 3784 or 4784)."""
    st = {"admin-down": 0, "down": 1, "init": 2, "up": 3}[state.value]
    if st > 1 and your_disc == 0:
        raise _fail("--your-disc: must be set in state init or up (RFC 5880 §6.8.6)")
    _emit([bfd.build_control(st, diag, mult, my_disc, your_disc, tx_ms * 1000, rx_ms * 1000, 0, poll, final)])


@app.command("bgp-open")
def bgp_open(
    asn: Annotated[int, typer.Option("--asn", help="Local ASN (4-octet allowed).", min=1, max=2**32 - 1)],
    hold: Annotated[int, typer.Option("--hold", help="Hold time in seconds (0 or ≥ 3).", min=0, max=65535)],
    router_id: Annotated[str, typer.Option("--router-id", help="BGP identifier (IPv4).")],
    capabilities: Annotated[Caps, typer.Option("--capabilities", help="metallb: MetalLB's native set; full: "
                                                                      "+ route refresh, graceful restart, extended message.")] = Caps.metallb,
) -> None:
    """An OPEN message."""
    if hold in (1, 2):
        raise _fail("--hold: must be 0 or at least 3 seconds (RFC 4271 §4.2)")
    rid = int(_addr(router_id, "--router-id", 4))
    if rid == 0:
        raise _fail("--router-id: 0.0.0.0 is not a valid BGP identifier")
    caps = model.full_capabilities(asn) if capabilities is Caps.full else model.metallb_capabilities(asn)
    _emit([bgp.build_open(asn, hold, rid, caps)])


@app.command("bgp-update")
def bgp_update(
    local_as: Annotated[int, typer.Option("--local-as", help="Our ASN.", min=1, max=2**32 - 1)],
    peer_as: Annotated[int, typer.Option("--peer-as", help="The peer's ASN (equal to --local-as: iBGP).",
                                         min=1, max=2**32 - 1)],
    next_hop: Annotated[str, typer.Option("--next-hop", help="Next hop (IPv4, or IPv6 for IPv6 prefixes).")],
    prefix: Annotated[list[str], typer.Option("--prefix", help="Prefix to announce (repeatable; kept in order).")],
    community: Annotated[Optional[list[str]], typer.Option("--community", help="Standard community A:B.")] = None,
    large_community: Annotated[Optional[list[str]], typer.Option("--large-community",
                                                                 help="Large community A:B:C.")] = None,
    local_pref: Annotated[Optional[int], typer.Option("--local-pref", help="LOCAL_PREF (iBGP; default 100).",
                                                      min=0, max=2**32 - 1)] = None,
    med: Annotated[Optional[int], typer.Option("--med", help="MULTI_EXIT_DISC.", min=0, max=2**32 - 1)] = None,
    peer_4byte: Annotated[bool, typer.Option("--peer-4byte/--no-peer-4byte",
                                             help="Whether the peer negotiated 4-octet ASNs.")] = True,
) -> None:
    """UPDATEs announcing the prefixes: as many per message as fit 4,096 bytes, one message per line."""
    version, prefixes = _prefixes(prefix)
    nh = _addr(next_hop, "--next-hop")
    if nh.version != version:
        raise _fail(f"--next-hop: an IPv{version} prefix needs an IPv{version} next hop, got {next_hop!r}")
    comms = tuple(model.community(*_u32_parts(c, "--community", 2, 16)) for c in community or ())
    larges = tuple(_u32_parts(c, "--large-community", 3, 32) for c in large_community or ())
    if local_pref is not None and local_as != peer_as:
        _err.print("streamlb: note: --local-pref ignored: LOCAL_PREF goes only to internal (iBGP) peers", markup=False)
    attrs = model.make_attrs(
        local_as=local_as, peer_as=peer_as, next_hop=int(nh) if version == 4 else None, communities=comms,
        large_communities=larges, local_pref=local_pref, med=med, peer_4byte=peer_4byte,
    )
    if version == 4:
        msgs = bgp.pack_updates(prefixes, attrs, as4=peer_4byte)
    else:
        msgs = bgp.pack_updates(prefixes, attrs, afi=2, next_hop=int(nh), as4=peer_4byte)
    _emit(msgs)


@app.command("bgp-withdraw")
def bgp_withdraw(
    prefix: Annotated[list[str], typer.Option("--prefix", help="Prefix to withdraw (repeatable; kept in order).")],
) -> None:
    """UPDATEs withdrawing the prefixes (IPv6 in MP_UNREACH_NLRI), packed into 4,096-byte messages."""
    version, prefixes = _prefixes(prefix)
    _emit(bgp.pack_withdrawals(prefixes, afi=1 if version == 4 else 2))


@app.command("bgp-keepalive")
def bgp_keepalive() -> None:
    """A KEEPALIVE message."""
    _emit([bgp.build_keepalive()])


@app.command()
def decode(
    hex_: Annotated[str, typer.Argument(metavar="HEX", help="A frame or message in hex (spaces and colons allowed).")],
    output: Annotated[Output, typer.Option("--output", "-o", help="json or text.")] = Output.text,
    kind: Annotated[Kind, typer.Option("--kind", help="What the bytes are (auto: guess).")] = Kind.auto,
) -> None:
    """Decode one BGP message, one BFD control packet (the UDP payload) or one ARP / Neighbor Solicitation /
    Advertisement frame."""
    cleaned = re.sub(r"[\s:]", "", hex_.strip().removeprefix("0x"))
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise _fail("HEX: not hexadecimal") from None
    try:
        obj = describe(data, kind.value)
    except (bgp.BgpError, bfd.BfdError, model.FrameError) as exc:
        raise _fail(f"cannot decode: {exc}") from None
    if output is Output.json:
        typer.echo(json.dumps(obj, indent=2, sort_keys=True))
    else:
        for line in _text(obj):
            typer.echo(line)


# --- rendering -------------------------------------------------------------------------------------------------------


def _mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ip(v: int, version: int) -> str:
    return str(ipaddress.ip_address(v) if version == 4 and v < 2**32 else ipaddress.IPv6Address(v))


def _pfx(p: tuple[int, int], version: int) -> str:
    addr = ipaddress.IPv4Address(p[0]) if version == 4 else ipaddress.IPv6Address(p[0])
    return f"{addr}/{p[1]}"


def _segs(segs) -> list[dict] | None:
    if segs is None:
        return None
    names = {1: "AS_SET", 2: "AS_SEQUENCE", 3: "AS_CONFED_SEQUENCE", 4: "AS_CONFED_SET"}
    return [{"type": names.get(s.kind, str(s.kind)), "asns": list(s.asns)} for s in segs]


def _cap(c: model.Cap) -> dict:
    out: dict = {"code": c.code, "value": c.value.hex()}
    try:
        out["name"] = Capability(c.code).name.lower().replace("_", "-")
    except ValueError:
        out["name"] = "unknown"
    if c.code == Capability.MULTIPROTOCOL and len(c.value) == 4:
        out.update(afi=int.from_bytes(c.value[:2], "big"), safi=c.value[3])
    elif c.code == Capability.FOUR_OCTET_AS and len(c.value) == 4:
        out["asn"] = int.from_bytes(c.value, "big")
    elif c.code == Capability.GRACEFUL_RESTART and len(c.value) >= 2:
        flags_time = int.from_bytes(c.value[:2], "big")
        out.update(restart_state=bool(flags_time & 0x8000), restart_time=flags_time & 0xFFF,
                   families=[{"afi": int.from_bytes(c.value[i:i + 2], "big"), "safi": c.value[i + 2],
                              "forwarding_preserved": bool(c.value[i + 3] & 0x80)}
                             for i in range(2, len(c.value) - 3, 4)])
    return out


def _attrs(a: model.Attrs | None) -> dict | None:
    if a is None:
        return None
    return {
        "origin": {0: "igp", 1: "egp", 2: "incomplete"}.get(a.origin, a.origin) if a.origin is not None else None,
        "as_path": _segs(a.as_path),
        "next_hop": None if a.next_hop is None else _ip(a.next_hop, 4),
        "med": a.med,
        "local_pref": a.local_pref,
        "atomic_aggregate": a.atomic_aggregate,
        "communities": [f"{c >> 16}:{c & 0xFFFF}" for c in a.communities],
        "as4_path": _segs(a.as4_path) if a.as4_path else [],
        "large_communities": [f"{x}:{y}:{z}" for x, y, z in a.large_communities],
        "other": [{"flags": f, "type": t, "value": v.hex()} for f, t, v in a.other],
    }


def _looks_like_bfd(data: bytes) -> bool:
    # a control packet is 24 bytes (+ an authentication section) and says so in byte 3; an Ethernet frame that
    # streamlb handles is at least 42 bytes
    return 24 <= len(data) < 42 and data[0] >> 5 == 1 and data[3] == len(data)


def describe(data: bytes, kind: str = "auto") -> dict:
    """A JSON-ready description of one BGP message, BFD control packet or L2 frame (addresses as text)."""
    if kind == "bgp" or (kind == "auto" and data[:16] == b"\xff" * 16):
        return _describe_bgp(data)
    if kind == "bfd" or (kind == "auto" and _looks_like_bfd(data)):
        c = bfd.parse_control(data)
        return {
            "kind": "bfd", "length": data[3], "version": data[0] >> 5, "diag": c.diag,
            "diag_name": bfd.Diag(c.diag).name.lower().replace("_", "-") if c.diag <= 8 else "reserved",
            "state": c.state, "state_name": bfd.STATE_NAMES[c.state], "poll": c.poll, "final": c.final,
            "control_plane_independent": c.cpi, "authentication": c.auth_present, "demand": c.demand,
            "detect_mult": c.detect_mult, "my_discriminator": c.my_disc, "your_discriminator": c.your_disc,
            "desired_min_tx_us": c.min_tx, "required_min_rx_us": c.min_rx,
            "required_min_echo_rx_us": c.min_echo_rx, "auth": c.auth.hex(),
        }
    f = l2.decode_frame(data)
    if isinstance(f, model.ArpFrame):
        return {
            "kind": "arp", "length": len(data), "eth_dst": _mac_str(f.eth_dst), "eth_src": _mac_str(f.eth_src),
            "op": f.op, "op_name": {1: "request", 2: "reply"}.get(f.op, "other"), "htype": f.htype,
            "ptype": f"0x{f.ptype:04x}", "sender_mac": _mac_str(f.sender_mac), "sender_ip": _ip(f.sender_ip, 4),
            "target_mac": _mac_str(f.target_mac), "target_ip": _ip(f.target_ip, 4),
            "gratuitous": f.sender_ip == f.target_ip,
        }
    names = {1: "source-link-layer-address", 2: "target-link-layer-address"}
    return {
        "kind": "ndp", "length": len(data), "eth_dst": _mac_str(f.eth_dst), "eth_src": _mac_str(f.eth_src),
        "src": _ip(f.src_ip, 6), "dst": _ip(f.dst_ip, 6), "hop_limit": f.hop_limit,
        "icmp_type": f.icmp_type,
        "icmp_name": {135: "neighbor-solicitation", 136: "neighbor-advertisement"}[f.icmp_type],
        "code": f.code, "checksum": f"0x{f.checksum:04x}", "checksum_ok": f.checksum_ok,
        "router": bool(f.flags & 0x80), "solicited": bool(f.flags & 0x40), "override": bool(f.flags & 0x20),
        "target": _ip(f.target, 6),
        "options": [{"type": o.kind, "name": names.get(o.kind, "other"),
                     **({"mac": _mac_str(o.value)} if o.kind in names and len(o.value) == 6 else {"value": o.value.hex()})}
                    for o in f.options],
    }


def _describe_bgp(data: bytes) -> dict:
    as4 = True
    try:
        msg = bgp.decode(data, as4=True)
    except bgp.BgpError as first:
        # a 2-octet session's AS_PATH reads as malformed with 4-octet ASNs: try the other width before giving up
        if first.code != 3:
            raise
        try:
            msg = bgp.decode(data, as4=False)
        except bgp.BgpError:
            raise first from None
        as4 = False
    base = {"length": len(data), "type": data[18], "type_name": MsgType(data[18]).name.lower().replace("_", "-")}
    if isinstance(msg, model.Open):
        return {**base, "kind": "open", "version": msg.version, "my_as": msg.my_as, "asn": msg.asn,
                "hold_time": msg.hold_time, "router_id": _ip(msg.router_id, 4),
                "capabilities": [_cap(c) for c in msg.capabilities]}
    if isinstance(msg, model.Update):
        out = {**base, "kind": "update", "as4": as4,
               "withdrawn": [_pfx(p, 4) for p in msg.withdrawn], "attrs": _attrs(msg.attrs),
               "nlri": [_pfx(p, 4) for p in msg.nlri], "end_of_rib": bgp.is_end_of_rib(msg) is not None}
        if msg.mp_reach is not None:
            v = 4 if msg.mp_reach.afi == 1 else 6
            out["mp_reach"] = {"afi": msg.mp_reach.afi, "safi": msg.mp_reach.safi,
                               "next_hop": [_ip(h, v) for h in msg.mp_reach.next_hop],
                               "nlri": [_pfx(p, v) for p in msg.mp_reach.nlri]}
        if msg.mp_unreach is not None:
            v = 4 if msg.mp_unreach.afi == 1 else 6
            out["mp_unreach"] = {"afi": msg.mp_unreach.afi, "safi": msg.mp_unreach.safi,
                                 "withdrawn": [_pfx(p, v) for p in msg.mp_unreach.withdrawn]}
        return out
    if isinstance(msg, model.Notification):
        return {**base, "kind": "notification", "code": msg.code, "subcode": msg.subcode, "data": msg.data.hex()}
    if isinstance(msg, model.RouteRefresh):
        return {**base, "kind": "route-refresh", "afi": msg.afi, "safi": msg.safi, "subtype": msg.subtype}
    return {**base, "kind": "keepalive"}


def _text(obj, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines = []
    for key, value in obj.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines += _text(value, indent + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for item in value:
                sub = _text(item, indent + 2)
                lines.append(f"{pad}  - " + sub[0].strip())
                lines += sub[1:]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: {' '.join(str(v) for v in value) if value else '-'}")
        else:
            lines.append(f"{pad}{key}: {'-' if value is None else value}")
    return lines


