"""Study files: a base experiment, axes over config fields, explicit cells, a baseline.

    name: fpb-methods
    base: benchmarks/configs/fpb_minilm.yaml     # or an inline experiment mapping
    axes:
      method:                                    # named variants: label -> fields
        full: {method: full, training.learning_rate: 1.0e-4}
        lora: {method: {name: lora, r: 16}, training.learning_rate: 1.0e-3}
      seed: [1, 2, 3]                            # a field: its values
    cells:                                       # more cells beyond the grid
      - {method: full, seed: 4}
      - {method: lora, seed: 4}
    baseline: {method: full}

Every combination of the axes is a cell, plus the explicit cells. Everything is expanded
and every cell's config validated here, before anything runs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator
from rich.console import Console
from rich.markup import escape

from fintune.config.load import (
    changed_by_set,
    describe_error,
    did_you_mean,
    field_set,
    is_section,
    override_base,
    read_yaml,
    refuse_other_kind,
    set_fields,
    validate_config,
    written_value,
)
from fintune.config.schema import ExperimentConfig, HeadlineMetric, Section, expand_home
from fintune.errors import FintuneError, relative_note

SEED_AXIS = "seed"
console = Console(stderr=True, soft_wrap=True)
S = TypeVar("S", bound=Section)
Axis = list[Any] | dict[str, dict[str, Any]]


class StudySpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=60)
    base: str | dict[str, Any]
    """The experiment every cell starts from: a YAML file or an inline mapping."""
    axes: dict[str, Axis] = Field(default_factory=dict)
    cells: list[dict[str, Any]] = Field(default_factory=list)
    baseline: dict[str, Any]
    """Axis values of the reference cell of each group, e.g. {method: full}."""
    metric: HeadlineMetric = "accuracy"
    """The metric whose paired test gives each cell's verdict against its baseline."""
    output: str = "studies"
    """Parent folder; the study lives in `<output>/<name>/` and resumes from there."""
    bootstrap_samples: int = Field(2000, ge=200)

    @field_validator("output")
    @classmethod
    def _expand_output(cls, path: str) -> str:
        return expand_home(path)

    @field_validator("axes", mode="before")
    @classmethod
    def _labels_as_text(cls, axes: Any) -> Any:
        """A variant label YAML reads as a number (`1:`, `0.5:`) is its text, as a cell
        or baseline naming it is compared by its text."""
        if not isinstance(axes, dict):
            return axes
        return {
            axis: {label_of(k): v for k, v in values.items()}
            if isinstance(values, dict)
            else values
            for axis, values in axes.items()
        }


@dataclass
class Cell:
    coords: dict[str, str]
    """Axis -> label: where the cell sits in the study."""
    overrides: dict[str, Any]
    config: ExperimentConfig

    @property
    def id(self) -> str:
        return ",".join(f"{axis}={label}" for axis, label in self.coords.items())

    @property
    def config_sha(self) -> str:
        return results_sha(self.config)

    def made(self, entry: dict[str, Any] | None) -> bool:
        """Whether a cells.json entry was made with this cell's current config. Entries
        written before name, output and tracking were left out hash the whole config."""
        sha = (entry or {}).get("config_sha")
        whole = json.dumps(hashed_fields(self.config), sort_keys=True)
        return sha == self.config_sha or sha == hashlib.sha256(whole.encode()).hexdigest()[:16]


# Fields added after results were first hashed: at their default they are left out of the
# hash, so a study or sweep that ran before them keeps its finished cells and final model.
ADDED_FIELDS = {
    ("data", "quoting"): "standard",
    ("evaluation", "test"): True,
    ("training", "cycles"): 1,
}


def results_sha(config: ExperimentConfig) -> str:
    """Hash of what a run's results depend on: not its name, output folder or tracking
    (output.save_model counts: a run that should keep its model must have one)."""
    skip = {"name": True, "tracking": True, "output": {"dir"}}
    fields = hashed_fields(config, exclude=skip)
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def hashed_fields(config: ExperimentConfig, exclude: dict | None = None) -> dict[str, Any]:
    fields = config.model_dump(mode="json", exclude=exclude)
    for (section, key), default in ADDED_FIELDS.items():
        if fields.get(section, {}).get(key, default) == default:
            fields.get(section, {}).pop(key, None)
    return fields


def label_of(value: Any) -> str:
    if isinstance(value, dict):
        name = value.get("name", "")
        rest = ",".join(f"{k}={v}" for k, v in value.items() if k != "name")
        return f"{name}({rest})" if rest else str(name)
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def axis_options(axis: str, values: Axis, source: str) -> dict[str, dict[str, Any]]:
    """label -> field overrides, for either form of axis."""
    if isinstance(values, dict):
        if not values:
            raise FintuneError(f"{source}: axes.{axis} has no variants")
        for label, fields in values.items():
            if not isinstance(fields, dict) or not fields:
                raise FintuneError(
                    f"{source}: axes.{axis}.{label}: a variant is a non-empty mapping of "
                    f"config fields to values (got {fields!r})"
                )
        return {str(label): dict(fields) for label, fields in values.items()}
    if not values:
        raise FintuneError(f"{source}: axes.{axis} has no values")
    options = {label_of(v): {axis: v} for v in values}
    if len(options) != len(values):
        raise FintuneError(f"{source}: axes.{axis} repeats a value: {values}")
    return options


def load_study(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[StudySpec, list[Cell]]:
    """`overrides`: `--set` items for the base, as if written in it."""
    spec = validate_spec(StudySpec, read_yaml(path), str(path), "study")
    return spec, expand(spec, str(path), overrides)


def validate_spec(model: type[S], raw: dict[str, Any], source: str, kind: str) -> S:
    """A study or sweep file (`kind`) as its model; every error names its field, and an
    unknown top-level key what is allowed there."""
    refuse_other_kind(raw, kind, source)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        details = "\n".join(f"  - {_spec_error(model, e)}" for e in err.errors())
        raise FintuneError(f"{source}: invalid {kind} file\n{details}") from None


def _spec_error(model: type[BaseModel], error: dict[str, Any]) -> str:
    field = ".".join(map(str, error["loc"])) or "(top level)"
    if error["type"] == "extra_forbidden" and (section := _section_at(model, error["loc"][:-1])):
        allowed = sorted(section.model_fields)
        hint = did_you_mean(str(error["loc"][-1]), allowed)
        return f"{field}: unknown key{hint} Allowed here: {', '.join(allowed)}"
    return describe_error(error)


def _section_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec's section at `loc`, through mappings of sections (a sweep's `space.<field>`)."""
    section: Any = model
    for part in loc:
        if isinstance(section, type) and issubclass(section, BaseModel):
            field = section.model_fields.get(str(part))
            if field is None:
                return None
            section = field.annotation
        elif get_origin(section) is dict:
            section = get_args(section)[1]  # `part` is the mapping's key
        else:
            return None
    return section if isinstance(section, type) and issubclass(section, BaseModel) else None


def base_mapping(base: str | dict[str, Any], source: str) -> dict[str, Any]:
    if isinstance(base, dict):
        return base
    try:
        path = Path(expand_home(base))
    except ValueError as error:
        raise FintuneError(f"{source}: base: {error}") from None
    if not path.is_file():
        raise FintuneError(
            f"{source}: base: experiment file not found: {base}{relative_note(path)}"
        )
    return read_yaml(path)


def expand(spec: StudySpec, source: str, overrides: list[str] | None = None) -> list[Cell]:
    options = {axis: axis_options(axis, values, source) for axis, values in spec.axes.items()}
    varied = {
        field_set(f, v): f"axes.{a}"
        for a, o in options.items()
        for fields in o.values()
        for f, v in fields.items()
    }
    varied |= {
        field_set(k, v): f"cells[{i}]" for i, cell in enumerate(spec.cells) for k, v in cell.items()
    }
    varied["output.dir"] = "the study file's `output`"  # the runs go in <output>/<name>/runs
    written = base_mapping(spec.base, source)
    base = override_base(written, overrides, varied)
    check_axes_disjoint(options, source)
    check_axes_train(options, source)
    planned: list[tuple[dict[str, str], dict[str, Any]]] = []  # (coords, field overrides)
    for combo in itertools.product(*(list(o) for o in options.values())) if options else []:
        coords = dict(zip(options, combo, strict=True))
        fields = {f: v for a, label in coords.items() for f, v in options[a][label].items()}
        planned.append((coords, fields))
    variant_axes = {axis for axis, values in spec.axes.items() if isinstance(values, dict)}
    for i, explicit in enumerate(spec.cells):
        planned.append(_explicit_cell(explicit, options, variant_axes, f"{source}: cells[{i}]"))
    if not planned:
        raise FintuneError(f"{source}: the study has no cells; give axes or cells")

    cells: list[Cell] = []
    seen: set[str] = set()
    for coords, overrides in planned:
        key = json.dumps(coords, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        raw = copy.deepcopy(base)
        cell_id = ",".join(f"{a}={v}" for a, v in coords.items())
        where = f"{source}: cell {cell_id}"
        set_fields(raw, overrides, where=lambda _field, at=where: at)
        raw["name"] = run_name(str(raw.get("name", spec.name)), coords)
        config = validate_config(raw, source=where)
        if not config.evaluation.test:
            raise FintuneError(
                f"{where}: evaluation.test is off, but a study compares "
                "its cells on test; remove evaluation.test"
            )
        cells.append(Cell(coords=coords, overrides=overrides, config=config))
    check_baseline(spec, cells, source)
    check_repeated_runs(spec, cells, source)
    check_values_differ(spec, cells, source)
    steps_set = changed_by_set(written, base, "training.max_steps")
    check_epochs_take_effect(cells, source, steps_set)
    warn_replaced_sections(base, cells)
    return cells


def _sets(overrides: dict[str, Any], field: str) -> bool:
    """Whether a cell's fields set `field` (training.epochs), by name or in its section."""
    section, _, key = field.partition(".")
    whole = overrides.get(section)
    return field in overrides or (isinstance(whole, dict) and key in whole)


def check_epochs_take_effect(cells: list[Cell], source: str, steps_set: bool) -> None:
    """An axis or cell over training.epochs changes nothing where training.max_steps is
    set: its rows would compare one training under two labels, within noise by
    construction. `steps_set`: the base's max_steps came from --set (a quick try), which
    only warns."""
    for cell in cells:
        steps = cell.config.training.max_steps
        if not (steps and _sets(cell.overrides, "training.epochs")):
            continue
        message = (
            f"cell {cell.id}: training.epochs has no effect: training.max_steps ({steps}) "
            "overrides it"
        )
        own = _sets(cell.overrides, "training.max_steps")
        if steps_set and not own:
            console.print(f"[yellow]warning:[/] {escape(message)} (from --set)")
            return
        raise FintuneError(
            f"{source}: {message}; vary max_steps instead, or set it to null in the base"
        )


def warn_replaced_sections(base: dict[str, Any], cells: list[Cell]) -> None:
    """A whole section on an axis or a cell (`training: [{epochs: 2}, {epochs: 3}]`)
    replaces the base's (see the README): fields the base sets there and the value leaves
    out take their defaults. Said once per field, as a learning rate that fell from the
    base's 1e-3 to the default 5e-5 in every cell was not."""
    dropped: dict[str, list[str]] = {}
    for cell in cells:
        made = cell.config.model_dump(mode="json")
        for field, value in cell.overrides.items():
            field = field_set(field, value)
            current = written_value(base, field)
            if not (isinstance(value, dict) and isinstance(current, dict)):
                continue
            if not is_section(field.split(".")):
                continue  # data.files, tracking.tags: a mapping value, replaced as such
            if field == "method" and value.get("name") != current.get("name"):
                continue  # another method: the base's options are not its own
            for key, held in current.items():
                got = written_value(made, f"{field}.{key}")
                if key not in value and held is not None and got != held:
                    dropped.setdefault(f"{field}.{key}", []).append(cell.id)
    for field, ids in dropped.items():
        where = ids[0] if len(ids) == 1 else f"{ids[0]} and {len(ids) - 1} more"
        section = field.rpartition(".")[0]
        console.print(
            f"[yellow]warning:[/] {escape(field)}: the base sets it, but a whole {escape(section)} "
            f"section replaces the base's in cell {escape(where)}, where it takes its "
            f"default; name single fields ({escape(section)}.<field>) to keep the base's"
        )


def check_values_differ(spec: StudySpec, cells: list[Cell], source: str) -> None:
    """Values of an axis unequal as written may make one config (`[1e-4, 1.0e-4]`: YAML
    reads the first as text, the config as the number; variants `{training.learning_rate:
    1e-4}` and `{training: {learning_rate: 1e-4}}`): two rows would train it. Variants
    written alike under two labels are an A/A check, allowed."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        first = seen.setdefault(cell.config_sha, cell)
        differ = [a for a, v in cell.coords.items() if first.coords.get(a) != v]
        if first is cell or not differ or not all(a in spec.axes for a in differ):
            continue
        listed = [a for a in differ if isinstance(spec.axes[a], list)]
        if listed:
            axis = listed[0]
            raw = {label_of(v): v for v in spec.axes[axis]}  # an explicit cell's may be none
            a, b = (raw.get(c.coords[axis], c.coords[axis]) for c in (first, cell))
            raise FintuneError(
                f"{source}: axes.{axis}: the values {a!r} and {b!r} make the same config "
                "(YAML reads a number such as 1e-4, without a dot, as text); drop one"
            )
        for axis in differ:
            variants = {str(label): fields for label, fields in spec.axes[axis].items()}
            a, b = (c.coords[axis] for c in (first, cell))
            if variants.get(a) != variants.get(b):
                raise FintuneError(
                    f"{source}: axes.{axis}: the variants {a!r} and {b!r} are written "
                    "differently but make the same config, so two rows would train it; "
                    "drop one (variants written alike are allowed, as an A/A check)"
                )


def check_repeated_runs(spec: StudySpec, cells: list[Cell], source: str) -> None:
    """A report row holds the cells of a group that share the baseline axes' values, which
    differ only by seed: two of them training one config would be one run counted twice
    in the row's mean ± std (`seed: [1, 1.0]`, or an explicit cell repeating the base's
    seed)."""
    seen: dict[tuple, str] = {}
    for cell in cells:
        first = seen.setdefault((*report_row(cell, spec), cell.config_sha), cell.id)
        if first != cell.id:
            raise FintuneError(
                f"{source}: cells {first} and {cell.id} train the same config, and their "
                "report row would count it twice; give them different seeds, or drop one"
            )


def check_axes_train(options: dict[str, dict[str, dict[str, Any]]], source: str) -> None:
    """Two variants of an axis that differ only in fields leaving the trained model alone
    (name, output.dir, tracking) would give cells that train one config, each reported as
    a cell of its own. Such fields may ride along with a real change (tags per method)."""
    for axis, variants in options.items():
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        for label, fields in variants.items():
            trained = {f: v for f, v in fields.items() if not _inert(f, v)}
            key = json.dumps(trained, sort_keys=True, default=str)
            # values set alike are allowed (an A/A check): their labels say what they are
            if key in seen and seen[key][1] != fields:
                raise FintuneError(
                    f"{source}: axes.{axis}: {seen[key][0]!r} and {label!r} differ only in "
                    "name, output.dir or tracking, which do not change what a cell trains "
                    "(a cell's runs go to the study's runs/ folder), so their cells would "
                    "train one config; make them differ in what is trained, or drop one"
                )
            seen.setdefault(key, (label, fields))


def _inert(field: str, value: Any) -> bool:
    only_dir = field == "output" and isinstance(value, dict) and set(value) <= {"dir"}
    return only_dir or field in ("name", "output.dir", "tracking") or field.startswith("tracking.")


def check_axes_disjoint(options: dict[str, dict[str, dict[str, Any]]], source: str) -> None:
    """Two axes setting one field (or a field and its parent) would leave a cell labelled
    with a value it did not train with: the axis applied last wins."""
    touched = {
        axis: sorted({field for fields in variants.values() for field in fields})
        for axis, variants in options.items()
    }
    for (a, fields_a), (b, fields_b) in itertools.combinations(touched.items(), 2):
        for f, g in itertools.product(fields_a, fields_b):
            if f == g or f.startswith(g + ".") or g.startswith(f + "."):
                both = f if f == g else f"{f} and {g}"
                raise FintuneError(
                    f"{source}: axes.{a} and axes.{b} both set {both}; a cell would be "
                    "labelled with a value it did not train with. Set each field on one axis"
                )


def _explicit_cell(
    explicit: dict[str, Any],
    options: dict[str, dict[str, dict[str, Any]]],
    variant_axes: set[str],
    where: str,
) -> tuple[dict[str, str], dict[str, Any]]:
    if not explicit:
        raise FintuneError(f"{where}: an explicit cell needs at least one axis value")
    missing = [axis for axis in options if axis not in explicit]
    if missing:
        raise FintuneError(f"{where}: give a value for every axis; missing {missing}")
    coords: dict[str, str] = {}
    variants: dict[str, Any] = {}
    setters: dict[str, str] = {}  # a variant's field -> the variant, axis=label
    own: dict[str, Any] = {}
    for axis, value in explicit.items():
        label = label_of(value)
        if axis in variant_axes:
            if label not in options[axis]:
                raise FintuneError(
                    f"{where}: {axis}={label} is not a variant of axis {axis}; "
                    f"variants: {', '.join(options[axis])}"
                )
            variants.update(options[axis][label])
            setters.update(dict.fromkeys(options[axis][label], f"{axis}={label}"))
        else:
            own[axis] = value
        coords[axis] = label
    for field, value in own.items():  # a whole section would drop what a variant sets
        field = field_set(field, value)
        for other, theirs in variants.items():
            other_field = field_set(other, theirs)
            lost = isinstance(value, dict) and isinstance(theirs, dict) and set(theirs) - set(value)
            if other_field.startswith(f"{field}.") or (other_field == field and lost):
                raise FintuneError(
                    f"{where}: {field} (a whole section) replaces {other}, which the cell's "
                    f"variant {setters[other]} sets: "
                    f"the cell would be labelled with a variant it did not train with; name "
                    f"single fields ({field}.<field>) instead"
                )
        for other, theirs in own.items():  # and what the cell sets itself (training.epochs)
            if isinstance(value, dict) and field_set(other, theirs).startswith(f"{field}."):
                raise FintuneError(
                    f"{where}: {field} (a whole section) replaces {other}, which the cell "
                    f"also sets: the cell would be labelled {other}={label_of(theirs)} and "
                    f"train without it; name single fields ({field}.<field>) instead"
                )
    # the cell's own fields are set last, whatever their order: its label shows them
    return coords, {**variants, **own}


def run_name(base_name: str, coords: dict[str, str]) -> str:
    slug = "_".join(f"{axis}-{label}" for axis, label in coords.items())
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{base_name}-{slug}").strip("-.")
    if any(c.isalnum() and not c.isascii() for c in slug):  # 全 and ロラ would both be '-'
        name = f"{name[:71]}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"
    if len(name) > 80:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:71]}-{digest}"
    return name


def group_key(cell: Cell, spec: StudySpec) -> tuple[tuple[str, str], ...]:
    """Cells in one group share everything but the baseline axes and the seed, listed in
    the order of the study's axes (an explicit cell may name them in another order)."""
    order = {axis: i for i, axis in enumerate(spec.axes)}
    key = [(a, v) for a, v in cell.coords.items() if a not in spec.baseline and a != SEED_AXIS]
    return tuple(sorted(key, key=lambda item: (order.get(item[0], len(order)), item[0])))


def report_row(cell: Cell, spec: StudySpec) -> tuple:
    """The report row a cell is in: its group and its baseline axes' values (a row's cells
    differ only by seed)."""
    return group_key(cell, spec), tuple(cell.coords.get(a) for a in spec.baseline)


def baseline_coords(cell: Cell, baseline: dict[str, Any]) -> dict[str, str]:
    return {**cell.coords, **{a: label_of(v) for a, v in baseline.items()}}


def check_baseline(spec: StudySpec, cells: list[Cell], source: str) -> None:
    axes = {axis for cell in cells for axis in cell.coords}
    for axis, value in spec.baseline.items():
        if axis not in axes:
            raise FintuneError(
                f"{source}: baseline: {axis!r} is not an axis; axes: {', '.join(sorted(axes))}"
            )
        lacking = [c.id for c in cells if axis not in c.coords]
        if lacking:
            raise FintuneError(
                f"{source}: baseline: cells {lacking} give no value for {axis!r}; every cell "
                "needs one to be compared with its baseline"
            )
        labels = {c.coords[axis] for c in cells}
        if label_of(value) not in labels:
            raise FintuneError(
                f"{source}: baseline: {axis}={label_of(value)} is not a cell; "
                f"{axis} takes {', '.join(sorted(labels))}"
            )
    if not spec.baseline:
        raise FintuneError(f"{source}: baseline: name the reference cell, e.g. {{method: full}}")
    ids = {json.dumps(c.coords, sort_keys=True) for c in cells}
    for cell in cells:
        wanted = baseline_coords(cell, spec.baseline)
        if json.dumps(wanted, sort_keys=True) not in ids:
            shown = ",".join(f"{a}={v}" for a, v in wanted.items())
            raise FintuneError(
                f"{source}: baseline: cell {cell.id} has no baseline cell {shown} to compare with"
            )
