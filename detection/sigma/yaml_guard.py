"""A rule text's YAML checked on the parser's event stream, before any object is built.

YAML anchors and aliases let a few hundred bytes stand for gigabytes once composed ("billion
laughs": each level names the previous one ten times); merge keys (`<<: *a`) and an anchor on a
long string do the same. Sigma rules need none of them, so any anchor or alias is refused, as
are documents nested deeper, lists longer or with more values than any real rule has. The
event stream is read lazily: a refusal costs the bytes read up to the first offending event.

Limits, against SigmaHQ's corpus (3,922 rules): the largest rule but one is 53 KB; one (a list
of 4,432 vulnerable-driver hashes, 295 KB) is over them and belongs in an alert's indicators.
"""

from __future__ import annotations

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)

MAX_RULE_BYTES = 64 * 1024  # one rule text, Sigma or YARA (UTF-8)
MAX_DEPTH = 12  # rule > detection > selection > field > list > map in list: 6 in practice
MAX_ITEMS = 2_000  # entries of one list or mapping
MAX_SCALARS = 5_000  # values (keys included) in one rule
# The C parser when PyYAML was built with libyaml: the same events, ten times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRefused(ValueError):
    """A YAML text refused before being composed, with the reason."""


def check_size(text: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RULE_BYTES:
        raise YamlRefused(f"{size} bytes: a rule text holds at most {MAX_RULE_BYTES}")


def check_plain_yaml(text: str) -> None:
    """`YamlRefused` unless `text` is one YAML document without anchors or aliases, within
    the size, depth and count limits; `yaml.YAMLError` when it is not YAML at all."""
    check_size(text)
    documents = scalars = 0
    # For each collection being read: the child nodes seen so far, and how many it may hold
    # (a mapping's keys and values are both child nodes).
    open_counts: list[list[int]] = []
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, AliasEvent):
            raise YamlRefused(f"YAML alias *{event.anchor} (anchors and aliases are refused)")
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise YamlRefused(f"YAML anchor &{event.anchor} (anchors and aliases are refused)")
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise YamlRefused("give one Sigma rule per text (one YAML document)")
        elif isinstance(event, CollectionEndEvent):
            open_counts.pop()
        elif isinstance(event, ScalarEvent | CollectionStartEvent):
            if open_counts:
                open_counts[-1][0] += 1
                if open_counts[-1][0] > open_counts[-1][1]:
                    raise YamlRefused(f"a list or mapping of more than {MAX_ITEMS} entries")
            if isinstance(event, ScalarEvent):
                scalars += 1
                if scalars > MAX_SCALARS:
                    raise YamlRefused(f"more than {MAX_SCALARS} values in one rule")
            else:
                mapping = isinstance(event, MappingStartEvent)
                open_counts.append([0, 2 * MAX_ITEMS if mapping else MAX_ITEMS])
                if len(open_counts) > MAX_DEPTH:
                    raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels")
