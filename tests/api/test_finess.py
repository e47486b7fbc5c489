"""FINESS numbers: published numbers validate, typos do not, reasons are specific."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.establishments.finess import (
    REGION_OF_DEPARTEMENT,
    FinessProblem,
    InvalidFiness,
    Region,
    UnknownDepartement,
    check_key,
    departement_of,
    is_valid_finess,
    region_of,
    validate_finess,
)

SAMPLES = Path(__file__).parent / "data" / "finess_samples.csv"
DIGITS = "0123456789"


def _samples() -> list[dict[str, str]]:
    with SAMPLES.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


SAMPLE_ROWS = _samples()
SAMPLE_NUMBERS = sorted({row["finess"] for row in SAMPLE_ROWS})


def _problem(value: str) -> FinessProblem:
    with pytest.raises(InvalidFiness) as caught:
        validate_finess(value)
    return caught.value.problem


def test_samples_cover_corsica_and_overseas() -> None:
    assert len(SAMPLE_NUMBERS) >= 150
    heads = {number[:2] for number in SAMPLE_NUMBERS}
    assert {"2A", "2B", "97", "98"} <= heads
    for row in SAMPLE_ROWS:
        assert row["kind"] in {"EJ", "ET", "EJ+ET"}
        assert row["name"].strip()
        assert row["source"].startswith("https://")


@pytest.mark.parametrize("number", SAMPLE_NUMBERS)
def test_published_number_validates(number: str) -> None:
    assert validate_finess(number) == number
    assert is_valid_finess(number)


@pytest.mark.parametrize("number", SAMPLE_NUMBERS)
def test_any_single_digit_change_is_caught(number: str) -> None:
    for position, char in enumerate(number):
        if char not in DIGITS:
            continue
        for other in DIGITS.replace(char, ""):
            altered = number[:position] + other + number[position + 1 :]
            assert not is_valid_finess(altered), altered


def test_normalises_spaces_and_case() -> None:
    assert validate_finess(" 75 071 2184 ") == "750712184"
    assert validate_finess("2b 000 003 8") == "2B0000038"
    assert validate_finess("2a0000154\n") == "2A0000154"


def test_corsica_letters_count_as_21_and_22() -> None:
    assert check_key("2A000015") == "4"
    assert check_key("2B000003") == "8"
    # Same key as the digits the letters stand for.
    assert check_key("21000015") == "4"
    assert check_key("22000003") == "8"
    # 2A and 2B are not interchangeable, and not read as 20.
    assert _problem("2B0000154") is FinessProblem.BAD_CHECK_KEY
    assert _problem("2A0000038") is FinessProblem.BAD_CHECK_KEY
    assert _problem("200000154") is FinessProblem.BAD_DEPARTEMENT


def test_check_key_needs_eight_characters() -> None:
    with pytest.raises(ValueError, match="first 8"):
        check_key("7507121")


@pytest.mark.parametrize(
    ("value", "problem", "words"),
    [
        ("", FinessProblem.WRONG_LENGTH, "0 characters"),
        ("70000481", FinessProblem.WRONG_LENGTH, "8 characters"),  # as printed in a JO text
        ("7507121840", FinessProblem.WRONG_LENGTH, "10 characters"),
        ("75O712184", FinessProblem.BAD_CHARACTERS, "character 3 is 'O'"),
        ("75-712184", FinessProblem.BAD_CHARACTERS, "character 3 is '-'"),
        ("2C0000154", FinessProblem.BAD_CHARACTERS, "character 2 is 'C'"),
        ("A20000154", FinessProblem.BAD_CHARACTERS, "character 1 is 'A'"),
        ("7507121٤4", FinessProblem.BAD_CHARACTERS, "character 8"),
        ("000000000", FinessProblem.BAD_DEPARTEMENT, "prefix 00"),
        ("200000000", FinessProblem.BAD_DEPARTEMENT, "prefix 20"),
        ("960000000", FinessProblem.BAD_DEPARTEMENT, "prefix 96"),
        ("971000000", FinessProblem.BAD_DEPARTEMENT, "prefix 9710"),
        ("970600000", FinessProblem.BAD_DEPARTEMENT, "prefix 9706"),
        (
            "750712185",
            FinessProblem.BAD_CHECK_KEY,
            "check key is 5, the first 8 characters call for 4",
        ),
        ("750712148", FinessProblem.BAD_CHECK_KEY, "check key is 8"),
    ],
)
def test_reasons(value: str, problem: FinessProblem, words: str) -> None:
    with pytest.raises(InvalidFiness, match=words) as caught:
        validate_finess(value)
    error = caught.value
    assert error.problem is problem
    assert error.value == value
    assert isinstance(error, ValueError)
    assert error.code == "invalid_finess"
    assert not is_valid_finess(value)


@pytest.mark.parametrize(
    ("number", "departement", "region"),
    [
        ("750712184", "75", Region.ILE_DE_FRANCE),
        ("690781810", "69", Region.AUVERGNE_RHONE_ALPES),
        ("330781196", "33", Region.NOUVELLE_AQUITAINE),
        ("010000016", "01", Region.AUVERGNE_RHONE_ALPES),
        ("2A0000154", "2A", Region.CORSE),
        ("2B0000038", "2B", Region.CORSE),
        ("970100400", "971", Region.GUADELOUPE),
        ("970210126", "972", Region.MARTINIQUE),
        ("970300026", "973", Region.GUYANE),
        ("970408589", "974", Region.LA_REUNION),
        ("980502199", "976", Region.MAYOTTE),
        ("980600027", "986", None),
    ],
)
def test_departement_and_region(number: str, departement: str, region: Region | None) -> None:
    assert departement_of(number) == departement
    assert region_of(departement) is region


def test_departement_of_refuses_bad_numbers() -> None:
    with pytest.raises(InvalidFiness):
        departement_of("750712185")


def test_regions_cover_every_departement_once() -> None:
    metropolitan = [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B"]
    overseas = ["971", "972", "973", "974", "976"]
    assert sorted(REGION_OF_DEPARTEMENT) == sorted(metropolitan + overseas)
    assert set(REGION_OF_DEPARTEMENT.values()) == set(Region)
    assert len(Region) == 18
    counts = {region: 0 for region in Region}
    for region in REGION_OF_DEPARTEMENT.values():
        counts[region] += 1
    assert counts[Region.OCCITANIE] == 13
    assert counts[Region.ILE_DE_FRANCE] == 8
    assert counts[Region.CORSE] == 2


@pytest.mark.parametrize("value", ["20", "96", "975", "1", "", "XX"])
def test_region_of_unknown(value: str) -> None:
    with pytest.raises(UnknownDepartement, match="not a département code"):
        region_of(value)


def test_region_of_normalises() -> None:
    assert region_of(" 2a ") is Region.CORSE


# Property tests: numbers built from a real prefix, a random sequence and the computed key.

_PREFIXES = st.sampled_from(
    [f"{n:02d}" for n in range(1, 96) if n != 20] + ["2A", "2B"]
) | st.sampled_from(["9701", "9702", "9703", "9704", "9805", "9806"])


@st.composite
def finess_numbers(draw: st.DrawFn) -> str:
    prefix = draw(_PREFIXES)
    sequence = draw(st.text(DIGITS, min_size=8 - len(prefix), max_size=8 - len(prefix)))
    first_eight = prefix + sequence
    return first_eight + check_key(first_eight)


@given(finess_numbers())
def test_property_built_numbers_validate(number: str) -> None:
    assert validate_finess(number) == number
    assert validate_finess(" ".join(number.lower())) == number


@given(finess_numbers(), st.data())
def test_property_single_changes_and_wrong_keys_are_caught(
    number: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, 8))
    replacement = data.draw(st.sampled_from(DIGITS).filter(lambda c: c != number[position]))
    assert not is_valid_finess(number[:position] + replacement + number[position + 1 :])


def test_key_does_not_tell_21_from_2a_nor_22_from_2b() -> None:
    # The letters read as 21 and 22, so Côte-d'Or (21) and Corse-du-Sud (2A) numbers with the
    # same sequence share a key, as do Côte-d'Armor (22) and Haute-Corse (2B): a blind spot.
    assert check_key("21000015") == check_key("2A000015")
    assert check_key("22000003") == check_key("2B000003")
    assert departement_of("210000154") == "21"
    assert departement_of("2A0000154") == "2A"


@given(st.text(max_size=20))
def test_property_any_text_is_a_number_or_has_a_reason(value: str) -> None:
    if is_valid_finess(value):
        assert departement_of(validate_finess(value))
    else:
        with pytest.raises(InvalidFiness) as caught:
            validate_finess(value)
        assert caught.value.problem in FinessProblem
