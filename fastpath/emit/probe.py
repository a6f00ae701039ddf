"""Address-conflict probing: does another host answer for an IP this node announces?

In layer-2 mode an address that some other machine also uses (a static configuration, a DHCP lease, a second
load balancer) is reached by whichever of the two the client's ARP/NDP cache happens to hold: the failure is
intermittent and invisible from the cluster. The speaker therefore asks, now and then, whether anybody else
answers for the addresses it owns, in the forms that never disturb a neighbour's cache:

* IPv4: an ARP probe (RFC 5227 §2.1.1 — sender IP 0.0.0.0, target MAC zero). Any host using the address answers
  with an ARP reply whose sender IP is that address (Linux does so for its own addresses);
* IPv6: a duplicate-address-detection Neighbor Solicitation (RFC 4862 §5.4.2 — from ::, to the solicited-node
  group, no link-layer option). A host using the address answers with a Neighbor Advertisement to ff02::1.

Besides answers to its probes, every ARP frame whose sender IP is an owned address and every advertisement whose
target is one counts, when it comes from a MAC address that is not one of this node's interfaces.

Split like :mod:`fastpath.emit.l2`: :class:`ConflictWatch` is the sans-I/O core (schedule, rate limit, what an
incoming frame means; clocks are parameters) and :class:`ConflictProber` the asyncio shell with its own AF_PACKET
sockets. Rules:

1. Rate-limited: at most ``rate`` probe frames per second over all interfaces, and each owned address is probed at
   most once per ``interval`` seconds on each of its interfaces.
2. A conflict names the address, the other MAC, the interface and when it was first and last seen; it is forgotten
   ``forget_after`` seconds after it was last seen, or as soon as the address is no longer owned here.
3. Probing never changes what is announced: it only reports (the speaker's status, ``streamlb doctor``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

from fastpath import l2 as frames
from fastpath.emit import rawsock

log = logging.getLogger("streamlb.probe")

DEFAULT_INTERVAL = 60.0
DEFAULT_RATE = 20.0


def _mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Conflict:
    ip: str
    mac: str
    interface: str
    first_seen: float
    last_seen: float

    def to_json(self) -> dict[str, Any]:
        return {"ip": self.ip, "mac": self.mac, "interface": self.interface,
                "first_seen": _iso(self.first_seen), "last_seen": _iso(self.last_seen)}


class ConflictWatch:
    """Which owned addresses to probe when, and what a received frame says about them."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, rate: float = DEFAULT_RATE,
                 forget_after: float | None = None) -> None:
        if interval <= 0 or rate <= 0:
            raise ValueError("interval and rate must be positive")
        self.interval = float(interval)
        self.rate = float(rate)
        self.forget_after = float(forget_after) if forget_after is not None else 3 * self.interval
        self._v4: dict[int, str] = {}
        self._v6: dict[int, str] = {}
        self._next: dict[str, float] = {}  # ip -> when it is due
        self.our_macs: set[bytes] = set()
        self.conflicts: dict[tuple[str, str], Conflict] = {}
        self._tokens = self.rate
        self._at: float | None = None
        self.probes_sent = 0

    # --- what is owned ------------------------------------------------------------------------------------------

    def set_owned(self, ips: list[str] | set[str] | tuple[str, ...], now: float) -> None:
        """The addresses announced here now. New ones are due at once; conflicts of dropped ones are forgotten."""
        want = set(ips)
        for ip in [ip for ip in self._next if ip not in want]:
            del self._next[ip]
        for ip in sorted(want - set(self._next)):
            self._next[ip] = now
        self._v4, self._v6 = {}, {}
        for ip in want:
            a = ipaddress.ip_address(ip)
            (self._v4 if a.version == 4 else self._v6)[int(a)] = ip
        for key in [k for k in self.conflicts if k[0] not in want]:
            del self.conflicts[key]

    # --- schedule and rate limit ---------------------------------------------------------------------------------

    def due(self, now: float, frames_per_ip: int = 1) -> list[str]:
        """The addresses to probe now (oldest due first), within the frame budget; each is rescheduled."""
        if self._at is None:
            self._at = now
        self._tokens = min(self.rate, self._tokens + max(0.0, now - self._at) * self.rate)
        self._at = max(self._at, now)
        ready = sorted((t, ip) for ip, t in self._next.items() if t <= now)
        out = []
        cost = min(max(1, frames_per_ip), self.rate)
        for _, ip in ready:
            if self._tokens < cost:
                break
            self._tokens -= cost
            self._next[ip] = now + self.interval
            out.append(ip)
        return out

    def next_deadline(self) -> float | None:
        if not self._next:
            return None
        t = min(self._next.values())
        if self._tokens < 1 and self._at is not None:
            t = max(t, self._at + (1 - self._tokens) / self.rate)
        return t

    # --- what a frame means -------------------------------------------------------------------------------------

    def observe(self, iface: str, frame: bytes, wall: float) -> Conflict | None:
        """Record ``frame`` (received on ``iface``) if another host speaks for an owned address."""
        found = self._claim(frame)
        if found is None:
            return None
        ip, mac = found
        if mac in self.our_macs:
            return None
        key = (ip, _mac_text(mac))
        c = self.conflicts.get(key)
        if c is None:
            c = self.conflicts[key] = Conflict(ip, key[1], iface, wall, wall)
            log.warning("address conflict: %s is also answered by %s on %s", ip, key[1], iface)
        c.last_seen = wall
        c.interface = iface
        return c

    def _claim(self, frame: bytes) -> tuple[str, bytes] | None:
        if len(frame) < 14:
            return None
        et = frame[12:14]
        if et == b"\x08\x06":
            if len(frame) < 42:
                return None
            htype, ptype, hlen, plen = struct.unpack_from("!HHBB", frame, 14)
            if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
                return None
            sha = bytes(frame[22:28])
            spa = int.from_bytes(frame[28:32], "big")
            ip = self._v4.get(spa)
            return (ip, sha) if ip is not None else None
        if et == b"\x86\xdd":
            if len(frame) < 78 or frame[20] != 58 or frame[54] != 136:  # ICMPv6 Neighbor Advertisement
                return None
            ip = self._v6.get(int.from_bytes(frame[62:78], "big"))
            if ip is None:
                return None
            mac = bytes(frame[6:12])
            pos = 78
            while pos + 8 <= len(frame):  # the target link-layer option names the answering MAC best
                kind, units = frame[pos], frame[pos + 1]
                if units == 0:
                    break
                if kind == 2 and units == 1:
                    mac = bytes(frame[pos + 2:pos + 8])
                    break
                pos += 8 * units
            return ip, mac
        return None

    def expire(self, wall: float) -> None:
        for key in [k for k, c in self.conflicts.items() if wall - c.last_seen > self.forget_after]:
            del self.conflicts[key]

    def to_json(self) -> list[dict[str, Any]]:
        return [self.conflicts[k].to_json() for k in sorted(self.conflicts)]


def attach_na_filter(sock: socket.socket) -> None:
    """Classic BPF: keep only IPv6 + ICMPv6 type 136 (Neighbor Advertisement) without extension headers."""
    import ctypes

    insns = [
        (0x28, 0, 0, 12), (0x15, 0, 5, 0x86DD), (0x30, 0, 0, 20), (0x15, 0, 3, 58), (0x30, 0, 0, 54),
        (0x15, 0, 1, 136), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0),
    ]
    prog = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, rawsock.SO_ATTACH_FILTER, fprog)  # the kernel copies the program


class ConflictProber:
    """Runs :class:`ConflictWatch` on real sockets for the addresses and interfaces of an L2 responder."""

    def __init__(self, responder: Any, *, interval: float = DEFAULT_INTERVAL, rate: float = DEFAULT_RATE,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 opener: Callable[[str, int], socket.socket] = rawsock.open_packet_socket) -> None:
        self.responder = responder
        self.watch = ConflictWatch(interval, rate)
        self.clock = clock
        self.wall = wall
        self._opener = opener
        self._socks: dict[str, tuple[socket.socket, socket.socket, Any]] = {}  # name -> (arp, na, iface)
        self._sender = rawsock.BatchSender()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.last_error: str | None = None  # why the last round failed (reported in the speaker's status)

    def conflicts(self) -> list[dict[str, Any]]:
        self.watch.expire(self.wall())
        return self.watch.to_json()

    def _sync_sockets(self) -> None:
        ifaces = dict(self.responder.ifaces)
        for name in list(self._socks):
            if ifaces.get(name) != self._socks[name][2]:
                self._close(name)
        self.watch.our_macs = {i.mac for i in ifaces.values()}
        loop = asyncio.get_running_loop()
        for name, iface in sorted(ifaces.items()):
            if name in self._socks:
                continue
            try:
                arp = self._opener(name, rawsock.ETH_P_ARP)
            except OSError as exc:
                log.warning("conflict probe: cannot open AF_PACKET sockets on %s: %s", name, exc)
                continue
            try:
                na = self._opener(name, rawsock.ETH_P_IPV6)
            except OSError as exc:
                arp.close()
                log.warning("conflict probe: cannot open AF_PACKET sockets on %s: %s", name, exc)
                continue
            try:
                attach_na_filter(na)
            except OSError as exc:  # an optimisation; _claim checks everything
                log.debug("BPF filter not attached on %s: %s", name, exc)
            self._socks[name] = (arp, na, iface)
            for s in (arp, na):
                loop.add_reader(s.fileno(), self._on_readable, name, s)

    def _close(self, name: str) -> None:
        entry = self._socks.pop(name, None)
        if entry is None:
            return
        for s in entry[:2]:
            try:
                asyncio.get_running_loop().remove_reader(s.fileno())
            except RuntimeError:
                pass
            s.close()

    def _on_readable(self, name: str, sock: socket.socket) -> None:
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("conflict probe: recv on %s: %s", name, exc)
                break
            if addr[2] == rawsock.PACKET_OUTGOING:
                continue
            self.watch.observe(name, data, self.wall())

    def probe_once(self) -> int:
        """Send the probes that are due; returns the number of frames sent."""
        now = self.clock()
        self.watch.set_owned(tuple(self.responder.owned), now)
        sent = 0
        for ip in self.watch.due(now, frames_per_ip=max(1, len(self._socks))):
            a = ipaddress.ip_address(ip)
            for iface in self.responder.interfaces_for(ip):
                entry = self._socks.get(iface.name)
                if entry is None:
                    continue
                f = frames.build_arp_probe(iface.mac, int(a)) if a.version == 4 else \
                    frames.build_ns_probe(iface.mac, int(a))
                try:
                    sent += self._sender.send_frames(entry[0] if a.version == 4 else entry[1], [f])
                except OSError as exc:
                    log.warning("conflict probe: send on %s: %s", iface.name, exc)
        self.watch.probes_sent += sent
        return sent

    def start(self) -> asyncio.Task:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="conflict-probe")
        return self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                self._sync_sockets()
                self.probe_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - probing is a diagnostic; it must not stop the speaker
                if str(exc) != self.last_error:
                    log.warning("conflict probe failed: %s", exc)
                self.last_error = str(exc)
            deadline = self.watch.next_deadline()
            wait = 1.0 if deadline is None else min(1.0, max(0.05, deadline - self.clock()))
            await asyncio.sleep(wait)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for name in list(self._socks):
            self._close(name)


def interface_addresses(names: list[str] | None = None, netns: str | None = None) -> dict[str, list[str]]:
    """Interface name -> its addresses as CIDR strings (``10.0.0.5/24``, ``2001:db8::5/64``), read over netlink;
    only ``names`` when given. Blocking (pyroute2): call it off the event loop."""
    from pyroute2 import IPRoute

    out: dict[str, list[str]] = {}
    with (IPRoute(netns=netns) if netns else IPRoute()) as ipr:
        index = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for a in ipr.get_addr():
            name = index.get(a["index"])
            if name is None or (names is not None and name not in names):
                continue
            addr = a.get_attr("IFA_ADDRESS")
            if addr:
                out.setdefault(name, []).append(f"{addr}/{a['prefixlen']}")
    for v in out.values():
        v.sort(key=lambda c: (ipaddress.ip_interface(c).version, int(ipaddress.ip_interface(c).ip)))
    return out
