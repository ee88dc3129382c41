"""The experiment file: one YAML document → a validated `ExperimentConfig`, or one line that names the file,
the YAML line and the field, e.g.
``config/exp3.yaml:12: conditions.control.router: unknown router 'randon' (choose from ...)``.

Duplicate keys are refused (YAML would silently keep the last), and so are keys that are lists or mappings,
nesting past `files.MAX_DEPTH`, and text Postgres cannot store (a NUL, a lone surrogate); a file that is not
UTF-8 text is named as such, never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from swarmq.errors import ConfigError, DatasetError
from swarmq.experiment.config import ExperimentConfig
from swarmq.files import bad_text, depth_error, read_text, where

MAX_VALUES = 100_000
"""Most values one experiment file may stand for once its aliases are expanded: thousands of times what any
real file holds."""


class _UniqueKeys(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                what = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise ConfigError(f"{{source}}:{line}: a key must be a plain value, not {what}")
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{{source}}:{line}: duplicate key {key!r} (first on line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _node_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _format_error(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "field required"
    return msg.removeprefix("Value error, ")


def parse_config(
    text: str, source: str = "<config>", overrides: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Parse and validate YAML text; raise ConfigError naming ``source:line: field: problem``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_UniqueKeys)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("{source}", source)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{at}: malformed YAML: {problem}") from None
    except RecursionError:  # PyYAML composes and constructs recursively
        raise ConfigError(f"{source}: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of fields at the top level")
    if (problem := depth_error(data, MAX_VALUES)) is not None:
        raise ConfigError(f"{source}: {problem}")
    if (bad := bad_text(data)) is not None:
        loc, problem = bad
        line = _node_line(root, loc)
        raise ConfigError(f"{source}:{line}: {where(loc)}: {problem}" if line else f"{source}: {problem}")
    data.update(overrides or {})
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _node_line(root, loc)
        at = f"{source}:{line}" if line else source
        raise ConfigError(f"{at}: {field}: {_format_error(err)}") from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: experiment file not found")
    try:
        text = read_text(p, str(p))
    except (
        DatasetError
    ) as exc:  # a folder, another encoding, an empty file: the same one line, as a config error
        raise ConfigError(str(exc)) from None
    return parse_config(text, str(p), overrides)
