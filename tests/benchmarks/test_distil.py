"""benchmarks/distil.py: the distillation loss, and its alpha = 1 control, which must be
fintune's own run on the same config."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForSequenceClassification,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
)

from fintune.config import load_config
from fintune.data import prepare_data
from fintune.data.clean import make_cleaner
from fintune.recipes.classification import run
from tests.benchmarks.conftest import load_script
from tests.conftest import make_sentences, tiny_run_config

distil = load_script("distil")


def _loss(alpha: float, temperature: float, logits, labels, teacher=None):
    trainer = distil.Distiller.__new__(distil.Distiller)  # the loss needs no Trainer state
    trainer.temperature, trainer.alpha = temperature, alpha
    inputs = {"input_ids": torch.zeros(len(labels), 1), "labels": labels}
    if teacher is not None:
        inputs["teacher"] = teacher
    return trainer.compute_loss(lambda **_: SimpleNamespace(logits=logits), inputs)


LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 1.0, 0.0]])
TEACHER = torch.log_softmax(torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]), -1)
LABELS = torch.tensor([0, 2, 1])


def _soft(t: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over the batch, written out."""
    p = torch.softmax(TEACHER / t, -1)
    log_q = torch.log_softmax(LOGITS / t, -1)
    return t * t * (p * (p.log() - log_q)).sum(-1).mean()


def test_the_loss_mixes_cross_entropy_and_the_tempered_kl_to_the_teacher():
    ce = F.cross_entropy(LOGITS, LABELS)
    mixed = _loss(0.3, 2.0, LOGITS, LABELS, TEACHER)
    torch.testing.assert_close(mixed, 0.3 * ce + 0.7 * _soft(2.0))
    torch.testing.assert_close(_loss(1.0, 2.0, LOGITS, LABELS, TEACHER), ce)
    torch.testing.assert_close(_loss(0.0, 4.0, LOGITS, LABELS, TEACHER), _soft(4.0))
    torch.testing.assert_close(_loss(0.3, 2.0, LOGITS, LABELS), ce)  # evaluation: no teacher


def test_transfer_texts_count_only_in_the_teachers_term():
    unlabelled = torch.tensor([0, -100, -100])
    ce = F.cross_entropy(LOGITS[:1], LABELS[:1])
    torch.testing.assert_close(
        _loss(0.5, 2.0, LOGITS, unlabelled, TEACHER), 0.5 * ce + 0.5 * _soft(2.0)
    )
    none = torch.full((3,), -100)
    torch.testing.assert_close(_loss(0.5, 2.0, LOGITS, none, TEACHER), 0.5 * _soft(2.0))


def _config_file(tmp_path, config) -> str:
    raw = config.model_dump(mode="json")
    path = tmp_path / "student.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    "settings", [{}, {"warmup_steps": 6, "best_metric": "loss", "scheduler": "cosine"}]
)
def test_with_alpha_1_it_is_fintunes_own_run(tiny_bert, sentences_file, tmp_path, settings):
    """The control: no teacher in the loss, so the student must be the run fintune makes
    from the same config, prediction for prediction, whatever the training settings."""
    config = tiny_run_config(
        tiny_bert,
        sentences_file,
        tmp_path / "runs",
        seed=1,
        data={"split": {"seed": 7}},
        training={"epochs": 3, "batch_size": 8, "num_threads": 1, **settings},
    )
    teacher = run(config)
    out = tmp_path / "student"
    argv = ["--config", _config_file(tmp_path, config), "--teacher", str(teacher)]
    distil.main([*argv, "--out", str(out), "--alpha", "1.0"])
    for split in ("validation", "test"):
        ours = pd.read_csv(out / f"predictions_{split}.csv", keep_default_na=False)
        recipe = pd.read_csv(teacher / f"predictions_{split}.csv", keep_default_na=False)
        assert ours["predicted"].tolist() == recipe["predicted"].tolist()
        assert ours["confidence"].tolist() == pytest.approx(recipe["confidence"].tolist(), abs=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    n = len(recipe)
    assert summary["plain_reload_same_test_labels"] == f"{n}/{n}"


def test_settings_the_script_cannot_honour_stop_it_first(tiny_runs, tmp_path):
    config = yaml.safe_load((tiny_runs[2] / "config.yaml").read_text())  # a LoRA run's
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "student"
    argv = ["--config", str(path), "--teacher", str(tiny_runs[0]), "--out", str(out)]
    with pytest.raises(SystemExit, match="method.name is lora.*use method full"):
        distil.main(argv)
    assert not out.exists()


def _escaped_data(tmp_path) -> Path:
    """Sentences ending in an escaped tag, which data.cleaning.strip_html turns into a tag
    (and a second pass would strip)."""
    frame = make_sentences()
    frame["text"] = frame["text"] + " &lt;b&gt;"
    path = tmp_path / "escaped.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_teacher_reads_the_students_texts_as_they_are(tiny_bert, tmp_path):
    data = _escaped_data(tmp_path)
    cleaning = {"cleaning": {"strip_html": True}}
    teacher = run(tiny_run_config(tiny_bert, data, tmp_path / "runs", data=cleaning))
    recorded = pd.read_csv(teacher / "predictions_test.csv", dtype=str, keep_default_na=False)
    labels = json.loads((teacher / "metrics.json").read_text())["labels"]
    scored = distil.load_teacher(teacher, labels)(recorded["cleaned_text"].tolist())
    confidences = [r["confidence"] for r in scored]
    assert confidences == pytest.approx(recorded["confidence"].astype(float).tolist(), abs=1e-5)


def test_transfer_texts_are_cleaned_as_the_students_data(tmp_path):
    data = _escaped_data(tmp_path)
    raw = {"data": {"path": str(data), "labels": ["negative", "neutral", "positive"]}}
    path = tmp_path / "raw.yaml"
    path.write_text(yaml.safe_dump(raw))
    student = load_config(path, ["data.cleaning.strip_html=true"])
    own = {t for frame in prepare_data(student.data, 42).splits.values() for t in frame["text"]}
    cleaner = make_cleaner(student.data.cleaning)
    # the same texts, cleaned as the student's: nothing is new
    assert distil.transfer_texts(None, 0, own, 42, (path,), cleaner=cleaner) == []
    kept = distil.transfer_texts(None, 0, set(), 42, (path,), cleaner=cleaner)
    assert sorted(kept) == sorted(own)


def test_a_teacher_that_is_not_a_finished_run_stops_it_first(tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setattr(distil, "prepare_data", lambda *a: pytest.fail("data prepared"))
    config = str(tiny_runs[0] / "config.yaml")
    argv = ["--config", config, "--teacher", str(tiny_runs[0] / "model")]
    with pytest.raises(SystemExit, match="no data.json; the teacher is a finished run"):
        distil.main([*argv, "--out", str(tmp_path / "student")])


def test_transfer_texts_from_tatqa_and_financebench_files(tmp_path):
    """Synthetic files in the two sources' formats: every TAT-QA sentence of 6-80 words,
    FinanceBench's only when most of their words are words of letters."""
    tatqa = tmp_path / "tatqa"
    tatqa.mkdir()
    report = "Revenue grew by 12 % in 2019 . Costs fell. 2019 2018 1,234 5,678 9,012 3,456"
    documents = [{"paragraphs": [{"text": report}, {"text": "Too short."}]}]
    (tatqa / "tatqa_dataset_dev.json").write_text(json.dumps(documents))
    bench = tmp_path / "financebench"
    bench.mkdir()
    pages = [
        "Net income rose sharply over the year. 2019 2018 1,234 5,678 9,012 3,456",
        None,
    ]
    lines = [json.dumps({"evidence": [{"evidence_text_full_page": p} for p in pages]})]
    (bench / "financebench_open_source.jsonl").write_text("\n".join(lines) + "\n")
    own = {"Revenue grew by 12 % in 2019 ."}
    texts = distil.transfer_texts(tatqa, 0, own, 42, financebench=bench)
    # the student's own text is left out; TAT-QA's number row stays (round 6 took them all)
    assert texts == ["2019 2018 1,234 5,678 9,012 3,456", "Net income rose sharply over the year."]


def test_a_student_learns_from_the_teacher_on_transfer_texts(tiny_runs, tmp_path):
    """Labelled and unlabelled texts in one training set, alpha 0.5: it trains, records
    its predictions and saves a model that plain transformers reloads to the same labels."""
    other = tmp_path / "other.csv"
    make_sentences(n_per_label=20, seed=5).to_csv(other, index=False)
    transfer = tmp_path / "transfer.yaml"
    labels = ["negative", "neutral", "positive"]
    transfer.write_text(yaml.safe_dump({"data": {"path": str(other), "labels": labels}}))
    config = tmp_path / "student.yaml"
    config.write_text((tiny_runs[0] / "config.yaml").read_text())
    out = tmp_path / "student"
    argv = ["--config", str(config), "--teacher", str(tiny_runs[0]), "--out", str(out)]
    distil.main([*argv, "--transfer-config", str(transfer), "--epochs", "1"])
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["transfer"]["texts"] <= 60
    n = summary["test"]["n"]
    assert summary["plain_reload_same_test_labels"] == f"{n}/{n}"
    assert not (out / "checkpoints").exists()


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--alpha", "1.5"], "--alpha"),
        (["--alpha", "-0.1"], "--alpha"),
        (["--temperature", "0"], "--temperature"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "-1"], "--epochs"),
        (["--epochs", "nan"], "--epochs"),
        (["--epochs", "inf"], "--epochs"),
        (["--temperature", "nan"], "--temperature"),
        (["--temperature", "inf"], "--temperature"),
        (["--transfer-tweets", "-5"], "--transfer-tweets"),
        (["--augment", "-1"], "--augment"),
        (["--transfer-tatqa", "no-such-folder"], "no-such-folder"),
        (["--transfer-financebench", "no-such-folder"], "no-such-folder"),
        (["--transfer-config", "no-such.yaml"], "no-such.yaml"),
    ],
)
def test_bad_arguments_stop_it_before_any_data_is_read(
    tiny_runs, tmp_path, monkeypatch, flags, named
):
    """--epochs 0 used to fall back silently to the config's epochs, a mistyped transfer
    folder to no transfer texts, and the rest failed (or trained on a nonsense loss) after
    the teacher had labelled the training split."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(distil, "prepare_data", lambda *a: pytest.fail("data prepared"))
    config = str(tiny_runs[0] / "config.yaml")
    argv = ["--config", config, "--teacher", str(tiny_runs[0]), "--out", "student"]
    with pytest.raises(SystemExit, match=named):
        distil.main([*argv, *flags])
    assert not (tmp_path / "student").exists()


def test_a_tatqa_folder_without_its_files_is_refused(tiny_runs, tmp_path, monkeypatch):
    monkeypatch.setattr(distil, "prepare_data", lambda *a: pytest.fail("data prepared"))
    (tmp_path / "tatqa").mkdir()
    argv = ["--config", str(tiny_runs[0] / "config.yaml"), "--teacher", str(tiny_runs[0])]
    argv += ["--out", str(tmp_path / "student"), "--transfer-tatqa", str(tmp_path / "tatqa")]
    with pytest.raises(SystemExit, match="no tatqa_dataset_"):
        distil.main(argv)


def test_it_prints_the_hardware_and_seed(tiny_runs, tmp_path, capsys):
    from fintune.run_dir import hardware

    config = tmp_path / "student.yaml"
    config.write_text((tiny_runs[0] / "config.yaml").read_text())
    argv = ["--config", str(config), "--teacher", str(tiny_runs[0])]
    distil.main([*argv, "--out", str(tmp_path / "student"), "--epochs", "1"])
    seed = load_config(config).seed
    printed = capsys.readouterr().out
    assert f"hardware: {hardware('cpu')['cpu']}" in printed and f"; seed {seed}" in printed


def test_seed_replaces_the_configs_and_is_recorded(tiny_runs, tmp_path, capsys):
    """Students of several seeds, for a recipe judged by its mean over seeds; the split
    stays the teacher's (data.split.seed is set), so the fingerprints still match."""
    config = tmp_path / "student.yaml"
    config.write_text((tiny_runs[0] / "config.yaml").read_text())
    argv = ["--config", str(config), "--teacher", str(tiny_runs[0]), "--epochs", "1"]
    distil.main([*argv, "--out", str(tmp_path / "a")])
    distil.main([*argv, "--out", str(tmp_path / "b"), "--seed", "9"])
    assert "; seed 9" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / s / "summary.json").read_text()) for s in "ab")
    assert a["seed"] == load_config(config).seed != 9 and b["seed"] == 9
    heads = [
        AutoModelForSequenceClassification.from_pretrained(tmp_path / s / "model").classifier
        for s in "ab"
    ]
    assert not torch.equal(heads[0].weight, heads[1].weight)  # another start


def _wordpiece() -> PreTrainedTokenizerFast:
    """Words and pieces of words (rose is ros + ##e), and a number."""
    vocab = ["[PAD]", "[UNK]", "profit", "ros", "##e", "in", "the", "quarter", "fell", "grew"]
    vocab += ["##ing", "12"]
    core = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")


def _lm_that_says(chances: dict[str, float], tokenizer, padded: int = 0):
    """A language model whose next token is drawn from `chances` after any words;
    `padded`: its output rows past the tokenizer's vocabulary, each as likely as any."""
    row = torch.full((len(tokenizer) + padded,), -1e9 if not padded else math.log(0.1))
    for word, chance in chances.items():
        row[tokenizer.convert_tokens_to_ids(word)] = math.log(chance)

    def decoder(input_ids, **_):
        return SimpleNamespace(last_hidden_state=torch.zeros(*input_ids.shape, 1))

    return SimpleNamespace(
        get_decoder=lambda: decoder,
        get_output_embeddings=lambda: lambda hidden: row.expand(*hidden.shape[:-1], -1).clone(),
        config=SimpleNamespace(get_text_config=SimpleNamespace),
    )


def test_variants_replace_whole_words_with_the_language_models_choices():
    tokenizer = _wordpiece()
    text = "profit rose in the quarter"  # rose is two pieces: it stays
    lm = _lm_that_says({"fell": 0.5, "grew": 0.3, "##ing": 0.1, "12": 0.1}, tokenizer)
    words = {"fell", "grew", "12", "ing"}  # a replacement must be one of these
    made = distil.lm_variants([text], lm, tokenizer, variants=30, seed=0, known_words=words)
    assert made and all(source == 0 for _, source in made)
    for variant, _ in made:
        words = variant.split()
        assert words[:2] == ["profit", "rose"] and len(words) == 5
        changed = [
            w for w, old in zip(words[2:], ["in", "the", "quarter"], strict=True) if w != old
        ]
        assert len(changed) == 1 and set(changed) <= {"fell", "grew"}  # a quarter of 3: 1
    # a quarter of a text's replaceable words change in each variant
    long = "profit rose" + " in the quarter" * 20
    made_long = distil.lm_variants([long], lm, tokenizer, 20, seed=0, known_words=words)
    old = long.split()
    changes = [sum(a != b for a, b in zip(v.split(), old, strict=True)) for v, _ in made_long]
    assert len(made_long) == 20 and set(changes) == {15}
    assert distil.lm_variants([long], lm, tokenizer, 20, seed=0, known_words=words) == made_long
    assert distil.lm_variants([long], lm, tokenizer, 20, seed=1, known_words=words) != made_long


def test_variants_leave_out_known_texts_and_texts_without_a_replaceable_word():
    tokenizer = _wordpiece()
    lm = _lm_that_says({"fell": 1.0}, tokenizer)
    texts = ["profit rose in", "profit rose", "12 12", "fell"]  # only "in" can change
    made = distil.lm_variants(texts, lm, tokenizer, variants=3, seed=0)
    assert made == [("profit rose fell", 0)]  # three draws of one variant: kept once
    assert distil.lm_variants(texts, lm, tokenizer, 3, 0, exclude={"profit rose fell"}) == []


def _sentencepiece() -> PreTrainedTokenizerFast:
    """As Gemma's: a beginning token, word-starting pieces marked, the first word not, and
    words cut into pieces ('Rev' of 'Revenue', 'isn' ' t' of "isn't")."""
    pieces = ["<pad>", "<unk>", "<bos>", "Revenue", "The", "\u2581Rev", "\u2581firm", "\u2581isn"]
    pieces += ["'", "t", "\u2581growing", "\u2581year", "-", "on", "\u2581fell", "\u2581rose"]
    letters = sorted(set("abcdefghijklmnopqrstuvwxyzRT\u2581") - set(pieces))
    vocab = [(p, -1.0) for p in pieces] + [(c, -10.0) for c in letters]
    core = Tokenizer(models.Unigram(vocab, unk_id=1, byte_fallback=False))
    core.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    core.decoder = decoders.Metaspace(prepend_scheme="never")
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>"
    )


def test_variants_never_put_a_piece_of_a_word_in_or_cut_one():
    """With Gemma's kind of tokenizer, 'The firm isn't growing' became 'The Rev isn't
    growing' (a word-starting piece taken for a word) and 'The firm is't growing' (the
    'isn' of "isn't" taken for one)."""
    tokenizer = _sentencepiece()
    lm = _lm_that_says({"\u2581Rev": 0.6, "\u2581fell": 0.3, "\u2581rose": 0.1}, tokenizer)
    texts = ["The firm isn't growing", "Revenue fell year-on-year"]
    made = distil.lm_variants(texts, lm, tokenizer, variants=20, seed=0)
    # rose is no word of the texts; year of year-on-year stays; fell cannot replace itself
    assert sorted(made) == [
        ("The fell isn't growing", 0),
        ("The firm isn't fell", 0),
        ("fell fell year-on-year", 1),
        ("fell firm isn't growing", 0),
    ]


def test_a_word_only_the_original_has_a_chance_for_is_left_as_it_is():
    """Options with no chance at all made the chances of a word 0/0: rng.choice stopped
    the run ('probabilities contain NaN')."""
    tokenizer = _sentencepiece()
    lm = _lm_that_says({"\u2581fell": 1.0}, tokenizer)
    made = distil.lm_variants(["Revenue fell"], lm, tokenizer, 3, 0, known_words={"fell", "rose"})
    assert made == [("fell fell", 0)]


def test_a_student_learns_from_augmented_texts(tiny_runs, tiny_llama, tmp_path, capsys):
    config = tmp_path / "student.yaml"
    config.write_text((tiny_runs[0] / "config.yaml").read_text())
    out = tmp_path / "student"
    argv = ["--config", str(config), "--teacher", str(tiny_runs[0]), "--out", str(out)]
    distil.main([*argv, "--augment", "2", "--augment-lm", str(tiny_llama), "--epochs", "1"])
    summary = json.loads((out / "summary.json").read_text())
    augment = summary["transfer"]["augment"]
    train = len(prepare_data(load_config(config).data, load_config(config).seed).splits["train"])
    assert augment["per_text"] == 2 and 0 < augment["texts"] <= 2 * train
    assert summary["transfer"]["texts"] == augment["texts"]
    printed = capsys.readouterr().out
    assert f"augmented texts: {augment['texts']} " in printed
    assert "augmented texts the teacher labels unlike their source: " in printed


def test_output_rows_past_the_vocabulary_are_no_words():
    """A model whose embeddings are padded past its tokenizer's vocabulary (to a multiple
    of 64) has likely rows no token names: an IndexError stopped the run."""
    tokenizer = _sentencepiece()
    lm = _lm_that_says({"\u2581fell": 0.5}, tokenizer, padded=40)
    made = distil.lm_variants(["Revenue rose"], lm, tokenizer, 3, 0, known_words={"fell"})
    assert sorted(made) == [("Revenue fell", 0), ("fell rose", 0)]


@pytest.mark.parametrize("softcap", [None, 3.0])
def test_next_token_logits_are_the_models_own_at_the_positions_asked(softcap):
    """The output layer runs at the replaceable words only; what it gives there must be
    what the model's forward gives, Gemma's final soft-capping included."""
    config = Gemma3TextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        final_logit_softcapping=softcap,
    )  # fmt: skip
    torch.manual_seed(0)
    lm = Gemma3ForCausalLM(config).eval()
    encoded = {
        "input_ids": torch.randint(0, 64, (3, 7)),
        "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2, [1] * 3 + [0] * 4]),
    }
    rows, positions = [0, 0, 1, 2], [0, 6, 3, 1]
    with torch.inference_mode():
        whole = lm(**encoded).logits[rows, positions]
    assert torch.allclose(distil.next_token_logits(lm, encoded, rows, positions), whole, atol=1e-5)
    if softcap:
        assert whole.abs().max() < softcap


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("see https://t.co/x", "https"),
        ("at www.x.com", "www"),
        ("U.S. sales", "U"),
        ("and/or", "and"),
    ],
)
def test_a_word_that_starts_a_link_or_an_abbreviation_stays(text, word):
    start = text.index(word)
    assert distil._whole_word(text, start, start + len(word)) is None
    assert distil._whole_word("sales rose.", 6, 10) == (6, "rose")  # a full stop ends a word


def test_more_transfer_tweets_than_tfns_has_stop_it_first(tiny_runs, tmp_path, monkeypatch):
    """pandas refused the sample only after the teacher had labelled the training split."""
    monkeypatch.setattr(distil, "tweet_pool", lambda: pd.Series(["a tweet"] * 5))
    monkeypatch.setattr(distil, "prepare_data", lambda *a: pytest.fail("data prepared"))
    argv = ["--config", str(tiny_runs[0] / "config.yaml"), "--teacher", str(tiny_runs[0])]
    with pytest.raises(SystemExit, match="--transfer-tweets 6: TFNS's training split has 5"):
        distil.main([*argv, "--out", str(tmp_path / "student"), "--transfer-tweets", "6"])
