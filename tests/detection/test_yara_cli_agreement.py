"""Vigie's YARA scanner finds what the reference `yara` command finds, on real files and rules.

Needs Debian's `yara` (listed in .ci/install-debian-packages); skipped where it is missing,
except in CI (CI=true), where a missing peer must fail rather than pass unseen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from detection.yara import EXTERNAL_NAMES, YaraScanner, iter_rule_files, load_yara_rules
from tests.conftest import corpus_path

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _yara_command() -> str:
    found = shutil.which("yara")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's yara is not installed (see .ci/install-debian-packages)")
        pytest.skip("Debian's yara is not installed")
    return found


def test_same_matches_as_the_yara_command(tmp_path: Path) -> None:
    yara = _yara_command()
    rule_files = list(iter_rule_files([corpus_path("yara", "signature-base")]))
    data = corpus_path("evtx")
    # yara can set an external only to one value for every file: give Vigie one folder where
    # no rule's filename/extension/filetype test can hold, by copying under neutral names.
    neutral = tmp_path / "data"
    neutral.mkdir()
    for i, src in enumerate(sorted(p for p in data.rglob("*") if p.is_file())):
        shutil.copyfile(src, neutral / f"f{i:04}")

    defines = [arg for name in EXTERNAL_NAMES for arg in ("-d", f"{name}=")]
    sources = [f"n{i}:{path}" for i, path in enumerate(rule_files)]
    out = subprocess.run(
        [yara, "-w", "-r", *defines, *sources, str(neutral)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    theirs = sorted(tuple(line.split(" ", 1)) for line in out.stdout.splitlines() if line)

    rules = load_yara_rules(rule_files)
    scanner = YaraScanner(rules)
    ours = sorted((d.rule_id, d.file) for d in scanner.scan_paths([neutral]))

    assert theirs, "the reference found nothing: the comparison would prove nothing"
    assert ours == theirs
