"""Vigie's detection core: event model, Sigma engine, YARA engine, indicators, correlation.

Imports nothing from `collector` or `api`; knows nothing of HTTP or databases.
"""

from detection.compiled import prefer_pure_python, pure_python_wanted

if pure_python_wanted():  # before any compiled module is imported: their `.py` files instead
    prefer_pure_python()

from detection.detection import Detection, StringMatch  # noqa: E402 - after the choice above
from detection.errors import (
    InputError,
    RecordError,
    RuleError,
    SigmaRuleError,
    VigieDetectionError,
    YaraRuleError,
)
from detection.event import Event, iso_utc, parse_timestamp, sigma_view

__all__ = [
    "Detection",
    "Event",
    "InputError",
    "RecordError",
    "RuleError",
    "SigmaRuleError",
    "StringMatch",
    "VigieDetectionError",
    "YaraRuleError",
    "iso_utc",
    "parse_timestamp",
    "sigma_view",
]
