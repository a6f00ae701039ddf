"""Loading the CLI must not import the kubernetes client: it is slow to import, and `run`/`speak` restart often."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_import_does_not_load_kubernetes() -> None:
    code = "import sys, reconciler.runtime.cli.app; print('kubernetes' in sys.modules, 'urllib3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"


def test_write_status_factory_is_registered_with_run() -> None:
    # the command groups load with the app (``main()`` for any command but replay/version, or importing ``app``)
    code = ("from reconciler.runtime.cli.app import app; import reconciler.runtime.cli.run as r; "
            "f = r._status_writer_factory; print(f.__module__, f.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["reconciler.runtime.cli.kube", "_status_writer_factory"]


def test_watch_without_a_log_or_with_a_bad_kubeconfig_fails_cleanly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reconciler.runtime.cli.app import app

    runner = CliRunner()
    env = {"STREAMLB_REDIS_URL": "", "STREAMLB_LOG": "", "KUBECONFIG": ""}
    res = runner.invoke(app, ["watch", "--kubeconfig", str(tmp_path / "none")], env=env)
    assert res.exit_code == 2 and "no event log" in res.stderr and "Traceback" not in res.output + res.stderr
    res = runner.invoke(app, ["watch", "--log", str(tmp_path / "x.evlog"), "--kubeconfig", str(tmp_path / "none")],
                        env=env)
    assert res.exit_code == 2 and "cannot configure the Kubernetes client" in res.stderr
    assert "Traceback" not in res.output + res.stderr
