"""`vigie rules check`: the SigmaHQ corpus is usable, and broken rules are named with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import corpus_path

GOOD = """title: good
id: 0b2f0f4e-1111-4222-8333-444444444444
status: test
logsource: {product: windows, category: process_creation}
detection:
  sel: {Image|endswith: '\\\\evil.exe'}
  condition: sel
level: high
"""


def vigie(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.corpus
@pytest.mark.slow
def test_sigmahq_folders_are_usable() -> None:
    sigma = corpus_path("sigma")
    folders = sorted(p for p in sigma.glob("rules*") if p.is_dir())
    assert len(folders) >= 5
    seen = 0
    for folder in folders:
        result = vigie("rules", "check", "--sigma", str(folder), "--format", "json")
        report = json.loads(result.stdout)["sigma"]
        assert result.returncode == (1 if report["errors"] else 0), result.stderr
        for error in report["errors"]:
            assert Path(error["path"]).is_file()
            assert error["error"]
        if report["files"]:
            seen += report["files"]
            rate = report["rules"] / report["files"]
            names = "\n".join(f"{e['path']}: {e['error']}" for e in report["errors"])
            print(
                f"{folder.name}: {report['rules']}/{report['files']} usable ({rate:.1%})\n{names}"
            )
            assert rate >= 0.98, names
    assert seen > 3000


def test_broken_rules_are_reported_and_the_rest_loads(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "not_yaml.yml").write_text("title: [unclosed\n", encoding="utf-8")
    (tmp_path / "bad_modifier.yml").write_text(
        GOOD.replace("Image|endswith", "Image|nosuchmodifier").replace("0b2f0f4e", "1b2f0f4e"),
        encoding="utf-8",
    )
    (tmp_path / "bad_regex.yml").write_text(
        GOOD.replace("Image|endswith: '\\\\evil.exe'", "Image|re: 'a(b'").replace(
            "0b2f0f4e", "2b2f0f4e"
        ),
        encoding="utf-8",
    )
    (tmp_path / "no_condition.yml").write_text(
        GOOD.replace("  condition: sel\n", "").replace("0b2f0f4e", "3b2f0f4e"), encoding="utf-8"
    )
    result = vigie("rules", "check", "--sigma", str(tmp_path), "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)["sigma"]
    assert report["files"] == 5
    assert report["rules"] == 1
    errors = {Path(e["path"]).name: e["error"] for e in report["errors"]}
    assert set(errors) == {"not_yaml.yml", "bad_modifier.yml", "bad_regex.yml", "no_condition.yml"}
    assert "nosuchmodifier" in errors["bad_modifier.yml"]
    assert (
        "a(b" in errors["bad_regex.yml"] or "regular expression" in errors["bad_regex.yml"].lower()
    )

    text = vigie("rules", "check", "--sigma", str(tmp_path))
    assert "1 of 5 rule files usable" in text.stdout
    assert "bad_modifier.yml" in text.stdout


def test_missing_rule_path_is_one_line_error(tmp_path: Path) -> None:
    result = vigie("rules", "check", "--sigma", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.startswith("vigie: error:")
    assert len(result.stderr.splitlines()) == 1


def test_rules_that_can_never_fire_are_warned_about(tmp_path: Path) -> None:
    etw_only = GOOD.replace("category: process_creation", "category: file_access")
    (tmp_path / "etw.yml").write_text(etw_only, encoding="utf-8")
    result = vigie("rules", "check", "--sigma", str(tmp_path), "--format", "json")
    assert result.returncode == 0
    report = json.loads(result.stdout)["sigma"]
    assert report["rules"] == 1
    (warning,) = report["warnings"]
    assert warning["path"].endswith("etw.yml")
    assert "file_access" in warning["warning"]
