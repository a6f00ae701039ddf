"""Golden ``.hex`` files: one protocol field per line (hex, then ``#`` and the field's name and RFC section).

Lines starting with ``#`` are the header (where the bytes came from, which oracle agreed). ``load`` joins the hex
of every field line; ``diff`` renders an aligned hexdump of two byte strings for assertion messages.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "frames"


def load(name: str) -> bytes:
    out = []
    for line in (GOLDEN / name).read_text().splitlines():
        code = line.split("#", 1)[0].strip()
        if code:
            out.append(bytes.fromhex(code))
    return b"".join(out)


def names(prefix: str) -> list[str]:
    found = sorted(p.name for p in GOLDEN.glob(f"{prefix}*.hex"))
    assert found, f"no golden files {prefix}*.hex in {GOLDEN}"  # a corpus test must not pass vacuously
    return found


def diff(want: bytes, got: bytes) -> str:
    rows = []
    for off in range(0, max(len(want), len(got)), 16):
        w, g = want[off:off + 16], got[off:off + 16]
        mark = "  " if w == g else "!!"
        rows.append(f"{mark} {off:04x}  want {w.hex(' '):<47}  got {g.hex(' ')}")
    return "\n".join(rows)
