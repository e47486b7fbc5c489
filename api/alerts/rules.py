"""An alert's rules from their text: Sigma rules compiled for the engine and the event
stores, YARA rules compiled to check them, and a Sigma rule made of an alert's indicators so
that a retro-hunt looks them up with the same machinery in either store."""

from __future__ import annotations

import hashlib
import tempfile
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from detection.indicators import FIELDS, HASH_LENGTHS, SYSMON_HASHES
from detection.sigma import CompiledRule
from detection.sigma.compile import CompileError, compile_rule
from detection.sigma.yaml_guard import YamlRefused, check_plain_yaml, check_size
from detection.yara import load_yara_rules

_NAMESPACE = uuid.UUID("5b0c61a2-8d52-4d0e-9f6e-0d6c3e1b7a41")  # Vigie alerts' indicator rules


_NOT_UNICODE = "a character that is not Unicode text (a lone surrogate)"


class RuleTextError(ValueError):
    """A rule text that cannot be used, with the reason."""


def compile_sigma(text: str) -> CompiledRule:
    """The one Sigma detection rule of `text`, compiled.

    The YAML is checked on its event stream first (`yaml_guard`): no alias bomb is ever
    composed, no oversized rule compiled."""
    try:
        check_plain_yaml(text)
        documents = list(yaml.safe_load_all(text))
    except YamlRefused as exc:
        raise RuleTextError(str(exc)) from exc
    except yaml.YAMLError as exc:
        raise RuleTextError(f"not YAML: {str(exc).splitlines()[0]}") from exc
    except UnicodeError as exc:  # a lone surrogate (JSON lets one through): no UTF-8 for it
        raise RuleTextError(f"not YAML: {_NOT_UNICODE}") from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise RuleTextError("give one Sigma rule per text (one YAML document)")
    return compile_sigma_dict(documents[0])


def compile_sigma_dict(document: dict[str, Any]) -> CompiledRule:
    try:
        collection = SigmaCollection.from_dicts([document], collect_errors=True)
    except SigmaError as exc:
        raise RuleTextError(_first_line(exc)) from exc
    except Exception as exc:  # pySigma trips on some malformed values (an int id, ...)
        raise RuleTextError(f"not a Sigma rule: {type(exc).__name__}: {_first_line(exc)}") from exc
    if len(collection.rules) != 1:
        raise RuleTextError("the text holds no Sigma rule")
    (rule,) = collection.rules
    if rule.errors:
        raise RuleTextError("; ".join(_first_line(e) for e in rule.errors))
    if not isinstance(rule, SigmaRule):
        raise RuleTextError("correlation rules are not taken in alerts (agents run them)")
    if rule.id is None:
        raise RuleTextError("the rule has no id (a UUID): detections refer to it")
    try:
        return compile_rule(rule)
    except CompileError as exc:
        raise RuleTextError(f"the engine cannot evaluate it: {exc}") from exc
    except Exception as exc:  # a value pySigma accepted and the engine trips on
        raise RuleTextError(f"the engine cannot evaluate it: {type(exc).__name__}: {exc}") from exc


class SigmaCache:
    """Compiled Sigma rules by the digest of their text, so that a process compiles each
    alert's rule once, not again on every bundle change. Refusals are kept too (a text that
    does not compile costs its compilation once). `keep_only` drops what is no longer
    published: the cache never holds more than the published rules."""

    def __init__(self) -> None:
        self._rules: dict[str, CompiledRule | RuleTextError] = {}
        self._lock = threading.Lock()  # request threads publish while the live rules refresh
        self.compiled = 0  # compilations done (not answered from the cache)

    def compile(self, text: str) -> CompiledRule:
        key = digest(text)
        with self._lock:
            found = self._rules.get(key)
        if found is None:
            try:
                found = compile_sigma(text)
            except RuleTextError as exc:
                found = exc
            with self._lock:
                self.compiled += 1
                self._rules[key] = found
        if isinstance(found, RuleTextError):
            raise found
        return found

    def keep_only(self, texts: Iterable[str]) -> None:
        wanted = {digest(t) for t in texts}
        with self._lock:
            self._rules = {k: v for k, v in self._rules.items() if k in wanted}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_yara(text: str) -> int:
    """How many rules `text` holds, or `RuleTextError` with the compiler's reason and line."""
    try:
        check_size(text)
        text.encode("utf-8")
    except YamlRefused as exc:
        raise RuleTextError(str(exc)) from exc
    except UnicodeError as exc:
        raise RuleTextError(_NOT_UNICODE) from exc
    with tempfile.TemporaryDirectory(prefix="vigie-yara-") as folder:
        path = Path(folder) / "alert.yar"
        path.write_text(text, encoding="utf-8")
        ruleset = load_yara_rules([path], engine="yara-python")
    if ruleset.errors:
        error = ruleset.errors[0]
        where = f"line {error.line}: " if error.line else ""
        raise RuleTextError(f"{where}{error.reason}")
    if ruleset.rule_count == 0:
        raise RuleTextError("the text holds no YARA rule")
    return ruleset.rule_count


def indicator_rule(
    alert_id: str, title: str, level: str, indicators: list[dict[str, str]]
) -> CompiledRule | None:
    """A Sigma rule selecting the events that hold one of the indicators (None: none).

    Field-list selections only (no keywords, which SQLite cannot hunt), on the fields the
    live matcher reads; a domain matches its subdomains there too.
    """
    by_kind: dict[str, list[str]] = {}
    for item in indicators:
        by_kind.setdefault(item["type"], []).append(_escaped(item["value"]))
    if not by_kind:
        return None
    detection: dict[str, Any] = {}
    for kind, values in by_kind.items():
        if kind == "domain":
            values = [*values, *(f"*.{v}" for v in values)]
        for n, field in enumerate(FIELDS[kind]):
            detection[f"sel_{kind}_{n}"] = {field: values}
        if kind in HASH_LENGTHS:
            detection[f"sel_{kind}_sysmon"] = {f"{SYSMON_HASHES}|contains": values}
    detection["condition"] = "1 of sel_*"
    document = {
        "title": f"{title} (indicators)",
        "id": str(uuid.uuid5(_NAMESPACE, alert_id)),
        "status": "experimental",
        "description": f"Indicators of alert {alert_id}",
        # Not Windows: no channel restriction, every stored event is looked at.
        "logsource": {"category": "indicators"},
        "level": level,
        "detection": detection,
    }
    return compile_sigma_dict(document)


def _escaped(value: str) -> str:
    """A literal for Sigma: its wildcards and escape character taken as themselves."""
    return value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]
