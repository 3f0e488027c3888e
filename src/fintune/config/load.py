"""Read a YAML experiment file, apply `--set a.b=value` overrides, validate.

Every failure becomes a FintuneError naming the file, field and what is allowed, with the
nearest valid key suggested for typos.
"""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fintune.config.schema import METHOD_NAMES, ExperimentConfig
from fintune.errors import FintuneError


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    raw = read_yaml(path)
    for item in overrides or []:
        apply_override(raw, item)
    return validate_config(raw, source=str(path))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FintuneError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise FintuneError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise FintuneError(f"{path}: not valid UTF-8 text ({err})") from None
    if raw is None:
        raise FintuneError(f"{path}: the file is empty")
    if not isinstance(raw, dict):
        raise FintuneError(f"{path}: expected a mapping of sections at the top level")
    return raw


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set `a.b.c=value` in the raw mapping; the value is parsed as YAML (3e-4, true, [a, b])."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise FintuneError(
            f"--set {item!r}: expected FIELD=VALUE, e.g. training.learning_rate=3e-4"
        )
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        value = text
    set_field(raw, key.strip(), value, where=f"--set {item!r}")


def set_field(raw: dict[str, Any], path: str, value: Any, where: str = "") -> None:
    """Set the dotted field `path` (e.g. training.learning_rate) in a raw config mapping."""
    parts = path.split(".")
    if parts[0] == "method" and len(parts) > 1 and isinstance(raw.get("method"), str):
        raw["method"] = {"name": raw["method"]}
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FintuneError(f"{where or path}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        lines = [_describe(e) for e in err.errors()]
        details = "\n".join(f"  - {x}" for x in lines)
        raise FintuneError(f"{source}: invalid config\n{details}") from None


def _describe(error: dict[str, Any]) -> str:
    # drop the tags pydantic adds inside unions: 'lora', 'list[str]', "literal['auto']", ...
    loc = [str(p) for p in error["loc"] if "[" not in str(p) and str(p) not in ("str", "int")]
    kind = error["type"]
    if loc and loc[0] == "method" and len(loc) > 1 and loc[1] in METHOD_NAMES:
        loc = ["method", *loc[2:]]
    field = ".".join(loc) or "(top level)"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        hint = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.5)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else "."
        if loc[0] == "method" and len(loc) == 2:
            owners = [m for m in METHOD_NAMES if loc[-1] in _method_fields(m)]
            if owners:
                suggestion = f"; it is an option of method {', '.join(owners)}."
        return f"{field}: unknown key{suggestion} Allowed here: {', '.join(sorted(allowed))}"
    methods = ", ".join(METHOD_NAMES)
    if kind == "union_tag_not_found":
        return f"{field}.name: missing; name the method, one of: {methods}"
    if kind == "union_tag_invalid":
        return f"{field}: unknown method {error['input'].get('name')!r}; allowed: {methods}"
    if field == "method" and kind == "model_attributes_type":
        got = error["input"]
        return f"method: expected a method name ({methods}) or a mapping with `name` (got {got!r})"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{field}: {error['input']!r} is not allowed; expected {expected}"
    if kind == "missing":
        return f"{field}: required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and kind not in ("value_error", "model_type"):
        return f"{field}: {message} (got {error['input']!r})"
    return f"{field}: {message}"


def _method_fields(name: str) -> list[str]:
    return _allowed_keys(("method", name))


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at a location, following sections and the method union."""
    model: type[BaseModel] | None = ExperimentConfig
    for part in loc:
        if model is None:
            return []
        if part in METHOD_NAMES and model is not ExperimentConfig:
            continue  # the tag pydantic puts in a union's location
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _section_type(field.annotation, loc)
    return list(model.model_fields) if model else []


def _section_type(annotation: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _section_type(args[0], loc)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in args:  # the method union: pick the member named by the tag in loc
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                tag = arg.model_fields.get("name")
                if tag is not None and tag.default in loc:
                    return arg
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None
