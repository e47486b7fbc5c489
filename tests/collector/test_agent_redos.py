"""ReDoS on the agent: the bundle's rules (as the CERT publishes them) and Vigie's own rules
run on the agent's Detector over lines of 30, 1,000 and 100,000 characters in milliseconds.

The Detector is the agent's own (collector/runner.py), loading the bundle's rule texts from
its state folder as a running agent does; the service's side of the same attack is in
tests/api/test_hunt_redos.py, the engine's in tests/detection/test_sigma_redos.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from collector.runner import Detector
from detection.event import Event
from tests.detection.redos_cases import BOUND_SECONDS, CASES, LENGTHS, bounded, rule_text
from tests.detection.sigma_helpers import TS

OWN_RULES = Path(__file__).resolve().parents[2] / "rules" / "sigma"
CHILD_DEADLINE = 120  # seconds for every case in the child; a backtracking run never ends


def _bundle() -> dict[str, Any]:
    return {
        "version": 7,
        "sigma": [
            {"alert_id": f"alert-{n}", "rule": rule_text(case, f"7e1c2b90-0000-4000-8000-{n:012d}")}
            for n, case in enumerate(CASES)
        ],
        "yara": [],
        "indicators": [],
    }


def _line(message: str) -> Event:
    # As the agent's syslog and file sources give a line: its text in `message`.
    return Event(TS, {"message": message, "log": {"file": {"path": "/var/log/app.log"}}}, "tail")


def test_a_bundles_catastrophic_rules_cost_milliseconds_on_the_agent(tmp_path: Path) -> None:
    detector = Detector(own_rules=OWN_RULES, state_dir=tmp_path / "state")
    detector.load(_bundle())
    assert detector.errors == []
    hits = detector.detect([_line(case.hit) for case in CASES])
    assert {d["rule_id"] for d in hits} >= {f"7e1c2b90-0000-4000-8000-{n:012d}" for n in range(9)}

    def timings() -> dict[str, float]:
        spent = {}
        for case in CASES:
            for n in LENGTHS:
                start = time.perf_counter()
                detector.detect([_line(case.evil(n))])
                spent[f"{case.name}/{n}"] = took = time.perf_counter() - start
                # Stop at the first overrun: the old engine would take hours on the next one.
                assert took < BOUND_SECONDS, spent
        return spent

    spent = bounded(timings, CHILD_DEADLINE)
    assert max(spent.values()) < BOUND_SECONDS, spent
