"""Rule file schema: reads YAML documents into checked specs, each remembering its file and line.

Rule files follow Falco's layout (``lists``, ``macros``, ``rules``; later files may redefine a list
or macro and disable an earlier rule). The keys of a rule, each kind's block and the defaults a rule
may leave unsaid (``agentaudit rules show ID`` prints them) are in ``docs/rules.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentaudit.rules._yaml import LineDict, YamlError, load_yaml, read_yaml_text
from agentaudit.rules.exceptions import RuleError
from agentaudit.schemas import RuleMode, Severity

__all__ = ["ENGINE_VERSION", "KINDS", "ListSpec", "MacroSpec", "RuleSpec", "parse_duration", "read_rule_files"]

ENGINE_VERSION = 1
KINDS = ("predicate", "aggregate", "sequence", "absence", "ancestor", "integrity")
MATURITY = ("stable", "incubating", "sandbox")
_RULE_KEYS = {"id", "desc", "severity", "owner", "tags", "mode", "condition", "output", "exceptions", "enabled", "kind",
              "by", "window", *KINDS[1:]}
_TOP_KEYS = {"required_engine_version", "lists", "macros", "rules"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)\s*$")
_UNIT_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
MAX_DURATION_US = 366 * 86_400_000_000
#: Most text one rule set may hold across its files (each file holds at most 1 MiB).
MAX_TOTAL_CHARS = 4 << 20


def parse_duration(text: Any) -> int | None:
    """``"90s"``, ``"5m"``, ``"1d"`` as microseconds; None if not a duration (or longer than 366 days)."""
    match = _DURATION.match(str(text)) if isinstance(text, (str, int)) and not isinstance(text, bool) else None
    if match is None or len(match.group(1)) > 20:
        return None
    value = int(float(match.group(1)) * _UNIT_US[match.group(2)])
    return value if 0 < value <= MAX_DURATION_US else None


@dataclass
class ListSpec:
    name: str
    items: list[Any]
    file: str
    line: int


@dataclass
class MacroSpec:
    name: str
    condition: str
    file: str
    line: int


@dataclass
class RuleSpec:
    """One rule as written, checked for shape (not yet compiled)."""

    id: str
    body: LineDict
    file: str
    line: int
    kind: str = "predicate"
    severity: Severity = Severity.MEDIUM
    mode: RuleMode = RuleMode.DETECT
    tags: tuple[str, ...] = ()
    owner: str = ""
    enabled: bool = True

    def line_of(self, key: str) -> int:
        return self.body.line_of(key)

    def error(self, message: str, key: str | None = None, line: int | None = None) -> RuleError:
        return RuleError(message, file=self.file, line=line or (self.line_of(key) if key else self.line), rule=self.id)


@dataclass
class RuleFiles:
    """Everything read from a list of files, later definitions overriding earlier ones."""

    lists: dict[str, ListSpec] = field(default_factory=dict)
    macros: dict[str, MacroSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    documents: list[Any] = field(default_factory=list)


def read_rule_files(paths: list[Path]) -> RuleFiles:
    """Read and shape-check rule files in order; raises :class:`RuleError` naming file, line and rule."""
    texts: list[tuple[str, str]] = []
    total = 0
    for path in paths:  # every file's size is checked before any is parsed (parsing costs ~1 s per MiB)
        name = str(path)
        try:
            text = read_yaml_text(path)
        except OSError as exc:
            raise RuleError(f"cannot read rule file: {exc.strerror}; check the path", file=name) from exc
        except YamlError as exc:
            raise RuleError(f"refused: {exc}", file=name) from exc
        total += len(text)
        if total > MAX_TOTAL_CHARS:
            raise RuleError(f"refused: the rule files up to this one hold more than {MAX_TOTAL_CHARS:,} characters; "
                            "load fewer or smaller files", file=name)
        texts.append((name, text))
    out = RuleFiles()
    for name, text in texts:
        try:
            doc = load_yaml(text)
        except YamlError as exc:
            raise RuleError(f"{exc}; fix the YAML", file=name, line=exc.line,
                            rule=_rule_near(text, exc.line)) from exc
        if doc is None:
            continue
        if not isinstance(doc, LineDict):
            raise RuleError("a rule file is a mapping with lists, macros and rules", file=name, line=1)
        out.documents.append(_plain(doc))
        _read_document(doc, name, out)
    return out


def _rule_near(text: str, line: int | None) -> str | None:
    """The id of the rule whose text holds ``line``, found by scanning upwards (the YAML did not parse)."""
    lines = text.splitlines()[: line or 0]
    for raw in reversed(lines):
        match = re.match(r"^\s*-?\s*id:\s*['\"]?([A-Za-z0-9][A-Za-z0-9_.:-]*)", raw)
        if match:
            return match.group(1)
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _read_document(doc: LineDict, file: str, out: RuleFiles) -> None:
    for key in doc:
        if key not in _TOP_KEYS:
            raise RuleError(f"unknown top-level key {key!r}; expected one of {sorted(_TOP_KEYS)}", file=file,
                            line=doc.line_of(key))
    if "required_engine_version" in doc:
        wanted = doc["required_engine_version"]
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted > ENGINE_VERSION:
            raise RuleError(f"required_engine_version {wanted!r} is not supported by this engine (version "
                            f"{ENGINE_VERSION}); upgrade agentaudit", file=file,
                            line=doc.line_of("required_engine_version"))
    seen: set[str] = set()
    for entry in _entries(doc, "lists", file):
        name = _name(entry, "list", file, seen)
        items = entry.get("items")
        if not isinstance(items, list) or any(isinstance(i, (dict, list)) for i in items):
            raise RuleError(f"list {name!r}: items must be a list of strings or numbers", file=file,
                            line=entry.line_of("items"))
        if entry.get("append") and name in out.lists:
            out.lists[name] = ListSpec(name, [*out.lists[name].items, *items], file, entry.line)
        else:
            out.lists[name] = ListSpec(name, list(items), file, entry.line)
    seen = set()
    for entry in _entries(doc, "macros", file):
        name = _name(entry, "macro", file, seen)
        condition = entry.get("condition")
        if isinstance(condition, bool):
            condition = str(condition).lower()
        if not isinstance(condition, str) or not condition.strip():
            raise RuleError(f"macro {name!r}: missing condition", file=file, line=entry.line)
        out.macros[name] = MacroSpec(name, condition, file, entry.line_of("condition"))
    for entry in _entries(doc, "rules", file):
        spec = _read_rule(entry, file)
        if spec.id in out.rules:
            if set(entry) == {"id", "enabled"}:
                out.rules[spec.id].enabled = bool(entry["enabled"])
                continue
            first = out.rules[spec.id]
            raise spec.error(f"duplicate rule id (first defined at {first.file}:{first.line}); rename it, or "
                             "disable the first with {id: ..., enabled: false}", "id")
        if set(entry) == {"id", "enabled"}:
            raise spec.error("disables a rule that no earlier file defines", "id")
        out.rules[spec.id] = spec


def _entries(doc: LineDict, key: str, file: str) -> list[LineDict]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise RuleError(f"{key!r} must be a list", file=file, line=doc.line_of(key))
    for entry in entries:
        if not isinstance(entry, LineDict):
            raise RuleError(f"each entry of {key!r} must be a mapping", file=file, line=doc.line_of(key))
    return entries


def _name(entry: LineDict, what: str, file: str, seen: set[str]) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise RuleError(f"{what} needs a name made of letters, digits and _", file=file, line=entry.line)
    if name in seen:
        raise RuleError(f"duplicate {what} {name!r} in one file", file=file, line=entry.line)
    seen.add(name)
    return name


def _read_rule(entry: LineDict, file: str) -> RuleSpec:
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", rule_id):
        raise RuleError("missing or malformed rule id (letters, digits, . _ : -)", file=file, line=entry.line,
                        rule=rule_id if isinstance(rule_id, str) else None)
    spec = RuleSpec(rule_id, entry, file, entry.line)
    if set(entry) == {"id", "enabled"}:
        spec.enabled = bool(entry["enabled"])
        return spec
    for key in entry:
        if key not in _RULE_KEYS:
            raise spec.error(f"unknown key {key!r}; expected one of {sorted(_RULE_KEYS)}", key)
    for required in ("desc", "severity", "tags", "output"):
        if required not in entry:
            raise spec.error(f"missing required field {required!r}")
    blocks = [k for k in KINDS[1:] if k in entry]
    kind = entry.get("kind", blocks[0] if blocks else "predicate")
    if kind not in KINDS:
        raise spec.error(f"unknown rule kind {kind!r}; expected one of {list(KINDS)}", "kind")
    if len(blocks) > 1 or (blocks and blocks[0] != kind) or (kind != "predicate" and not blocks and kind != "integrity"):
        raise spec.error(f"rule kind {kind!r} needs exactly one {kind!r} block", "kind" if "kind" in entry else None)
    spec.kind = kind
    if "condition" not in entry and kind != "integrity":
        raise spec.error("missing required field 'condition'")
    try:
        spec.severity = Severity(entry["severity"])
    except ValueError:
        raise spec.error(f"bad severity {entry['severity']!r}; expected one of {[s.value for s in Severity]}",
                         "severity") from None
    try:
        spec.mode = RuleMode(entry.get("mode", "detect"))
    except ValueError:
        raise spec.error(f"bad mode {entry['mode']!r}; expected one of {[m.value for m in RuleMode]}", "mode") from None
    tags = entry["tags"]
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
        raise spec.error("tags must be a non-empty list of strings", "tags")
    if tags[0] not in MATURITY:
        raise spec.error(f"the first tag states maturity and must be one of {list(MATURITY)}, not {tags[0]!r}", "tags")
    spec.tags = tuple(tags)
    owner = entry.get("owner", "")
    if not isinstance(owner, str):
        raise spec.error("owner must be a team name", "owner")
    spec.owner = owner
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise spec.error("enabled must be true or false", "enabled")
    spec.enabled = enabled
    if not isinstance(entry.get("desc"), str) or not entry["desc"].strip():
        raise spec.error("desc must be a non-empty string", "desc")
    if not isinstance(entry["output"], str):
        raise spec.error("output must be a string template", "output")
    return spec
