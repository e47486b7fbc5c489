"""Vigie's detection core: event model, Sigma engine, YARA engine, indicators, correlation.

Imports nothing from `collector` or `api`; knows nothing of HTTP or databases.
"""

# First (and first in sorted order): it installs the finder that picks the `.py` files of the
# compiled modules when asked, or when edited since their extension was built.
import detection.compiled  # noqa: F401 - imported for its effect
from detection.detection import Detection, StringMatch
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
