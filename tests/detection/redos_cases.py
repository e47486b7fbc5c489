"""Catastrophic rule expressions and the texts that make a backtracking engine stall on them,
shared by the engine's, the service's, the retro-hunt's and the agent's ReDoS tests.

Each case: a Sigma value line (`field|modifiers: 'value'`), a text of a given length that costs
a backtracking engine time exponential (or of a high power) in its length without matching,
and a short text the rule does match (so that a test also shows the rule is live).
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LENGTHS = (30, 1_000, 100_000)
# Generous: RE2 takes about a millisecond for 100,000 characters; Python's `re` takes
# seconds for 30 characters on these cases, and the cost doubles with each one more.
BOUND_SECONDS = 0.5


@dataclass(frozen=True)
class Case:
    name: str
    value: str  # the selection's line: `message|re: '...'`
    evil: Callable[[int], str]
    hit: str  # a message the rule matches


def _a_then_bang(n: int) -> str:
    return "a" * (n - 1) + "!"


CASES = [
    Case("nested plus (the alert's)", "message|re: '(a+)+$'", _a_then_bang, "baaa"),
    Case("alternation of equals", "message|re: '(a|a)+$'", _a_then_bang, "xa"),
    Case("overlapping alternation", "message|re: '^(a|aa)+$'", _a_then_bang, "aaa"),
    # The literal (`id=`) lets the rule past the engine's anchor filter: an attacker writes it.
    Case("nested star", "message|re: 'id=(a*)*;'", lambda n: "id=" + "a" * (n - 3), "id=aa;"),
    Case("words and spaces", r"message|re: '^(\w+\s?)+$'", _a_then_bang, "ab cd"),
    Case("digits or words", r"message|re: 'n=(\d+|\w+)*#'", lambda n: "n=" + "1" * (n - 2), "n=1#"),
    Case("case-insensitive flag", "message|re|i: '(A+)+$'", _a_then_bang, "xAa"),
    Case(
        "dot-all flag", "message|re|s: 'x=(.|a)+b$'", lambda n: "x=" + _a_then_bang(n - 2), "x=\nb"
    ),
    Case("many ? and * wildcards", "message: '*a*a*a*a*a*?b'", lambda n: "a" * n, "aaaaaxb"),
]


def rule_text(case: Case, rule_id: str = "7e1c2b90-4a7f-4c1e-9d55-3b8a6f0c2d10") -> str:
    return f"""title: ReDoS probe ({case.name})
id: {rule_id}
status: test
logsource: {{product: linux}}
level: high
detection:
  selection:
    {case.value}
  condition: selection
"""


def bounded(work: Callable[[], Any], seconds: float) -> Any:
    """`work()` in a forked child, given `seconds`; its result, or a failure when it overran.

    A backtracking match holds the interpreter for as long as it runs (no timeout, no other
    thread gets in): only another process can stop it, so that the old code fails the test
    instead of hanging it.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        try:
            sender.send(("ok", work()))
        except BaseException:  # noqa: BLE001 - handed to the parent, which fails with it
            sender.send(("error", traceback.format_exc()))

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receiver.poll(seconds):
            raise AssertionError(f"did not finish within {seconds} s")
        status, value = receiver.recv()
    finally:
        process.kill()
        process.join()
    if status == "error":
        raise AssertionError(value)
    return value
