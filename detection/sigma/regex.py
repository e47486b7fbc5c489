r"""Rule regular expressions on RE2: time linear in the text, whatever the pattern.

Sigma's `|re` values come from rule authors (SigmaHQ, Vigie's own rules, the CERT's alerts)
and meet text that anyone who can write one log line chooses. Python's `re` backtracks:
`(a+)+$` on 30 characters takes seconds, and the cost doubles with each one. RE2 (through
`google-re2`) runs in time linear in the text for any pattern it takes, and takes no pattern
that would need backtracking: lookarounds, backreferences, conditionals, atomic groups,
possessive quantifiers, the verbose flag. Such a pattern is refused (`UnsupportedRegex`, which
names the feature): the rule is reported, not loaded, and an alert carrying it is refused.

The same compiled expressions serve the engine (`values.py`: `|re`, and `?` wildcards) and
SQLite's `REGEXP` in retro-hunts (`regexp`), so a hunt selects what live matching would.

Patterns are written for Python's `re` (pySigma checks them with it). Where RE2 differs:
- translated here, as Python (and PCRE) mean them: `\Z` (RE2 spells it `\z`); `\uXXXX` and
  `\UXXXXXXXX` (RE2: `\x{...}`); `$` outside a class, which also matches before a final
  newline in Python and PCRE, but only at the very end in RE2 (a trailing newline would hide
  a value from a rule ending in `$`): it becomes `(?:$|\n\z)`.
- kept as RE2 has them, which are PCRE's defaults (the dialect Sigma rules are written for):
  `\d`, `\w`, `\s` and `\b` are ASCII only (Python's take `é` as a word character and `٣` as a
  digit); RE2's `\s` leaves out the vertical tab and \x1c-\x1f, which Python's takes.
- case folding: both use simple case folding (`(?i)k` takes the Kelvin sign in both; neither
  takes `ß` for `SS`).
- refused by RE2 though Python takes them: repetition counts above 1,000 (`a{1001}`), Python's
  `(?P=name)` backreference and `(?x)`/`(?a)`/`(?L)` flags.
- a lone surrogate in a text (a badly decoded log) is encoded as its three bytes, which RE2
  reads as one character, as Python does: `.` takes it, no ASCII class does.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import re2

from detection.sigma.ir import UnsupportedValue

__all__ = ["RuleRegex", "UnsupportedRegex", "compile_regex", "literal", "regexp"]

# Python's regular-expression parser (private, stable across 3.11-3.13): it names the feature
# a refused pattern needs.
_sre_parser: Any = re._parser  # type: ignore[attr-defined]
_FEATURES = {
    "ASSERT": "a lookahead or lookbehind",
    "ASSERT_NOT": "a negative lookahead or lookbehind",
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive quantifier",
}
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))
_END = r"(?:$|\n\z)"
_HEX = frozenset("0123456789abcdefABCDEF")


class UnsupportedRegex(UnsupportedValue):
    """A rule's regular expression that RE2 cannot run in linear time (or at all)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the refusal carries RE2's reason; nothing on stderr
    options.never_capture = True  # only whether it matches is asked
    return options


_OPTIONS = _options()


class RuleRegex:
    """One compiled rule expression: `search` anywhere in a text, or `fullmatch` it all."""

    __slots__ = ("_regexp", "pattern")

    def __init__(self, pattern: str, regexp: Any) -> None:
        self.pattern = pattern
        self._regexp = regexp

    def search(self, text: str) -> bool:
        return self._regexp.search(text.encode("utf-8", "surrogatepass")) is not None

    def fullmatch(self, text: str) -> bool:
        return self._regexp.fullmatch(text.encode("utf-8", "surrogatepass")) is not None


@functools.lru_cache(maxsize=4096)
def compile_regex(pattern: str, flags: int = 0) -> RuleRegex:
    """`pattern` (Python syntax; `flags` among re.I, re.M, re.S) on RE2, or `UnsupportedRegex`."""
    letters = "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag)
    unknown = flags & ~(re.IGNORECASE | re.MULTILINE | re.DOTALL)
    if unknown:
        raise UnsupportedRegex(f"regular expression flags {unknown:#x} are not supported")
    translated = (f"(?{letters})" if letters else "") + _translated(pattern)
    try:
        compiled = re2.compile(translated, _OPTIONS)
    except re2.error as exc:
        raise UnsupportedRegex(_refusal(pattern, exc)) from None
    return RuleRegex(pattern, compiled)


def literal(text: str) -> str:
    """`text` as a pattern that matches it literally."""
    return str(re2.escape(text))


def regexp(pattern: str | None, value: Any) -> bool | None:
    """SQLite's `X REGEXP Y` (called as `regexp(Y, X)`): the engine's search on RE2.

    The SQLite backend writes Sigma's flags as a `(?i)`-style prefix of the pattern.
    """
    if value is None or pattern is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return compile_regex(pattern).search(str(value))


def _translated(pattern: str) -> str:
    """Python's spellings that RE2 reads otherwise (module docstring), rewritten."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            following = pattern[i + 1]
            width = {"u": 4, "U": 8}.get(following)
            digits = pattern[i + 2 : i + 2 + width] if width else ""
            if width and len(digits) == width and all(c in _HEX for c in digits):
                out.append(f"\\x{{{digits}}}")
                i += 2 + width
                continue
            out.append("\\z" if following == "Z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
            out.append(char)
        elif char == "[":
            in_class = True
            out.append(char)
            # A `]` right after `[` or `[^` is a literal, not the end of the class.
            start = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[start : start + 1] == "]":
                out.append(pattern[i + 1 : start + 1])
                i = start + 1
                continue
        elif char == "$":
            out.append(_END)
        else:
            out.append(char)
        i += 1
    return "".join(out)


def _refusal(pattern: str, exc: re2.error) -> str:
    detail = exc.args[0] if exc.args else ""
    reason = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    feature = _feature(pattern)
    what = f"uses {feature}, which" if feature else "is one that"
    return (
        f"regular expression {pattern!r} {what} RE2, the linear-time engine rules run on, "
        f"does not support ({reason})"
    )


def _feature(pattern: str) -> str | None:
    """The backtracking feature `pattern` needs, as Python's parser reads it (None: other)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a "possible nested set" FutureWarning, say
            tree = _sre_parser.parse(pattern)
    except Exception:  # noqa: BLE001 - no name for the feature: RE2's reason alone is given
        return None
    if tree.state.flags & re.VERBOSE:
        return "the verbose flag (?x)"
    return _walk(list(tree))


def _walk(items: list[tuple[Any, Any]]) -> str | None:
    for op, av in items:
        name = str(op)
        if name in _FEATURES:
            return _FEATURES[name]
        for child in _children(av):
            found = _walk(list(child))
            if found:
                return found
    return None


def _children(av: Any) -> list[Any]:
    """The sub-patterns in an opcode's argument (groups, repeats, branches, assertions)."""
    found: list[Any] = []
    stack = [av]
    while stack:
        item = stack.pop()
        if isinstance(item, _sre_parser.SubPattern):
            found.append(item)
        elif isinstance(item, tuple | list):
            stack.extend(item)
    return found
