"""The BFD decoder on a seeded stream of mutated packets (the benchmark's campaign, smaller): only ``BfdError``
escapes, and the compiled and pure decoders agree on every input — same packet or same error text."""

from __future__ import annotations

import importlib
import os
import random

from benchmarks import bench_bfd
from fastpath._bfd_common import BfdError

NO_EXTENSIONS = bool(os.environ.get("FASTPATH_NO_EXTENSIONS"))
IMPLS = [importlib.import_module(m) for m in (["fastpath._bfd_py"] if NO_EXTENSIONS
                                              else ["fastpath._bfd_py", "fastpath._bfd"])]


def test_mutated_packets_raise_only_bfd_error_and_twins_agree() -> None:
    rng = random.Random(2024)
    base = bench_bfd.corpus()
    parsed = errors = 0
    for _ in range(20_000):
        data = bench_bfd.mutate(rng, rng.choice(base))
        outcomes = []
        for impl in IMPLS:
            try:
                outcomes.append(impl.parse_control(data))
            except BfdError as exc:
                outcomes.append(("BfdError", str(exc)))
        assert all(o == outcomes[0] for o in outcomes), (data.hex(), outcomes)
        if isinstance(outcomes[0], tuple) and outcomes[0][0] == "BfdError":
            errors += 1
        else:
            parsed += 1
    # the mutator reaches both sides of the decoder
    assert parsed > 2_000 and errors > 2_000, (parsed, errors)
