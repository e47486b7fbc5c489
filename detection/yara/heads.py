"""Rules that can only match files starting with given bytes, and rule sets without them.

Most of a scan of small files goes to evaluating every rule's condition on every file (about
0.6 ms per file with signature-base's 5,900 rules, whatever the file holds). Half of
signature-base's rules begin their condition with `uint16(0) == 0x5a4d and ...` (an MZ
executable) or another magic number: on a file that starts otherwise, they cannot match. So the
rules are grouped by the first two bytes their condition requires, and a file is scanned with
the rules that require nothing plus those of its own group: a text or ELF file with about half
of signature-base's rules, an MZ file with its group added.

What is decided here must be safe, not clever. A rule is set aside only when:
- its file was read without surprise by the small YARA lexer below (else the whole file stays
  in every set);
- its condition, outer parentheses removed, is a chain of `and` with no `or` at its top level,
  one of whose terms is exactly `uintN(0) == NUMBER` or `uintNbe(0) == NUMBER` (or the number
  first), NUMBER within N bits, or is in parentheses and holds such a chain itself: the file
  must then start with those N/8 bytes, else the term is false (or undefined on a shorter
  file), and so is the whole condition;
- it is not `global` (a global rule's failure hides its namespace's other rules) and its name is
  not used in any condition of the rule set (another rule's condition may refer to it, or to
  `Name*`).
Rule sets are cut from the rule files' own text (whole rules removed, nothing rewritten), and
each set's compiled rules are checked to hold exactly the rules expected (see `load.py`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# A group gets its own rule set only when it holds at least this many rules and this share of
# all rules. A set costs its compile (cache fill) and its load when a file of the group comes
# (with yara-x, about 0.5 s for signature-base's MZ set, in each worker); a group's rules left
# in the base cost little on other files when they are few. With signature-base: the MZ group
# (3,010 rules, 51%) has its set; the ELF group (106 rules, 1.8%) stays in the base.
MIN_GROUP_RULES = 50
MIN_GROUP_SHARE = 0.1
# How many bytes of a file decide its group.
GROUP_BYTES = 2


class Unlexed(ValueError):
    """Text the lexer below does not take: its file is kept whole."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "word", "number", "string", "regex", "hex", "punct"
    text: str
    start: int
    end: int


# One pattern for every token (tried in this order): a comment before a regular expression, a
# number before a word. An unterminated comment, string or regular expression matches nothing.
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<comment>//[^\n]*|/\*[\s\S]*?\*/)
    | (?P<open_comment>/\*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<regex>/(?:[^/\\\n]|\\.)*/[is]*)
    | (?P<number>0x[0-9A-Fa-f]+|0o[0-7]+|[0-9]+(?:\.[0-9]+)?(?:KB|MB)?)
    | (?P<word>[$#@!]?[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>==|!=|<=|>=|<<|>>|\.\.|[-+*\\%&|^~<>=()\[\]{},:.$#@!])
    """,
    re.VERBOSE,
)


def tokens(text: str) -> list[Token]:
    """The tokens of a YARA rule file, comments dropped. Raises Unlexed on anything unexpected."""
    out: list[Token] = []
    i, n = 0, len(text)
    match = _TOKEN.match
    while i < n:
        found = match(text, i)
        if found is None or found.lastgroup == "open_comment":
            raise Unlexed(f"unexpected {text[i : i + 10]!r} at offset {i}")
        kind, end = found.lastgroup, found.end()
        if kind == "punct" and text[i] == "{" and out and out[-1].text == "=":
            end = _hex_end(text, i)
            out.append(Token("hex", text[i:end], i, end))
        elif kind not in ("space", "comment"):
            assert kind is not None
            out.append(Token(kind, found.group(), i, end))
        i = end
    return out


def _hex_end(text: str, i: int) -> int:
    """The end of the hex string that opens at `i`: its comments may hold anything."""
    j = i + 1
    while j < len(text):
        if text.startswith("//", j):
            end = text.find("\n", j)
            j = len(text) if end == -1 else end + 1
        elif text.startswith("/*", j):
            end = text.find("*/", j + 2)
            if end == -1:
                break
            j = end + 2
        elif text[j] == "}":
            return j + 1
        elif text[j] in '{"/':
            break
        else:
            j += 1
    raise Unlexed("unexpected hex string")


@dataclass(frozen=True, slots=True)
class RuleText:
    name: str
    start: int  # offsets in the file's text, modifiers included
    end: int
    is_global: bool
    condition: list[Token]


def split_rules(text: str) -> list[RuleText]:
    """The rules of a file in order, with their spans and condition tokens. Raises Unlexed
    when the file holds anything but imports and rules, or a rule of an unexpected shape."""
    toks = tokens(text)
    rules: list[RuleText] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.text in ("import", "include"):
            if i + 1 >= len(toks) or toks[i + 1].kind != "string":
                raise Unlexed(f"{tok.text} without a string")
            i += 2
            continue
        start = tok.start
        modifiers: set[str] = set()
        while i < len(toks) and toks[i].text in ("private", "global"):
            modifiers.add(toks[i].text)
            i += 1
        if i + 1 >= len(toks) or toks[i].text != "rule" or toks[i + 1].kind != "word":
            raise Unlexed(f"expected a rule at offset {start}")
        name = toks[i + 1].text
        i += 2
        while i < len(toks) and toks[i].text != "{":  # tags
            if toks[i].text != ":" and toks[i].kind != "word":
                raise Unlexed(f"unexpected {toks[i].text!r} in the header of {name}")
            i += 1
        i += 1
        condition: list[Token] | None = None
        while i < len(toks) and toks[i].text != "}":
            if toks[i].text == "{":
                raise Unlexed(f"unexpected brace in {name}")
            if (
                toks[i].text == "condition"
                and i + 1 < len(toks)
                and toks[i + 1].text == ":"
                and condition is None
            ):
                condition = []
                i += 2
                continue
            if condition is not None:
                after = toks[i + 1].text if i + 1 < len(toks) else ""
                if toks[i].text in ("meta", "strings") and after == ":":
                    raise Unlexed(f"a section after the condition in {name}")
                condition.append(toks[i])
            i += 1
        if i >= len(toks) or condition is None or not condition:
            raise Unlexed(f"rule {name} without a condition or a closing brace")
        rules.append(RuleText(name, start, toks[i].end, "global" in modifiers, condition))
        i += 1
    return rules


# Parentheses looked into, at most: real conditions nest a few; a condition sent to the service
# may nest thousands, which must cost neither time nor the interpreter's stack.
MAX_NESTING = 8


def required_head(condition: Sequence[Token], nesting: int = 0) -> bytes | None:
    """The bytes a file must start with for `condition` to be true, when the condition says so
    in the one form recognised (see the module's docstring); else None."""
    terms = list(condition)
    while _wrapped(terms):
        if nesting >= MAX_NESTING:
            return None
        terms = terms[1:-1]
        nesting += 1
    depth = 0
    conjuncts: list[list[Token]] = [[]]
    for tok in terms:
        if tok.text in ("(", "["):
            depth += 1
        elif tok.text in (")", "]"):
            depth -= 1
        if depth == 0 and tok.kind == "word" and tok.text == "or":
            return None
        if depth == 0 and tok.kind == "word" and tok.text == "and":
            conjuncts.append([])
        else:
            conjuncts[-1].append(tok)
    for term in conjuncts:
        head = _head_term([t.text for t in term])
        if head is None and _wrapped(term):  # ( uint16(0) == 0x5a4d and ... ) and ...
            head = required_head(term, nesting)
        if head is not None:
            return head
    return None


def _wrapped(terms: list[Token]) -> bool:
    """Whether the first parenthesis closes at the last token."""
    if len(terms) < 2 or terms[0].text != "(" or terms[-1].text != ")":
        return False
    depth = 0
    for k, tok in enumerate(terms):
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
            if depth == 0:
                return k == len(terms) - 1
    return False


_READ = re.compile(r"uint(8|16|32)(be)?")


def _head_term(words: list[str]) -> bytes | None:
    if len(words) != 6:
        return None
    if words[1] == "==":  # NUMBER == uintN(0)
        words = [*words[2:], words[1], words[0]]
    read, open_, offset, close, eq, number = words
    found = _READ.fullmatch(read)
    if not found or (open_, offset, close, eq) != ("(", "0", ")", "=="):
        return None
    try:
        value = int(number, 16) if number.lower().startswith("0x") else int(number, 10)
    except ValueError:
        return None
    size = int(found.group(1)) // 8
    if not 0 <= value < 2 ** (8 * size):
        return None
    return value.to_bytes(size, "big" if found.group(2) else "little")


@dataclass
class HeadSplit:
    """Rule files cut into rule sets: the base (the rules any file may match) and one set per
    group (the base and the rules that only files starting with the group's bytes may match).
    Each file stays one namespace in every set, with some of its rules cut out."""

    sources: list[tuple[Path, str]]
    rules: dict[Path, list[RuleText]]  # the files that have rules set aside
    moved: dict[Path, dict[int, bytes]]  # file -> index of a rule set aside -> its group
    heads: list[bytes]  # the groups, in order

    def sources_for(self, head: bytes) -> list[tuple[Path, str]]:
        """The sources of the set of group `head`, or of the base for b""."""
        out: list[tuple[Path, str]] = []
        for path, text in self.sources:
            moved = self.moved.get(path)
            if not moved:
                out.append((path, text))
                continue
            drop = {k for k, group in moved.items() if group != head}
            out.append((path, _without(text, self.rules[path], drop)))
        return out

    def members(self, head: bytes) -> set[tuple[str, str]]:
        """(file, rule name) of the rules set aside that the set of group `head` holds."""
        return {
            (str(path), self.rules[path][k].name)
            for path, moved in self.moved.items()
            for k, group in moved.items()
            if group == head
        }

    def set_aside(self) -> set[tuple[str, str]]:
        """(file, rule name) of every rule set aside from the base."""
        return {
            (str(path), self.rules[path][k].name)
            for path, moved in self.moved.items()
            for k in moved
        }


def split_by_head(sources: Sequence[tuple[Path, str]]) -> HeadSplit | None:
    """Cut `sources` (rule files that compile) into a base and groups, or None when no group
    is worth its own rule set."""
    parsed: dict[Path, list[RuleText]] = {}
    for path, text in sources:
        try:
            parsed[path] = split_rules(text)
        except Unlexed:
            continue
    names = _referenced_names(parsed.values())
    wanted: dict[Path, dict[int, bytes]] = {}
    counts: Counter[bytes] = Counter()
    total = 0
    for path, rules in parsed.items():
        total += len(rules)
        for k, rule in enumerate(rules):
            if rule.is_global or names.referenced(rule.name):
                continue
            head = required_head(rule.condition)
            if head is not None and len(head) >= GROUP_BYTES:
                wanted.setdefault(path, {})[k] = head[:GROUP_BYTES]
                counts[head[:GROUP_BYTES]] += 1
    kept = sorted(
        head
        for head, count in counts.items()
        if count >= MIN_GROUP_RULES and count >= MIN_GROUP_SHARE * max(total, 1)
    )
    if not kept:
        return None
    moved = {
        path: {k: head for k, head in found.items() if head in kept}
        for path, found in wanted.items()
    }
    moved = {path: found for path, found in moved.items() if found}
    return HeadSplit(list(sources), {p: parsed[p] for p in moved}, moved, kept)


def _without(text: str, rules: list[RuleText], drop: set[int]) -> str:
    """`text` with the rules at the indexes in `drop` cut out (their lines left empty, so that
    line numbers stay)."""
    parts: list[str] = []
    last = 0
    for k in sorted(drop):
        rule = rules[k]
        parts.append(text[last : rule.start])
        parts.append("\n" * text.count("\n", rule.start, rule.end))
        last = rule.end
    parts.append(text[last:])
    return "".join(parts)


@dataclass
class _Names:
    exact: set[str]
    prefixes: list[str]

    def referenced(self, name: str) -> bool:
        return name in self.exact or any(name.startswith(p) for p in self.prefixes)


def _referenced_names(files: Iterable[list[RuleText]]) -> _Names:
    """Every plain word used in a condition (a rule name among them), and the prefixes of rule
    sets (`any of (Name*)`)."""
    names = _Names(set(), [])
    for rules in files:
        for rule in rules:
            cond = rule.condition
            for k, tok in enumerate(cond):
                if tok.kind != "word":
                    continue
                names.exact.add(tok.text)
                if k + 1 < len(cond) and cond[k + 1].text == "*" and cond[k + 1].start == tok.end:
                    names.prefixes.append(tok.text)
    return names
