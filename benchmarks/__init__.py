"""streamlb's benchmark suite: ``python -m benchmarks [--quick] [--only NAME] [--json FILE]``."""
