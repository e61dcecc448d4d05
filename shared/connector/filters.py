"""Include/exclude filters on item locations, in the DSX-Connect 1.x style.

Syntax of ``DSXCONNECTOR_FILTER``:

- A comma-separated list of glob patterns; whitespace around each pattern is dropped; an empty
  filter selects every item.
- A pattern starting with ``-`` or ``!`` excludes; one starting with ``+`` (or nothing) includes.
- When there is at least one include pattern, an item must match one of them. An item that
  matches any exclude pattern is dropped, whatever the includes say (excludes win).
- Patterns match the item's location relative to the asset, ``/``-separated:

  - ``*`` matches any run of characters within one path segment, ``?`` one character, and
    ``[abc]`` / ``[!abc]`` a character class; none of them crosses a ``/``.
  - ``**`` matches any number of whole segments, including none: ``**/*.pdf``, ``docs/**``,
    ``a/**/b``.
  - A pattern without a ``/`` matches a segment at any depth, like ``.gitignore``: ``*.pdf``
    selects ``x.pdf`` and ``a/b/x.pdf``; ``tmp`` selects everything under any folder named ``tmp``.
  - A pattern with a ``/`` before its end is anchored at the asset root (a leading ``/`` is
    optional; a trailing one alone does not anchor, as in ``.gitignore``):
    ``reports/*.xlsx`` selects ``reports/q1.xlsx`` but not ``old/reports/q1.xlsx``.
  - A pattern that matches a folder matches everything beneath it (a trailing ``/`` is allowed).
  - Matching is case-sensitive, as paths and object keys are.

Examples: ``*.pdf,*.docx`` (only PDF and Word files), ``-tmp,-*.log`` (everything except folders
named ``tmp`` and log files), ``reports/**,!reports/archive`` (the reports folder except its
archive), ``+**/*.exe,-quarantine/**``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MAX_FILTER_LENGTH = 8192


def _translate(pattern: str) -> str:
    """Regex source for one glob pattern (without its include/exclude sign)."""
    body = pattern.strip("/")
    anchored = "/" in body or pattern.startswith("/")
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if body[i:] == "/**":  # trailing "/**": the folder and anything below it
            out.append("(?:/.*)?")
            break
        if body.startswith("**", i):
            starts_segment = i == 0 or body[i - 1] == "/"
            ends_segment = i + 2 == n or body[i + 2] == "/"
            if starts_segment and ends_segment:
                if i + 2 == n:  # trailing "**": anything below, or nothing
                    out.append(".*")
                    i += 2
                else:  # "**/": zero or more whole segments
                    out.append("(?:.*/)?")
                    i += 3
                continue
            out.append("[^/]*")  # "a**b" inside a segment behaves like "*"
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = body.find("]", i + 2 if body.startswith("[!", i) or body.startswith("[]", i) else i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
                continue
            inner = body[i + 1 : end]
            if inner.startswith("!"):
                inner = "^" + inner[1:]
            out.append("[" + inner.replace("\\", "\\\\").replace("/", "") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return f"{prefix}{''.join(out)}(?:/.*)?"


@dataclass(frozen=True)
class Filter:
    """A parsed filter; ``matches(location)`` says whether an item is selected."""

    text: str = ""
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    _include_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _exclude_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str | None) -> Filter:
        """Parse a filter string; raise ``ValueError`` saying what is wrong with it."""
        text = (text or "").strip()
        if len(text) > _MAX_FILTER_LENGTH:
            raise ValueError(f"filter is longer than {_MAX_FILTER_LENGTH} characters")
        if any(ord(c) < 32 for c in text):
            raise ValueError("filter contains control characters")
        includes: list[str] = []
        excludes: list[str] = []
        for raw in text.split(","):
            token = raw.strip()
            if not token:
                continue
            target = includes
            if token[0] in "-!":
                target, token = excludes, token[1:].strip()
            elif token[0] == "+":
                token = token[1:].strip()
            if not token.strip("/"):
                raise ValueError(f"empty pattern in filter: {raw.strip()!r}")
            target.append(token)
        return cls(
            text=text,
            includes=tuple(includes),
            excludes=tuple(excludes),
            _include_re=_compile(includes),
            _exclude_re=_compile(excludes),
        )

    @property
    def is_empty(self) -> bool:
        return not self.includes and not self.excludes

    def matches(self, location: str) -> bool:
        """Whether the item at ``location`` (relative, ``/``-separated) is selected."""
        if self._exclude_re is not None and self._exclude_re.fullmatch(location):
            return False
        return self._include_re is None or self._include_re.fullmatch(location) is not None

    def prunes(self, folder: str) -> bool:
        """Whether everything under ``folder`` is excluded, so a walk need not enter it."""
        return self._exclude_re is not None and self._exclude_re.fullmatch(folder) is not None


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{_translate(p)})" for p in patterns), re.DOTALL)
