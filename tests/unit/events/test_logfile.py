"""The evlog format: header, frames, truncation; upcasting of older frames."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, strategies as st

from events import codec, inputs, log, logfile, schema, upcast
from events.position import Position
from tests import strategies as S


@given(st.lists(S.events, max_size=8))
def test_file_image_round_trip(events: list[schema.Event]) -> None:
    blob = logfile.encode_file(events)
    assert logfile.read_header(blob) == codec.FORMAT_VERSION
    frames = list(logfile.iter_frames(blob))
    assert [codec.decode(f.data) for f in frames] == events


def test_filelog_append_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.evlog"
    fl = logfile.FileLog(path)
    assert fl.append([schema.SpeakerUp(node="a"), schema.SpeakerDown(node="a")]) == [Position(0, 1), Position(0, 2)]
    again = logfile.FileLog(path)
    assert again.head() == Position(0, 2)
    assert [log.decode_record(r) for r in again.read(Position(0, 1))] == [schema.SpeakerDown(node="a")]
    snap = log.Snapshot(Position(0, 2), 1, b"state", "h")
    again.save_snapshot(snap)
    assert logfile.FileLog(path).load_snapshot() == snap


def test_truncated_frames_are_rejected_records(tmp_path: Path) -> None:
    blob = logfile.encode_file([schema.SpeakerUp(node="a"), schema.SpeakerUp(node="b")])
    for cut, problem in ((len(blob) - 3, "length"), (len(blob) - 2 - len(codec.encode(schema.SpeakerUp(node="b"))), "4-byte")):
        p = tmp_path / f"t{cut}.evlog"
        p.write_bytes(blob[:cut])
        recs = list(inputs.read_file(p))
        assert isinstance(recs[0].outcomes[0], inputs.Accepted)
        assert recs[1].number == 2 and "truncated frame" in recs[1].outcomes[0].reason
        assert problem in recs[1].outcomes[0].reason
        with pytest.raises(log.LogCorrupt):
            logfile.FileLog(p)


def test_garbage_frame_is_rejected_and_fold_goes_on(tmp_path: Path) -> None:
    good = codec.encode(schema.SpeakerUp(node="a"))
    blob = logfile.encode_file([]) + len(b"\x93\x01").to_bytes(4, "big") + b"\x93\x01" + len(good).to_bytes(4, "big") + good
    p = tmp_path / "g.evlog"
    p.write_bytes(blob)
    recs = list(inputs.read_file(p))
    assert "invalid event" in recs[0].outcomes[0].reason
    assert recs[1].outcomes == [inputs.Accepted(schema.SpeakerUp(node="a"))]


def test_bad_header_version_is_an_input_error(tmp_path: Path) -> None:
    p = tmp_path / "v9.evlog"
    p.write_bytes(logfile.MAGIC + (9).to_bytes(2, "big") + (1).to_bytes(2, "big"))
    with pytest.raises(inputs.InputError, match="unsupported evlog file version 9"):
        inputs.read_file(p)


def test_upcasting_rewrites_old_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the current format is 2 and version 1 called the node field "host".
    monkeypatch.setattr(codec, "FORMAT_VERSION", 2)
    monkeypatch.setitem(
        upcast.UPCASTERS, (1, "speaker.up"), lambda raw: {"kind": raw["kind"], "node": raw.pop("host")}
    )
    old = msgspec.msgpack.encode({"kind": "speaker.up", "host": "n1"})
    assert upcast.decode_versioned(old, 1) == schema.SpeakerUp(node="n1")
    with pytest.raises(codec.DecodeError, match="newer than this reader"):
        upcast.decode_versioned(old, 3)
