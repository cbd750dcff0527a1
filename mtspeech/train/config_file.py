"""Reading training configs: YAML files that may extend others (``base:``), plus ``--set key=value`` overrides.

A recipe can start from one or more other files and change only what differs::

    base: ../synth-small.yaml          # or a list; paths are relative to this file
    model: {tasks: {intent: {}}}       # mappings merge key by key; lists and scalars replace

Every key remembers the file and line it came from, so a validation error can point at the exact place that
needs fixing even when the key was inherited from a base file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtspeech.errors import UserError

BASE_KEY = "base"
Key = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where a config value was written: a file and line, or a command-line override."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source


@dataclass
class RawConfig:
    """A merged config mapping and the origin of each key path in it."""

    data: dict[str, Any]
    origins: dict[Key, Origin] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def origin(self, loc: Iterable[str | int]) -> Origin | None:
        """The origin of the longest prefix of ``loc`` that has one (pydantic error locations go deeper)."""
        key = tuple(loc)
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key[:-1]
        return None


def _node_lines(node: yaml.Node, source: str, prefix: Key, out: dict[Key, Origin]) -> None:
    """Record the line of every mapping key and list item below ``node`` (1-based lines)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = prefix + (str(key_node.value),)
            out[key] = Origin(source, key_node.start_mark.line + 1)
            _node_lines(value_node, source, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = prefix + (index,)
            out[key] = Origin(source, item.start_mark.line + 1)
            _node_lines(item, source, key, out)


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[Key, Origin]]:
    if not path.is_file():
        raise UserError("config file not found", path=path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise UserError(f"not valid YAML: {problem}", path=path, line=line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"a config file must be a mapping of keys, got {type(data).__name__}", path=path)
    origins: dict[Key, Origin] = {}
    if node is not None:
        _node_lines(node, str(path), (), origins)
    return data, origins


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge recursively, anything else (lists too) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _still_present(data: Any, key: Key) -> bool:
    for part in key:
        in_mapping = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and part < len(data)
        if in_mapping or in_list:
            data = data[part]
        else:
            return False
    return True


def load_raw_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> RawConfig:
    """Read ``path`` and, first, every file its ``base:`` key names (recursively; cycles are an error)."""
    path = Path(path)
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise UserError(f"config files include each other in a cycle: {chain}", path=path)
    data, origins = _read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    origins = {k: v for k, v in origins.items() if k[:1] != (BASE_KEY,)}
    if bases is None:
        return RawConfig(data, origins, [path])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise UserError(f"'{BASE_KEY}' must be a file path or a list of file paths", path=path)
    merged: dict[str, Any] = {}
    merged_origins: dict[Key, Origin] = {}
    files: list[Path] = []
    for base in bases:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        parent = load_raw_config(base_path, (*_seen, resolved))
        merged = deep_merge(merged, parent.data)
        merged_origins = {**merged_origins, **parent.origins}
        files += parent.files
    merged = deep_merge(merged, data)
    merged_origins = {**merged_origins, **origins}
    # A child value that replaced a base mapping with a scalar/list invalidates the base's deeper origins.
    merged_origins = {k: v for k, v in merged_origins.items() if _still_present(merged, k)}
    return RawConfig(merged, merged_origins, [*files, path])


def parse_override(text: str) -> tuple[Key, Any]:
    """``"optim.lr=3e-4"`` -> ``(("optim", "lr"), 0.0003)``; the value is parsed as YAML (``[a, b]``, ``null``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set expects KEY=VALUE (e.g. optim.lr=3e-4), got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if any(p == "" for p in parts):
        raise UserError(f"--set key {key!r} has an empty component")
    return tuple(parts), parsed


def apply_overrides(raw: RawConfig, overrides: Iterable[str]) -> RawConfig:
    """Set each ``key.path=value`` in ``raw`` (creating mappings on the way); returns ``raw``."""
    for text in overrides:
        key, value = parse_override(text)
        node: Any = raw.data
        for depth, part in enumerate(key[:-1]):
            where = ".".join(map(str, key[: depth + 1]))
            if isinstance(node, list):
                if not isinstance(part, int) or not 0 <= part < len(node):
                    raise UserError(f"--set {text!r}: {where} is not an index of a {len(node)}-item list")
                node = node[part]
            elif isinstance(node, dict):
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                node = child
            else:
                raise UserError(f"--set {text!r}: {where} is a value, not a section")
        last = key[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or not 0 <= last < len(node):
                raise UserError(f"--set {text!r}: {last} is not an index of a {len(node)}-item list")
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise UserError(f"--set {text!r}: the parent of {last!r} is a value, not a section")
        raw.origins = {k: v for k, v in raw.origins.items() if k[: len(key)] != key}
        raw.origins[key] = Origin(f"--set {text}")
    return raw
