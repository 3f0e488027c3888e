"""benchmarks/soup.py on finished tiny runs: the soup is the average of its ingredients'
weights, loads with plain transformers, and its recorded labels are the saved model's."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fintune.models.load import ModelInfo
from fintune.recipes.classification import run
from tests.benchmarks.conftest import load_script
from tests.conftest import tiny_run_config

soup = load_script("soup")


@pytest.fixture(scope="module")
def made_soup(tiny_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("soups") / "soup"
    soup.main([*map(str, tiny_runs), "--out", str(out)])
    return out


def test_the_saved_soup_is_the_average_of_the_runs_it_kept(tiny_runs, made_soup):
    summary = json.loads((made_soup / "soup.json").read_text())
    kept = [r for r in tiny_runs if r.name in summary["greedy_kept"]]
    assert summary["greedy"]["ingredients"] == len(kept) >= 1
    assert summary["uniform"]["ingredients"] == len(tiny_runs)
    states = [soup.load(r)[0].state_dict() for r in kept]
    saved = AutoModelForSequenceClassification.from_pretrained(made_soup / "model").state_dict()
    for key, value in soup.average(states).items():
        torch.testing.assert_close(saved[key], value, msg=key)


def test_the_uniform_soup_is_saved_beside_it_with_its_own_predictions(tiny_runs, made_soup):
    """Only the greedy soup was saved, so the uniform one could not be paired with a run."""
    uniform = made_soup / "uniform"
    states = [soup.load(r)[0].state_dict() for r in tiny_runs]
    model = AutoModelForSequenceClassification.from_pretrained(uniform / "model").eval()
    for key, value in soup.average(states).items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
    tokenizer = AutoTokenizer.from_pretrained(uniform / "model")
    summary = json.loads((made_soup / "soup.json").read_text())
    recorded = pd.read_csv(uniform / "predictions_test.csv", dtype=str, keep_default_na=False)
    with torch.inference_mode():
        logits = model(**tokenizer(recorded["text"].tolist(), padding=True, return_tensors="pt"))
    again = [model.config.id2label[int(i)] for i in logits.logits.argmax(-1)]
    assert again == recorded["predicted"].tolist()
    accuracy = (recorded["predicted"] == recorded["label"]).mean()
    assert accuracy == pytest.approx(summary["uniform"]["test"])
    metrics = json.loads((uniform / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)


def test_the_uniform_soup_averages_every_run():
    a = {"w": torch.tensor([1.0, 2.0]), "steps": torch.tensor([3])}
    b = {"w": torch.tensor([3.0, 6.0]), "steps": torch.tensor([5])}
    averaged = soup.average([a, b])
    assert averaged["w"].tolist() == [2.0, 4.0]
    assert averaged["steps"].tolist() == [3]  # not a weight: the first run's


def test_the_soup_loads_with_plain_transformers_and_gives_its_recorded_labels(made_soup):
    model = AutoModelForSequenceClassification.from_pretrained(made_soup / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(made_soup / "model")
    for split in ("validation", "test"):
        recorded = pd.read_csv(
            made_soup / f"predictions_{split}.csv", dtype=str, keep_default_na=False
        )
        with torch.inference_mode():
            logits = model(
                **tokenizer(recorded["text"].tolist(), padding=True, return_tensors="pt")
            ).logits
        again = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
        assert again == recorded["predicted"].tolist()


def test_an_existing_output_folder_is_never_overwritten(tiny_runs, made_soup):
    with pytest.raises(SystemExit, match="exists"):
        soup.main([str(tiny_runs[0]), "--out", str(made_soup)])


def test_runs_from_another_base_are_refused_before_any_weights_load(
    tiny_runs, tiny_llama, sentences_file, tmp_path, monkeypatch
):
    config = tiny_run_config(
        tiny_llama, sentences_file, tmp_path / "runs", seed=1, data={"split": {"seed": 7}}
    )
    decoder = run(config)
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    out = tmp_path / "soup"
    with pytest.raises(SystemExit, match="its base model .* differs from"):
        soup.main([str(tiny_runs[0]), str(decoder), "--out", str(out)])
    assert not out.exists()


def test_runs_whose_method_does_not_fold_into_the_weights_are_refused(
    make_config, tiny_runs, tmp_path, monkeypatch
):
    adapter = run(make_config(method={"name": "adapter"}, training={"num_threads": 1}))
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    with pytest.raises(SystemExit, match="method adapter does not fold"):
        soup.main([str(tiny_runs[0]), str(adapter), "--out", str(tmp_path / "soup")])


def test_runs_whose_examples_carry_other_labels_are_refused(tiny_runs, tmp_path, monkeypatch):
    """Same texts, one reference label changed: selection used to score the soup against
    the first run's labels alone."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other)
    path = other / "predictions_validation.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, "label"] = next(v for v in frame["label"].unique() if v != frame.loc[0, "label"])
    frame.to_csv(path, index=False)
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    with pytest.raises(SystemExit, match="validation labels differ"):
        soup.main([str(tiny_runs[0]), str(other), "--out", str(tmp_path / "soup")])


def test_a_soup_of_runs_with_cleaning_records_the_texts_its_model_read(tiny_bert, tmp_path):
    """Its predictions_*.csv kept `text` only, so ensemble.py (which feeds a run's
    cleaned_text, else text, uncleaned) read the uncleaned text for the soup."""
    from tests.benchmarks.test_ensemble import ensemble
    from tests.conftest import make_sentences

    frame = make_sentences()
    frame["text"] = frame["text"] + " &lt;b&gt;"  # cleaning makes a tag; a 2nd pass strips it
    data = tmp_path / "escaped.csv"
    frame.to_csv(data, index=False)
    runs = [
        run(
            tiny_run_config(
                tiny_bert,
                data,
                tmp_path / "runs",
                name=f"clean-{seed}",
                seed=seed,
                data={"cleaning": {"strip_html": True}, "split": {"seed": 7}},
                training={"num_threads": 1},
            )
        )
        for seed in (1, 2)
    ]
    out = tmp_path / "soup"
    soup.main([*map(str, runs), "--out", str(out)])
    for split in ("validation", "test"):
        recorded = pd.read_csv(out / f"predictions_{split}.csv", dtype=str, keep_default_na=False)
        ours = pd.read_csv(runs[0] / f"predictions_{split}.csv", dtype=str, keep_default_na=False)
        assert recorded["cleaned_text"].tolist() == ours["cleaned_text"].tolist()
        probs, labels = ensemble.probabilities(out, ensemble.model_inputs(recorded))
        assert [labels[i] for i in probs.argmax(1)] == recorded["predicted"].tolist()


def test_it_prints_and_records_n_and_the_hardware(tiny_runs, tmp_path, capsys):
    from fintune.run_dir import hardware

    out = tmp_path / "soup"
    soup.main([*map(str, tiny_runs[:2]), "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads((out / "soup.json").read_text())
    for split in ("validation", "test"):
        n = len(pd.read_csv(out / f"predictions_{split}.csv", dtype=str, keep_default_na=False))
        assert f"{split}: n = {n}" in printed
        assert summary["n"][split] == n
    assert hardware("cpu")["cpu"] in printed
    assert summary["hardware"]["cpu"] == hardware("cpu")["cpu"] and "torch" in summary["versions"]


def test_fintune_serve_takes_the_soup_as_its_docstring_says(made_soup):
    """`fintune serve SOUP` stopped at 'no metrics.json (not a finished run)', and so did
    serve_load.py --run SOUP."""
    from fastapi.testclient import TestClient

    from fintune.serve.app import app_for_run

    with TestClient(app_for_run(made_soup)) as client:
        summary = client.get("/model").json()
        recorded = pd.read_csv(made_soup / "predictions_test.csv", keep_default_na=False)
        answer = client.post("/analyze", json={"text": recorded["text"][0]}).json()
    assert answer["label"] == recorded["predicted"][0]
    soup_json = json.loads((made_soup / "soup.json").read_text())
    assert summary["test"]["accuracy"]["value"] == pytest.approx(soup_json["greedy"]["test"])
    assert summary["name"] == made_soup.name and summary["method"] == "full"
    assert summary["labels"] == ["negative", "neutral", "positive"]


def test_a_run_given_twice_is_refused(tiny_runs, tmp_path, monkeypatch):
    """It used to count twice: double weight in the uniform soup (and the ensemble)."""
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    again = tiny_runs[0].parent / ".." / tiny_runs[0].parent.name / tiny_runs[0].name
    with pytest.raises(SystemExit, match="given twice"):
        soup.main([str(tiny_runs[0]), str(tiny_runs[1]), str(again), "--out", str(tmp_path / "s")])


def test_runs_that_cleaned_their_texts_otherwise_are_refused(tiny_runs, tmp_path, monkeypatch):
    """Every ingredient was scored on the first run's cleaned texts, and the soup saved
    with the best run's data.cleaning, whatever each run's model had read."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other)
    for split in ("validation", "test"):
        path = other / f"predictions_{split}.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["cleaned_text"] = frame["text"].str.upper()
        frame.to_csv(path, index=False)
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    with pytest.raises(SystemExit, match="read its validation texts cleaned otherwise"):
        soup.main([str(tiny_runs[0]), str(other), "--out", str(tmp_path / "soup")])


def test_distilled_students_are_ingredients_beside_fintune_runs(tiny_runs, tmp_path):
    """distil.py saves a plain transformers folder beside summary.json: soup.py refused it
    ("no saved model"), so its students could not be souped."""
    from tests.benchmarks.test_distil import distil

    config = yaml.safe_load((tiny_runs[0] / "config.yaml").read_text())
    student_config = tmp_path / "student.yaml"
    student_config.write_text(yaml.safe_dump({**config, "seed": 5}))
    student = tmp_path / "student"
    argv = ["--config", str(student_config), "--teacher", str(tiny_runs[0]), "--out", str(student)]
    distil.main([*argv, "--epochs", "1"])
    assert not (student / "model" / "fintune_model.json").exists()

    out = tmp_path / "soup"
    soup.main([str(student), str(tiny_runs[1]), "--out", str(out)])
    summary = json.loads((out / "soup.json").read_text())
    assert summary["uniform"]["ingredients"] == 2
    states = {r.name: soup.load(r)[0].state_dict() for r in (student, tiny_runs[1])}
    kept = [states[name] for name in summary["greedy_kept"]]
    saved = AutoModelForSequenceClassification.from_pretrained(out / "model").state_dict()
    for key, value in soup.average(kept).items():
        torch.testing.assert_close(saved[key], value, msg=key)
    info = json.loads((out / "model" / "fintune_model.json").read_text())
    assert info["method"] == "full" and info["labels"] == ["negative", "neutral", "positive"]


def test_a_run_with_no_test_predictions_is_named_before_weights_load(
    tiny_runs, tmp_path, monkeypatch
):
    partial = tmp_path / "no-test"
    shutil.copytree(tiny_runs[1], partial)
    (partial / "predictions_test.csv").unlink()
    monkeypatch.setattr(soup, "load", lambda run: pytest.fail("weights loaded"))
    with pytest.raises(SystemExit, match="no-test: no predictions_test.csv"):
        soup.main([str(tiny_runs[0]), str(partial), "--out", str(tmp_path / "s")])


def test_a_text_with_a_carriage_return_reads_back_whole_from_the_soups_predictions(
    tmp_path, monkeypatch
):
    """The soup wrote its predictions unquoted: a text with a bare "\\r" split into two rows
    on reading, and every paired comparison with its ingredients was refused."""
    monkeypatch.setattr(soup, "save_classifier", lambda *a: None)  # the CSV is the point
    labels = ["negative", "neutral", "positive"]
    frame = pd.DataFrame({"text": ["Profit rose\rsharply", "Sales fell"], "label": labels[::2]})
    frames = {split: frame for split in ("validation", "test")}
    best = tmp_path / "best"
    best.mkdir()
    (best / "config.yaml").write_text("name: best\n")
    info = ModelInfo(
        method="full", base="b", gguf_file=None, hub_id=None, labels=labels, max_length=8,
        padding_side="right", is_decoder=False, method_settings={},
    )  # fmt: skip
    predicted = {split: frame["label"].to_numpy() for split in frames}
    soup.save_soup(tmp_path / "soup", None, None, info, frames, predicted, best)
    back = soup.read_predictions(tmp_path / "soup", "test")
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["predicted"].tolist() == frame["label"].tolist()
