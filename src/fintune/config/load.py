"""Read a YAML experiment file, apply `--set a.b=value` overrides, validate.

Every failure becomes a FintuneError naming the file, field and what is allowed, with the
nearest valid key suggested for typos.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fintune.config.schema import METHOD_NAMES, SHORTHANDS, ExperimentConfig, Refused
from fintune.errors import FintuneError


class DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class StrictLoader(yaml.SafeLoader):
    """YAML as a config author means it: a repeated key is an error (the first would be
    lost), and only true/false are booleans, decimal integers are integers and nothing is a
    date, so `labels: [no, yes]`, `subset: 075`, `name: 2024_06` and `name: 2024-06-30` stay
    text (a number field still reads `1_000` as 1000)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key; SafeLoader names it
                break
            if first is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"key {key!r} appears twice (first on line {first + 1}); the first would be "
                    "lost: merge the two",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:timestamp"}
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
StrictLoader.add_implicit_resolver(  # 075 and 2024_06 stay text: YAML 1.1 read 61 and 202406
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


def _construct_int(loader: StrictLoader, node: yaml.ScalarNode) -> int:
    try:
        return int(loader.construct_scalar(node))
    except ValueError as err:  # over Python's 4,300 digits
        raise yaml.constructor.ConstructorError(None, None, str(err), node.start_mark) from None


StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


TOO_DEEP = "nested too deep (hundreds of brackets or indents) for a config"
# what aliases may add to a document, in nodes: a config's are a few; nested ones (a
# "billion laughs": 9 levels of 10 aliases in 700 bytes) expand to billions, and whatever
# walks the values (a study's labels, a sweep's choices) ran for minutes, out of memory
ALIAS_NODES = 100_000


class AliasBombError(yaml.constructor.ConstructorError):
    pass


def parse_yaml(text: str) -> Any:
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document that aliases make huge, or that contains itself (`&a [*a]`),
    before any of it is built: the node graph is counted once per distinct node."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    distinct = 0

    def size(node: yaml.Node) -> int:
        nonlocal distinct
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise AliasBombError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        open_nodes.add(id(node))
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(id(node))
        distinct += 1
        sizes[id(node)] = total
        return total

    expanded = size(root)
    if expanded - distinct > ALIAS_NODES:
        raise AliasBombError(
            None,
            None,
            f"its aliases (*name) expand it to {expanded:,} values, from {distinct:,} "
            "written (nested aliases, a 'billion laughs'); write the values out instead",
            root.start_mark,
        )


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    raw = read_yaml(path)
    refuse_other_kind(raw, "experiment", path)
    before = copy.deepcopy(raw)
    overridden: list[str] = []
    for item in overrides or []:
        overridden += apply_override(raw, item, given=overridden)
    return validate_config(raw, source=str(path), overridden=overridden, before=before)


def override_base(
    base: dict[str, Any], overrides: list[str] | None, varied: dict[str, str]
) -> dict[str, Any]:
    """A study's or sweep's base with `--set` overrides, as if written in its file.
    `varied`: field -> what sets it for every cell or trial (where a --set would be lost)."""
    raw = copy.deepcopy(base)
    given: list[str] = []
    for item in overrides or []:
        given += apply_override(raw, item, given=given)
    for field in given:
        for other, setter in varied.items():
            if field == other or field.startswith(f"{other}.") or other.startswith(f"{field}."):
                raise FintuneError(
                    f"--set {field}: {setter} sets {other} for each of its runs, which would "
                    "overwrite the --set; change it there"
                )
    try:  # a mistyped --set, named as one: each cell's error would blame the file
        validate_config(raw, overridden=given, before=base)
    except FintuneError as error:  # the base alone may lack what the axes give: not ours
        marked = [line for line in str(error).splitlines() if line.endswith("[from --set]")]
        if marked:
            raise FintuneError("--set: invalid config\n" + "\n".join(marked)) from None
    return raw


KINDS = {
    "experiment": "an experiment file (for fintune run and validate)",
    "study": "a study file (for fintune compare)",
    "sweep": "a sweep file (for fintune sweep)",
}


def file_kind(raw: dict[str, Any]) -> str | None:
    """Which of the three files a mapping looks like, from its keys."""
    keys = set(raw)
    if "base" in keys and "space" in keys:
        return "sweep"
    if "base" in keys and keys & {"axes", "cells", "baseline"}:
        return "study"
    if "base" not in keys and keys & {"data", "model", "method", "training"}:
        return "experiment"
    return None


def refuse_other_kind(raw: dict[str, Any], wanted: str, path: str | Path) -> None:
    kind = file_kind(raw)
    if kind is not None and kind != wanted:
        raise FintuneError(f"{path}: this is {KINDS[kind]}, not {KINDS[wanted]}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise FintuneError(f"{path} is a directory; give the YAML file inside it")
    if not path.exists():  # a pipe (`<(envsubst < exp.yaml)`) is read like a file
        raise FintuneError(f"config file not found: {path}")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        where = str(err).replace('"<unicode string>"', f'"{path}"')
        raise FintuneError(f"{path}: not valid YAML: {where}") from None
    except RecursionError:  # PyYAML recurses once per level: 2,000 brackets deep
        raise FintuneError(f"{path}: not valid YAML: {TOO_DEEP}") from None
    except UnicodeDecodeError as err:
        raise FintuneError(f"{path}: not valid UTF-8 text ({err})") from None
    except OSError as err:
        raise FintuneError(f"{path}: cannot read it ({err.strerror or err})") from None
    if raw is None:
        raise FintuneError(f"{path}: the file is empty")
    if not isinstance(raw, dict):
        raise FintuneError(f"{path}: expected a mapping of sections at the top level")
    return raw


def apply_override(raw: dict[str, Any], item: str, given: list[str] | None = None) -> list[str]:
    """Set `a.b.c=value` in the raw mapping; the value is parsed as YAML (3e-4, true, [a, b]).
    Returns the fields it set; `given`: those earlier overrides set (a method switch keeps
    them, to be named if the new method does not take them)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise FintuneError(
            f"--set {item!r}: expected FIELD=VALUE, e.g. training.learning_rate=3e-4"
        )
    stripped = text.strip()
    try:
        if not stripped:
            value = text
        elif stripped.startswith("#") or stripped == "~" or _holds_a_comment(text):
            # in YAML a comment ("tiny #2" would be cut to "tiny", silently), and null
            value = stripped
        else:
            value = parse_yaml(text)
    except DuplicateKeyError as error:
        raise FintuneError(f"--set {item!r}: {error.problem}") from None
    except AliasBombError as error:  # the value itself may be long
        raise FintuneError(f"--set {key.strip()}: {error.problem}") from None
    except RecursionError:
        raise FintuneError(f"--set {key.strip()}: the value is {TOO_DEEP}") from None
    except yaml.YAMLError:  # not YAML: kept as written (a path like `[runs`)
        value = text
    before, model_before = method_name(raw), model_name(raw)
    fields = _merge_field(raw, key.strip().split("."), value, where=f"--set {item!r}")
    drop_switched_options(before, raw, [*(given or []), *fields])
    drop_switched_model(model_before, raw, [*(given or []), *fields])
    return fields


def _holds_a_comment(text: str) -> bool:
    """Whether YAML reads the end of the value as a comment: text after its last token."""
    ends = [
        token.end_mark.index
        for token in yaml.scan(text)
        if not isinstance(token, (yaml.StreamEndToken, yaml.BlockEndToken))
    ]
    return bool(text[max(ends, default=0) :].strip())


def model_name(raw: dict[str, Any]) -> Any:
    model = raw.get("model")
    return model.get("name") if isinstance(model, dict) else model


# what names a file or commit of one model's repository, so means nothing for another
MODEL_PINS = ("revision", "gguf_file")


def drop_switched_model(before: Any, raw: dict[str, Any], fields: list[str]) -> None:
    """A --set that changed model.name drops the file's model.revision and model.gguf_file,
    which name a commit and a file of the file's model, unless a --set gave them."""
    model = raw.get("model")
    if model_name(raw) == before or not isinstance(model, dict) or "model" in fields:
        return  # "model": the section given whole (a study variant): all of it was asked for
    for key in MODEL_PINS:
        if f"model.{key}" not in fields:
            model.pop(key, None)


def method_name(raw: dict[str, Any]) -> Any:
    method = raw.get("method")
    return method.get("name") if isinstance(method, dict) else method or "full"


def drop_switched_options(before: Any, raw: dict[str, Any], fields: list[str]) -> None:
    """A --set (a study axis, a sweep's space) that switched the method (`method=full` on a
    lora file) drops the file's options that only the old method has (r, alpha): they mean
    nothing to the new one; and LoRA's dropout for an adapter, which means another. Any other
    key, and any that `fields` set, stays, to be named if the new method does not take it."""
    after, method = method_name(raw), raw.get("method")
    if not (isinstance(before, str) and isinstance(after, str)):  # `--set method.name=[x]`
        return  # validation names it
    if after == before or not isinstance(method, dict) or {before, after} - set(METHOD_NAMES):
        return
    if "method" in fields:  # the section given whole: all of it was asked for
        return
    old, new = _method_fields(before), _method_fields(after)
    for key in [k for k in method if k in old and not _carried(k, before, after, new)]:
        if f"method.{key}" not in fields:
            del method[key]


# options that two methods name alike but mean apart: LoRA's dropout is on its input, an
# adapter's inside its bottleneck (default 0.0, not LoRA's 0.1)
_OWN_MEANING = {"dropout": ({"lora", "dora", "qlora"}, {"adapter"})}


def _carried(key: str, before: str, after: str, new: list[str]) -> bool:
    """Whether a switched method keeps the file's option `key`: the new one has it, to the
    same effect."""
    groups = _OWN_MEANING.get(key)
    return key in new and (groups is None or any({before, after} <= g for g in groups))


def field_set(field: str, value: Any) -> str:
    """The field a study axis, a cell or a sweep's choice sets: a bare model name only
    model.name (set_field), so a --set of the base's max_length is not overwritten."""
    return "model.name" if field == "model" and isinstance(value, str) else field


def set_fields(raw: dict[str, Any], fields: dict[str, Any], where: Callable[[str], str]) -> None:
    """Set each field of a study cell or sweep trial (`where(field)` names it in errors); a
    switched method drops the base's options it lacks, and a switched model the base's
    revision and gguf_file, as a --set does."""
    before, model_before = method_name(raw), model_name(raw)
    for field, value in fields.items():
        set_field(raw, field, copy.deepcopy(value), where=where(field))
    drop_switched_options(before, raw, [*fields])  # a full cell from a lora base: no r
    drop_switched_model(model_before, raw, [field_set(f, v) for f, v in fields.items()])


def _merge_field(raw: dict[str, Any], parts: list[str], value: Any, where: str) -> list[str]:
    """A section given whole (`training={epochs: 2}`, `method=dora`) is merged into the
    file's section field by field, so the fields it does not name keep the file's values; a
    field that holds a mapping (`data.files`, `tracking.tags`) is replaced."""
    current = written_value(raw, parts)
    if value is None and is_section(parts):
        # YAML's empty section means its defaults, which is not what `=null` asks of a file's
        raise FintuneError(
            f"{where}: {'.'.join(parts)} is a section, which null would put back to its "
            f"defaults whole; set its fields instead ({'.'.join(parts)}.FIELD=VALUE)"
        )
    short = len(parts) == 1 and parts[0] in SHORTHANDS
    if short and isinstance(value, str) and isinstance(current, dict):
        value = {"name": value}  # `method: dora` means `method.name: dora`
    shorthand = short and isinstance(current, str)
    if isinstance(value, dict) and (isinstance(current, dict) or shorthand) and is_section(parts):
        return [
            field
            for key, sub in value.items()
            for field in _merge_field(raw, [*parts, str(key)], sub, where)
        ]
    set_field(raw, ".".join(parts), value, where=where)
    return [".".join(parts)]


def written_value(raw: Any, field: str | list[str]) -> Any:
    """A field's value as a raw mapping writes it (None where absent); `field` dotted, or
    its parts (a key may hold a dot)."""
    for key in field.split(".") if isinstance(field, str) else field:
        raw = raw.get(key) if isinstance(raw, dict) else None
    return raw


def changed_by_set(written: dict[str, Any], base: dict[str, Any], field: str) -> bool:
    """Whether --set changed `field` from what the file wrote (`base`: the file's mapping
    with the overrides applied)."""
    return written_value(written, field) != written_value(base, field)


def is_section(parts: list[str]) -> bool:
    model: type[BaseModel] | None = ExperimentConfig
    for part in parts:
        field = model.model_fields.get(part) if model else None
        if field is None:
            return False
        model = _section_type(field.annotation, ())
    return model is not None


def set_field(raw: dict[str, Any], path: str, value: Any, where: str = "") -> None:
    """Set the dotted field `path` (e.g. training.learning_rate) in a raw config mapping."""
    parts = path.split(".")
    if not all(part.strip() for part in parts):
        raise FintuneError(f"{where or path}: a field name is empty in {path!r}")
    if parts[0] in SHORTHANDS and len(parts) > 1 and isinstance(raw.get(parts[0]), str):
        raw[parts[0]] = {"name": raw[parts[0]]}
    if parts == ["model"] and isinstance(value, str) and isinstance(raw.get("model"), dict):
        # a bare model name (a study axis, a sweep choice) names the model; the base's
        # max_length or dtype stay (a bare method name still replaces: its options are its own)
        parts = ["model", "name"]
    node = raw
    for part in parts[:-1]:
        if node.get(part) is None:  # absent, or a section whose keys are all commented out
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise FintuneError(f"{where or path}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def validate_config(
    raw: dict[str, Any],
    source: str = "config",
    overridden: list[str] | None = None,
    before: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """`overridden`: the fields set by --set, named as such in errors. `before`: the
    mapping before them, whose own errors a section's cross-field error may be."""
    try:
        return ExperimentConfig.model_validate(_empty_sections(raw, ExperimentConfig))
    except ValidationError as err:
        lines = [describe_error(e) for e in err.errors()]
        without = _error_lines(before)
        keys = overridden or []
        for i, (line, error) in enumerate(zip(lines, err.errors(), strict=True)):
            field = line.partition(":")[0]
            top = not error["loc"]
            given = any(field == key or field.startswith(f"{key}.") for key in keys)
            if error["type"] == "extra_forbidden" and "." in str(error["loc"][-1]):
                given = False  # a dotted key is the file's: --set splits its field on dots
            # above a field --set gave: a tag --set made (`--set a.b.c=1` made the unknown
            # a.b; `--set method.name=null`), a section's or the whole config's cross-field
            # check, a section --set made without its name (`--set method.r=4` on a file
            # without a method section); from --set unless the config failed so without it
            section = f"{error['loc'][0]}." if error["loc"] else ""
            nameless = error["type"] == "union_tag_not_found"
            above = any(
                top or key.startswith(f"{field}.") or (nameless and key.startswith(section))
                for key in keys
            )
            if given or (above and line not in without):
                lines[i] = f"{line} [from --set]"
        details = "\n".join(f"  - {x}" for x in lines)
        raise FintuneError(f"{source}: invalid config\n{details}") from None


def _error_lines(raw: dict[str, Any] | None) -> list[str]:
    if raw is None:
        return []
    try:
        ExperimentConfig.model_validate(_empty_sections(raw, ExperimentConfig))
    except ValidationError as err:
        return [describe_error(e) for e in err.errors()]
    return []


def describe_error(error: dict[str, Any]) -> str:
    kind = error["type"]
    # drop the tags pydantic adds inside unions: 'lora', 'list[str]', "literal['auto']", ...;
    # an unknown key is the user's, whatever it looks like ('labels[0]', 'int')
    *path, last = [str(p) for p in error["loc"]] or [""]
    loc = [p for p in path if "[" not in p and p not in ("str", "int")]
    if kind == "invalid_key" or last == "[key]":  # a section's location says 1 for true
        if last == "[key]":  # a mapping's (tags): its location ends with the key itself
            loc = loc[:-1]
        got = error["input"]
        shown = str(got).lower() if isinstance(got, bool) else repr(got)
        what = "true or false" if isinstance(got, bool) else f"a {type(got).__name__}"
        return (
            f"{'.'.join([*loc, shown])}: a key must be text; YAML read this key as {what}: "
            f"quote it ('{shown}':)"
        )
    if kind == "extra_forbidden" or ("[" not in last and last not in ("str", "int")):
        loc.append(last)
    if loc and loc[0] == "method" and len(loc) > 1 and loc[1] in METHOD_NAMES:
        loc = ["method", *loc[2:]]
    field = ".".join(loc) or "(top level)"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        suggestion = did_you_mean(loc[-1], allowed)
        head, dot, rest = loc[-1].partition(".")
        if dot and head in allowed:
            suggestion = (
                f"; a dot in a YAML key does not nest it: write `{head}:` with `{rest}:` "
                "indented under it."
            )
        if (listed := loc[-1].partition("[")[0]) != loc[-1] and listed in allowed:
            whole = ".".join([*loc[:-1], listed])
            suggestion = (
                f"; a list's items are not set one by one: give the whole list: "
                f"--set {whole}=[a, b]."
            )
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
    if kind == "string_type" and isinstance(error.get("input"), float):
        return (
            f"{field}: expected text, but YAML read a number ({error['input']!r}); quote it "
            "to keep it as written ('1.10')"
        )
    if kind == "int_parsing" and _exponent_form(got := error.get("input")):
        value = float(got)
        fix = f"write {int(value)}" if value.is_integer() else f"it is {value:g}, not whole"
        return (
            f"{field}: expected a whole number; YAML read {got!r} as text (a number in "
            f"exponent form needs a dot and a signed exponent, as in 1.0e+4): {fix}"
        )
    if loc[:2] == ["tracking", "tags"] and len(loc) == 3 and isinstance(error["input"], dict):
        name, value = _dotted(loc[2], error["input"])  # --set split the tag's name on its dots
        return (
            f"{field}: a tag's value is text, not a mapping; a tag name with dots is one key: "
            f"give the tags whole, --set 'tracking.tags={{{name}: {value}}}'"
        )
    if kind == "model_type":
        return (
            f"{field}: expected a section of keys ({field}: {{key: value}}), got {error['input']!r}"
        )
    if kind == "string_pattern_mismatch" and field == "name":
        return (
            f"name: letters, digits, '.', '_' and '-' only, starting with a letter or digit "
            f"(it names folders; got {error['input']!r})"
        )
    if isinstance(error.get("input"), Refused):
        return f"{field}: expected {error['input'].expected}, got {error['input']}"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and kind != "value_error":
        return f"{field}: {message} (got {error['input']!r})"
    return f"{field}: {message}"


def _dotted(key: str, value: Any) -> tuple[str, Any]:
    """The dotted name and the value of a one-path mapping ({note: {content: x}})."""
    while isinstance(value, dict) and len(value) == 1:
        ((sub, value),) = value.items()
        key = f"{key}.{sub}"
    return key, value


def _exponent_form(value: Any) -> bool:
    """'1e4', '1.0e4': YAML 1.1's float rule (PyYAML's) leaves them text, and pydantic
    parses text as a float, not as an integer."""
    return isinstance(value, str) and bool(re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", value))


def did_you_mean(key: str, allowed: list[str]) -> str:
    """ "; did you mean 'x'?" for the nearest allowed key, or "." when none is near."""
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
    return f"; did you mean '{hint[0]}'?" if hint else "."


def _empty_sections(raw: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A section written with every key commented out (`training:`) is read as None: it
    means the defaults, as if the section were absent."""
    out = dict(raw)
    for key, value in raw.items():
        field = model.model_fields.get(key) if isinstance(key, str) else None
        section = _section_type(field.annotation, ()) if field else None
        if section is None:
            continue
        if value is None and key == "method":
            del out[key]  # the default method
        elif value is None:
            out[key] = {}
        elif isinstance(value, dict) and key != "method":
            out[key] = _empty_sections(value, section)
    return out


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
