"""YAML loading that remembers where each mapping and key came from, and that a hostile file cannot exhaust.

A few hundred bytes of anchors and aliases (billion laughs) expand to gigabytes once anything
walks the loaded value, and deep nesting overflows the stack. So the loader refuses:

- files larger than :data:`MAX_FILE_BYTES` (checked before they are read whole);
- documents whose aliases, expanded, would add more than :data:`MAX_ALIAS_NODES` nodes;
- aliases that refer to their own anchor (a cycle), and nesting deeper than :data:`MAX_DEPTH`.

Rule files and owners files both load through here. libyaml parses when PyYAML has it (about 15
times faster than the pure-Python parser: a 1 MiB file in under a second, not ten); its own
nesting limit (1000) keeps its C composer off the stack's edge, and the checks above run on the
composed node graph either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_FILE_BYTES", "LineDict", "YamlError", "load_yaml", "read_yaml_text"]

MAX_FILE_BYTES = 1 << 20
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64


class YamlError(Exception):
    """The text is not YAML, a mapping repeats a key, or a bound is exceeded; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class LineDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


_BASE_LOADER: type = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


class _Loader(_BASE_LOADER):  # type: ignore[misc]  # the base is chosen at import (C or pure-Python loader)
    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # the pure-Python composer only
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YamlError(f"nested more than {MAX_DEPTH} levels deep", mark.line + 1)
        try:
            node: yaml.Node = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose unfolded tree (aliases expanded) is much larger or deeper than the text."""
    size: dict[int, int] = {}  # node id -> nodes in its unfolded tree
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: an alias chain must not overflow Python's stack here
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if size[key] - len(size) > MAX_ALIAS_NODES:  # early, with the line of the node that blows up
                raise YamlError(f"aliases expand this node by more than {MAX_ALIAS_NODES:,} nodes (an alias "
                                "bomb?); write the values out or use fewer aliases", node.start_mark.line + 1)
            if depth[key] > MAX_DEPTH:
                raise YamlError(f"nested more than {MAX_DEPTH} levels deep (aliases expanded)",
                                node.start_mark.line + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlError("an alias refers to its own anchor (a recursive structure)", node.start_mark.line + 1)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
    distinct = len(size)
    if size[id(root)] - distinct > MAX_ALIAS_NODES:
        raise YamlError(f"aliases expand the document by more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?); "
                        "write the values out or use fewer aliases", None)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in result
        except TypeError:
            raise YamlError(f"a mapping key must be a string or a number, not {type(key).__name__}",
                            key_node.start_mark.line + 1) from None
        if duplicate:
            raise YamlError(f"duplicate key {key!r}", key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml_text(path: str | Path) -> str:
    """The text of ``path``, read only if it is at most :data:`MAX_FILE_BYTES`; raises :class:`YamlError`
    (too large, not UTF-8) or :class:`OSError`."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise YamlError(f"file is larger than {MAX_FILE_BYTES:,} bytes; split it into several files", None)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"not UTF-8 text (byte {exc.start})", None) from None


def load_yaml(text: str) -> Any:
    """Parse one YAML document; mappings come back as :class:`LineDict`. Raises :class:`YamlError`."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(f"text is larger than {MAX_FILE_BYTES:,} characters; split it into several files", None)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(f"YAML syntax error: {exc.problem or exc}", mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"YAML error: {exc}", None) from exc
    except RecursionError:
        raise YamlError("nested too deeply to load", None) from None
