"""Study files: axis expansion, explicit cells, baselines, and bad files rejected through
the CLI before any training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fintune.cli import app
from fintune.errors import FintuneError
from fintune.study.spec import group_key, load_study


@pytest.fixture
def write_study(tmp_path, make_config):
    def write(**changes) -> Path:
        spec = {
            "name": "s",
            "base": make_config().model_dump(mode="json"),
            "axes": {
                "method": {
                    "full": {"method": "full", "training.learning_rate": 1e-4},
                    "lora": {"method": {"name": "lora", "r": 4}, "training.epochs": 2},
                },
                "seed": [1, 2, 3],
            },
            "baseline": {"method": "full"},
            "output": str(tmp_path / "studies"),
            **changes,
        }
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


def test_axes_expand_to_every_combination(write_study):
    _, cells = load_study(write_study())
    assert [c.id for c in cells] == [
        f"method={m},seed={s}" for m in ("full", "lora") for s in (1, 2, 3)
    ]
    lora = cells[4].config
    assert (lora.method.name, lora.method.r, lora.seed) == ("lora", 4, 2)
    assert (lora.training.epochs, lora.training.learning_rate) == (2, 1e-3)  # base lr kept
    assert cells[0].config.training.learning_rate == 1e-4
    assert len({c.config.name for c in cells}) == 6  # each cell its own run name
    assert cells[0].config_sha != cells[1].config_sha


def test_field_axes_with_values_and_explicit_cells(write_study):
    path = write_study(
        axes={"training.learning_rate": [1e-3, 5e-4], "model.max_length": [16, 32]},
        cells=[
            {"training.learning_rate": 2e-3, "model.max_length": 32},
            {"training.learning_rate": 1e-3, "model.max_length": 16},
        ],  # a grid duplicate
        baseline={"training.learning_rate": 1e-3},
    )
    _, cells = load_study(path)
    assert len(cells) == 5
    extra = cells[-1]
    assert extra.coords == {"training.learning_rate": "0.002", "model.max_length": "32"}
    assert (extra.config.training.learning_rate, extra.config.model.max_length) == (2e-3, 32)


def test_explicit_cells_only_and_variant_labels(write_study):
    path = write_study(cells=[{"method": "lora", "seed": 9}, {"method": "full", "seed": 9}])
    _, cells = load_study(path)
    assert cells[-2].id == "method=lora,seed=9" and cells[-2].config.seed == 9


def test_an_explicit_cell_takes_its_variants_fields_even_when_only_the_axis_field_is_set(
    write_study,
):
    axes = {
        "method": {
            "lora16": {"method": {"name": "lora", "r": 16, "alpha": 32}},
            "full": {"method": "full"},
        },
        "seed": [1, 2],
    }
    path = write_study(
        axes=axes, cells=[{"method": "lora16", "seed": 3}, {"method": "full", "seed": 3}]
    )
    _, cells = load_study(path)
    extra = next(c for c in cells if c.id == "method=lora16,seed=3")
    assert (extra.config.method.name, extra.config.method.r, extra.config.method.alpha) == (
        "lora",
        16,
        32,
    )


def test_an_explicit_cell_in_another_key_order_joins_the_grids_group(write_study):
    axes = {"training.epochs": [1], "model.max_length": [16], "method": ["full", "lora"]}
    extra = {"seed": 2, "model.max_length": 16, "method": "lora", "training.epochs": 1}
    path = write_study(axes={**axes, "seed": [1]}, cells=[extra, {**extra, "method": "full"}])
    spec, cells = load_study(path)
    assert {group_key(c, spec) for c in cells} == {
        (("training.epochs", "1"), ("model.max_length", "16"))  # the axes' order
    }
    assert cells[-2].id == "seed=2,model.max_length=16,method=lora,training.epochs=1"  # as given


def test_tracking_and_output_do_not_change_a_cells_identity(write_study, make_config):
    _, before = load_study(write_study())
    base = make_config(tracking={"tags": {"team": "quant"}}).model_dump(mode="json")
    base["output"]["dir"] = "elsewhere"
    _, after = load_study(write_study(base=base))
    assert [c.config_sha for c in before] == [c.config_sha for c in after]
    base["output"]["save_model"] = False
    _, unsaved = load_study(write_study(base=base))
    assert before[0].config_sha != unsaved[0].config_sha
    _, changed = load_study(
        write_study(base=make_config(training={"epochs": 2}).model_dump(mode="json"))
    )
    assert before[0].config_sha != changed[0].config_sha


def test_an_experiment_file_given_as_a_study_says_which_command_takes_it(tmp_path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("data: {path: d.csv}\nmethod: lora\n")
    result = CliRunner().invoke(app, ["compare", str(experiment)])
    assert result.exit_code == 2
    assert "this is an experiment file (for fintune run and validate), not a study file" in (
        result.output
    )
    study = tmp_path / "study.yaml"
    study.write_text("base: exp.yaml\naxes: {seed: [1, 2]}\nbaseline: {seed: 1}\n")
    for command in ("run", "validate"):
        result = CliRunner().invoke(app, [command, str(study)])
        assert result.exit_code == 2
        assert (
            "this is a study file (for fintune compare), not an experiment file "
            "(for fintune run and validate)"
        ) in result.output


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"axes": {"training.learnin_rate": [1e-3], "method": ["full"]}},
            "training.learnin_rate: unknown key; did you mean 'learning_rate'?",
        ),
        (
            {"axes": {"method": {"full": {"method": "full"}, "big": {"method.rr": 8}}}},
            "cell method=big",
        ),
        ({"axes": {"seed": [], "method": ["full"]}}, "axes.seed has no values"),
        ({"axes": {"method": {}}}, "axes.method has no variants"),
        ({"baseline": {"method": "dora"}}, "baseline: method=dora is not a cell; method takes"),
        ({"baseline": {"model": "x"}}, "baseline: 'model' is not an axis"),
        (
            {"axes": {"seed": [1, 2]}, "cells": [{"seed": 3}], "baseline": {"seed": 1}},
            None,
        ),  # valid: every cell has the seed-1 baseline in its group
        ({"cells": [{"method": "full"}]}, "give a value for every axis; missing ['seed']"),
        ({"cells": [{"method": "prefix", "seed": 1}]}, "method=prefix is not a variant"),
        (
            {"base": "missing.yaml"},
            "base: experiment file not found: missing.yaml (relative paths are read from the "
            "current directory, ",
        ),
        (
            {"base": "$FINTUNE_UNSET_IN_TESTS/exp.yaml"},
            "base: environment variable $FINTUNE_UNSET_IN_TESTS is not set",
        ),
        ({"axes": {}, "cells": []}, "the study has no cells"),
        ({"metric": "speed"}, "metric"),
        (
            {
                "axes": {
                    "training.learning_rate": [1e-4, 1e-3],
                    "method": {"full": {"method": "full", "training.learning_rate": 2e-5}},
                }
            },
            "axes.training.learning_rate and axes.method both set training.learning_rate",
        ),
        (
            {"axes": {"method": ["full", "lora"], "method.r": [4, 8]}},
            "axes.method and axes.method.r both set method and method.r",
        ),
        (
            {
                "axes": {},
                "cells": [{"method": "full"}, {"method": "lora"}, {"training.epochs": 2}],
            },
            "baseline: cells ['training.epochs=2'] give no value for 'method'",
        ),
        ({"name": "bad name"}, "name: letters, digits, '.', '_' and '-' only"),
        # spec fields got pydantic's own text, without the value or the exponent-form hint
        ({"bootstrap_samples": "1e4"}, "bootstrap_samples: expected a whole number; YAML read"),
        ({"bootstrap_samples": 100}, "greater than or equal to 200 (got 100)"),
        ({"metric": "acc"}, "metric: 'acc' is not allowed; expected"),
        ({"axis": {"seed": [1]}}, "axis: unknown key; did you mean 'axes'? Allowed here: axes"),
        ({"space": {}}, "this is a sweep file (for fintune sweep), not a study file"),
    ],
)
def test_bad_study_files_fail_before_training(write_study, changes, message, monkeypatch):
    import fintune.recipes.classification as classification

    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    path = write_study(**changes)
    if message is None:
        load_study(path)
        return
    with pytest.raises(FintuneError) as error:
        load_study(path)
    assert message in str(error.value)
    result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 2 and message.split(":")[0] in result.output
    assert "Traceback" not in result.output
    assert not (Path(yaml.safe_load(path.read_text())["output"])).exists()


def test_baseline_missing_in_one_group_is_named(write_study):
    path = write_study(
        axes={"method": ["full", "lora"], "seed": [1]},
        cells=[{"method": "lora", "seed": 2}],
    )
    with pytest.raises(FintuneError, match="cell method=lora,seed=2 has no baseline cell"):
        load_study(path)


def test_data_problems_of_a_cell_fail_before_training(write_study, tmp_path, monkeypatch):
    import fintune.recipes.classification as classification

    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    path = write_study(
        axes={"data.text_column": ["text", "sentence"], "seed": [1]},
        baseline={"data.text_column": "text"},
    )
    result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 2
    assert "cell data.text_column=sentence" in result.output and "sentence" in result.output


def test_a_cells_json_entry_from_before_the_results_hash_still_matches(write_study):
    import hashlib
    import json

    from fintune.study.spec import ADDED_FIELDS

    _, cells = load_study(write_study())
    fields = cells[0].config.model_dump(mode="json")
    for section, key in ADDED_FIELDS:  # not there when the entry was written
        del fields[section][key]
    whole = json.dumps(fields, sort_keys=True)
    legacy = {"config_sha": hashlib.sha256(whole.encode()).hexdigest()[:16]}
    assert cells[0].made(legacy) and cells[0].made({"config_sha": cells[0].config_sha})
    assert not cells[1].made(legacy) and not cells[0].made({}) and not cells[0].made(None)


def test_a_field_added_later_leaves_the_hash_of_a_config_that_does_not_set_it(make_config):
    """Studies and sweeps that ran before data.quoting existed keep their finished cells."""
    import hashlib
    import json

    from fintune.study.spec import ADDED_FIELDS, results_sha

    config = make_config()
    fields = config.model_dump(
        mode="json", exclude={"name": True, "tracking": True, "output": {"dir"}}
    )
    for section, key in ADDED_FIELDS:
        del fields[section][key]
    before = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    assert results_sha(config) == before
    assert results_sha(make_config(data={"quoting": "none"})) != before
    assert results_sha(make_config(evaluation={"test": False})) != before


def test_a_home_folder_in_base_and_output_is_expanded(
    write_study, make_config, tmp_path, monkeypatch
):
    """`~/studies` is the home folder's, not a folder named `~` in the working folder."""
    home = tmp_path / "home"
    (home / "configs").mkdir(parents=True)
    (home / "configs" / "base.yaml").write_text(
        yaml.safe_dump(make_config().model_dump(mode="json"))
    )
    monkeypatch.setenv("HOME", str(home))
    spec, cells = load_study(write_study(base="~/configs/base.yaml", output="~/studies"))
    assert spec.output == str(home / "studies")
    assert cells[0].config.model.max_length == 32  # read from the base file


def test_a_cell_that_would_not_evaluate_test_is_refused(write_study, make_config):
    """A study compares cells on test: a cell without test results would run again on
    every resume, and the report could not read it."""
    base = make_config(evaluation={"test": False}).model_dump(mode="json")
    with pytest.raises(FintuneError, match="cell method=full,seed=1: evaluation.test is off"):
        load_study(write_study(base=base))


def test_an_axis_over_the_method_name_drops_the_options_a_method_lacks(write_study, make_config):
    """As `--set method.name=full` does: a full cell from a lora base has no r or alpha."""
    base = make_config(method={"name": "lora", "r": 4, "alpha": 32}).model_dump(mode="json")
    axes = {"method.name": ["lora", "dora", "full"]}
    path = write_study(base=base, axes=axes, baseline={"method.name": "full"})
    methods = {
        cell.config.method.name: cell.config.method
        for _, cells in [load_study(path)]
        for cell in cells
    }
    assert (methods["dora"].r, methods["dora"].alpha) == (4, 32)
    assert methods["full"].name == "full"
    variant = {"full": {"method": {"name": "full", "r": 4}}}  # given whole: all is asked for
    with pytest.raises(FintuneError, match=r"method\.r: unknown key"):
        load_study(write_study(base=base, axes={"method": variant}, baseline={"method": "full"}))


def test_an_axis_of_bare_model_names_keeps_the_bases_other_model_options(write_study, make_config):
    """`model: [a, b]` (a bare name, accepted since `model: NAME` is) replaced the base's
    model section, so its max_length went back to the default without a word."""
    base = make_config(model={"name": "a", "max_length": 48}).model_dump(mode="json")
    _, cells = load_study(
        write_study(base=base, axes={"model": ["a", "b"]}, baseline={"model": "a"})
    )
    assert {(c.config.model.name, c.config.model.max_length) for c in cells} == {
        ("a", 48),
        ("b", 48),
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"axes": {"method": ["full", "lora"], "seed": [1, 1.0]}},
        {  # the base trains seed 7, and the explicit cells add seed 7 again
            "axes": {"method": ["full", "lora"]},
            "cells": [{"method": "full", "seed": 7}, {"method": "lora", "seed": 7}],
        },
    ],
)
def test_two_cells_of_one_row_with_one_config_are_refused(write_study, changes):
    """A row's cells differ only by seed: two that train the same config were one run
    counted twice, its mean ± std over "7,7" a std of 0 and an n one too many."""
    with pytest.raises(FintuneError, match=r"cells method=full.* and method=full,seed=.* train"):
        load_study(write_study(**changes))


@pytest.mark.parametrize("baseline", [{"method": "full"}, {"training.learning_rate": 1e-4}])
def test_two_values_of_an_axis_that_make_one_config_are_refused(write_study, baseline):
    """`[1e-4, 1.0e-4]`: YAML reads the first as text, the config as the number, so two
    rows trained one config (and, on the baseline's axis, one was compared with itself)."""
    axes = {"method": ["full", "lora"], "training.learning_rate": ["1e-4", 1e-4]}
    with pytest.raises(
        FintuneError, match=r"axes.training.learning_rate: the values '1e-4' and 0.0001 make"
    ):
        load_study(write_study(axes=axes, baseline=baseline))


@pytest.mark.parametrize(
    "other",
    [
        {"training.learning_rate": "1e-4"},
        {"training.learning_rate": "0.1E-3"},
    ],
)
def test_two_variants_written_differently_that_make_one_config_are_refused(write_study, other):
    """Variants `{lr: 1e-4}` and `{lr: 1.0e-4}` trained one config twice, as two rows."""
    lrs = {"a": {"training.learning_rate": 1e-4}, "b": other}
    axes = {"method": ["full", "lora"], "lr": lrs}
    with pytest.raises(FintuneError, match=r"axes.lr: the variants 'a' and 'b' are written"):
        load_study(write_study(axes=axes))


def test_two_variants_written_alike_are_an_a_a_check(write_study):
    same = {"training.learning_rate": 1e-4}
    _, cells = load_study(
        write_study(axes={"method": ["full", "lora"], "lr": {"a": same, "b": same}})
    )
    assert len(cells) == 4 and len({c.config_sha for c in cells}) == 2


def test_an_explicit_cells_own_field_wins_over_its_variants_whatever_the_order(write_study):
    """A cell `{training.learning_rate: 0.01, method: full}` was labelled lr 0.01 and
    trained with the full variant's 1e-4: the variant's fields were set after the fields
    named before it. The cell's own fields now win, in any order."""
    lr = {"training.learning_rate": 0.01}
    cells = [{**lr, "method": m, "seed": 1} for m in ("full", "lora")]
    cells += [{"method": m, "seed": 2, **lr} for m in ("full", "lora")]
    _, loaded = load_study(write_study(cells=cells))
    assert [c.config.training.learning_rate for c in loaded[-4:]] == [0.01] * 4
    assert loaded[-4].id == "training.learning_rate=0.01,method=full,seed=1"


@pytest.mark.parametrize(
    "axis",
    [
        {"name": ["a", "b"]},
        {"output.dir": ["x", "y"]},
        {"tracking.experiment": ["x", "y"]},
        {"where": {"x": {"output": {"dir": "x"}}, "y": {"output": {"dir": "y"}}}},
        {"store": {"a": {"tracking": {"mlflow": False}}, "b": {"tracking.tags": {"t": "1"}}}},
    ],
)
def test_axis_variants_differing_only_in_name_output_dir_or_tracking_are_refused(write_study, axis):
    """Their cells trained identical configs and were reported as separate cells."""
    axes = {"method": {"full": {"method": "full"}, "lora": {"method": "lora"}}, **axis}
    path = write_study(axes=axes)
    says = r"axes\.[\w.]+: '\w+' and '\w+' differ only in name, output.dir or tracking"
    with pytest.raises(FintuneError, match=says):
        load_study(path)


def test_tracking_fields_may_ride_along_with_a_change_of_what_is_trained(write_study):
    """Tags per method are a real use: the variants still train different configs."""
    tagged = {
        "full": {"method": "full", "tracking.tags": {"kind": "full"}},
        "lora": {"method": "lora", "tracking.tags": {"kind": "adapter"}},
    }
    _, cells = load_study(write_study(axes={"method": tagged}))
    assert {c.config.tracking.tags["kind"] for c in cells} == {"full", "adapter"}


def test_compare_set_overrides_the_base_as_if_written_in_it(write_study, make_config, tmp_path):
    """compare had no --set: a quick try of a study (one step, shorter texts) meant a copy
    of its base file. A --set gives each cell, and its hash, what the file would."""
    sets = ["training.max_steps=3", "model.max_length=16"]
    # no variant sets training.epochs, which a written max_steps would make idle (refused)
    methods = {"full": {"method": "full"}, "lora": {"method": {"name": "lora", "r": 4}}}
    axes = {"method": methods, "seed": [1, 2, 3]}
    _, cells = load_study(write_study(axes=axes), sets)
    base = make_config(training={"max_steps": 3}, model={"max_length": 16})
    path = write_study(base=base.model_dump(mode="json"), axes=axes)
    _, written = load_study(path)
    assert [c.config_sha for c in cells] == [c.config_sha for c in written]
    assert {(c.config.training.max_steps, c.config.model.max_length) for c in cells} == {(3, 16)}
    # a field an axis sets would be overwritten in every cell: refused, naming both
    with pytest.raises(FintuneError, match=r"--set method\.r: axes\.method sets method for"):
        load_study(path, ["method.r=8"])
    result = CliRunner().invoke(app, ["compare", str(path), "--set", "seed=5"])
    assert result.exit_code == 2, result.output
    assert "--set seed: axes.seed sets seed" in " ".join(result.stderr.split())
    result = CliRunner().invoke(app, ["compare", str(path), "--set", "training.epochs=0"])
    assert result.exit_code == 2 and "training.epochs" in result.stderr


def test_an_axis_that_switches_the_model_drops_the_bases_revision_and_gguf_file(
    write_study, make_config
):
    """The base's model.revision and gguf_file name a commit and a file of its model: a
    --set of another model drops them, but a study cell of another model kept them, so
    model b was asked for a's commit (a packaged or local b: refused, and the study with it)."""
    base = make_config(model={"name": "a", "revision": "abc", "gguf_file": "a.gguf"})
    variants = {"a": {"model": "a"}, "b": {"model": "b"}}
    variants["b-pinned"] = {"model": "b", "model.revision": "def"}
    variants["c"] = {"model": {"name": "c", "revision": "ghi"}}  # given whole: as given
    path = write_study(
        base=base.model_dump(mode="json"), axes={"model": variants}, baseline={"model": "a"}
    )
    _, cells = load_study(path)
    pins = {(c.config.model.name, c.config.model.revision, c.config.model.gguf_file) for c in cells}
    assert pins == {
        ("a", "abc", "a.gguf"),
        ("b", None, None),
        ("b", "def", None),
        ("c", "ghi", None),
    }


def test_a_set_of_another_model_option_passes_an_axis_of_bare_model_names(write_study, make_config):
    """`model: [a, b]` sets only model.name, so the base's max_length stays in every cell;
    a --set of model.max_length was refused ('axes.model sets model for each of its runs,
    which would overwrite the --set'), though no cell would overwrite it."""
    base = make_config(model={"name": "a", "max_length": 48}).model_dump(mode="json")
    path = write_study(base=base, axes={"model": ["a", "b"]}, baseline={"model": "a"})
    _, cells = load_study(path, ["model.max_length=16"])
    assert {(c.config.model.name, c.config.model.max_length) for c in cells} == {
        ("a", 16),
        ("b", 16),
    }
    for item in ("model.name=c", "model=c", "model={name: c}"):  # what the axis sets
        with pytest.raises(FintuneError, match=r"axes\.model sets model\.name for"):
            load_study(path, [item])
    variant = {"x": {"model": {"name": "b", "max_length": 32}}}  # given whole: all of it
    path = write_study(base=base, axes={"model": variant}, baseline={"model": "x"})
    with pytest.raises(FintuneError, match=r"axes\.model sets model for"):
        load_study(path, ["model.max_length=16"])


@pytest.mark.parametrize(
    ("item", "said"),
    [("trainig.epochs=1", "trainig: unknown key"), ("training.max_steps=a", "training.max_steps")],
)
def test_a_bad_compare_set_is_named_as_the_set(write_study, item, said):
    """A mistyped --set on compare was blamed on the study file ('study.yaml: cell
    method=full,seed=1: invalid config - trainig: unknown key'), where no such key is
    written; run and validate mark it '[from --set]'."""
    with pytest.raises(FintuneError, match="from --set") as error:
        load_study(write_study(), [item])
    assert said in str(error.value)


def test_a_cells_whole_section_that_drops_its_variants_field_is_refused(write_study):
    """A cell labelled method=lora with its own `training: {epochs: 2}` lost the lora
    variant's training.epochs (the whole section replaced it), and trained under the
    label with another setting."""
    path = write_study(cells=[{"method": "lora", "seed": 4, "training": {"batch_size": 8}}])
    with pytest.raises(FintuneError) as error:
        load_study(path)
    message = str(error.value)
    assert "cells[0]: training (a whole section) replaces training.epochs" in message
    assert "variant method=lora sets" in message and "training.<field>" in message
    pair = [{"method": m, "seed": 4, "training.batch_size": 8} for m in ("full", "lora")]
    cell = load_study(write_study(cells=pair))[1][-1]
    assert (cell.config.training.epochs, cell.config.training.batch_size) == (2, 8)


def test_a_cells_whole_section_that_drops_its_own_axis_value_is_refused(write_study):
    """A cell with `training.epochs: 5` and its own `training: {batch_size: 8}` trained
    with the default epochs (the section replaced them), labelled training.epochs=5."""
    axes = {"method": ["full", "lora"], "training.epochs": [1, 2]}
    cell = {"method": "full", "training.epochs": 5, "training": {"batch_size": 8}}
    with pytest.raises(FintuneError) as error:
        load_study(write_study(axes=axes, cells=[cell]))
    message = str(error.value)
    assert "cells[0]: training (a whole section) replaces training.epochs, which the cell " in (
        message
    )
    assert "labelled training.epochs=5 and train without it" in message


def test_an_epochs_axis_that_max_steps_overrides_is_refused(write_study, make_config):
    """Two rows of one training: the base's max_steps overrode every epochs value, and the
    report compared them as within noise."""
    base = make_config(training={"max_steps": 3}).model_dump(mode="json")
    path = write_study(base=base, axes={"training.epochs": [1, 3]}, baseline={"training.epochs": 1})
    with pytest.raises(FintuneError, match=r"training\.epochs has no effect: training\.max_steps"):
        load_study(path)


def test_an_epochs_axis_under_a_set_max_steps_only_warns(write_study, capsys):
    path = write_study(axes={"training.epochs": [1, 3]}, baseline={"training.epochs": 1})
    _, cells = load_study(path, ["training.max_steps=2"])
    assert [c.config.training.max_steps for c in cells] == [2, 2]
    assert "training.epochs has no effect" in capsys.readouterr().err


def test_a_whole_section_axis_that_drops_the_bases_fields_warns(write_study, capsys):
    """`training: [{epochs: 2}, {epochs: 3}]` replaced the base's training section: its
    learning rate 1e-3 fell to the default in every cell without a word."""
    path = write_study(
        axes={"training": [{"epochs": 2}, {"epochs": 3}]}, baseline={"training": "(epochs=2)"}
    )
    _, cells = load_study(path)
    assert {c.config.training.learning_rate for c in cells} == {5e-5}  # as the README says
    err = capsys.readouterr().err
    assert "training.learning_rate: the base sets it, but a whole training section" in err
    assert "training.<field>" in err
    load_study(write_study(axes={"training.epochs": [2, 3]}, baseline={"training.epochs": 2}))
    assert "the base sets it" not in capsys.readouterr().err


def test_variant_labels_yaml_reads_as_numbers_are_their_text(write_study):
    """`method: {1: {...}, 2: {...}}` was refused with pydantic's 'dict[str,dict[str,any]].1.
    [key]: Input should be a valid string', which does not say what to change."""
    axes = {"r": {1: {"method": "full"}, 2: {"method": {"name": "lora", "r": 2}}}, "seed": [1]}
    _, cells = load_study(write_study(axes=axes, baseline={"r": 1}))
    assert [c.id for c in cells] == ["r=1,seed=1", "r=2,seed=1"]


def test_labels_in_other_scripts_give_distinct_run_names(write_study):
    """全 and ロラ both became 'method--': two cells, one run name."""
    axes = {"method": {"全": {"method": "full"}, "ロラ": {"method": "lora"}}, "seed": [1]}
    _, cells = load_study(write_study(axes=axes, baseline={"method": "全"}))
    names = [c.config.name for c in cells]
    assert len(set(names)) == 2 and all(len(n) <= 80 for n in names)


def test_a_cells_own_section_in_place_of_its_variants_section_is_refused(write_study):
    """The variant's whole training section, replaced by the cell's own: its learning rate
    was lost though the cell was labelled with the variant."""
    methods = {"full": {"method": "full"}, "lora": {"method": "lora", "training": {"epochs": 2}}}
    cells = [{"method": m, "seed": 4, "training": {"batch_size": 8}} for m in ("full", "lora")]
    path = write_study(axes={"method": methods, "seed": [1]}, cells=cells)
    with pytest.raises(FintuneError, match=r"cells\[1\]: training \(a whole section\) replaces"):
        load_study(path)


def test_a_set_of_output_dir_on_compare_is_refused_not_dropped(write_study):
    """`fintune compare study.yaml --set output.dir=elsewhere` ran the cells in the study's
    own folder without a word: the study sets each cell's output.dir."""
    with pytest.raises(FintuneError) as error:
        load_study(write_study(), ["output.dir=elsewhere"])
    assert "--set output.dir: the study file's `output` sets output.dir" in str(error.value)
    load_study(write_study(), ["output.save_model=false"])  # kept: a cell's model or not
