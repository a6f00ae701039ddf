"""Append-only event log files (``*.evlog``).

Layout (all integers big-endian)::

    offset 0   8 bytes   magic  b"SLBEVLOG"
    offset 8   2 bytes   format version of the file header (1)
    offset 10  2 bytes   event format version of the frames (events.codec.FORMAT_VERSION when written)
    then frames:
               4 bytes   length N of the payload
               N bytes   msgpack-encoded event

Record ``k`` (1-based) has position ``0-k``. A frame whose length runs past the end of the file is *truncated*;
a reader reports it (and everything after it, since framing is lost) instead of guessing.
"""

from __future__ import annotations

import os
import struct

import msgspec
from collections.abc import Iterable, Iterator
from pathlib import Path

from events import codec, schema
from events.log import LogCorrupt, Record, Snapshot
from events.position import ZERO, Position

MAGIC = b"SLBEVLOG"
FILE_VERSION = 1
_HEADER = struct.Struct(">8sHH")
_LEN = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


class Frame:
    """One frame read from a file: either ``data`` or a ``problem`` (truncated framing)."""

    __slots__ = ("index", "data", "problem")

    def __init__(self, index: int, data: bytes | None, problem: str | None) -> None:
        self.index = index
        self.data = data
        self.problem = problem


def is_evlog(head: bytes) -> bool:
    return head.startswith(MAGIC)


def read_header(blob: bytes) -> int:
    """Validate the header; return the event format version of the frames. Raises :class:`LogCorrupt`."""
    if len(blob) < _HEADER.size or not blob.startswith(MAGIC):
        raise LogCorrupt("not an evlog file (bad magic)")
    _, file_version, event_version = _HEADER.unpack_from(blob)
    if file_version != FILE_VERSION:
        raise LogCorrupt(f"unsupported evlog file version {file_version}")
    return event_version


def iter_frames(blob: bytes) -> Iterator[Frame]:
    """Frames of an in-memory file image, after the header; a broken tail yields one frame with a problem."""
    off = _HEADER.size
    index = 0
    end = len(blob)
    while off < end:
        index += 1
        if end - off < _LEN.size:
            yield Frame(index, None, f"truncated frame: {end - off} byte(s) where a 4-byte length was expected")
            return
        (n,) = _LEN.unpack_from(blob, off)
        off += _LEN.size
        if n > MAX_FRAME or off + n > end:
            yield Frame(index, None, f"truncated frame: length {n} but {end - off} byte(s) left")
            return
        yield Frame(index, blob[off : off + n], None)
        off += n


def encode_file(events: Iterable[schema.Event]) -> bytes:
    """A whole evlog file image for ``events`` (used by export and tests)."""
    parts = [_HEADER.pack(MAGIC, FILE_VERSION, codec.FORMAT_VERSION)]
    for e in events:
        payload = codec.encode(e)
        parts.append(_LEN.pack(len(payload)))
        parts.append(payload)
    return b"".join(parts)


class FileLog:
    """An ``EventLog`` backed by one evlog file; appends are flushed and fsynced per call."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.write_bytes(_HEADER.pack(MAGIC, FILE_VERSION, codec.FORMAT_VERSION))
        blob = self.path.read_bytes()
        self._version = read_header(blob)
        self._records: list[Record] = []
        for frame in iter_frames(blob):
            if frame.data is None:
                raise LogCorrupt(f"{self.path}: record {frame.index}: {frame.problem}")
            self._records.append(Record(Position(0, frame.index), frame.data, self._version))
        self._snapshot_path = self.path.with_name(self.path.name + ".snapshot")

    def append(self, events: Iterable[schema.Event]) -> list[Position]:
        return self.append_raw(codec.encode(e) for e in events)

    def append_raw(self, data: Iterable[bytes]) -> list[Position]:
        if self._version != codec.FORMAT_VERSION:
            raise LogCorrupt(f"{self.path}: cannot append format {codec.FORMAT_VERSION} to a v{self._version} file")
        out: list[Position] = []
        buf = bytearray()
        for blob in data:
            pos = Position(0, len(self._records) + 1)
            self._records.append(Record(pos, bytes(blob), self._version))
            buf += _LEN.pack(len(blob))
            buf += blob
            out.append(pos)
        with open(self.path, "ab") as f:
            f.write(buf)
            f.flush()
            os.fsync(f.fileno())
        return out

    def read(self, after: Position = ZERO, limit: int | None = None) -> Iterator[Record]:
        start = after.seq if after.ms == 0 else len(self._records)
        end = len(self._records) if limit is None else min(len(self._records), start + limit)
        return iter(self._records[start:end])

    def follow(self, after: Position, timeout_ms: int) -> list[Record]:
        return list(self.read(after))

    def head(self) -> Position:
        return self._records[-1].position if self._records else ZERO

    def load_snapshot(self) -> Snapshot | None:
        if not self._snapshot_path.exists():
            return None
        pos, version, state, state_hash = msgspec.msgpack.decode(self._snapshot_path.read_bytes())
        return Snapshot(Position.parse(pos), version, state, state_hash)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        tmp = self._snapshot_path.with_suffix(".tmp")
        tmp.write_bytes(
            msgspec.msgpack.encode([str(snapshot.position), snapshot.version, snapshot.state, snapshot.state_hash])
        )
        os.replace(tmp, self._snapshot_path)
