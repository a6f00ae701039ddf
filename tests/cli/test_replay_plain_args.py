"""``streamlb replay`` parses its plain command lines without typer (start-up): the program must behave exactly
as typer's parsing of the same line does — same output bytes, same exit status — and hand everything else to typer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.runtime.cli import app as appmod

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "cluster.yaml")


def _program(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler", "replay", *args], cwd=ROOT, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120)


@pytest.mark.parametrize("args", [
    [EXAMPLE, "--output", "json"],
    ["-o", "json", EXAMPLE, "--omit", "bgp"],
    [EXAMPLE, "--output=json", "--omit=bgp", "--at", "3"],
    [EXAMPLE, "--at=0", "-o", "json"],
    [EXAMPLE, EXAMPLE, "-o", "table", "--output", "json"],  # the last one wins
    [EXAMPLE],
    [str(ROOT) + "/examples/./cluster.yaml", "--output", "json"],  # the file name as typer's Path gives it
    ["/nonexistent/file.jsonl", "-o", "json"],
])
def test_plain_lines_print_what_typer_prints(args: list[str]) -> None:
    assert appmod._plain_replay_args(args) is not None
    got = _program(args, env={"COLUMNS": "200"})
    want = CliRunner().invoke(appmod.app, ["replay", *args], env={"COLUMNS": "200"})
    assert got.returncode == want.exit_code
    assert got.stdout == want.stdout_bytes
    assert got.stderr.decode() == want.stderr


@pytest.mark.parametrize("args", [
    [], ["--help"], [EXAMPLE, "--help"], [EXAMPLE, "-o"], [EXAMPLE, "-o", "yaml"], [EXAMPLE, "-o=json"],
    [EXAMPLE, "-ojson"], [EXAMPLE, "--at", "-1"], [EXAMPLE, "--at", "x"], [EXAMPLE, "--at", "²"],
    [EXAMPLE, "--omit", "services"], [EXAMPLE, "--lb-class", "x"], [EXAMPLE, "--metallb-namespace", "x"],
    ["--", EXAMPLE], ["-"], [EXAMPLE, "--bogus"],
])
def test_other_lines_are_left_to_typer(args: list[str]) -> None:
    assert appmod._plain_replay_args(args) is None


def test_options_from_the_environment_are_left_to_typer(monkeypatch) -> None:
    assert appmod._plain_replay_args([EXAMPLE]) is not None
    monkeypatch.setenv("STREAMLB_LB_CLASS", "x")
    assert appmod._plain_replay_args([EXAMPLE]) is None
    got = _program([EXAMPLE, "-o", "json"], env={"STREAMLB_LB_CLASS": "x"})
    assert got.returncode == 0 and b'"services": {}' in got.stdout  # typer read the class: no Service handled
