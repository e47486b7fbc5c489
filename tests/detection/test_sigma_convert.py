"""Sigma rules converted to Elasticsearch (Lucene) and SQLite queries, and `vigie rules convert`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cli.main import main
from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sigma.convert import ConversionResult, to_elasticsearch, to_sqlite
from detection.sources.windows import event_from_rendering
from tests import sigmahq
from tests.conftest import corpus_path

SEVEN_ZIP = "process_creation/proc_creation_win_7zip_password_compression.yml"
LOG_CLEARED = "builtin/security/win_security_audit_log_cleared.yml"
MIMIKATZ_KEYWORDS = "builtin/win_alert_mimikatz_keywords.yml"
DPAPI_FILE_ACCESS = "file/file_access/file_access_win_susp_dpapi_master_key_access.yml"
OWN_IMAGE_DELETE = "file/file_delete/file_delete_win_delete_own_image.yml"
PROCESS_CREATION_SQL = (
    "((Channel='Microsoft-Windows-Sysmon/Operational' AND EventID=1) "
    "OR (Channel='Security' AND EventID=4688))"
)


def _windows(*names: str) -> list[Path]:
    root = corpus_path("sigma", "rules", "windows")
    return [root / name for name in names]


@pytest.mark.corpus
def test_sqlite_query_restricts_to_the_log_source_and_keeps_the_rule() -> None:
    ruleset = load_sigma_rules(_windows(SEVEN_ZIP, LOG_CLEARED))
    seven_zip, cleared = to_sqlite(ruleset.rules)
    assert seven_zip.rule_id == "9fbf5927-5261-4284-a71d-f681029ea574"
    assert seven_zip.query is not None
    assert seven_zip.query.startswith(f"SELECT * FROM logs WHERE {PROCESS_CREATION_SQL} AND (")
    for condition in (
        "Image LIKE '%\\\\7z.exe' ESCAPE '\\'",
        "OriginalFileName='7za.exe'",
        "CommandLine LIKE '% -p%' ESCAPE '\\'",
        "Description LIKE '%7-Zip%' ESCAPE '\\'",
    ):
        assert condition in seven_zip.query
    assert cleared.query == (
        "SELECT * FROM logs WHERE Channel='Security' AND ((EventID=517 AND "
        "Provider_Name='Security') OR "
        "(EventID=1102 AND Provider_Name='Microsoft-Windows-Eventlog'))"
    )


@pytest.mark.corpus
def test_elasticsearch_query_uses_the_fields_vigie_stores() -> None:
    ruleset = load_sigma_rules(_windows(SEVEN_ZIP, LOG_CLEARED))
    seven_zip, cleared = to_elasticsearch(ruleset.rules)
    assert seven_zip.query is not None
    assert cleared.query is not None
    assert seven_zip.query.startswith(
        "((winlog.channel:Microsoft\\-Windows\\-Sysmon\\/Operational AND winlog.event_id:1) OR "
        "(winlog.channel:Security AND winlog.event_id:4688)) AND "
    )
    assert "winlog.event_data.Image:(*\\\\7z.exe OR" in seven_zip.query
    assert "winlog.event_data.CommandLine:*\\ \\-p*" in seven_zip.query
    assert "winlog.event_data.OriginalFileName:(7z.exe OR 7za.exe OR 7zr.exe)" in seven_zip.query
    assert "winlog.provider_name:Microsoft\\-Windows\\-Eventlog" in cleared.query
    assert "winlog.event_id:1102" in cleared.query


@pytest.mark.corpus
def test_elasticsearch_winlogbeat_layout_is_pysigmas_ecs_windows() -> None:
    ruleset = load_sigma_rules(_windows(SEVEN_ZIP))
    (result,) = to_elasticsearch(ruleset.rules, layout="ecs_windows")
    assert result.query is not None
    assert "process.executable.caseless:(*\\\\7z.exe" in result.query
    assert "process.command_line:*\\ \\-p*" in result.query
    assert "winlog.event_data" not in result.query


@pytest.mark.corpus
def test_rules_a_backend_cannot_convert_are_reported_and_the_batch_goes_on() -> None:
    names = (MIMIKATZ_KEYWORDS, DPAPI_FILE_ACCESS, SEVEN_ZIP, OWN_IMAGE_DELETE)
    ruleset = load_sigma_rules(_windows(*names))
    assert len(ruleset.rules) == 4
    sql = {Path(str(r.path)).name: r for r in to_sqlite(ruleset.rules)}
    es = {Path(str(r.path)).name: r for r in to_elasticsearch(ruleset.rules)}
    keywords, file_access, seven_zip, own_image = (Path(n).name for n in names)

    assert not sql[keywords].ok
    assert sql[keywords].query is None
    assert "keywords" in (sql[keywords].error or "")
    assert es[keywords].ok  # Lucene searches free text
    assert sql[file_access].error == "log source (category: file_access) maps to no Windows channel"
    assert es[file_access].error == sql[file_access].error
    assert sql[seven_zip].ok
    assert es[seven_zip].ok
    assert "TargetFilename=Image" in (sql[own_image].query or "")
    assert "field references" in (es[own_image].error or "")


def test_conversion_leaves_the_rules_as_loaded(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(
        "title: t\nid: 2e0f3a8c-1111-4222-8333-444455556666\nstatus: test\n"
        "logsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel: {CommandLine|contains: 'vssadmin delete'}\n  condition: sel\n",
        encoding="utf-8",
    )
    ruleset = load_sigma_rules([rule])
    first = to_sqlite(ruleset.rules)[0].query
    to_elasticsearch(ruleset.rules)
    assert to_sqlite(ruleset.rules)[0].query == first
    assert first is not None
    assert first.count("EventID=") == 2  # the conditions added once
    event = event_from_rendering(
        {
            "Event": {
                "System": {"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1},
                "EventData": {"CommandLine": "VSSADMIN DELETE shadows"},
            }
        }
    )
    assert SigmaEngine(ruleset).match(event)  # the engine's rule is untouched


def test_a_rule_with_several_conditions_is_one_query_of_alternatives(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(
        "title: t\nid: 2e0f3a8c-1111-4222-8333-444455556667\nstatus: test\n"
        "logsource: {product: windows, service: system}\n"
        "detection:\n  a: {EventID: 7045}\n  b: {EventID: 104}\n  condition: [a, b]\n",
        encoding="utf-8",
    )
    ruleset = load_sigma_rules([rule])
    (sql,) = to_sqlite(ruleset.rules)
    (lucene,) = to_elasticsearch(ruleset.rules)
    assert sql.queries == (
        "SELECT * FROM logs WHERE Channel='System' AND EventID=7045",
        "SELECT * FROM logs WHERE Channel='System' AND EventID=104",
    )
    assert sql.query == " UNION ".join(sql.queries)
    assert lucene.query == (
        "(winlog.channel:System AND winlog.event_id:7045) OR "
        "(winlog.channel:System AND winlog.event_id:104)"
    )


@pytest.mark.parametrize(
    "converted",
    [
        pytest.param(sigmahq.sqlite_queries, marks=sigmahq.SQLITE, id="sqlite"),
        pytest.param(sigmahq.lucene_queries, marks=sigmahq.LUCENE, id="lucene"),
    ],
)
def test_sigmahq_windows_rules_convert_to_both(
    converted: Callable[[], Sequence[ConversionResult]],
) -> None:
    ruleset = sigmahq.windows_rules()
    results = converted()
    failed = [f"{r.path}: {r.error}" for r in results if not r.ok]
    assert len(results) == len(ruleset.rules)
    assert len(failed) <= 0.02 * len(results), "\n".join(failed)


@sigmahq.lucene_side
def test_elasticsearch_fields_exist_in_the_documents_vigie_stores() -> None:
    """For every rule the engine matches on the EVTX corpus, the query's fields are fields of
    the matched event's stored ECS document (or EventData fields that event lacks)."""
    events = sigmahq.evtx_events()
    queries = {result.rule_id: result for result in sigmahq.lucene_queries()}
    matched = {rule_id: events[indexes[0]] for rule_id, indexes in sigmahq.engine_matches().items()}
    assert len(matched) > 100
    field_name = re.compile(r"(?<![\w\\.])([A-Za-z_][\w.]*):")
    for rule_id, event in matched.items():
        result = queries[rule_id]
        if not result.ok:
            continue
        stored = set(_flat_keys(event.to_ecs()))
        for name in field_name.findall(result.query or ""):
            if name == "_exists_":  # `_exists_:<field>`
                continue
            assert name in stored or name.startswith("winlog.event_data."), (name, result.title)


def _flat_keys(doc: dict[str, object], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            keys.extend(_flat_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


# --- vigie rules convert --------------------------------------------------------------------


@pytest.mark.corpus
def test_cli_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["rules", "convert", "--target", "sqlite", "--sigma", *map(str, _windows(LOG_CLEARED))]
    )
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == "-- d99b79d2-0a6f-4f46-ad8b-260b6e17f982 Security Eventlog Cleared"
    assert out[1].startswith("SELECT * FROM logs WHERE Channel='Security' AND ")
    assert len(out) == 2


@pytest.mark.corpus
def test_cli_json_output_lists_failures(capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(p) for p in _windows(SEVEN_ZIP, MIMIKATZ_KEYWORDS)]
    argv = ["rules", "convert", "--target", "sqlite", "--format", "json"]
    status = main([*argv, *sum((["--sigma", p] for p in paths), [])])
    report = json.loads(capsys.readouterr().out)
    assert status == 1  # one rule did not convert
    assert [r["rule_id"] for r in report] == [
        "9fbf5927-5261-4284-a71d-f681029ea574",
        "06d71506-7beb-4f22-8888-e2e5e2ca7fd8",
    ]
    assert report[0]["query"].startswith("SELECT * FROM logs WHERE")
    assert report[0]["error"] is None
    assert report[1]["query"] is None
    assert "keywords" in report[1]["error"]
    assert report[0]["path"] == paths[0]


def test_cli_reports_broken_files_and_missing_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yml").write_text("title: [unclosed\n", encoding="utf-8")
    status = main(
        [
            "rules",
            "convert",
            "--target",
            "elasticsearch",
            "--sigma",
            str(tmp_path),
            "--format",
            "json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report[0]["rule_id"] is None
    assert report[0]["path"].endswith("broken.yml")
    assert main(["rules", "convert", "--target", "sqlite", "--sigma", str(tmp_path / "none")]) == 2
    assert "no such rule file" in capsys.readouterr().err
