"""Which engine suits a scan of a given size, counting the start as well as the scan.

Warm (compiled rules cached), yara-python loads signature-base's compiled rules in under 0.1 s,
yara-x in about 0.4 s of one core: the yara-x wheels on PyPI compile the rules' WebAssembly
code again at each load (`Rules.deserialize_from` holds the GIL meanwhile, and nothing in the
Python API avoids it). That is for the base set, the rules a file that is not an MZ executable
may match (`heads.py`); the MZ set is loaded too when such a file comes. Per file, both pay a
fixed cost (every rule's condition is evaluated: about 0.3 ms with the base set); per byte,
yara-x is faster. Measured on 2 cores with subsets of the many-small-files tree of
benchmarks/yara_small_files.py (whole commands, medians of 5): 62 MB, both 1.75 s; 93 MB,
yara-x 1.45 s against 1.51 s; 199 MB, yara-x ahead by about 1 s of CPU. Break-even is near
64 MB; below that, yara-python starts and ends sooner.

Both engines find the same matches (tests/detection/test_yara_engine_choice.py), so the choice
only changes the speed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from detection.yara.load import EngineChoice

# Bytes of input from which yara-x's faster scan repays its slower start (measured on 2 cores
# with signature-base: see above, benchmarks/yara_small_files.py and yara_vs_cli.py).
YARA_X_FROM_BYTES = 64 * 2**20


def engine_for_inputs(paths: Iterable[Path], threshold: int = YARA_X_FROM_BYTES) -> EngineChoice:
    """`auto` (yara-x when it takes every rule) when the inputs hold at least `threshold` bytes,
    else `yara-python`. Stops walking as soon as the threshold is reached."""
    total = 0
    for size in _sizes(paths):
        total += size
        if total >= threshold:
            return "auto"
    return "yara-python"


def _sizes(paths: Iterable[Path]) -> Iterable[int]:
    for path in paths:
        try:
            if not path.is_dir():
                yield path.stat().st_size
                continue
        except OSError:
            continue  # the scan reports it
        for root, _dirs, names in os.walk(path):
            for name in names:
                try:
                    yield os.stat(os.path.join(root, name)).st_size
                except OSError:
                    continue
