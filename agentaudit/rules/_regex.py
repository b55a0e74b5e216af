"""Patterns of ``matches`` and ``glob``, compiled with RE2 so that judging an event takes linear time.

Python's ``re`` backtracks: ``^(\\w+\\s?)+$`` on a 26-character name took seconds, and the inline
guard ran it inside the agent's call. RE2 (google-re2) never backtracks, so a pattern costs time
proportional to the text, whatever the pattern. Its syntax is Python's minus backreferences and
lookaround (https://github.com/google/re2/wiki/Syntax); a pattern it rejects is refused at load.

>>> search = compile_matches("(^|[._])exec$")
>>> search("shell.exec")
True
"""

from __future__ import annotations

from collections.abc import Callable

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["PatternError", "compile_glob", "compile_matches"]

#: RE2's memory budget per pattern (an eighth of its default): a pattern whose program does not fit is
#: refused; a DFA that outgrows it falls back to RE2's NFA, still linear.
MAX_PATTERN_MEMORY = 1 << 20
MAX_PATTERN_CHARS = 4_096

Matcher = Callable[[str], bool]


class PatternError(ValueError):
    """RE2 refuses the pattern (unsupported syntax, too large); the message says why."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors reach the user as a load error, not on stderr
    options.never_capture = True  # only "did it match" is used
    options.max_mem = MAX_PATTERN_MEMORY
    return options


def _compile(pattern: str, anchor: int, shown: str, hint: str = "") -> Matcher:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}")
    try:
        regexp = re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"bad {shown}: {reason}{hint}") from None
    raw = getattr(regexp, "_regexp", None)
    if raw is None or not hasattr(raw, "Match"):  # the wrapper changed: take the public, slower path
        method = regexp.search if anchor == re2._Anchor.UNANCHORED else regexp.fullmatch
        return lambda text: method(_valid(text)) is not None
    match = raw.Match

    def matcher(text: str) -> bool:
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: judged as U+FFFD, never an error
            data = _valid(text).encode()
        start: int = match(anchor, data, 0, len(data))[0][0]
        return start >= 0

    return matcher


def _valid(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def compile_matches(pattern: str) -> Matcher:
    """A function telling whether a string contains a match of ``pattern`` (RE2 syntax, unanchored)."""
    return _compile(pattern, re2._Anchor.UNANCHORED, f"regular expression {pattern!r}",
                    " (RE2 syntax: no backreferences, no lookaround; see docs/conditions.md)")


def compile_glob(pattern: str) -> Matcher:
    """A function telling whether a whole string matches the shell-style ``pattern`` (``fnmatchcase``'s
    rules: ``*``, ``?``, ``[seq]``, ``[!seq]``; case-sensitive; ``*`` also crosses newlines and dots)."""
    return _compile(_glob_to_re2(pattern), re2._Anchor.ANCHOR_BOTH, f"glob {pattern!r}")


def _glob_to_re2(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re2.escape("["))
                continue
            body = pattern[i:j]
            i = j + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            out.append(re2.escape(char))
    return "(?s:" + "".join(out) + ")"
