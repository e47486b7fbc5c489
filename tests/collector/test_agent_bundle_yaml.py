"""A bundle's rule texts are checked on the agent before pySigma parses them: an alias bomb
(an alert published before the service checked, or by an older service) is refused in
milliseconds and counted, and the bundle's other rules still load and detect."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from collector.runner import Detector
from detection.event import Event
from tests.detection.sigma_helpers import TS

GOOD_ID = "5d0f8a3e-1b2c-4d5e-8f90-0a1b2c3d4e5f"
GOOD = f"""title: Good rule of the same bundle
id: {GOOD_ID}
status: experimental
logsource: {{category: application}}
detection:
  selection: {{message|contains: evil-marker}}
  condition: selection
level: high
"""


def _laughs(levels: int) -> str:
    """A Sigma rule whose keywords are 9**levels strings once the aliases are composed."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for n in range(1, levels + 1):
        refs = ", ".join([f"*a{n - 1}"] * 9)
        lines.append(f"a{n}: &a{n} [{refs}]")
    return (
        "\n".join(lines)
        + "\ntitle: bomb\nid: 0b0b0b0b-0000-4000-8000-000000000000\nlogsource: {category: x}\n"
        + f"detection:\n  keywords: *a{levels}\n  condition: keywords\nlevel: high\n"
    )


BOMBS = {
    "nested aliases": _laughs(6),
    "merge key": "base: &b {message|contains: x}\ntitle: m\n"
    "id: 0b0b0b0b-0000-4000-8000-000000000001\nlogsource: {category: x}\n"
    "detection:\n  sel:\n    <<: *b\n  condition: sel\nlevel: high\n",
    "over the size bound": GOOD + "#" * 70_000,
}


def _bundle() -> dict[str, Any]:
    rules = [{"alert_id": f"old-{n}", "rule": text} for n, text in enumerate(BOMBS.values())]
    rules.append({"alert_id": "fresh", "rule": GOOD})
    return {"version": 3, "sigma": rules, "yara": [], "indicators": []}


def test_a_bomb_in_a_bundle_is_refused_before_parsing_and_the_rest_loads(tmp_path: Path) -> None:
    detector = Detector(own_rules=None, state_dir=tmp_path / "state")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.perf_counter()
    detector.load(_bundle())
    spent = time.perf_counter() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    # Composed, the nested aliases alone are 9**6 strings: seconds and hundreds of MB.
    assert spent < 5.0, spent
    assert grown_mib < 100, grown_mib
    assert detector.skipped["sigma"] == len(BOMBS)
    reasons = " | ".join(detector.errors)
    assert "alias" in reasons or "anchor" in reasons, reasons
    assert "bytes" in reasons, reasons
    hits = detector.detect([Event(TS, {"message": "an evil-marker here"}, "tail")])
    assert [d["rule_id"] for d in hits] == [GOOD_ID]
