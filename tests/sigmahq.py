"""SigmaHQ's Windows rules and the EVTX corpus, read, matched and converted once per process.

Five tests need SigmaHQ's 2,407 Windows rules, and most of them the EVTX corpus and what the
engine matches in it, or the rules converted to SQLite or Lucene: about 25 s a conversion, 10 s
to load the rules, 10 s to match the corpus. `sqlite_side` and `lucene_side` put them in two
xdist groups (a group runs in one worker: `--dist loadgroup`), the tests of the SQLite queries
and those of the Lucene queries, so that each worker loads the rules and converts them once,
and the two sides run in parallel. Callers must not change what they get.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TypeVar

import pytest

from detection.event import Event
from detection.sigma import SigmaEngine, SigmaRuleSet, load_sigma_rules
from detection.sigma.convert import ConversionResult, to_elasticsearch, to_sqlite
from detection.sources.evtx import read_evtx
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path

SQLITE = (pytest.mark.xdist_group("sigmahq-sqlite"), pytest.mark.corpus, pytest.mark.slow)
LUCENE = (pytest.mark.xdist_group("sigmahq-lucene"), pytest.mark.corpus, pytest.mark.slow)
Test = TypeVar("Test", bound=Callable[..., object])


def sqlite_side(test: Test) -> Test:
    for one in SQLITE:
        test = one(test)
    return test


def lucene_side(test: Test) -> Test:
    for one in LUCENE:
        test = one(test)
    return test


@cache
def windows_rules() -> SigmaRuleSet:
    return load_sigma_rules([corpus_path("sigma", "rules", "windows")])


@cache
def evtx_events() -> tuple[Event, ...]:
    stats = ReadStats()
    paths = sorted(corpus_path("evtx").rglob("*.evtx"))
    return tuple(event for path in paths for event in read_evtx(path, stats))


@cache
def engine_matches() -> dict[str, tuple[int, ...]]:
    """Per rule id, the indexes in `evtx_events()` of the events the engine matches."""
    engine = SigmaEngine(windows_rules())
    matches: dict[str, list[int]] = {}
    for index, event in enumerate(evtx_events()):
        for rule in engine.matching_rules(event)[1]:
            matches.setdefault(rule.id, []).append(index)
    return {rule_id: tuple(indexes) for rule_id, indexes in matches.items()}


@cache
def sqlite_queries() -> tuple[ConversionResult, ...]:
    return tuple(to_sqlite(windows_rules().rules))


@cache
def lucene_queries() -> tuple[ConversionResult, ...]:
    return tuple(to_elasticsearch(windows_rules().rules))
