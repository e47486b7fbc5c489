"""FINESS numbers: the key of the establishment registry.

A FINESS number (Fichier national des établissements sanitaires et sociaux) has 9 characters:
a territory prefix, a sequence, and one check key (the last digit).

    Metropolitan France   DD SSSSS K    DD = 01-19, 21-95, or 2A / 2B for Corsica
    Overseas              PPPP SSSS K   PPPP = 9701 Guadeloupe (with Saint-Barthélemy and
                                        Saint-Martin), 9702 Martinique, 9703 Guyane,
                                        9704 La Réunion, 9805 Mayotte, 9806 Wallis-et-Futuna

Overseas numbers do not start with the INSEE code (971, 976, ...): Mayotte is 9805, not 976.

Check key: the Luhn algorithm (mod 10) over all nine characters, with Corsica's letters
replaced by digits: 2A -> 21, 2B -> 22. Counting from the right, every second digit is
doubled (9 subtracted when the result exceeds 9); the number is valid when the sum is a
multiple of 10. The key catches every single-digit typo and most swaps of adjacent
digits (not 09 <-> 90).

Evidence (checked by hand before writing this, and kept in tests/api/data/finess_samples.csv
with names and sources; the test suite checks every row):

- 183 distinct numbers, every one passing plain Luhn: the tables of the arrêté du 4 mars
  2015 (NOR AFSH1506177A, isolated establishments, with both FINESS juridique and
  géographique) and of the arrêté du 16 janvier 2014 (NOR AFSH1332135A, cystic-fibrosis
  centres: AP-HP 750712184, Hospices civils de Lyon 690781810, AP-HM 130786049, CHU de
  Bordeaux 330781196, CHU de La Réunion 970408589, ...), the ANS's sample of its data.gouv.fr
  feed, and lines of the data.gouv.fr extract, 26 of them overseas (Guadeloupe,
  Saint-Barthélemy, Saint-Martin, Martinique, Guyane, La Réunion, Mayotte, Wallis-et-Futuna).
- Corsica: 2A0000154 (Clinique du sud de la Corse), 2B0004246 / 2B0000038 (CH de Corte),
  2B0005342 / 2B0005359 (CH de Calvi), from the 2015 arrêté, and 2A0000204 (seen only in
  another project's test data), all pass with 2A -> 21 and 2B -> 22; none passes with the
  letters read as 0 ("20"), nor with the NIR's convention (2A -> 19, 2B -> 18). Only the
  prefix's contribution to the Luhn sum is pinned down (4 for 2A, 6 for 2B; reading A and B
  as 10 and 11 gives the same sums), and 2A rests on two numbers only. A consequence: the
  key cannot tell 21 (Côte-d'Or) from 2A, nor 22 (Côtes-d'Armor) from 2B.
- The 2014 arrêté prints CHU de Tours as "70000481" (a digit lost): the length check
  catches it; 370000481, as other sources give it, passes.

FINESS juridique (EJ, entité juridique: the legal entity, e.g. AP-HP 750712184) and FINESS
géographique (ET, établissement: one site, e.g. Pitié-Salpêtrière 750100125) are written and
checked the same way, and a number does not say which kind it is (a single-site clinic can
use one number for both): the registry records the link from a site to its legal entity.

Errors are ValueErrors, so Pydantic validators can call these functions; this module stays
free of the service's error tree (the service turns them into `api.errors.Invalid`):

    ValueError
    ├── InvalidFiness         .value, .problem (FinessProblem: what is wrong), .code
    └── UnknownDepartement    .value, .code
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

FINESS_LENGTH: Final = 9

#: Corsica's letters as the check key reads them.
_CORSICA_DIGITS: Final = MappingProxyType({"2A": "21", "2B": "22"})

#: Four-character prefix of overseas numbers -> INSEE code of the territory.
_OVERSEAS: Final = MappingProxyType(
    {
        "9701": "971",  # Guadeloupe, Saint-Barthélemy, Saint-Martin
        "9702": "972",  # Martinique
        "9703": "973",  # Guyane
        "9704": "974",  # La Réunion
        "9805": "976",  # Mayotte
        "9806": "986",  # Wallis-et-Futuna
    }
)


class FinessProblem(StrEnum):
    """Why a value is not a FINESS number (stable codes, safe to show and to store)."""

    WRONG_LENGTH = "wrong_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_DEPARTEMENT = "bad_departement"
    BAD_CHECK_KEY = "bad_check_key"


class InvalidFiness(ValueError):
    code = "invalid_finess"

    def __init__(self, value: str, problem: FinessProblem, detail: str) -> None:
        self.detail = f"{value!r} is not a FINESS number: {detail}"
        super().__init__(self.detail)
        self.value = value
        self.problem = problem


class UnknownDepartement(ValueError):
    code = "unknown_departement"

    def __init__(self, value: str) -> None:
        self.detail = f"{value!r} is not a département code"
        super().__init__(self.detail)
        self.value = value


class Region(StrEnum):
    """The 18 regions (2016 map): 13 metropolitan, 5 overseas."""

    AUVERGNE_RHONE_ALPES = "Auvergne-Rhône-Alpes"
    BOURGOGNE_FRANCHE_COMTE = "Bourgogne-Franche-Comté"
    BRETAGNE = "Bretagne"
    CENTRE_VAL_DE_LOIRE = "Centre-Val de Loire"
    CORSE = "Corse"
    GRAND_EST = "Grand Est"
    HAUTS_DE_FRANCE = "Hauts-de-France"
    ILE_DE_FRANCE = "Île-de-France"
    NORMANDIE = "Normandie"
    NOUVELLE_AQUITAINE = "Nouvelle-Aquitaine"
    OCCITANIE = "Occitanie"
    PAYS_DE_LA_LOIRE = "Pays de la Loire"
    PROVENCE_ALPES_COTE_D_AZUR = "Provence-Alpes-Côte d'Azur"
    GUADELOUPE = "Guadeloupe"
    MARTINIQUE = "Martinique"
    GUYANE = "Guyane"
    LA_REUNION = "La Réunion"
    MAYOTTE = "Mayotte"


def _by_region() -> dict[str, Region]:
    members = {
        Region.AUVERGNE_RHONE_ALPES: "01 03 07 15 26 38 42 43 63 69 73 74",
        Region.BOURGOGNE_FRANCHE_COMTE: "21 25 39 58 70 71 89 90",
        Region.BRETAGNE: "22 29 35 56",
        Region.CENTRE_VAL_DE_LOIRE: "18 28 36 37 41 45",
        Region.CORSE: "2A 2B",
        Region.GRAND_EST: "08 10 51 52 54 55 57 67 68 88",
        Region.HAUTS_DE_FRANCE: "02 59 60 62 80",
        Region.ILE_DE_FRANCE: "75 77 78 91 92 93 94 95",
        Region.NORMANDIE: "14 27 50 61 76",
        Region.NOUVELLE_AQUITAINE: "16 17 19 23 24 33 40 47 64 79 86 87",
        Region.OCCITANIE: "09 11 12 30 31 32 34 46 48 65 66 81 82",
        Region.PAYS_DE_LA_LOIRE: "44 49 53 72 85",
        Region.PROVENCE_ALPES_COTE_D_AZUR: "04 05 06 13 83 84",
        Region.GUADELOUPE: "971",
        Region.MARTINIQUE: "972",
        Region.GUYANE: "973",
        Region.LA_REUNION: "974",
        Region.MAYOTTE: "976",
    }
    return {code: region for region, codes in members.items() for code in codes.split()}


#: Département (INSEE code) -> region; 96 metropolitan and 5 overseas départements.
REGION_OF_DEPARTEMENT: Final = MappingProxyType(_by_region())
#: Territories with FINESS numbers that belong to none of the 18 regions.
OUTSIDE_REGIONS: Final = frozenset({"986"})


def _luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total


def _as_digits(finess: str) -> str:
    return _CORSICA_DIGITS.get(finess[:2], finess[:2]) + finess[2:]


def check_key(first_eight: str) -> str:
    """The check key that completes the first 8 characters of a FINESS number."""
    if len(first_eight) != FINESS_LENGTH - 1:
        raise ValueError(f"need the first {FINESS_LENGTH - 1} characters, got {first_eight!r}")
    return str(-_luhn_sum(_as_digits(first_eight) + "0") % 10)


def _departement(finess: str) -> str | None:
    """INSEE code of the territory the (well-formed) number belongs to, None if none."""
    head = finess[:2]
    if head in _CORSICA_DIGITS:
        return head
    if head in ("97", "98"):
        return _OVERSEAS.get(finess[:4])
    if head.isdigit() and 1 <= int(head) <= 95 and head != "20":
        return head
    return None


def validate_finess(value: str) -> str:
    """The number normalised (spaces removed, upper case); InvalidFiness says why it is not one."""
    finess = "".join(value.split()).upper()
    if len(finess) != FINESS_LENGTH:
        raise InvalidFiness(
            value,
            FinessProblem.WRONG_LENGTH,
            f"{len(finess)} characters, a FINESS number has {FINESS_LENGTH}",
        )
    for position, char in enumerate(finess, start=1):
        if char in "0123456789" or (position == 2 and finess[:2] in _CORSICA_DIGITS):
            continue
        raise InvalidFiness(
            value,
            FinessProblem.BAD_CHARACTERS,
            f"character {position} is {char!r}: only digits, and 2A or 2B for Corsica",
        )
    if _departement(finess) is None:
        prefix = finess[:4] if finess[:2] in ("97", "98") else finess[:2]
        raise InvalidFiness(
            value,
            FinessProblem.BAD_DEPARTEMENT,
            f"prefix {prefix} is no département: 01-95 (not 20), 2A, 2B, "
            f"or overseas {', '.join(_OVERSEAS)}",
        )
    expected = check_key(finess[:-1])
    if finess[-1] != expected:
        raise InvalidFiness(
            value,
            FinessProblem.BAD_CHECK_KEY,
            f"check key is {finess[-1]}, the first 8 characters call for {expected}",
        )
    return finess


def is_valid_finess(value: str) -> bool:
    try:
        validate_finess(value)
    except InvalidFiness:
        return False
    return True


def departement_of(finess: str) -> str:
    """INSEE code of the département (or overseas territory) of a FINESS number.

    "75", "2A", "971" ... "976", and "986" for Wallis-et-Futuna. Raises InvalidFiness.
    """
    departement = _departement(validate_finess(finess))
    assert departement is not None  # validate_finess refused the others
    return departement


def region_of(departement: str) -> Region | None:
    """The region of a département (INSEE code); None for Wallis-et-Futuna (986).

    Raises UnknownDepartement for anything else that is not a département code.
    """
    code = departement.strip().upper()
    if code in OUTSIDE_REGIONS:
        return None
    try:
        return REGION_OF_DEPARTEMENT[code]
    except KeyError:
        raise UnknownDepartement(departement) from None
