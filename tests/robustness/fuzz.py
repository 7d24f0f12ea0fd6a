"""Run one fuzz target under a 2 GB address-space cap and print its counts as JSON.

``python tests/robustness/fuzz.py TARGET PROFILE``: PROFILE ``ci`` (500 examples),
``full`` (10,000) or a number; ``$SAMBENCH_FUZZ_PROFILE`` overrides it. Exit 0 with
``{"target", "probes", "ok", "skip", "error"}`` on stdout, or a traceback naming the input
hypothesis shrank a crash to. The cap is set before anything is imported, so a parser that
allocates without limit fails here with MemoryError instead of taking the machine down.
"""
from __future__ import annotations

import resource
import sys

MEMORY_CAP = 2 * 2**30
PROFILES = {"ci": 500, "full": 10_000}


def main(target: str, profile: str) -> int:
    import json
    import logging
    import os
    import tempfile
    from collections import Counter
    from pathlib import Path

    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(Path(__file__).parent))
    from targets import TARGETS

    logging.getLogger("sambench").setLevel(logging.ERROR)  # skips are counted, not printed
    profile = os.environ.get("SAMBENCH_FUZZ_PROFILE", profile)
    examples = PROFILES[profile] if profile in PROFILES else int(profile)
    strategy, probe = TARGETS[target]
    counts: Counter = Counter()
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def fuzz(value):
        outcome = probe(value, work)
        assert outcome in ("ok", "skip", "error"), outcome
        counts[outcome] += 1

    fuzz()
    print(json.dumps({"target": target, "probes": sum(counts.values()), **{k: counts[k] for k in ("ok", "skip", "error")}}))
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    sys.exit(main(*sys.argv[1:3]))
