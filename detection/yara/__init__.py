"""The YARA engine: compile rule files (each on its own first, so a bad one costs only
itself), cache the compiled set, and scan files, folders and buffers on every core.

    rules = load_yara_rules([Path("rules/yara")], cache_dir=Path("/var/cache/vigie/yara"))
    scanner = YaraScanner(rules, timeout=60, max_size=64 * 2**20)
    for detection in scanner.scan_paths([Path("/srv/share")]):
        ...
    scanner.stats  # files and bytes scanned, files skipped with reasons, hits per rule
"""

from detection.yara.externals import EXTERNAL_NAMES
from detection.yara.load import YARA_SUFFIXES, YaraRuleSet, iter_rule_files, load_yara_rules
from detection.yara.matches import level_from_meta
from detection.yara.scan import YaraScanner
from detection.yara.stats import SkippedFile, YaraScanStats

__all__ = [
    "EXTERNAL_NAMES",
    "YARA_SUFFIXES",
    "SkippedFile",
    "YaraRuleSet",
    "YaraScanStats",
    "YaraScanner",
    "iter_rule_files",
    "level_from_meta",
    "load_yara_rules",
]
