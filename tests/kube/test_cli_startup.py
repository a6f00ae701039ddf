"""Loading the CLI must not import the kubernetes client: it is slow to import, and `run`/`speak` restart often."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_import_does_not_load_kubernetes() -> None:
    code = "import sys, reconciler.runtime.cli; print('kubernetes' in sys.modules, 'urllib3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"


def test_write_status_factory_is_registered_with_run() -> None:
    import importlib

    import reconciler.runtime.cli  # noqa: F401 - registers the commands

    try:
        cli_run = importlib.import_module("reconciler.runtime.cli_run")
    except ModuleNotFoundError:
        return  # a build without `streamlb run` has nothing to register with
    assert cli_run._status_writer_factory is not None
    assert cli_run._status_writer_factory.__module__ == "reconciler.runtime.cli_kube"
