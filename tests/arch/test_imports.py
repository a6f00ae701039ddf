"""Architecture rules: import-linter contracts and a naive AST check of the core's standard-library bans.

The AST check (after msgspec's ``test_cpylint.py``) catches what import-linter cannot see: calls into the clock,
randomness, the environment and ``hash()``. Opt out of a line with ``# purity: ok (<why>)``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = sorted(p for p in (ROOT / "reconciler").glob("*.py") if p.name not in ("__main__.py",))
BANNED_MODULES = {"time", "random", "socket", "os", "asyncio", "threading", "subprocess", "secrets", "uuid"}
BANNED_CALLS = {"hash", "id", "input", "open"}
BANNED_ATTRS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("os", "environ")}


def _violations(path: Path) -> list[str]:
    src = path.read_text()
    lines = src.splitlines()
    out = []
    for node in ast.walk(ast.parse(src)):
        line = getattr(node, "lineno", 0)
        if line and "# purity: ok" in lines[line - 1]:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in BANNED_MODULES:
                    out.append(f"{path.name}:{line}: import {a.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in BANNED_MODULES:
            out.append(f"{path.name}:{line}: from {node.module} import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BANNED_CALLS:
            out.append(f"{path.name}:{line}: call {node.func.id}()")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in BANNED_ATTRS:
                out.append(f"{path.name}:{line}: {node.value.id}.{node.attr}")
    return out


def test_core_files_exist() -> None:
    assert len(CORE) >= 8


def test_core_is_free_of_clocks_randomness_and_environment() -> None:
    bad = [v for p in CORE for v in _violations(p)]
    assert bad == []


def test_the_checker_catches_violations(tmp_path: Path) -> None:
    p = tmp_path / "bad.py"
    p.write_text("import time\nfrom os import environ\nx = hash('a')\nimport datetime\ny = datetime.now()\n")
    assert len(_violations(p)) == 4


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: " in proc.stdout and " broken" in proc.stdout
