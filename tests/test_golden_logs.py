"""Golden logs: every released log format keeps decoding forever, and replays to its recorded decisions.

``tests/golden/logs/<name>.evlog`` + ``<name>.state.json``. A changed decision must be explained in the commit that
rewrites the golden (``pytest --update-golden``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events import inputs, logfile
from reconciler.runtime import replay

GOLDEN = Path(__file__).parent / "golden" / "logs"
LOGS = sorted(GOLDEN.glob("*.evlog"))


def test_corpus_is_not_empty() -> None:
    assert len(LOGS) >= 2


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_golden_log_decodes_completely(path: Path) -> None:
    records = list(inputs.read_file(path))
    assert records, "empty golden log"
    for rec in records:
        assert all(isinstance(o, inputs.Accepted) for o in rec.outcomes), (rec.number, rec.outcomes)
    assert len(records) == len(list(logfile.iter_frames(path.read_bytes())))


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_golden_log_replays_to_recorded_decisions(path: Path, update_golden: bool) -> None:
    out = replay.replay([str(path)]).to_json()
    expected = path.with_suffix(".state.json")
    if update_golden:
        expected.write_bytes(out)
    assert expected.exists(), f"missing {expected.name}; run pytest --update-golden"
    got, want = json.loads(out), json.loads(expected.read_bytes())
    assert got == want
    assert out == expected.read_bytes()


def test_every_golden_log_replays_byte_identically_across_hash_seeds() -> None:
    """Each golden log (the preferredNodeSelectors one included) replays to its recorded bytes under several
    ``PYTHONHASHSEED`` values: no decision may depend on set or dict iteration order."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = (
        "import sys\n"
        "from reconciler.runtime import replay\n"
        "for p in sys.argv[1:]:\n"
        "    sys.stdout.buffer.write(replay.replay([p]).to_json())\n"
    )
    want = b"".join(p.with_suffix(".state.json").read_bytes() for p in LOGS)
    assert any("preferred" in p.name for p in LOGS)
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        proc = subprocess.run([sys.executable, "-c", script, *map(str, LOGS)], capture_output=True, env=env,
                              cwd=root, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout == want, seed
