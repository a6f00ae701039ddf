"""README quick-start command (a), as a new user runs it: ``pip install .`` into a fresh venv, then the console
script replays the bundled example. This exercises the real build (Cython as a build requirement, the extensions
compiled by setup.py) and the installed entry point, not the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import install_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with streamlb installed from a copy of the tree (built in the background when the whole
    integration suite runs: see ``install_env``)."""
    return install_env.started() or install_env.build(tmp_path_factory.mktemp("install"))


def _run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTPATH_NO_EXTENSIONS")}
    return subprocess.run(
        [str(env_dir / "bin" / "streamlb"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_console_script_replays_the_example(installed: Path, tmp_path: Path) -> None:
    # run from an unrelated directory so the source tree cannot be imported by accident
    res = _run(installed, "replay", str(ROOT / "examples" / "cluster.yaml"), "--output", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # the installed build must decide exactly as the source tree does
    tree = subprocess.run(
        [sys.executable, "-m", "reconciler", "replay", str(ROOT / "examples" / "cluster.yaml"), "--output", "json"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert tree.returncode == 0, tree.stderr
    assert res.stdout == tree.stdout
    assert out["ignored"] == {"v1/ConfigMap": 1} and out["events_applied"] == 14
    assert out["services"]["default/web"]["ingress"] == ["192.168.10.0"]


def test_installed_cli_reports_bad_input_without_traceback(installed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "missing.yaml"  # an unreadable input is a usage error (exit 2), one line, no traceback
    res = _run(installed, "replay", str(bad), cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr + res.stdout
    assert "missing.yaml" in res.stderr + res.stdout


def test_installed_package_is_not_the_source_tree(installed: Path, tmp_path: Path) -> None:
    py = installed / "bin" / "python"
    res = subprocess.run(
        [str(py), "-c", "import reconciler, events; print(reconciler.__file__); print(events.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert res.returncode == 0, res.stderr
    for line in res.stdout.split():
        assert str(installed) in line, line
