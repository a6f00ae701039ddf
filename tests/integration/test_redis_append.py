"""The packed, pipelined XADD path of ``StreamLog`` (events.stream) against a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis

from events import codec, schema, stream
from tests.redis_server import redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def _blobs(n: int, tag: str) -> list[bytes]:
    return [codec.encode(schema.SpeakerUp(node=f"{tag}-{i}")) for i in range(n)]


def test_chunks_are_appended_in_order_and_their_positions_match_the_stream(redis_server) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "append-order", batch=7)
    chunks = [_blobs(5, "a"), [], _blobs(1, "b"), _blobs(12, "c")]
    got = list(lg.append_chunks(iter(chunks)))
    assert [len(p) for p in got] == [5, 1, 12]
    recs = list(lg.read())
    assert [r.position for r in recs] == [p for ps in got for p in ps]
    assert [r.data for r in recs] == [b for c in chunks for b in c]
    assert all(r.version == codec.FORMAT_VERSION for r in recs)
    more = lg.append_raw(_blobs(20, "d"))  # more than one pipelined round trip of 7
    assert [r.position for r in lg.read(after=got[-1][-1])] == more


def test_an_error_reply_is_raised_and_the_connection_stays_in_step(redis_server) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "append-err")
    lg.client.set(lg.keys.events, b"not a stream")  # every XADD answers WRONGTYPE
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        lg.append_raw(_blobs(10, "x"))
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        list(lg.append_chunks(iter([_blobs(3, "y"), _blobs(3, "z")])))
    # no reply of the failed batches is left for the next commands to read
    for i in range(5):
        lg.client.set(f"probe-{i}", str(i))
        assert lg.client.get(f"probe-{i}") == str(i).encode()
    lg.client.delete(lg.keys.events)
    assert len(lg.append_raw(_blobs(4, "w"))) == 4 and lg.length() == 4


def test_a_dropped_server_is_log_unavailable(redis_server, tmp_path) -> None:
    from events.log import LogUnavailable
    from tests.redis_server import free_port

    lg = stream.StreamLog.from_url(f"redis://127.0.0.1:{free_port()}/0", "append-down")
    with pytest.raises(LogUnavailable):
        lg.append_raw(_blobs(3, "x"))
    with pytest.raises(LogUnavailable):
        list(lg.append_chunks(iter([_blobs(3, "x")])))


def test_parallel_decoding_of_a_big_watch_log_equals_the_serial_path(redis_server, tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks import data
    from reconciler.runtime.cli import events as cli_events

    lines = data.watch_log_lines(8_000)
    lines[100] = b'{"type": "ADDED", "object": {"apiVersion": "v1", "kind": "Service"'  # broken JSON
    lines[9_001] = lines[9_001].replace(b'"10.', b'"10.0.')  # an endpoint address that is no address
    lines.insert(5_000, b"")  # blank lines are not records
    lines.insert(12_345, b'{"type": "BOOKMARK", "object": {"kind": "Service", "apiVersion": "v1"}}')
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert path.stat().st_size >= cli_events.PARALLEL_MIN_BYTES  # the parallel path is taken
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    out = {}
    for jobs in ("1", "3"):
        res = subprocess.run([sys.executable, "-m", "reconciler", "events", "append", str(path), "--jobs", jobs,
                              "--redis-url", redis_server.url, "--cluster", f"jobs{jobs}", "--no-progress"],
                             capture_output=True, text=True, env=env, cwd=root, timeout=600)
        assert res.returncode == 2, res.stderr[-2000:]
        out[jobs] = (res.stderr, [r.data for r in stream.StreamLog.from_url(redis_server.url, f"jobs{jobs}").read()])
    assert out["1"] == out["3"]
    stderr, entries = out["3"]
    assert f"{path}:101: refused: invalid JSON" in stderr
    assert f"{path}:9002: refused:" in stderr and "is not an IP address" in stderr
    assert "2 refused" in stderr and len(entries) == len(lines) - 2 - 2  # blank and BOOKMARK carry no event


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_packed_appends_count_their_entries_and_raise_error_replies_over_both_protocols(redis_server,
                                                                                        protocol) -> None:
    lg = stream.StreamLog.from_url(f"{redis_server.url}?protocol={protocol}", f"packed-{protocol}")
    assert lg.packable
    chunks = [_blobs(5, "a"), _blobs(1, "b"), _blobs(3000, "c")]  # the last one spans several socket reads
    assert list(lg.append_packed((lg.pack(c), len(c)) for c in chunks)) == [5, 1, 3000]
    assert [r.data for r in lg.read()] == [b for c in chunks for b in c]
    lg.client.delete(lg.keys.events)
    lg.client.set(lg.keys.events, b"not a stream")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        list(lg.append_packed((lg.pack(c), len(c)) for c in chunks))
    lg.client.set("probe", "1")  # the connection is still in step
    assert lg.client.get("probe") == b"1"


def test_refusals_are_numbered_within_their_own_file_on_both_paths(redis_server, tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from benchmarks import data
    from reconciler.runtime.cli import events as cli_events

    paths = []
    for name, bad in (("one.jsonl", 7), ("two.jsonl", 3)):
        lines = data.watch_log_lines(8_000)
        lines[bad - 1] = b'{"type": "ERROR", "object": {"message": "gone"}}'
        p = tmp_path / name
        p.write_bytes(b"\n".join(lines) + b"\n")
        assert p.stat().st_size >= cli_events.PARALLEL_MIN_BYTES
        paths.append(p)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    for jobs in ("1", "2"):
        res = subprocess.run([sys.executable, "-m", "reconciler", "events", "append", *map(str, paths), "--jobs", jobs,
                              "--redis-url", redis_server.url, "--cluster", f"files{jobs}", "--no-progress"],
                             capture_output=True, text=True, env=env, cwd=root, timeout=600)
        assert res.returncode == 2, res.stderr[-2000:]
        refused = [ln for ln in res.stderr.splitlines() if ": refused: " in ln]
        assert refused == [f"{paths[0]}:7: refused: watch ERROR: gone", f"{paths[1]}:3: refused: watch ERROR: gone"]
        assert stream.StreamLog.from_url(redis_server.url, f"files{jobs}").length() == 2 * (2 * 8_000 + 6 - 1)


def test_events_of_several_files_of_both_kinds_are_appended_in_file_order(redis_server, tmp_path) -> None:
    from typer.testing import CliRunner

    from reconciler.runtime.cli.app import app

    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("".join(f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: y{i}}}\n" for i in range(3)))
    lines_file = tmp_path / "b.jsonl"
    lines_file.write_text("".join(json.dumps({"type": "ADDED", "object": {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"j{i}"}}}) + "\n" for i in range(4)))
    res = CliRunner().invoke(app, ["events", "append", str(yaml_file), str(lines_file), str(yaml_file),
                                   "--redis-url", redis_server.url, "--cluster", "order", "--no-progress"])
    assert res.exit_code == 0, res.output
    names = [codec.decode(r.data).obj.name for r in stream.StreamLog.from_url(redis_server.url, "order").read()]
    assert names == ["y0", "y1", "y2", "j0", "j1", "j2", "j3", "y0", "y1", "y2"]
