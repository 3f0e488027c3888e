"""Sweep files: a base experiment, the config fields Optuna searches, and how it searches.

    name: fpb-sweep
    base: benchmarks/configs/fpb_minilm.yaml
    metric: accuracy                  # validation metric to maximise (loss is minimised)
    space:
      training.learning_rate: {type: log_uniform, low: 1.0e-5, high: 5.0e-4}
      training.batch_size: {type: categorical, choices: [8, 16]}
      training.epochs: {type: int, low: 3, high: 6}
    trials: 20                         # finished trials wanted, over all workers and resumes
    timeout_minutes: 60                # this process stops starting trials after this
    enqueue:                           # tried first, once per study; the rest sampled
      - {training.learning_rate: 3.0e-5, training.batch_size: 16}

`load_sweep` checks that each field alone, then the space's corners, make valid configs
that differ in what a trial trains; `run_sweep` checks their models and data with the
`check_space_*` functions here, before any trial. `trial_config` makes a point's config.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from rich.console import Console
from rich.markup import escape

from fintune.config.load import (
    changed_by_set,
    field_set,
    override_base,
    read_yaml,
    set_field,
    set_fields,
    validate_config,
)
from fintune.config.schema import (
    ExperimentConfig,
    Metric,
    Section,
    escape_variables,
    expand_home,
    expand_local_uri,
)
from fintune.errors import FintuneError
from fintune.study.spec import base_mapping, results_sha, validate_spec
from fintune.tracking import store_in

console = Console(stderr=True, soft_wrap=True)
COMBINATIONS = 512


class Param(Section):
    type: Literal["log_uniform", "uniform", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0)
    """Grid spacing from low; not with a log scale."""
    log: bool = False
    """For int and uniform: sample on a log scale (log_uniform is uniform with log)."""
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _space(self) -> Param:
        if self.type == "categorical":
            if given := [k for k in ("low", "high", "step", "log") if k in self.model_fields_set]:
                raise ValueError(f"categorical takes choices only, not {', '.join(given)}")
            if not self.choices:
                raise ValueError("categorical needs a non-empty list of choices")
            for i, choice in enumerate(self.choices):
                # Optuna stores a choice as the index of its first equal one (1 == True == 1.0):
                # a trial that ran with the later one would be recorded with the earlier
                if equal := [c for c in self.choices[:i] if c == choice]:
                    raise ValueError(f"choices repeat a value: {equal[0]!r} and {choice!r}")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} does not take choices (only categorical does)")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs low and high")
        if self.low == self.high:  # Optuna would search the one value; a fixed value is no search
            raise ValueError(
                f"low and high are both {self.low:g}: a range of one value searches nothing; "
                "set the field in the base config, or widen the range"
            )
        if not self.low < self.high:
            raise ValueError(f"empty space: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log_scale and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0 (got {self.low})")
        if self.log_scale and self.step is not None and not (self.type == "int" and self.step == 1):
            raise ValueError("step and a log scale do not go together: drop one")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("int needs whole-number low and high")
        if self.type == "int" and self.step is not None and self.step != int(self.step):
            raise ValueError(f"int needs a whole-number step (got {self.step})")
        if self.step is not None and self.problem_with(self.high):
            # Optuna would search up to the last point instead, saying so only in a warning
            last = self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step
            raise ValueError(
                f"high ({self.high:g}) is not on the grid from {self.low:g} in steps of "
                f"{self.step:g}: the last point is {last:g}; set high to it"
            )
        return self

    @property
    def log_scale(self) -> bool:
        return self.type == "log_uniform" or self.log

    def suggest(self, trial, name: str) -> Any:
        d = self.distribution()
        if self.type == "categorical":
            return trial.suggest_categorical(name, d.choices)
        if self.type == "int":
            return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)

    def distribution(self):
        """The Optuna distribution that `suggest` samples from (and a resume checks)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.type == "categorical":
            return CategoricalDistribution(self.choices)
        if self.type == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log_scale, step=self.step)

    def problem_with(self, value: Any) -> str | None:
        """Why `value` is not a point of this space, or None."""
        if self.type == "categorical":
            same = any(type(value) is type(c) and value == c for c in self.choices or [])
            return None if same else f"{value!r} is not one of {self.choices}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number (YAML reads 7e-5 as text; write 7.0e-5)"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return f"{value!r} is outside {self.low:g}…{self.high:g}"
        if self.type == "int" and value != int(value):
            return f"{value!r} is not a whole number"
        steps = (value - self.low) / self.step if self.step else 0
        if not math.isclose(steps, round(steps), abs_tol=1e-9):
            return f"{value!r} is not on the grid from {self.low:g} in steps of {self.step:g}"
        return None

    def fraction(self) -> float | None:
        """A point of a uniform or log-uniform range that is not a whole number (None when
        every point is one): a whole-number field fails there, though not at its bounds."""
        if self.type in ("int", "categorical"):
            return None
        if self.step is not None:
            point = self.low + self.step
            return point if point <= self.high and point != int(point) else None
        point = math.sqrt(self.low * self.high) if self.log_scale else (self.low + self.high) / 2
        shown = float(f"{point:.6g}")
        if shown != int(shown) and self.low <= shown <= self.high:
            return shown
        if point == int(point):  # a whole midpoint: half a step up, within the range
            point += min(0.5, (self.high - point) / 2)
        return point if point != int(point) else None  # from 2**53 on, floats are whole

    def examples(self) -> list[Any]:
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]


class SweepSpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=60)
    base: str | dict[str, Any]
    space: dict[str, Param]
    metric: Metric = "accuracy"
    """Validation metric to optimise: maximised, except loss which is minimised."""
    sampler: Literal["tpe", "random"] = "tpe"
    """Seeded before each trial from the base config's `seed` and the trial's number."""
    pruner: Literal["median", "none"] = "median"
    startup_trials: int = Field(3, ge=0)
    """Trials run in full before pruning starts (and before TPE models the space)."""
    prune_after: int = Field(1, ge=1)
    """Validation evaluations (one per epoch) every trial gets before it may be pruned."""
    trials: int = Field(20, gt=0)
    timeout_minutes: float | None = Field(None, gt=0)
    storage: str | None = None
    """SQLAlchemy URL (postgresql://user:pw@host/db); default SQLite in the sweep folder."""
    output: str = "sweeps"
    final: bool = True
    """Train a final model with the best parameters and evaluate it on test."""
    enqueue: list[dict[str, Any]] = []
    """Points to try first (a notebook's best, say); fields left out are sampled. Each runs
    once per study, however often the sweep is resumed (again if its trial was interrupted)."""

    @field_validator("output")
    @classmethod
    def _expand_output(cls, path: str) -> str:
        return expand_home(path)

    @field_validator("storage")
    @classmethod
    def _expand_storage(cls, url: str | None) -> str | None:
        return expand_local_uri(url)

    @property
    def direction(self) -> str:
        return "minimize" if self.metric == "loss" else "maximize"

    @model_validator(mode="after")
    def _not_empty(self) -> SweepSpec:
        if not self.space:
            raise ValueError("space is empty: give at least one field to search")
        if "training.best_metric" in self.space:
            raise ValueError(
                "space: training.best_metric cannot be searched; each trial keeps its best "
                "checkpoint on the sweep's metric"
            )
        if "evaluation.test" in self.space:
            raise ValueError(
                "space: evaluation.test cannot be searched; trials evaluate validation only, "
                "and the final model test"
            )
        return self

    @model_validator(mode="after")
    def _enqueue_in_space(self) -> SweepSpec:
        for i, point in enumerate(self.enqueue):
            if not point:
                raise ValueError(f"enqueue[{i}]: an empty point; give at least one field")
            if point in self.enqueue[:i]:  # held by one trial: the study would run it once
                same = self.enqueue.index(point)
                raise ValueError(f"enqueue[{i}]: the same point as enqueue[{same}]")
            for field, value in point.items():
                if field not in self.space:
                    raise ValueError(f"enqueue[{i}]: {field} is not a field of the space")
                if problem := self.space[field].problem_with(value):
                    raise ValueError(f"enqueue[{i}]: {field}: {problem}")
        return self


def load_sweep(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[SweepSpec, dict[str, Any]]:
    """The spec and the base mapping (`overrides`: `--set` items for it, as if written in
    it). Every searched field is checked against the schema, alone and then in
    combination: the corners of the space, and every categorical choice, must each make a
    valid config (the first COMBINATIONS of them)."""
    source = str(path)
    spec = validate_spec(SweepSpec, read_yaml(path), source, "sweep")
    varied = {
        field_set(field, choice): f"the space's {field}"
        for field, param in spec.space.items()
        for choice in (param.choices or [None])
    }
    varied |= {field: "the sweep" for field in ("training.best_metric", "evaluation.test")}
    varied |= {"name": "the sweep file's `name`", "output.dir": "the sweep file's `output`"}
    written = base_mapping(spec.base, source)
    base = override_base(written, overrides, varied)
    evaluation = base.get("evaluation")
    if isinstance(evaluation, dict) and evaluation.get("test") is False:
        raise FintuneError(
            f"{source}: base: evaluation.test: false; a sweep sets it itself: trials evaluate "
            "validation only, and the final model test. Remove it"
        )
    for point in _points(spec):
        _at(point, trial_config, base, point, spec, Path("."), 0, source=f"{source}: space")
    # a --set of max_steps (a quick try) only warns of an epochs it makes idle; another does not
    steps_set = changed_by_set(written, base, "training.max_steps")
    check_space_effect(spec, base, source, tried=steps_set)
    check_choices_differ(spec, base, source)
    for field, param in spec.space.items():
        if (value := param.fraction()) is None:
            continue
        try:
            trial_config(base, {field: value}, spec, Path("."), 0, source=f"{source}: space")
        except FintuneError as error:
            raise FintuneError(
                f"{error}\n(at the point {field}={value} of the space: {param.type} samples "
                "fractions; a whole-number field needs type: int)"
            ) from None
    return spec, base


def check_choices_differ(spec: SweepSpec, base: dict[str, Any], source: str) -> None:
    """Choices unequal as written may make one config (`[1e-4, 1.0e-4]`: YAML reads the
    first as text, the config as a number): the sampler would draw them as two."""
    for field, param in spec.space.items():
        if param.type != "categorical":
            continue
        made: dict[str, Any] = {}
        for choice in param.choices or []:
            config = trial_config(base, {field: choice}, spec, Path("."), 0, source)
            if (sha := results_sha(config)) in made:
                first = made[sha]
                text = next((c for c in (first, choice) if isinstance(c, str)), None)
                hint = f" (YAML reads {text} as text, and the config as the number)"
                raise FintuneError(
                    f"{source}: space.{field}: the choices {first!r} and {choice!r} make the "
                    f"same config{hint if text is not None and _number(text) else ''}; drop one"
                )
            made[sha] = choice


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_space_effect(spec: SweepSpec, base: dict[str, Any], source: str, tried: bool) -> None:
    """A searched field must change what a trial trains: one that changes nothing would be
    credited with the noise between trials (the importances would rank it). `tried`: the
    base has --set overrides, such as a quick try's max_steps: then only a warning."""
    for field in spec.space:
        if field.split(".")[0] in ("name", "output", "tracking"):
            raise FintuneError(
                f"{source}: space: {field} has no effect on a trial's score (name, output and "
                "tracking do not change what is trained; a trial keeps no model); drop it"
            )
    if "training.epochs" in spec.space and "training.max_steps" not in spec.space:
        steps = trial_config(base, {}, spec, Path("."), 0, source).training.max_steps
        message = (
            f"space: training.epochs has no effect: the base sets training.max_steps "
            f"({steps}), which overrides epochs"
        )
        if steps is not None and tried:
            console.print(f"[yellow]warning:[/] {escape(message)} (from --set)")
        elif steps is not None:
            raise FintuneError(
                f"{source}: {message}; search max_steps instead, or set it to null in the base"
            )
    steps = spec.space.get("training.max_steps")
    if "training.epochs" in spec.space and steps is not None and None not in (steps.choices or []):
        raise FintuneError(
            f"{source}: space: training.epochs has no effect: the space's training.max_steps "
            f"({_space_shown(steps)}) sets max_steps in every trial, which overrides epochs; "
            "drop one of the two, or add null to max_steps' choices"
        )


def _space_shown(param: Param) -> str:
    if param.type == "categorical":
        return f"choices {param.choices}"
    return f"{param.type} {param.low:g}…{param.high:g}"


def _points(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    """Each field's bounds and choices alone (first: the clearest message), then in
    combination: the space's corners (the first COMBINATIONS)."""
    for field, param in spec.space.items():
        for value in param.examples():
            yield {field: value}
    axes = ([(f, v) for v in p.examples()] for f, p in spec.space.items())
    for point in itertools.islice(itertools.product(*axes), COMBINATIONS):
        yield dict(point)


def _at(point: dict[str, Any], check, *args, **kwargs):
    try:
        return check(*args, **kwargs)
    except FintuneError as error:
        shown = ", ".join(f"{f}={v}" for f, v in point.items())
        raise FintuneError(f"{error}\n(at the point {shown} of the space)") from None


def check_space_architectures(spec: SweepSpec, base: dict[str, Any], source: str) -> None:
    """The architecture checks (max_length, the modules a method names) for every distinct
    model and method among the space's bounds and choices, alone and at the corners: a
    space over max_length or the model would otherwise fail trial by trial. The base
    config's are `setup`'s."""
    from fintune.models.checks import check_architecture

    def model_and_method(config: ExperimentConfig) -> str:
        return json.dumps(config.model_dump(mode="json", include={"model", "method"}))

    seen = {model_and_method(trial_config(base, {}, spec, Path("."), 0, source))}
    built: dict = {}  # each model's architecture, built once
    for point in _points(spec):
        config = trial_config(base, point, spec, Path("."), 0, source)
        if (key := model_and_method(config)) not in seen:
            seen.add(key)
            _at(point, check_architecture, config, built)


def data_of(config: ExperimentConfig) -> str:
    return json.dumps(config.data.model_dump(mode="json"), sort_keys=True)


def check_space_data(spec: SweepSpec, base: dict[str, Any], source: str) -> dict[str, int]:
    """The data checks (`validate`'s: columns, labels, splits) for every distinct data
    section among the space's bounds and choices, alone and at the corners: a space over
    a data field would otherwise train the good points' trials, then fail trial by trial.
    The base config's data is `setup`'s. Returns each other section's training texts."""
    from fintune.data import prepare_data

    seen = {data_of(trial_config(base, {}, spec, Path("."), 0, source))}
    examples = {}
    for point in _points(spec):
        config = trial_config(base, point, spec, Path("."), 0, source)
        if (key := data_of(config)) not in seen:
            seen.add(key)
            data = _at(point, prepare_data, config.data, config.seed)
            examples[key] = len(data.splits["train"])
    return examples


def warn_space_warmup(
    spec: SweepSpec,
    base: dict[str, Any],
    first: ExperimentConfig,
    examples: dict[str, int],
    source: str,
) -> None:
    """A warm-up longer than the trial at the space's bounds and corners (a space over
    max_steps, epochs, batch_size or warmup_steps), once per distinct note, before any
    trial; the base config's is `setup`'s. `examples`: the training texts of each data
    section (by `data_of`): a space over data.max_train_samples or a split changes them."""
    from fintune.training.trainer import warmup_note

    said = {warmup_note(first.training, examples[data_of(first)])}
    for point in _points(spec):
        config = trial_config(base, point, spec, Path("."), 0, source)
        texts = examples.get(data_of(config), examples[data_of(first)])
        if (note := warmup_note(config.training, texts)) not in said:
            said.add(note)
            shown = ", ".join(f"{f}={v}" for f, v in point.items())
            console.print(
                f"[yellow]warning:[/] at the point {escape(shown)} of the space: {escape(note)}"
            )


def trial_config(
    base: dict[str, Any],
    params: dict[str, Any],
    spec: SweepSpec,
    folder: Path,
    number: int,
    source: str,
    kind: str = "trial",
) -> ExperimentConfig:
    raw = copy.deepcopy(base)
    set_fields(raw, params, where=lambda field: f"{source}.{field}")
    # a trial keeps its best checkpoint on the metric the sweep ranks it by
    set_field(raw, "training.best_metric", spec.metric)
    # trials are chosen on validation: only the final model sees test
    set_field(raw, "evaluation.test", kind == "final")
    raw["name"] = f"{spec.name}-{kind}-{number:03d}" if kind == "trial" else f"{spec.name}-final"
    config = validate_config(raw, source=source)
    config.output.dir = escape_variables(str(folder / ("trials" if kind == "trial" else "final")))
    if kind == "trial":
        config.output.save_model = False  # the final run keeps the model
    config.tracking.experiment = config.tracking.experiment or spec.name
    store_in(config, folder)
    config.tracking.tags = {
        **config.tracking.tags,
        "fintune.sweep": spec.name,
        "fintune.kind": kind,
        "fintune.trial": str(number),
    }
    return config
