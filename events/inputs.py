"""Input files into events: format detection and per-record outcomes (I/O edge of ``events``).

Formats, detected per file (design.md §3):

* ``*.evlog`` — detected by its magic bytes; one record per frame.
* JSON — one record per JSON value: JSON lines (each line one value) or a stream of concatenated, possibly
  pretty-printed values (what ``kubectl get -w -o json --output-watch-events`` prints). Each value is judged on
  its own: a watch event (``{"type": ..., "object": ...}``), a native event (``{"kind": "k8s.upsert", ...}``) or a
  bare Kubernetes object (an upsert; ``kind: List`` is expanded).
* YAML — one record per document; every document is an upsert; ``kind: List`` is expanded.

Every record yields exactly one :class:`Record` with a list of outcomes, so ``--at N`` can count records whatever
their fate. Only an unreadable file or an undetectable format raises :class:`InputError`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml

from events import codec, kube, logfile, schema, upcast, watchjson


class InputError(Exception):
    """The file cannot be read or its format cannot be detected (exit 2)."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(f"{file}: {message}")
        self.file = file
        self.message = message


# Records and outcomes are msgspec Structs (not dataclasses): one of each is made per record of the input, and a
# Struct is built in C (a replay of 200,000 watch events makes 400,000 of them).
class Accepted(msgspec.Struct, frozen=True):
    event: schema.Event


class Ignored(msgspec.Struct, frozen=True):
    key: str


class Rejected(msgspec.Struct, frozen=True):
    reason: str


class Skipped(msgspec.Struct, frozen=True):
    """A record that carries no event (a watch BOOKMARK)."""

    what: str


Outcome = Accepted | Ignored | Rejected | Skipped


class Record(msgspec.Struct):
    file: str
    number: int  # 1-based within its file
    outcomes: list[Outcome] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Options:
    metallb_namespaces: tuple[str, ...] = ("metallb-system",)


# --------------------------------------------------------------------------------------------------------------


def _from_object(obj: Any, opts: Options) -> list[Outcome]:
    """A bare Kubernetes object (or a List of them) as upserts."""
    if isinstance(obj, dict) and obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        out: list[Outcome] = []
        for i, item in enumerate(obj["items"]):
            for o in _from_object(item, opts):
                out.append(Rejected(f"items[{i}]: {o.reason}") if isinstance(o, Rejected) else o)
        return out
    try:
        result = kube.translate(obj, opts.metallb_namespaces)
    except kube.TranslateError as exc:
        return [Rejected(str(exc))]
    if isinstance(result, kube.Ignored):
        return [Ignored(result.key)]
    return [_checked(schema.K8sUpsert(obj=result))]


def _native(event: schema.Event, opts: Options) -> Outcome:
    """A native event (JSON or evlog): MetalLB objects outside the MetalLB namespaces are ignored and counted, as
    translated objects are and as every replica does (codec.outside_namespaces)."""
    key = codec.outside_namespaces(event, opts.metallb_namespaces)
    return Accepted(event) if key is None else Ignored(key)


def _checked(event: schema.Event) -> Outcome:
    try:
        codec.validate(event)
    except codec.DecodeError as exc:
        return Rejected(str(exc))
    return Accepted(event)


def _from_watch(value: dict, opts: Options) -> list[Outcome]:
    kind = value.get("type")
    obj = value.get("object")
    if kind == "BOOKMARK":
        return [Skipped("BOOKMARK")]
    if kind == "ERROR":
        msg = obj.get("message") if isinstance(obj, dict) else None
        return [Rejected(f"watch ERROR: {msg}" if msg else f"watch ERROR: {obj!r}")]
    if kind in ("ADDED", "MODIFIED"):
        return _from_object(obj, opts)
    if kind == "DELETED":
        try:
            ref = kube.reference(obj, opts.metallb_namespaces)
        except kube.TranslateError as exc:
            return [Rejected(str(exc))]
        if isinstance(ref, kube.Ignored):
            return [Ignored(ref.key)]
        return [Accepted(schema.K8sDelete(ref=ref))]  # kube.reference refuses an empty name
    return [Rejected(f"unknown watch event type {kind!r}")]


def _from_json_value(value: Any, opts: Options) -> list[Outcome]:
    if not isinstance(value, dict):
        return [Rejected(f"expected a JSON object, got {type(value).__name__}")]
    if "type" in value and "object" in value:
        return _from_watch(value, opts)
    if value.get("kind") in schema.EVENT_TAGS or ("kind" in value and "apiVersion" not in value):
        try:
            return [_native(codec.from_builtins(value), opts)]
        except codec.DecodeError as exc:
            return [Rejected(str(exc))]
    return _from_object(value, opts)


# --------------------------------------------------------------------------------------------------------------
# Readers per format


def _read_evlog(name: str, blob: bytes, version: int, opts: Options = Options()) -> Iterator[Record]:
    for frame in logfile.iter_frames(blob):
        rec = Record(name, frame.index)
        if frame.data is None:
            rec.outcomes.append(Rejected(frame.problem or "truncated frame"))
        else:
            try:
                rec.outcomes.append(_native(upcast.decode_versioned(frame.data, version), opts))
            except codec.DecodeError as exc:
                rec.outcomes.append(Rejected(str(exc)))
        yield rec


_json_decoder = msgspec.json.Decoder()


def _json_line(line: str) -> Any:
    """One JSON line: msgspec (fast); what it refuses goes through the standard library, which gives the error
    text (and accepts the few non-standard literals it always accepted, such as ``NaN``)."""
    try:
        return _json_decoder.decode(line)
    except msgspec.DecodeError:
        return json.loads(line)


def line_outcomes(line: str, opts: Options) -> list[Outcome]:
    """The outcomes of one record of a JSON-lines file (``line`` is not blank)."""
    fast = watchjson.translate_line(line)  # the common watch event without dicts (None: not handled)
    if fast is not None:  # its events are canonical by construction: no second validation
        return [Ignored(fast.key) if type(fast) is kube.Ignored else Accepted(fast)]
    try:
        value = _json_line(line)
    except ValueError as exc:
        return [Rejected(f"invalid JSON: {exc}")]
    return _from_json_value(value, opts)


@dataclass(slots=True)
class Encoded:
    """What :func:`encode_lines` made of a run of JSON lines: the encoded events of its accepted records in order,
    its refusals as (record number counted from 1 within the run, reason), how many objects it ignored and how
    many records (non-blank lines) it held."""

    blobs: list[bytes]
    refusals: list[tuple[int, str]]
    ignored: int
    records: int


def encode_lines(lines: list[str], opts: Options, start: int = 0, stop: int | None = None) -> Encoded:
    """``lines[start:stop]`` of a JSON-lines file straight to encoded events (the producer's hot path): the outcome
    of every record is that of :func:`line_outcomes`, without a :class:`Record` or an outcome per record for the
    common watch event. A record with a refusal contributes no event (nothing of it is appended)."""
    encode = codec.encode
    translate = watchjson.translate_line
    ignored_type = kube.Ignored
    blobs: list[bytes] = []
    add = blobs.append
    refusals: list[tuple[int, str]] = []
    ignored = n = 0
    for i in range(start, len(lines) if stop is None else min(stop, len(lines))):
        line = lines[i]
        if not line or line.isspace():
            continue
        n += 1
        fast = translate(line)
        if fast is not None:
            if type(fast) is ignored_type:
                ignored += 1
            else:
                add(encode(fast))
            continue
        outcomes = line_outcomes(line, opts)
        reasons = [o.reason for o in outcomes if type(o) is Rejected]
        if reasons:
            refusals.extend((n, r) for r in reasons)
            continue
        for o in outcomes:
            if type(o) is Accepted:
                add(encode(o.event))
            elif type(o) is Ignored:
                ignored += 1
    return Encoded(blobs, refusals, ignored, n)


def _line_mode(lines: list[str]) -> bool:
    first = next((ln for ln in lines if ln.strip()), "")
    try:
        json.loads(first)
    except ValueError:
        return False
    return True


def json_lines(path: str | os.PathLike[str]) -> list[str] | None:
    """The lines of a file that :func:`read_file` reads as JSON lines (one record per non-blank line, each given
    to :func:`line_outcomes`), else None (another format, or concatenated multi-line JSON values). Raises
    :class:`InputError` like :func:`read_file`."""
    got = open_input(path)
    return got if isinstance(got, list) else None


def open_input(path: str | os.PathLike[str], opts: Options = Options()) -> list[str] | Iterator[Record]:
    """:func:`read_file`, except that a JSON-lines file comes back as its list of lines (one record per non-blank
    line, for :func:`encode_lines` or :func:`line_outcomes`). The file is read and decoded once."""
    name, fmt, data = _load(path)
    if fmt == "json":
        lines = data.splitlines()
        if _line_mode(lines):
            return lines
        return _read_json(name, data, opts, lines)
    return _reader(name, fmt, data, opts)


def _read_json(name: str, text: str, opts: Options, lines: list[str] | None = None) -> Iterator[Record]:
    if lines is None:
        lines = text.splitlines()
    if _line_mode(lines):
        number = 0
        translate = watchjson.translate_line
        ignored_type = kube.Ignored
        for line in lines:
            if not line or line.isspace():
                continue
            number += 1
            fast = translate(line)  # line_outcomes, inlined for the common watch event
            if fast is None:
                yield Record(name, number, line_outcomes(line, opts))
            else:
                yield Record(name, number, [Ignored(fast.key) if type(fast) is ignored_type else Accepted(fast)])
        return
    decoder = json.JSONDecoder()
    pos, number, end = 0, 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return
        number += 1
        rec = Record(name, number)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            rec.outcomes.append(Rejected(f"invalid JSON: {exc} (the rest of the file is skipped)"))
            yield rec
            return
        rec.outcomes.extend(_from_json_value(value, opts))
        yield rec


def _read_yaml(name: str, text: str, opts: Options) -> Iterator[Record]:
    loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    number = 0
    try:
        for doc in yaml.load_all(text, Loader=loader):
            if doc is None:
                continue
            number += 1
            rec = Record(name, number)
            rec.outcomes.extend(_from_object(doc, opts))
            yield rec
    except yaml.YAMLError as exc:
        number += 1
        rec = Record(name, number)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        rec.outcomes.append(Rejected(f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc} (the rest of the file is skipped)"))
        yield rec


def detect(name: str, blob: bytes) -> str:
    """``evlog``, ``json`` or ``yaml``. Raises :class:`InputError` when it cannot tell."""
    return _detect(name, blob)[0]


_NON_SPACE = re.compile(r"\S")


def _detect(name: str, blob: bytes) -> tuple[str, str | None]:
    """The format and, for a text format, the decoded text."""
    if logfile.is_evlog(blob):
        return "evlog", None
    suffix = Path(name).suffix.lower()
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(name, "cannot detect the format (not an evlog file and not UTF-8 text)") from None
    first_char = _NON_SPACE.search(text)  # (not text.lstrip(): that copies the whole text)
    if suffix in (".json", ".jsonl", ".ndjson") or (first_char is not None and first_char.group() == "{"):
        return "json", text
    if suffix in (".yaml", ".yml"):
        return "yaml", text
    if first_char is None:
        raise InputError(name, "cannot detect the format of an empty file")
    try:
        first = next(iter(yaml.safe_load_all(text)), None)
    except yaml.YAMLError:
        first = None
    if isinstance(first, dict):
        return "yaml", text
    raise InputError(name, "cannot detect the format (expected an evlog file, JSON lines or YAML)")


def _load(path: str | os.PathLike[str]) -> tuple[str, str, Any]:
    """(name, format, content): the blob of an evlog file (its header checked), the text of the others."""
    name = str(path)
    try:
        blob = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, f"cannot read: {exc.strerror or exc}") from None
    fmt, text = _detect(name, blob)
    if fmt == "evlog":
        try:
            logfile.read_header(blob)
        except logfile.LogCorrupt as exc:
            raise InputError(name, str(exc)) from None
        return name, fmt, blob
    return name, fmt, text


def _reader(name: str, fmt: str, data: Any, opts: Options) -> Iterator[Record]:
    if fmt == "evlog":
        return _read_evlog(name, data, logfile.read_header(data), opts)
    if fmt == "json":
        return _read_json(name, data, opts)
    return _read_yaml(name, data, opts)


def read_file(path: str | os.PathLike[str], opts: Options = Options()) -> Iterator[Record]:
    """Records of one input file, in order. Raises :class:`InputError` before yielding if unreadable."""
    name, fmt, data = _load(path)
    return _reader(name, fmt, data, opts)


def read_files(paths: list[str], opts: Options = Options()) -> Iterator[Record]:
    """Records of several files, concatenated. All files are opened and detected first, so an unreadable or
    undetectable file fails the whole call before anything is folded."""
    readers = [read_file(p, opts) for p in paths]
    for r in readers:
        yield from r
