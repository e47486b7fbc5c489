"""Load YARA rule files and folders: what compiles is combined for scanning, what does not is
reported with its path, line and reason.

yara-python is the reference: it decides which files are good and reports the errors. Each file
is compiled in its own namespace, so equal rule names in two files do not clash. Then, with
`engine="auto"`, the good files are compiled with yara-x too; if yara-x takes every one of them
the set scans with yara-x (measured faster: benchmarks/RESULTS.md), else with yara-python, so
switching engine never loses a rule.

When many rules can only match files that start with given bytes (an MZ executable, an ELF
file: `heads.py`), the set is compiled in parts: a base, for files of no such group, and one set
per group (the base and the group's rules). A file is scanned with its group's set, which finds
what the whole set finds, sooner. A group's set is loaded from the cache when a file of the
group first comes (`YaraRuleSet.rules_for`).

`include` directives are refused (a file is compiled from its text, and the cache key would not
see an included file change): such a file is reported like any other that does not compile.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

import yara
import yara_x

from detection.errors import InputError, YaraRuleError
from detection.yara import cache
from detection.yara.digests import DigestIndex, Digests
from detection.yara.externals import DEFAULT_EXTERNALS
from detection.yara.heads import GROUP_BYTES, HeadSplit, split_by_head

log = logging.getLogger(__name__)

YARA_SUFFIXES = (".yar", ".yara")

Engine = Literal["yara-python", "yara-x"]
EngineChoice = Literal["auto", "yara-python"]

CompiledRules: TypeAlias = "yara.Rules | yara_x.Rules"
# A group's rules: compiled, or serialized (bytes), or in a cache file (Path) until first used.
GroupRules: TypeAlias = "yara.Rules | yara_x.Rules | bytes | Path"

_group_lock = threading.Lock()  # yara-python threads may want a group's rules at once


class GroupUnusable(Exception):
    """A group's compiled rules that do not load."""


@dataclass(eq=False)
class YaraRuleSet:
    """Compiled rules ready to scan, and the files that did not compile.

    `compiled` holds every rule when `groups` is empty; else it holds the rules for files that
    start like no group, and each group's set holds them and the group's own rules."""

    paths: list[Path]  # the rule files that compiled
    errors: list[YaraRuleError]
    rule_count: int
    engine: Engine
    compiled: CompiledRules = field(repr=False)
    from_cache: bool = False
    groups: dict[bytes, GroupRules] = field(default_factory=dict, repr=False)

    @property
    def files_compiled(self) -> int:
        return len(self.paths)

    def group_of(self, head: bytes) -> bytes:
        """The group of a file that starts with `head` (b"" for none)."""
        key = head[:GROUP_BYTES]
        return key if key in self.groups else b""

    def rules_for(self, group: bytes) -> CompiledRules:
        """The compiled rules for files of `group` (from `group_of`), loaded when first asked.

        Raises GroupUnusable when they do not load (a damaged cache file): the files of the
        group cannot be scanned; the caller reports them."""
        if not group:
            return self.compiled
        found = self.groups[group]
        if isinstance(found, (bytes, Path)):
            with _group_lock:
                found = self.groups[group]
                if isinstance(found, (bytes, Path)):
                    try:
                        found = _load_blob(self.engine, found)
                    except (yara.Error, ValueError, OSError) as exc:
                        raise GroupUnusable(
                            f"the rules for files starting with {group!r} do not load: {exc}"
                        ) from None
                    self.groups[group] = found
        return found

    def portable(self) -> tuple[Engine, bytes, dict[bytes, bytes | Path]]:
        """The rules in a form a fresh process can load (`from_portable`)."""
        groups: dict[bytes, bytes | Path] = {
            head: rules if isinstance(rules, (bytes, Path)) else serialize_rules(rules)
            for head, rules in self.groups.items()
        }
        return self.engine, serialize_rules(self.compiled), groups


def from_portable(
    engine: Engine, blob: bytes, groups: dict[bytes, bytes | Path]
) -> tuple[CompiledRules, dict[bytes, GroupRules]]:
    """The compiled base and the groups (loaded when first used) of `YaraRuleSet.portable`."""
    return _load_blob(engine, blob), dict(groups)


def _load_blob(engine: str, blob: bytes | Path) -> CompiledRules:
    if engine == "yara-x":
        if isinstance(blob, Path):
            with blob.open("rb") as fh:
                return yara_x.Rules.deserialize_from(fh)
        return yara_x.Rules.deserialize_from(io.BytesIO(blob))
    if isinstance(blob, Path):
        return yara.load(filepath=str(blob))
    return yara.load(file=io.BytesIO(blob))


def iter_rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Rule files under `paths`: folders are walked for .yar/.yara, named files taken as given."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in YARA_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            yield path
        else:
            raise InputError(f"no such rule file or folder: {path}")


def load_yara_rules(
    paths: Sequence[Path],
    *,
    cache_dir: Path | None = None,
    engine: EngineChoice = "auto",
) -> YaraRuleSet:
    """Compile every rule file under `paths`; never raises for a bad rule file.

    Raises InputError only when a path given does not exist.
    """
    files = list(iter_rule_files(paths))
    index = DigestIndex(cache_dir) if cache_dir is not None else None
    key = ""
    if cache_dir is not None and index is not None:
        found = index.digests(files)
        key = cache.cache_key(found.digests, engine)
        entry = cache.load_entry(cache_dir, key)
        if entry is not None:
            ruleset = _from_entry(entry)
            if ruleset is not None:
                index.save()
                return ruleset
    else:
        found = Digests()
        for path in files:
            try:
                found.contents[path] = path.read_bytes()
                found.digests.append((path, b""))  # no cache: no digest needed
            except OSError as exc:
                found.unreadable[path] = f"cannot read: {exc.strerror or exc}"

    errors = [YaraRuleError(str(p), reason) for p, reason in found.unreadable.items()]
    sources: list[tuple[Path, str]] = []
    for path, _ in found.digests:
        try:
            content = found.contents.get(path)
            if content is None:
                content = path.read_bytes()  # its digest came from the index
            sources.append((path, content.decode("utf-8")))
        except OSError as exc:
            errors.append(YaraRuleError(str(path), f"cannot read: {exc.strerror or exc}"))
        except UnicodeDecodeError as exc:
            errors.append(YaraRuleError(str(path), f"not UTF-8 text (byte {exc.start})"))

    ruleset = _compile(sources, errors, engine)
    if cache_dir is not None and index is not None:
        entry = cache.CacheEntry(
            engine=ruleset.engine,
            paths=ruleset.paths,
            errors=ruleset.errors,
            rule_count=ruleset.rule_count,
            blob=serialize_rules(ruleset.compiled),
            group_blobs={head: serialize_rules(ruleset.rules_for(head)) for head in ruleset.groups},
        )
        cache.store_entry(cache_dir, key, entry)
        index.save()
    return ruleset


def _compile(
    sources: list[tuple[Path, str]], errors: list[YaraRuleError], engine: EngineChoice
) -> YaraRuleSet:
    good, py_rules, rule_count = _compile_python(sources, errors)
    errors.sort(key=lambda e: e.path)
    found = _split(list(good.items()), py_rules)
    split = found[0] if found is not None else None
    if engine == "auto":
        if split is None:
            x_rules, x_errors = _compile_x([(p, s) for p, s in sources if p in good])
            if not x_errors:
                return YaraRuleSet(list(good), errors, rule_count, "yara-x", x_rules)
        else:
            x_sets, x_errors = _compile_x_split(split)
            if not x_errors:
                base = x_sets.pop(b"")
                return YaraRuleSet(
                    list(good), errors, rule_count, "yara-x", base, groups=dict(x_sets)
                )
        log.info(
            "yara-x does not compile %d rule files that yara-python does (first: %s); "
            "scanning with yara-python",
            len(x_errors),
            x_errors[0],
        )
    if found is None:
        return YaraRuleSet(list(good), errors, rule_count, "yara-python", py_rules)
    sets = dict(found[1])
    base = sets.pop(b"")
    return YaraRuleSet(list(good), errors, rule_count, "yara-python", base, groups=dict(sets))


def _split(
    good: list[tuple[Path, str]], whole: yara.Rules
) -> tuple[HeadSplit, dict[bytes, yara.Rules]] | None:
    """The split of the good files by the first bytes their rules need and its yara-python
    sets, or None if not worth it or not right (a file cut wrongly would compile to other
    rules: each set is checked against `whole`)."""
    split = split_by_head(good)
    if split is None:
        return None
    sets = _compile_python_split(split, whole)
    return None if sets is None else (split, sets)


def _compile_python_split(split: HeadSplit, whole: yara.Rules) -> dict[bytes, yara.Rules] | None:
    """The base's and each group's yara-python rules, or None (logged) if any set does not
    hold exactly the rules it should: the whole set's, less those set aside, plus its group's."""
    # yara-python does not tell a rule's namespace: the rules' names are counted.
    everything = Counter(r.identifier for r in whole)
    everything.subtract(name for _, name in split.set_aside())
    sets: dict[bytes, yara.Rules] = {}
    for head in [b"", *split.heads]:
        try:
            rules = _compile_sources(split.sources_for(head))
        except yara.Error as exc:
            log.warning("YARA rules cut by their first bytes do not compile (%s): not cut", exc)
            return None
        expected = everything.copy()
        expected.update(name for _, name in split.members(head))
        if Counter(r.identifier for r in rules) != +expected:
            log.warning("YARA rules cut by their first bytes differ from the whole: not cut")
            return None
        sets[head] = rules
    return sets


def _compile_sources(sources: list[tuple[Path, str]]) -> yara.Rules:
    return yara.compile(
        sources={str(p): t for p, t in sources}, externals=DEFAULT_EXTERNALS, includes=False
    )


def _compile_x_split(split: HeadSplit) -> tuple[dict[bytes, yara_x.Rules], list[YaraRuleError]]:
    sets: dict[bytes, yara_x.Rules] = {}
    for head in [b"", *split.heads]:
        rules, errors = _compile_x(split.sources_for(head))
        if errors:
            return {}, errors
        sets[head] = rules
    return sets, []


def _compile_python(
    sources: list[tuple[Path, str]], errors: list[YaraRuleError]
) -> tuple[dict[Path, str], yara.Rules, int]:
    """The files that compile (in order), their combined rules and how many rules they hold."""
    everything = {str(path): text for path, text in sources}
    try:
        # Fast path: when the whole set compiles at once, no file can fail on its own.
        rules = yara.compile(sources=everything, externals=DEFAULT_EXTERNALS, includes=False)
        return dict(sources), rules, sum(1 for _ in rules)
    except yara.Error:
        pass

    good: dict[Path, str] = {}
    rule_count = 0
    for path, text in sources:
        try:
            one = yara.compile(source=text, externals=DEFAULT_EXTERNALS, includes=False)
        except yara.Error as exc:
            errors.append(_python_error(path, exc))
            continue
        good[path] = text
        rule_count += sum(1 for _ in one)
    # Files that compile alone also compile together: each has its own namespace.
    rules = yara.compile(
        sources={str(p): t for p, t in good.items()},
        externals=DEFAULT_EXTERNALS,
        includes=False,
    )
    return good, rules, rule_count


_PY_LINE = re.compile(r"^line (\d+): (.*)$", re.DOTALL)


def _python_error(path: Path, exc: yara.Error) -> YaraRuleError:
    text = str(exc)
    found = _PY_LINE.match(text)
    if found:
        return YaraRuleError(str(path), found.group(2), int(found.group(1)))
    return YaraRuleError(str(path), text)


def _compile_x(sources: list[tuple[Path, str]]) -> tuple[yara_x.Rules, list[YaraRuleError]]:
    compiler = yara_x.Compiler()
    for name, value in DEFAULT_EXTERNALS.items():
        compiler.define_global(name, value)
    errors: list[YaraRuleError] = []
    for path, text in sources:
        compiler.new_namespace(str(path))
        try:
            compiler.add_source(text, origin=str(path))
        except yara_x.CompileError as exc:
            errors.append(_x_error(path, exc))
    return compiler.build(), errors


_X_WHERE = re.compile(r"-->\s.*:(\d+):\d+")
_X_CODE = re.compile(r"^error\[\w+\]:\s*")


def _x_error(path: Path, exc: yara_x.CompileError) -> YaraRuleError:
    text = str(exc)
    where = _X_WHERE.search(text)
    reason = _X_CODE.sub("", text.splitlines()[0] if text else "compile error")
    return YaraRuleError(str(path), reason, int(where.group(1)) if where else None)


def serialize_rules(rules: CompiledRules) -> bytes:
    """The compiled rules as bytes: for the cache, and for worker processes that cannot fork."""
    out = io.BytesIO()
    if isinstance(rules, yara_x.Rules):
        rules.serialize_into(out)
    else:
        rules.save(file=out)
    return out.getvalue()


def _from_entry(entry: cache.CacheEntry) -> YaraRuleSet | None:
    assert entry.blob_path is not None, "an entry loaded from the cache has its blob's path"
    engine: Engine = "yara-x" if entry.engine == "yara-x" else "yara-python"
    try:
        compiled = _load_blob(engine, entry.blob_path)
    except (yara.Error, ValueError, OSError) as exc:
        log.warning("ignoring a YARA cache entry that does not load: %s", exc)
        return None
    groups: dict[bytes, GroupRules] = dict(entry.group_paths)
    return YaraRuleSet(
        entry.paths,
        entry.errors,
        entry.rule_count,
        engine,
        compiled,
        from_cache=True,
        groups=groups,
    )
