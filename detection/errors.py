"""Errors raised by the detection library.

    VigieDetectionError            root of everything raised here
    ├── RuleError                  a rule (Sigma or YARA) that cannot be used; carries path and line
    │   ├── SigmaRuleError
    │   └── YaraRuleError
    ├── InputError                 an input that cannot be read at all (missing, unknown format)
    └── RecordError                one record of an input that cannot be parsed; carries the number

Batch loaders and readers never raise these for a single bad rule or record: they collect them
(see `LoadReport`, `ReadStats`) and go on with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


class VigieDetectionError(Exception):
    """Root of the detection library's errors."""


@dataclass(eq=False)
class RuleError(VigieDetectionError):
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


class SigmaRuleError(RuleError):
    """A Sigma rule file, or one rule in it, that cannot be used."""


class YaraRuleError(RuleError):
    """A YARA rule file that does not compile."""


class InputError(VigieDetectionError):
    """An input that cannot be read at all."""


@dataclass(eq=False)
class RecordError(VigieDetectionError):
    source: str
    record: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: record {self.record}: {self.reason}"
