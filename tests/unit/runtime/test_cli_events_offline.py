"""``streamlb events`` / ``run`` argument errors, caught before any Redis connection (exit 2, no traceback)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reconciler.runtime.cli.app import app

runner = CliRunner()


def test_bad_output_format_is_exit_2() -> None:
    res = runner.invoke(app, ["events", "tail", "--output", "xml"])
    assert res.exit_code == 2 and "--output must be json or table" in res.stderr


def test_bad_log_format_is_exit_2() -> None:
    res = runner.invoke(app, ["run", "--log-format", "xml"])
    assert res.exit_code == 2 and "--log-format must be text or json" in res.stderr


def test_undetectable_input_is_exit_2_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    p.write_bytes(b"\xff\xfe\x00garbage")
    res = runner.invoke(app, ["events", "append", str(p)])
    assert res.exit_code == 2 and str(p) in res.stderr and "Traceback" not in res.output


def test_import_of_a_non_evlog_file_is_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "x.evlog"
    p.write_bytes(b"not an evlog")
    res = runner.invoke(app, ["events", "import", str(p)])
    assert res.exit_code == 2 and "bad magic" in res.stderr


def test_bad_sentinel_url_is_exit_2() -> None:
    res = runner.invoke(app, ["events", "deadletters", "--redis-url", "redis+sentinel://127.0.0.1:26379"])
    assert res.exit_code == 2 and "service name" in res.stderr


def test_help_lists_every_events_command() -> None:
    res = runner.invoke(app, ["events", "--help"])
    assert res.exit_code == 0
    for cmd in ("append", "tail", "export", "import", "deadletters"):
        assert cmd in res.stdout
