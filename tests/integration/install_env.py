"""``pip install .`` of a copy of the tree into a fresh venv, for ``test_install.py``, startable in the background.

Building streamlb (Cython and a C compiler in pip's isolated build environment) is the one long CPU-bound job of
the integration suite; everything else there mostly waits on daemons and timers. ``tests/integration/conftest.py``
starts the build as soon as collection ends, beside the first tests (the BGP collision runs, which sleep on the
routers' timers), and ``test_install.py``'s fixture collects the result. Run alone, the fixture builds in place.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="install")
_build: list[concurrent.futures.Future] = []


def build(base: Path) -> Path:
    """A fresh venv under ``base`` with streamlb installed from a copy of the tree (so no in-place build products
    leak in); returns the venv's directory. Raises AssertionError with pip's output when the install fails."""
    src = base / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "bench-out", "*.so", "*.c", "__pycache__", ".pytest_cache", ".hypothesis",
            "*.egg-info",
        ),
    )
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTPATH_NO_EXTENSIONS")}
    res = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(src)], env=env, capture_output=True, text=True, timeout=900
    )
    assert res.returncode == 0, res.stderr[-4000:]
    return env_dir


def start(base: Path) -> None:
    """Begin ``build(base)`` in a background thread (once per session)."""
    if not _build:
        _build.append(_pool.submit(build, base))


def started() -> Path | None:
    """The venv of the build begun by ``start`` (waiting for it; its failure is raised here), or None."""
    return _build[0].result() if _build else None


def wait() -> None:
    """Let a started build finish (end of session: no thread left writing into pytest's temporary directory)."""
    for f in _build:
        concurrent.futures.wait([f])
