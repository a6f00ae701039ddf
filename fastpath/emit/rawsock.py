"""AF_PACKET sockets: open and bind per interface, batched sends with ``sendmmsg``, filters and memberships.

``sendmmsg(2)`` is reached through ctypes (the socket module has no binding): one system call sends a whole burst
that ``fastpath.l2.write_arp_burst`` wrote into one buffer. Frames are built elsewhere; this module only moves
bytes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_MR_MULTICAST = 0
PACKET_QDISC_BYPASS = 20
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26

_libc = ctypes.CDLL(None, use_errno=True)


class _iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _msghdr), ("msg_len", ctypes.c_uint)]


_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.POINTER(_mmsghdr), ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int

MAX_BATCH = 1024  # UIO_MAXIOV


class NeedsCapability(PermissionError):
    pass


def open_packet_socket(ifname: str, proto: int = ETH_P_ALL, *, qdisc_bypass: bool = False) -> socket.socket:
    """A raw AF_PACKET socket bound to ``ifname`` receiving ``proto`` frames (0: send only)."""
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    except PermissionError as exc:
        raise NeedsCapability(
            f"opening an AF_PACKET socket needs CAP_NET_RAW (run as root or grant the capability): {exc}"
        ) from exc
    try:
        s.bind((ifname, proto))
        if qdisc_bypass:
            s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


class BatchSender:
    """Sends many equal-length frames from one buffer with ``sendmmsg``; reusable, grows as needed."""

    def __init__(self, capacity: int = 256) -> None:
        self._cap = 0
        self._iov = None
        self._msgs = None
        self._grow(capacity)
        self.syscalls = 0

    def _grow(self, n: int) -> None:
        if n <= self._cap:
            return
        self._cap = max(n, 2 * self._cap)
        self._iov = (_iovec * self._cap)()
        self._msgs = (_mmsghdr * self._cap)()
        for i in range(self._cap):
            h = self._msgs[i].msg_hdr
            h.msg_iov = ctypes.pointer(self._iov[i])
            h.msg_iovlen = 1

    def send(self, sock: socket.socket, buf: bytearray, frame_len: int, count: int, offset: int = 0) -> int:
        """Send ``count`` frames of ``frame_len`` bytes laid back to back in ``buf`` from ``offset``.
        Returns how many were sent (fewer when the socket's queue is full)."""
        if count <= 0:
            return 0
        if offset + frame_len * count > len(buf):
            raise ValueError("buffer shorter than the frames to send")
        self._grow(min(count, MAX_BATCH))
        base = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
        fd = sock.fileno()
        sent = 0
        while sent < count:
            n = min(count - sent, MAX_BATCH)
            for i in range(n):
                self._iov[i].iov_base = base + offset + (sent + i) * frame_len
                self._iov[i].iov_len = frame_len
            r = _sendmmsg(fd, self._msgs, n, 0)
            self.syscalls += 1
            if r < 0:
                e = ctypes.get_errno()
                if e in (errno.EAGAIN, errno.ENOBUFS, errno.EINTR):
                    break
                raise OSError(e, os.strerror(e))
            sent += r
            if r < n:
                break
        return sent

    def send_frames(self, sock: socket.socket, frames: list[bytes]) -> int:
        """Send frames of any lengths in one ``sendmmsg`` (replies, mixed bursts)."""
        if not frames:
            return 0
        buf = bytearray(b"".join(frames))
        self._grow(min(len(frames), MAX_BATCH))
        base = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
        fd = sock.fileno()
        sent, pos = 0, 0
        offsets = []
        for f in frames:
            offsets.append(pos)
            pos += len(f)
        while sent < len(frames):
            n = min(len(frames) - sent, MAX_BATCH)
            for i in range(n):
                self._iov[i].iov_base = base + offsets[sent + i]
                self._iov[i].iov_len = len(frames[sent + i])
            r = _sendmmsg(fd, self._msgs, n, 0)
            self.syscalls += 1
            if r < 0:
                e = ctypes.get_errno()
                if e in (errno.EAGAIN, errno.ENOBUFS, errno.EINTR):
                    break
                raise OSError(e, os.strerror(e))
            sent += r
            if r < n:
                break
        del base
        return sent


def add_multicast(sock: socket.socket, ifindex: int, mac: bytes, add: bool = True) -> None:
    """Join (or leave) an Ethernet multicast group on the socket's interface (``packet_mreq``)."""
    mreq = struct.pack("iHH8s", ifindex, PACKET_MR_MULTICAST, len(mac), mac)
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP if add else PACKET_DROP_MEMBERSHIP, mreq)


def solicited_node_mac(ip6: int) -> bytes:
    """33:33:ff:xx:xx:xx for the solicited-node group ff02::1:ffXX:XXXX of ``ip6`` (RFC 4291 §2.7.1)."""
    return b"\x33\x33\xff" + (ip6 & 0xFFFFFF).to_bytes(3, "big")


def attach_ns_filter(sock: socket.socket) -> None:
    """Classic BPF: keep only IPv6 + ICMPv6 type 135 (Neighbor Solicitation) without extension headers."""
    insns = [
        (0x28, 0, 0, 12),  # ldh [12]
        (0x15, 0, 5, 0x86DD),  # jeq ETH_P_IPV6
        (0x30, 0, 0, 20),  # ldb [20] next header
        (0x15, 0, 3, 58),  # jeq ICMPv6
        (0x30, 0, 0, 54),  # ldb [54] ICMPv6 type
        (0x15, 0, 1, 135),  # jeq NS
        (0x06, 0, 0, 0x40000),  # ret accept
        (0x06, 0, 0, 0),  # ret drop
    ]
    prog = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def attach_arp_request_filter(sock: socket.socket) -> None:
    """Classic BPF: keep only ARP requests (op 1)."""
    insns = [
        (0x28, 0, 0, 12),  # ldh [12]
        (0x15, 0, 3, 0x0806),  # jeq ETH_P_ARP
        (0x28, 0, 0, 20),  # ldh [20] op
        (0x15, 0, 1, 1),  # jeq request
        (0x06, 0, 0, 0x40000),
        (0x06, 0, 0, 0),
    ]
    prog = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog)
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
