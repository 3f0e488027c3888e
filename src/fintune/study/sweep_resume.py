"""What a resumed sweep must share with the study stored before: the metric, how each
field is sampled, and the base config and data its trials ran on. A study made by an
earlier version records what it lacks on its next run of trials."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from fintune.config.load import MODEL_PINS, field_set
from fintune.config.schema import ExperimentConfig
from fintune.data.prepare import source_name
from fintune.errors import FintuneError
from fintune.models.registry import weights_fingerprint
from fintune.study.spec import hashed_fields
from fintune.study.sweep_spec import data_of, trial_config
from fintune.tracking import flatten

if TYPE_CHECKING:
    from fintune.study.sweep_spec import SweepSpec

console = Console(stderr=True, soft_wrap=True)


def check_stored_metric(study, spec: SweepSpec, url: str) -> None:
    """A resumed study's values must be of this file's metric: another one of the same
    direction (accuracy, then f1_macro) would be ranked with them. Studies made before the
    metric was stored get it from their next run of trials (`store_settings`)."""
    if study.direction.name.lower() != spec.direction:
        raise FintuneError(
            f"storage {url}: the stored study {spec.name!r} was made to "
            f"{study.direction.name.lower()} its objective, but metric {spec.metric!r} needs "
            "the opposite; give the sweep a new name (or storage) for a new study"
        )
    metric = study.user_attrs.get("metric")  # studies made before it was stored: none
    if metric is not None and metric != spec.metric:
        raise FintuneError(
            f"metric: the stored study {spec.name!r} in {url} optimises validation {metric}; "
            f"its values cannot be compared with {spec.metric}. Set metric back to {metric}, "
            "or give the sweep a new name (or storage) for a new study"
        )


def search_settings(spec: SweepSpec) -> dict[str, Any]:
    """How trials are proposed and stopped: what a resume must keep (the fields read by the
    chosen sampler and pruner only)."""
    settings: dict[str, Any] = {"sampler": spec.sampler, "pruner": spec.pruner}
    if spec.sampler == "tpe" or spec.pruner == "median":
        settings["startup_trials"] = spec.startup_trials
    if spec.pruner == "median":
        settings["prune_after"] = spec.prune_after
    return settings


def check_stored_search(study, spec: SweepSpec, url: str, report_only: bool) -> None:
    """Another sampler or pruner on a resume (`pruner: none` once the median pruner proved
    unfair to long schedules) is allowed, as a moved bound is: the finished trials' values
    stay comparable. It is said, and each trial keeps its own settings (`search`), which the
    report lists where they changed; `store_settings` stores them once every check passed."""
    settings = search_settings(spec)
    stored = study.user_attrs.get("search")
    if report_only or stored == settings:
        return
    if stored is not None:
        shown = "; ".join(
            f"{k}: {_shown(stored, k)} then, {_shown(settings, k)} now"
            for k in dict.fromkeys([*settings, *stored])
            if stored.get(k) != settings.get(k)
        )
        console.print(
            f"[yellow]note:[/] the stored study {escape(spec.name)!r} in {escape(url)} ran "
            f"its trials so far with other search settings ({escape(shown)}); the trials "
            "from now on use this file's, and the report says which trials ran how"
        )


def store_settings(study, spec: SweepSpec, record: dict[str, Any]) -> None:
    """What the trials from now on run with: the metric, the search settings and the base
    (`base_record`). Stored once every check has passed: a resume refused by a later one
    left them changed, and the next resume named settings no trial had run with."""
    if study.user_attrs.get("metric") is None:  # studies made before it was stored
        study.set_user_attr("metric", spec.metric)
    if study.user_attrs.get("search") != search_settings(spec):
        study.set_user_attr("search", search_settings(spec))
    if study.user_attrs.get("base") != record:  # check_stored_base found no change
        study.set_user_attr("base", record)


def search_changes(trials: Iterable) -> list[str]:
    """'trials 0–4: sampler tpe, pruner median' per run of trials with the same settings,
    if they changed during the study (trials of an earlier version have none)."""
    runs: list[tuple[dict, list[int]]] = []
    for trial in sorted(trials, key=lambda t: t.number):
        if (settings := trial.user_attrs.get("search")) is None:
            continue
        if runs and runs[-1][0] == settings:
            runs[-1][1].append(trial.number)
        else:
            runs.append((settings, [trial.number]))
    if len({json.dumps(s, sort_keys=True) for s, _ in runs}) < 2:
        return []
    return [
        f"trials {numbers[0]}–{numbers[-1]}: " + ", ".join(f"{k} {v}" for k, v in s.items())
        for s, numbers in runs
    ]


def check_stored_space(study, spec: SweepSpec, url: str) -> None:
    """A resumed study's trials must be samples of this file's space as Optuna sees it (the
    same kind, log scale and choices; the bounds may change), or every trial would fail."""
    from optuna.distributions import check_distribution_compatibility

    checked: set[str] = set()
    for trial in study.get_trials(deepcopy=False):
        for field, stored in trial.distributions.items():
            if field in spec.space and field not in checked:
                checked.add(field)
                wanted = spec.space[field].distribution()
                try:
                    check_distribution_compatibility(stored, wanted)
                except ValueError as error:
                    words = {"yes", "no", "on", "off", "y", "n"}
                    choices = getattr(wanted, "choices", ())
                    hint = (
                        "; fintune now reads yes/no/on/off as text (YAML 1.2): write true/false "
                        "to continue it"
                        if any(str(c).lower() in words for c in choices)
                        else "; give the sweep a new name for a new study"
                    )
                    raise FintuneError(
                        f"space.{field}: the study stored in {url} sampled it as {stored}, "
                        f"which this file's space cannot continue ({error}){hint}"
                    ) from None


MODEL_FILES = "model files (sha256)"  # a local model.name's, as a trial of it loads them


def base_record(first: ExperimentConfig, data_sha: str, model_sha: str | None) -> dict[str, Any]:
    """What the trials run with, by dotted field: the base config less the name, output
    folder and tracking (a searched field's base value too: what a trial that does not
    search it runs); the data by its fingerprint, not its path (a moved folder is the same
    data), and a local model's files by theirs (a model trained again into its folder is
    another base). Where and how fast trials run (device, threads) and the test-side
    evaluation settings do not change the validation metric: left out."""
    skip = {
        "name": True,
        "tracking": True,
        "evaluation": True,
        "output": {"dir"},
        "data": {"path", "files"},
        "training": {"device", "num_threads"},
    }
    fields = flatten(hashed_fields(first, exclude=skip))
    return {**fields, "data fingerprint": data_sha, MODEL_FILES: model_sha}


def _searched(key: str, fields: Iterable[str]) -> bool:
    """Whether the dotted `key` is one of the searched `fields`, inside one or holds one
    (the model's files go with model.name)."""
    key = "model.name" if key == MODEL_FILES else key
    return any(key == f or key.startswith(f + ".") or f.startswith(key + ".") for f in fields)


def _set_by(trial, stored: dict[str, Any]) -> set[str]:
    """The fields a trial's parameters set: a bare model name sets model.name only, and
    drops the base's revision and gguf_file when it is another model than the base's."""
    fields = set()
    for field in trial.distributions:
        value = trial.params.get(field)
        fields.add(set_field := field_set(field, value))
        if set_field == "model.name" and value != stored.get("model.name"):
            fields |= {f"model.{key}" for key in MODEL_PINS}
    return fields


def _shown(record: dict[str, Any], key: str) -> str:
    return repr(record[key]) if key in record else "(absent)"


def check_stored_base(study, record: dict[str, Any], url: str, report_only: bool) -> None:
    """Trials of one study must differ only in the searched fields: a base changed between
    resumes (other epochs, data or model) would rank trials that are not comparable. A
    field's base value is fixed once a finished, pruned or running trial ran it without
    searching it, even if the space searches it now (that trial, and a final model of its
    parameters, ran it at that value). With --report-only no trial runs, and the final
    model may take the new base (search on a subset, train the final on all). A study made
    before the base was stored, or a field it lacks, gets it from its next run of trials,
    not from --report-only, whose base may be the final model's."""
    stored = study.user_attrs.get("base") or {}
    ran = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name in ("COMPLETE", "PRUNED", "RUNNING")
    ]
    changed = [
        k
        for k in sorted(stored)
        if stored[k] != record.get(k) and any(not _searched(k, _set_by(t, stored)) for t in ran)
    ]
    if not changed:
        return
    shown = "; ".join(
        f"{k}: {_shown(stored, k)} then, {_shown(record, k)} now" for k in changed[:5]
    )
    shown += f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
    if report_only:
        console.print(
            "[yellow]warning:[/] the trials ran on another base config, data or model files "
            f"than this file's, which the final model uses: {escape(shown)}"
        )
        return
    raise FintuneError(
        f"base: the stored study {study.study_name!r} in {url} ran trials on another "
        f"base config, data or model files: {shown}. Trials on different bases cannot be "
        "ranked together (a trial that did not search a field ran it at its base value, which "
        "adding the field to the space does not change): set those back, or give the sweep "
        "a new name (or storage) for a new study (--report-only trains only the final "
        "model, on this base)"
    )


INPUTS = "inputs"  # a trial's user attribute: the data and model files its run read


def run_inputs(run_dir: Path) -> dict[str, str | None] | None:
    """The fingerprints of the data and local model files a run read (model None: a hub
    model), from its folder; None if it does not say (runs before environment.json held
    model_sha256 have it in metrics.json once finished)."""
    try:
        data = json.loads((run_dir / "data.json").read_text())["fingerprint"]["sha256"]
        for name in ("environment.json", "metrics.json"):
            if (run_dir / name).is_file():
                record = json.loads((run_dir / name).read_text())
                if "model_sha256" in record:
                    return {"data": data, "model": record["model_sha256"]}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return None


def check_trial_inputs(
    study,
    spec: SweepSpec,
    base: dict[str, Any],
    folder: Path,
    source: str,
    url: str,
    report_only: bool,
    first: ExperimentConfig,
    record: dict[str, Any],
) -> None:
    """Each finished or pruned trial's data and local model files must still hold what it
    read. The base record covers the base's files; a trial whose parameters chose others (a
    space over model.name or data.path) read files only this check sees, and a resume would
    rank trials on the old files with trials on the new. Trials that recorded nothing (an
    earlier version's pruned ones) are not checked. `first` and its `record` (`base_record`)
    give the base's fingerprints, already taken."""
    from fintune.data import prepare_data

    data_now = {(data_of(first), first.seed): record["data fingerprint"]}
    model_now = {(first.model.name, first.model.gguf_file): record[MODEL_FILES]}
    changed: dict[str, list[int]] = {}
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state.name not in ("COMPLETE", "PRUNED"):
            continue
        ran = trial.user_attrs.get(INPUTS)
        if ran is None and (run_dir := trial.user_attrs.get("run_dir")):
            ran = run_inputs(folder / run_dir)
        if not ran:
            continue
        try:
            config = trial_config(base, trial.params, spec, folder, trial.number, source)
        except FintuneError:  # a base since changed past its params: check_stored_base's
            continue
        key = data_of(config), config.seed
        if key not in data_now:
            try:
                data_now[key] = prepare_data(config.data, config.seed).fingerprint["sha256"]
            except FintuneError as error:
                raise FintuneError(
                    f"trial {trial.number} of the stored study {spec.name!r}: its data cannot "
                    f"be read now: {error}"
                ) from None
        model = config.model.name, config.model.gguf_file
        if model not in model_now:
            model_now[model] = weights_fingerprint(*model)
        if ran["data"] != data_now[key]:
            changed.setdefault(f"data ({_data_source(config)})", []).append(trial.number)
        if ran["model"] != model_now[model]:
            changed.setdefault(f"model files ({config.model.name})", []).append(trial.number)
    if not changed:
        return
    shown = "; ".join(
        f"{what}: trial{'s' * (len(numbers) > 1)} {', '.join(map(str, numbers))}"
        for what, numbers in changed.items()
    )
    if report_only:
        console.print(
            "[yellow]warning:[/] some trials ran on data or model files that have changed "
            f"since, and are ranked with the others: {escape(shown)}"
        )
        return
    raise FintuneError(
        f"the stored study {spec.name!r} in {url} has trials whose data or model files have "
        f"changed since they ran: {shown}. Trials on different files cannot be ranked "
        "together: restore the files, or give the sweep a new name (or storage) for a new study"
    )


def _data_source(config: ExperimentConfig) -> str:
    data = config.data
    files = ", ".join(data.files.values()) if data.files else None
    if data.dataset:
        return source_name(data) + (f" ({data.path})" if data.path else "")
    return files or data.path or source_name(data)
