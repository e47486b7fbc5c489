"""Load Sigma rule files and folders: what loads is compiled, what does not is reported.

Each file is parsed on its own, so a broken file costs only itself. Correlation rules refer
to other rules by `id` or `name`, possibly in other files: they are resolved once every file
has been read.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import importlib.metadata
import logging
import multiprocessing
import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import SigmaRuleLocation

from detection.errors import InputError, SigmaRuleError
from detection.sigma.compile import (
    CompiledRule,
    CompileError,
    RuleIR,
    build_rule,
    rule_id,
    rule_ir,
)
from detection.sigma.correlate import CompiledCorrelation, compile_correlation

SIGMA_SUFFIXES = (".yml", ".yaml")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class SigmaRuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    errors: list[SigmaRuleError] = field(default_factory=list)
    files_total: int = 0

    @property
    def files_usable(self) -> int:
        """Rule files of which every rule loaded."""
        return self.files_total - len({e.path for e in self.errors})


def iter_rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SIGMA_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            yield path
        else:
            raise InputError(f"no such rule file or folder: {path}")


# Bump when the IR (ir.py, RuleIR) changes shape: older caches are then ignored.
IR_VERSION = 1
# Below this many files, forking parsers costs more than it saves.
PARALLEL_FROM = 200


@dataclass
class _FileOutcome:
    path: Path
    rules: list[tuple[RuleIR, SigmaRule | None]] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reparse: bool = False  # holds correlations: parse it again here, where they are resolved


_Built = tuple[list[CompiledRule], list[SigmaRuleError], list[SigmaCorrelationRule]]


def _build(outcome: _FileOutcome) -> _Built:
    """The compiled rules of one parsed file, its errors, its correlation rules."""
    path = str(outcome.path)
    errors = [SigmaRuleError(path, e) for e in outcome.errors]
    rules: list[CompiledRule] = []
    for ir, rule in outcome.rules:
        try:
            rules.append(build_rule(ir, rule))
        except CompileError as exc:
            errors.append(SigmaRuleError(path, f"rule {ir.id}: {exc}"))
    return rules, errors, outcome.correlations


def load_sigma_rules(
    paths: Sequence[Path], *, workers: int | None = None, cache_dir: Path | None = None
) -> SigmaRuleSet:
    """Load every rule under `paths`; never raises for a bad rule.

    Large rule sets are parsed by pySigma on every core (`workers`, default: all); only the
    plain-data IR comes back, and the closures are built here. With `cache_dir`, the IR of
    each file is kept there, keyed by the file's content and the pySigma version, so that
    only new or changed files are parsed again.
    """
    files = list(iter_rule_files(paths))
    # Loading allocates millions of small objects and frees few: the cyclic garbage collector
    # would walk them again and again (the cached load takes half the time without it).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(files, workers, cache_dir)
    finally:
        if was_enabled:
            gc.enable()


def _load(files: list[Path], workers: int | None, cache_dir: Path | None) -> SigmaRuleSet:
    result = SigmaRuleSet(files_total=len(files))
    cache = _IRCache(cache_dir) if cache_dir else None
    known = cache.lookup(files) if cache else {}
    todo = [path for path in files if path not in known]
    # Closures are built here as outcomes arrive, while the workers go on parsing.
    built: dict[Path, _Built] = {path: _build(o) for path, o in known.items() if not o.reparse}
    fresh: list[_FileOutcome] = []
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(todo) >= PARALLEL_FROM:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for outcome in pool.imap_unordered(_outcome_in_worker, todo, chunksize=16):
                fresh.append(outcome)
                if not outcome.reparse:
                    built[outcome.path] = _build(outcome)
    else:
        for path in todo:
            outcome = _outcome(path, keep=True)
            fresh.append(outcome)
            built[path] = _build(outcome)
    if cache:
        cache.store(fresh)

    by_ref: dict[str, CompiledRule | CompiledCorrelation] = {}
    correlations: list[tuple[Path, SigmaCorrelationRule]] = []
    for path in files:
        if path not in built:  # holds correlations: parsed again here, where they resolve
            built[path] = _build(_outcome(path, keep=True))
        rules, errors, corrs = built[path]
        result.errors.extend(errors)
        correlations.extend((path, c) for c in corrs)
        for compiled in rules:
            result.rules.append(compiled)
            by_ref[compiled.id] = compiled
            if compiled.name:
                by_ref[compiled.name] = compiled

    # Correlations may refer to correlations: compile those whose references are known, and
    # repeat until nothing changes; what is left refers to something unknown (or a cycle).
    pending = correlations
    while pending:
        left: list[tuple[Path, SigmaCorrelationRule]] = []
        last_errors: dict[int, str] = {}
        for path, corr in pending:
            try:
                compiled_corr = compile_correlation(corr, by_ref, path)
            except CompileError as exc:
                left.append((path, corr))
                last_errors[id(corr)] = str(exc)
                continue
            result.correlations.append(compiled_corr)
            by_ref[compiled_corr.id] = compiled_corr
            if corr.name:
                by_ref[corr.name] = compiled_corr
        if len(left) == len(pending):
            result.errors.extend(_error(p, r, last_errors[id(r)]) for p, r in left)
            break
        pending = left
    return result


class _IRCache:
    """One pickle of per-file outcomes, keyed by each file's SHA-256 and the pySigma version."""

    def __init__(self, folder: Path) -> None:
        version = importlib.metadata.version("pysigma")
        self.file = folder / f"sigma-ir-v{IR_VERSION}-pysigma-{version}.pickle"
        self.entries: dict[str, _FileOutcome] = {}
        self.digests: dict[Path, str] = {}

    def lookup(self, files: list[Path]) -> dict[Path, _FileOutcome]:
        try:
            # Our own cache file, written by this code: pickle is safe here.
            self.entries = pickle.loads(self.file.read_bytes())  # noqa: S301
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError):
            self.entries = {}
        found: dict[Path, _FileOutcome] = {}
        for path in files:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
            self.digests[path] = digest
            entry = self.entries.get(digest)
            if entry is not None:
                found[path] = _relocated(entry, path)
        return found

    def store(self, fresh: list[_FileOutcome]) -> None:
        if not fresh:
            return
        for outcome in fresh:
            digest = self.digests.get(outcome.path)
            if digest:
                # The pySigma objects stay out: only plain data is cached.
                self.entries[digest] = _FileOutcome(
                    outcome.path,
                    [(ir, None) for ir, _ in outcome.rules],
                    errors=outcome.errors,
                    reparse=outcome.reparse or bool(outcome.correlations),
                )
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL))
            tmp.replace(self.file)
        except OSError as exc:  # a cache that cannot be written costs time, nothing else
            logging.getLogger(__name__).warning("Sigma IR cache not written: %s", exc)


def _relocated(entry: _FileOutcome, path: Path) -> _FileOutcome:
    """A cached outcome for the same content under another path."""
    if entry.path == path:
        return entry
    rules: list[tuple[RuleIR, SigmaRule | None]] = [
        (dataclasses.replace(ir, path=str(path)), None) for ir, _ in entry.rules
    ]
    return _FileOutcome(path, rules, errors=entry.errors, reparse=entry.reparse)


def pysigma_rule(rule: CompiledRule) -> SigmaRule | None:
    """The pySigma object of a compiled rule, parsing its file again if it was loaded elsewhere."""
    if rule.rule is not None or rule.path is None:
        return rule.rule
    return _rules_of_file(rule.path).get(rule.id)


@functools.lru_cache(maxsize=256)
def _rules_of_file(path: Path) -> dict[str, SigmaRule]:
    return {rule_id(r): r for r in _parse_file(path, []) if isinstance(r, SigmaRule)}


def _outcome_in_worker(path: Path) -> _FileOutcome:
    outcome = _outcome(path, keep=False)
    if outcome.correlations:
        return _FileOutcome(path, reparse=True)
    return outcome


def _outcome(path: Path, *, keep: bool) -> _FileOutcome:
    """Parse one file; `keep` the pySigma objects (only useful in this process)."""
    outcome = _FileOutcome(path)
    errors: list[SigmaRuleError] = []
    for rule in _parse_file(path, errors):
        if isinstance(rule, SigmaCorrelationRule):
            outcome.correlations.append(rule)
            continue
        try:
            outcome.rules.append((rule_ir(rule, path), rule if keep else None))
        except CompileError as exc:
            errors.append(_error(path, rule, str(exc)))
    outcome.errors = [e.reason for e in errors]
    return outcome


def _parse_file(path: Path, errors: list[SigmaRuleError]) -> list[SigmaRule | SigmaCorrelationRule]:
    try:
        text = path.read_text(encoding="utf-8")
        # libyaml parses ten times faster than pySigma's pure-Python default, same results.
        documents = list(yaml.load_all(text, Loader=_YAML_LOADER))
        collection = SigmaCollection.from_dicts(
            documents, collect_errors=True, resolve_references=False, source=SigmaRuleLocation(path)
        )
    except (OSError, UnicodeDecodeError, SigmaError, ValueError, yaml.YAMLError) as exc:
        errors.append(SigmaRuleError(str(path), _reason(exc)))
        return []
    good: list[SigmaRule | SigmaCorrelationRule] = []
    for rule in collection.rules:
        if rule.errors:
            errors.append(_error(path, rule, "; ".join(_reason(e) for e in rule.errors)))
        elif isinstance(rule, SigmaRule | SigmaCorrelationRule):
            good.append(rule)
    if not collection.rules:
        errors.append(SigmaRuleError(str(path), "the file holds no Sigma rule"))
    return good


def _error(path: Path, rule: SigmaRule | SigmaCorrelationRule, reason: str) -> SigmaRuleError:
    label = f"rule {rule.id}" if rule.id else f"rule '{rule.title}'"
    return SigmaRuleError(str(path), f"{label}: {reason}")


def _reason(exc: BaseException) -> str:
    # pySigma's messages end with the location, which the error already carries.
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
