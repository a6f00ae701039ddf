"""``streamlb events ...`` against a real redis-server started by the test (free port, own data dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events import codec, log, logfile, schema, stream
from reconciler.runtime import replay as replaymod
from reconciler.runtime.cli.app import app
from tests.redis_server import free_port, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cluster.yaml"
runner = CliRunner()


def _env(srv) -> dict:
    return {"STREAMLB_REDIS_URL": srv.url, "STREAMLB_CLUSTER": "cli"}


def test_append_then_export_equals_the_offline_replay(redis_server, tmp_path: Path) -> None:
    res = runner.invoke(app, ["events", "append", str(EXAMPLE)], env=_env(redis_server))
    assert res.exit_code == 0, res.output
    lg = stream.StreamLog.from_url(redis_server.url, "cli")
    n = len(list(lg.read()))
    offline = replaymod.replay([str(EXAMPLE)])
    assert n == offline.events_applied > 0
    out = tmp_path / "x.evlog"
    res = runner.invoke(app, ["events", "export", "--to", str(out)], env=_env(redis_server))
    assert res.exit_code == 0, res.output
    assert replaymod.replay([str(out)]).to_json_obj()["state_hash"] == offline.to_json_obj()["state_hash"]
    # import into another cluster: same entries, byte for byte
    res = runner.invoke(app, ["events", "import", str(out), "--cluster", "copy"], env={"STREAMLB_REDIS_URL": redis_server.url})
    assert res.exit_code == 0, res.output
    copy = stream.StreamLog.from_url(redis_server.url, "copy")
    assert [r.data for r in copy.read()] == [r.data for r in lg.read()]


def test_a_refused_record_names_file_and_record_and_nothing_of_it_is_appended(redis_server, tmp_path: Path) -> None:
    good = json.dumps(codec.to_builtins(schema.SpeakerUp(node="a")))
    lst = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"},
         "spec": {"type": "LoadBalancer", "clusterIPs": ["10.0.0.01"]}},
    ]}
    p = tmp_path / "in.jsonl"
    p.write_text(good + "\n{broken\n" + json.dumps(lst) + "\n" + good.replace('"a"', '"b"') + "\n")
    res = runner.invoke(app, ["events", "append", str(p)], env=_env(redis_server))
    assert res.exit_code == 2
    assert f"{p}:2: refused: invalid JSON" in res.stderr
    assert f"{p}:3: refused:" in res.stderr
    assert "Traceback" not in res.output
    got = [log.decode_record(r) for r in stream.StreamLog.from_url(redis_server.url, "cli").read()]
    assert got == [schema.SpeakerUp(node="a"), schema.SpeakerUp(node="b")]  # record 3's valid Node is not there


def test_tail_prints_json_lines_including_undecodable_entries(redis_server) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "cli")
    pos = lg.append([schema.SpeakerUp(node=f"n{i}") for i in range(5)])
    bad = lg.append_raw([b"\xc1"])
    res = runner.invoke(app, ["events", "tail", "-n", "3"], env=_env(redis_server))
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["pos"] for x in lines] == [str(pos[3]), str(pos[4]), str(bad[0])]
    assert lines[0]["event"] == {"kind": "speaker.up", "node": "n3"}
    assert "invalid event" in lines[2]["error"]
    res = runner.invoke(app, ["events", "tail", "--after", str(pos[0]), "-n", "2"], env=_env(redis_server))
    assert [json.loads(x)["pos"] for x in res.stdout.splitlines()] == [str(pos[1]), str(pos[2])]


def test_deadletters_lists_what_was_dead_lettered(redis_server) -> None:
    lg = stream.StreamLog.from_url(redis_server.url, "cli")
    p = lg.append_raw([b"junk"])[0]
    assert lg.deadletter(p, "invalid event: junk", b"junk") is True
    assert lg.deadletter(p, "invalid event: junk", b"junk") is False  # a second replica: harmless
    res = runner.invoke(app, ["events", "deadletters", "-o", "json"], env=_env(redis_server))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"pos": str(p), "reason": "invalid event: junk", "e": "anVuaw=="}]


def test_unreachable_redis_is_exit_1_with_a_clear_message(tmp_path: Path) -> None:
    env = {"STREAMLB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    res = runner.invoke(app, ["events", "append", str(EXAMPLE)], env=env)
    assert res.exit_code == 1
    assert "redis unavailable" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["events", "tail"], env=env)
    assert res.exit_code == 1


def test_unreadable_input_is_exit_2_and_appends_nothing(redis_server, tmp_path: Path) -> None:
    res = runner.invoke(app, ["events", "append", str(EXAMPLE), str(tmp_path / "missing.yaml")], env=_env(redis_server))
    assert res.exit_code == 2 and "missing.yaml" in res.stderr
    assert stream.StreamLog.from_url(redis_server.url, "cli").head() == stream.ZERO


def test_tail_follow_prints_new_entries_until_interrupted(redis_server) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    lg = stream.StreamLog.from_url(redis_server.url, "cli")
    lg.append([schema.SpeakerUp(node="old")])
    env = dict(os.environ, PYTHONPATH=str(ROOT), **_env(redis_server))
    p = subprocess.Popen([sys.executable, "-m", "reconciler", "events", "tail", "-n", "0", "--follow"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        # The follower starts at the head as of its start-up, which on a loaded machine may take seconds: keep
        # appending (bounded) until it prints, then the lines must be our entries, in order, never the old one.
        import select

        appended: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            appended.append(str(lg.append([schema.SpeakerDown(node=f"new{len(appended)}")])[0]))
            if select.select([p.stdout], [], [], 0.3)[0]:
                break
        first = json.loads(p.stdout.readline())
        assert first["pos"] in appended and first["event"]["kind"] == "speaker.down"
        i = appended.index(first["pos"])
        assert first["event"]["node"] == f"new{i}"
        nxt = str(lg.append([schema.SpeakerDown(node="last")])[0])
        rest = [json.loads(p.stdout.readline()) for _ in range(len(appended) - i)]
        assert [r["pos"] for r in rest] == appended[i + 1:] + [nxt]
        assert rest[-1]["event"] == {"kind": "speaker.down", "node": "last"}
        os.kill(p.pid, signal.SIGINT)
        assert p.wait(timeout=10) == 0
        assert "Traceback" not in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_python_producer_api_on_redis(redis_server) -> None:
    from events import producer

    events = [schema.SpeakerUp(node=f"n{i}") for i in range(2500)]
    with producer.Producer.connect(redis_server.url, cluster="api", batch=1000) as p:
        p.send_many(events[:2000])
        for e in events[2000:]:
            p.send(e)
    lg = stream.StreamLog.from_url(redis_server.url, "api")
    assert [r.position for r in lg.read()] == p.positions
    assert [log.decode_record(r) for r in lg.read()] == events


def test_run_write_status_without_a_writer_is_a_clear_error(redis_server) -> None:
    from reconciler.runtime.cli import run as cli_run

    cli_run.set_status_writer_factory(None)
    res = runner.invoke(app, ["run", "--write-status"], env=_env(redis_server))
    assert res.exit_code == 2 and "status write-back is not available" in res.stderr
