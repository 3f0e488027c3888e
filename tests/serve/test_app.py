"""The HTTP API and page of `fintune serve`, through FastAPI's TestClient (as a context
manager, so the lifespan starts the micro-batcher), on one tiny trained run."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fintune.errors import FintuneError, NonFiniteScores
from fintune.predict import Predictor
from fintune.recipes.classification import run
from fintune.serve.app import ServeSettings, app_for_run, create_app, run_summary
from fintune.serve.batcher import BatcherFailed
from tests.conftest import make_sentences, tiny_run_config

LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "sales rose in the quarter",
    "profit fell this year",
    "the bank announced its orders",
    "Umsatz stieg stark — 😀 unknown words only",
    "revenue",
    "the group reported that earnings climbed and margin improved " * 3,
]
MAX_CHARS = 300
MAX_TEXTS = 5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_bert) -> Path:
    folder = tmp_path_factory.mktemp("serve-run")
    data = folder / "sentences.csv"
    make_sentences().to_csv(data, index=False)
    return run(tiny_run_config(tiny_bert, data, folder / "runs", name="tiny-serve"))


@pytest.fixture(scope="module")
def predictor(run_dir) -> Predictor:
    return Predictor.from_run(run_dir, device="cpu")


@pytest.fixture(scope="module")
def client(run_dir):
    settings = ServeSettings(max_text_chars=MAX_CHARS, max_batch_texts=MAX_TEXTS)
    with TestClient(app_for_run(run_dir, settings)) as c:
        yield c


@pytest.fixture(scope="module")
def default_client(run_dir):
    with TestClient(app_for_run(run_dir, ServeSettings())) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(run_dir):
    with TestClient(app_for_run(run_dir, ServeSettings(api_key="k"))) as c:
        yield c


def _assert_close(got: dict, want: dict) -> None:
    assert got["label"] == want["label"]
    assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-5)
    assert got.keys() == want.keys()
    assert got["scores"].keys() == want["scores"].keys()
    for name, p in want["scores"].items():
        assert got["scores"][name] == pytest.approx(p, abs=1e-5)


def _assert_still_serving(client: TestClient) -> None:
    response = client.post("/analyze", json={"text": "sales rose"})
    assert response.status_code == 200
    assert response.json()["label"] in LABELS


# --- the endpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_analyze_matches_the_predictor(client, predictor, text):
    response = client.post("/analyze", json={"text": text})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"label", "confidence", "scores", "truncated"}
    assert body["label"] in LABELS
    assert list(body["scores"]) == LABELS
    assert body["confidence"] == max(body["scores"].values())
    assert body["scores"][body["label"]] == body["confidence"]
    assert sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    _assert_close(body, predictor([text])[0])


def _words(predictor, tokens: int) -> str:
    """A text of exactly `tokens` tokens, special tokens included."""
    text = " ".join(["sales"] * (tokens - 2))
    assert len(predictor.tokenizer(text)["input_ids"]) == tokens
    return text


def test_the_answer_says_whether_a_text_was_cut_at_max_length(client, predictor):
    """Nothing told a client that the model read only the beginning of a long text."""
    limit = predictor.max_length
    at_limit, over = _words(predictor, limit), _words(predictor, limit + 1)
    assert client.post("/analyze", json={"text": over}).json()["truncated"] is True
    assert client.post("/analyze", json={"text": at_limit}).json()["truncated"] is False
    texts = ["sales rose", over, at_limit]
    batch = client.post("/analyze/batch", json={"texts": texts}).json()
    assert [r["truncated"] for r in batch] == [False, True, False]
    assert client.get("/model").json()["max_length"] == limit


def test_analyze_accepts_a_text_of_exactly_the_limit(client):
    text = ("sales rose " * MAX_CHARS)[:MAX_CHARS]
    assert client.post("/analyze", json={"text": text}).status_code == 200


def test_batch_keeps_order_and_matches_single_calls(client, predictor):
    texts = TEXTS[:MAX_TEXTS]
    response = client.post("/analyze/batch", json={"texts": texts})
    assert response.status_code == 200
    results = response.json()
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        single = client.post("/analyze", json={"text": text}).json()
        _assert_close(result, single)
        _assert_close(result, predictor([text])[0])


def test_batch_with_repeated_and_reversed_texts(client):
    texts = [TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[2]]
    forward = client.post("/analyze/batch", json={"texts": texts}).json()
    backward = client.post("/analyze/batch", json={"texts": texts[::-1]}).json()
    for a, b in zip(forward, backward[::-1], strict=True):
        _assert_close(a, b)
    _assert_close(forward[0], forward[2])


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_answers_head_as_monitors_send_it(client):
    """HEAD /health (curl -I, wget --spider, load balancers' checks) got 405, so a
    monitor reported a healthy server as down."""
    response = client.head("/health")
    assert response.status_code == 200 and response.content == b""
    assert "head" in client.get("/openapi.json").json()["paths"]["/health"]


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/model"])
def test_the_page_its_files_and_model_answer_head_as_get_does(client, path):
    """HEAD got 405 everywhere but /health, so an uptime monitor reported the page down."""
    got, head = client.get(path), client.head(path)
    assert got.status_code == 200 and head.status_code == 200, head.text
    assert head.headers["content-type"] == got.headers["content-type"]
    assert "head" not in client.get("/openapi.json").json()["paths"].get(path, {})


def test_model_describes_the_run(client, run_dir, tiny_bert):
    response = client.get("/model")
    assert response.status_code == 200
    body = response.json()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert body["run"] == run_dir.name
    assert body["name"] == "tiny-serve"
    assert body["backbone"] == str(tiny_bert)
    assert body["method"] == "full"
    assert body["precision"] == "fp32"
    assert body["device"] == "cpu"
    assert body["labels"] == LABELS == metrics["labels"]
    test = metrics["test"]
    assert body["test"]["n"] == test["n"]
    for key in ("accuracy", "f1_macro", "f1_weighted"):
        assert body["test"][key]["value"] == pytest.approx(test[key])
        assert body["test"][key]["ci95"] == pytest.approx(test["ci95"][key])
    low, high = body["test"]["accuracy"]["ci95"]
    assert 0.0 <= low <= body["test"]["accuracy"]["value"] <= high <= 1.0
    assert set(body["serving"]) == {
        "batches",
        "texts",
        "largest_batch",
        "mean_batch",
        "model_busy_s",
        "failed_calls",
        "waiting",
        "refused",
    }


def test_model_names_the_run_when_served_from_inside_it(run_dir, monkeypatch):
    """`cd runs/<run> && fintune serve .` answered /model with an empty run name."""
    monkeypatch.chdir(run_dir)
    assert run_summary(Path("."))["run"] == run_dir.name


def test_model_gives_an_all_right_test_its_exact_interval_not_the_bootstraps(run_dir, tmp_path):
    """A test split scored all right has a bootstrap interval of no width: the page said
    'test accuracy 100.0% (95% CI 100.0-100.0%, n=24)' for the quick start's 24 of 24,
    where the run's report gives the exact binomial [0.858, 1.000]."""
    copy = shutil.copytree(run_dir, tmp_path / "run")
    metrics = json.loads((copy / "metrics.json").read_text())
    for accuracy, exact in ((1.0, [0.858, 1.0]), (0.0, [0.0, 0.142])):
        metrics["test"].update(n=24, accuracy=accuracy)
        metrics["test"]["ci95"]["accuracy"] = [accuracy, accuracy]
        (copy / "metrics.json").write_text(json.dumps(metrics))
        shown = run_summary(copy)["test"]["accuracy"]
        assert shown["value"] == accuracy
        assert shown["ci95"] == pytest.approx(exact, abs=5e-4)


def test_openapi_and_no_docs_page_that_needs_the_internet(client):
    """/docs was Swagger UI from a CDN: blank on an air-gapped machine. It now says where
    the API is described, and nothing the server sends loads anything from elsewhere."""
    docs = client.get("/docs")
    assert docs.status_code == 404
    assert "/openapi.json" in docs.json()["error"] and "offline" in docs.json()["error"]
    assert client.get("/redoc").status_code == 404
    for path in ("/", "/static/app.js", "/static/style.css", "/docs", "/redoc"):
        assert "http://" not in client.get(path).text, path
        assert "https://" not in client.get(path).text, path
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/analyze" in paths and "/analyze/batch" in paths
    assert "post" in paths["/analyze"]
    assert "/" not in paths and "/static/{name}" not in paths


def test_openapi_describes_the_errors_the_api_sends(client):
    """The schema promised FastAPI's {"detail": [...]} for a 422, and no other error, while
    every error is {"error": "..."}: a client generated from it could not read them."""
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error = schema["components"]["schemas"]["ApiErrorBody"]
    assert error["required"] == ["error"] and list(error["properties"]) == ["error"]
    for path, codes in (("/analyze", {413, 415, 422, 503}), ("/analyze/batch", {413, 422})):
        responses = schema["paths"][path]["post"]["responses"]
        for code in codes:
            ref = responses[str(code)]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ApiErrorBody"), (path, code)
    sent = client.post("/analyze", json={"txt": "x"})
    assert sent.status_code == 422 and set(sent.json()) == set(error["properties"])
    # malformed JSON is a 422 (it was documented as a 400), and 500s are sent too
    said = {
        code: r["description"]
        for code, r in schema["paths"]["/analyze"]["post"]["responses"].items()
    }
    malformed = client.post("/analyze", **_raw('{"text":'))
    assert malformed.status_code == 422 and "JSON" in said["422"] and "JSON" not in said["400"]
    assert "not finite" in said["500"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.textareas: list[dict] = []
        self.label_for: set[str] = set()
        self.buttons: list[str] = []
        self.links: list[str] = []
        self.scripts: list[str] = []
        self._in_button = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "textarea":
            self.textareas.append(attrs)
        elif tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")
        elif tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "button":
            self._in_button = False

    def handle_data(self, data):
        if self._in_button:
            self.buttons[-1] += data


def test_page_has_a_labelled_textarea_and_an_analyze_button(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    page = _Page()
    page.feed(response.text)
    assert page.textareas, "no textarea"
    assert any(t.get("id") in page.label_for for t in page.textareas), "textarea has no <label>"
    assert any(b.strip() == "Analyze" for b in page.buttons), page.buttons
    assert "/static/style.css" in page.links
    assert "/static/app.js" in page.scripts


@pytest.mark.parametrize(
    ("name", "kind", "needle"),
    [("app.js", "javascript", "/analyze"), ("style.css", "text/css", "{")],
)
def test_static_files(client, name, kind, needle):
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert kind in response.headers["content-type"]
    assert needle in response.text


@pytest.mark.parametrize("name", ["nope.js", "index.html", "app.py", "..%2Fapp.py"])
def test_unknown_static_file_is_404(client, name):
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
    _assert_still_serving(client)


# --- bad input ------------------------------------------------------------------------------


def _json(body) -> dict:
    return {"json": body}


def _raw(body: str | bytes) -> dict:
    return {"content": body, "headers": {"content-type": "application/json"}}


BAD = [
    ("empty text", "/analyze", _json({"text": ""}), 422, ["text", "empty"]),
    ("whitespace text", "/analyze", _json({"text": " \n\t "}), 422, ["text", "empty"]),
    ("long text", "/analyze", _json({"text": "a" * (MAX_CHARS + 1)}), 413, ["text", "limit"]),
    ("missing text", "/analyze", _json({"txt": "sales rose"}), 422, ["text", "required"]),
    ("empty object", "/analyze", _json({}), 422, ["text", "required"]),
    ("number text", "/analyze", _json({"text": 5}), 422, ["text", "string"]),
    ("null text", "/analyze", _json({"text": None}), 422, ["text", "string"]),
    ("list text", "/analyze", _json({"text": ["a"]}), 422, ["text", "string"]),
    ("malformed json", "/analyze", _raw('{"text": "sales'), 422, ["json"]),
    (
        "lone surrogate",
        "/analyze",
        _raw('{"text": "sales \\ud800 rose"}'),
        422,
        ["unicode", "ud800"],
    ),
    ("body not UTF-8", "/analyze", _raw(b'{"text": "sales \xff rose"}'), 400, ["utf-8", "0xff"]),
    ("a 5000-digit number", "/analyze", _raw('{"text": ' + "9" * 5000 + "}"), 400, ["digits"]),
    (  # valid JSON, though it read "the body is not valid JSON (maximum recursion depth...)"
        "arrays nested 5000 deep",
        "/analyze",
        _raw('{"text": ' + "[" * 5000 + "]" * 5000 + "}"),
        400,
        ["nested too deeply"],
    ),
    (
        "lone surrogate in a batch",
        "/analyze/batch",
        _raw('{"texts": ["fine", "\\udfff"]}'),
        422,
        ["texts[1]", "unicode"],
    ),
    (
        "form-encoded json (curl -d without a content type)",
        "/analyze",
        {
            "content": '{"text": "sales rose"}',
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        415,
        ["content-type: application/json", "application/x-www-form-urlencoded"],
    ),
    (
        "json with a +json media type",
        "/analyze",
        {"content": '{"txt": "x"}', "headers": {"content-type": "application/ld+json"}},
        422,
        ["text", "required"],
    ),
    (  # json.loads keeps the last: the client's first text was silently not classified
        "a key written twice",
        "/analyze",
        _raw('{"text": "sales rose", "text": "profit fell"}'),
        400,
        ["invalid request", "'text'", "twice"],
    ),
    (
        "texts written twice",
        "/analyze/batch",
        _raw('{"texts": ["sales rose"], "texts": ["profit fell", "orders"]}'),
        400,
        ["invalid request", "'texts'", "twice"],
    ),
    ("array body", "/analyze", _json(["sales rose"]), 422, ["body"]),
    ("string body", "/analyze", _raw('"sales rose"'), 422, ["body"]),
    ("no body", "/analyze", _raw(""), 422, ["body"]),
    ("string texts", "/analyze/batch", _json({"texts": "sales rose"}), 422, ["texts", "list"]),
    ("missing texts", "/analyze/batch", _json({"text": "sales"}), 422, ["texts", "required"]),
    ("number in texts", "/analyze/batch", _json({"texts": ["a", 3]}), 422, ["texts[1]", "string"]),
    ("malformed batch", "/analyze/batch", _raw('{"texts": ["a",'), 422, ["json"]),
    ("array batch body", "/analyze/batch", _json(["a", "b"]), 422, ["body"]),
    ("empty texts", "/analyze/batch", _json({"texts": []}), 422, ["texts", "at least one"]),
    (
        "texts sent to /analyze",  # was answered as if the typo'd field were not there
        "/analyze",
        _json({"text": "sales rose", "texts": ["profit fell"]}),
        422,
        ["texts", "unknown field", "fields: text"],
    ),
    (
        "an extra field in a batch",
        "/analyze/batch",
        _json({"texts": ["sales rose"], "threshold": 0.9}),
        422,
        ["threshold", "unknown field", "fields: texts"],
    ),
    (
        "too many texts",
        "/analyze/batch",
        _json({"texts": ["sales rose"] * (MAX_TEXTS + 1)}),
        413,
        ["texts", str(MAX_TEXTS + 1), f"limit is {MAX_TEXTS}"],
    ),
    (
        "one empty text in a batch",
        "/analyze/batch",
        _json({"texts": ["sales rose", "  ", "profit fell"]}),
        422,
        ["texts[1]", "empty"],
    ),
    (
        "one long text in a batch",
        "/analyze/batch",
        _json({"texts": ["sales rose", "b" * (MAX_CHARS + 5)]}),
        413,
        ["texts[1]", str(MAX_CHARS + 5), f"limit is {MAX_CHARS}"],
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "said"),
    [
        ("/analyze/batch", {"texts": [1] * 200_000}, "texts[4]: not a string (int); and 199,995"),
        ("/analyze", {"text": "a", **{f"k{{{i}}}": 1 for i in range(50_000)}}, "k{4}: unknown"),
    ],
)
def test_a_body_of_many_faults_gets_a_short_answer_at_once(default_client, path, body, said):
    """800,000 numbers in `texts` (a 1.6 MB body, under the default limit) made a 37 MB
    answer that held the event loop 11 s, /health waiting it out: pydantic built an error
    for each, and each was listed."""
    client = default_client
    start = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - start
    assert response.status_code == 422
    message = response.json()["error"]
    assert said in message and "more" in message and len(message) < 600, message[:600]
    assert elapsed < 2.0, elapsed
    _assert_still_serving(client)


@pytest.mark.parametrize(
    ("path", "request_kwargs", "status", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_is_a_4xx_with_a_clear_error(client, path, request_kwargs, status, words):
    before = client.get("/model").json()["serving"]["texts"]
    response = client.post(path, **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    # one prefix for every fault in the request, whichever check found it ('text: text is
    # empty' and 'texts: 6 texts; ...' had none, beside 'invalid request: text: ...')
    assert message.startswith("invalid request: "), message
    for word in words:
        assert word.lower() in message.lower(), message
    assert client.get("/model").json()["serving"]["texts"] == before, "bad input reached the model"
    _assert_still_serving(client)


def test_the_frameworks_own_errors_have_the_apis_shape(client):
    """405, 404 and an unparsable body answer {"error": ...} like every other error, so
    the page can show them."""
    for response, status in (
        (client.get("/analyze"), 405),
        (client.get("/nope"), 404),
        (
            client.post(
                "/analyze",
                content=b'{"text": "Gewinn gestiegen \xe4"}',
                headers={"content-type": "application/json"},
            ),
            400,
        ),
    ):
        assert response.status_code == status
        assert set(response.json()) == {"error"} and response.json()["error"]
    assert client.get("/analyze").headers["allow"] == "POST"
    _assert_still_serving(client)


def test_a_text_the_runs_cleaning_empties_is_refused(tmp_path, tiny_bert):
    data = tmp_path / "sentences.csv"
    make_sentences().to_csv(data, index=False)
    cleaning = {"letters_only": True, "lowercase": True}
    config = tiny_run_config(tiny_bert, data, tmp_path / "runs", data={"cleaning": cleaning})
    run_dir = run(config)
    with TestClient(app_for_run(run_dir, ServeSettings())) as c:
        response = c.post("/analyze", json={"text": "12.5% 2024"})
        assert response.status_code == 422
        assert "empty after the run's data.cleaning" in response.json()["error"]
        response = c.post("/analyze/batch", json={"texts": ["sales rose", "12.5%"]})
        assert response.status_code == 422 and "texts[1]" in response.json()["error"]
        assert c.post("/analyze", json={"text": "Sales ROSE 5%"}).status_code == 200
        # the cheap checks come first: a lone surrogate is named before any cleaning runs
        response = c.post(
            "/analyze",
            content=b'{"text": "12 \\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422 and "not valid Unicode" in response.json()["error"]
    with pytest.raises(FintuneError, match="text 2 of 2 is empty after the run's data.cleaning"):
        Predictor.from_run(run_dir, device="cpu")(["sales rose", "12.5%"])


@pytest.mark.parametrize("missing", ["metrics.json", "config.yaml"])
def test_an_incomplete_run_is_refused_before_the_model_loads(run_dir, tmp_path, missing):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / missing).unlink()
    with pytest.raises(FintuneError, match=f"no {missing}"):
        app_for_run(copy, ServeSettings())


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("metrics.json", "{"),
        ("metrics.json", "[]"),
        ("metrics.json", '{"labels": ["a"], "test": {"accuracy": 1.0, "n": 5}}'),  # no ci95
        ("config.yaml", ""),
    ],
)
def test_a_damaged_run_is_refused_naming_the_file(run_dir, tmp_path, name, content):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / name).write_text(content)
    with pytest.raises(FintuneError, match=f"{copy / name}: not a run's"):
        app_for_run(copy, ServeSettings())


def test_a_body_larger_than_any_valid_request_is_refused_unread(client):
    limit = ServeSettings(max_text_chars=MAX_CHARS, max_batch_texts=MAX_TEXTS).max_body_bytes
    body = b'{"texts": ["' + b"a" * limit + b'"]}'
    response = client.post(
        "/analyze/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    said = response.json()["error"]
    assert said == f"invalid request: the body has {len(body):,} bytes; the limit is {limit:,}"
    chunked = client.post(
        "/analyze/batch",
        content=(body[i : i + 4096] for i in range(0, len(body), 4096)),  # no Content-Length
        headers={"content-type": "application/json"},
    )
    assert chunked.status_code == 413
    assert chunked.json()["error"] == f"invalid request: the body has more than {limit:,} bytes"
    widest = json.dumps({"texts": ["\U0001f4b9" * MAX_CHARS] * MAX_TEXTS})  # 12-byte escapes
    assert limit - len(widest) < 65536
    response = client.post(
        "/analyze/batch", content=widest, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    _assert_still_serving(client)


def test_a_larger_batch_limit_is_honoured(run_dir, predictor):
    settings = ServeSettings(max_batch_texts=150, micro_batch=64)
    texts = [TEXTS[i % 3] + f" {i}" for i in range(150)]
    with TestClient(app_for_run(run_dir, settings)) as big:
        response = big.post("/analyze/batch", json={"texts": texts})
        assert response.status_code == 200
        results = response.json()
        assert len(results) == 150
        for i in (0, 1, 2, 77, 149):
            _assert_close(results[i], predictor([texts[i]])[0])
        too_many = big.post("/analyze/batch", json={"texts": texts + ["one more"]})
        assert too_many.status_code == 413
        assert "151" in too_many.json()["error"] and "150" in too_many.json()["error"]
        assert big.post("/analyze/batch", json={"texts": texts[:3]}).status_code == 200


# --- the API key ----------------------------------------------------------------------------

PROTECTED = [
    ("post", "/analyze", {"json": {"text": "sales rose"}}),
    ("post", "/analyze/batch", {"json": {"texts": ["sales rose", "profit fell"]}}),
    ("get", "/model", {}),
    ("get", "/openapi.json", {}),
]
OPEN = ["/health", "/", "/static/app.js", "/static/style.css"]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[p[1] for p in PROTECTED])
@pytest.mark.parametrize(
    ("auth", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("k", 401),
        ("Bearer k ", 401),
        ("Bearer kk", 401),
        ("Basic k", 401),
        ("Bearer k", 200),
        ("bearer k", 200),  # RFC 7235: the scheme is case-insensitive, the key is not
        ("BEARER k", 200),
        ("Bearer   k", 200),
        ("Bearer K", 401),
    ],
)
def test_api_key_guards_the_api(keyed, method, path, kwargs, auth, status):
    headers = {"Authorization": auth} if auth is not None else {}
    response = getattr(keyed, method)(path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    if status == 401:
        assert "key" in response.json()["error"].lower()
        # RFC 9110: a 401 says which scheme to use; clients and proxies look for it
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", OPEN)
def test_health_and_page_are_open_with_a_key_set(keyed, path):
    assert keyed.get(path).status_code == 200


def test_bad_input_with_the_key_still_gets_the_clear_error(keyed):
    response = keyed.post("/analyze", json={"text": " "}, headers={"Authorization": "Bearer k"})
    assert response.status_code == 422
    assert "empty" in response.json()["error"]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[p[1] for p in PROTECTED])
def test_without_a_key_nothing_needs_one(client, method, path, kwargs):
    assert getattr(client, method)(path, **kwargs).status_code == 200
    wrong = getattr(client, method)(path, headers={"Authorization": "Bearer x"}, **kwargs)
    assert wrong.status_code == 200


def test_model_reports_the_served_precision(run_dir, predictor):
    with TestClient(app_for_run(run_dir, ServeSettings(), precision="int8")) as c:
        assert c.get("/model").json()["precision"] == "int8"
        response = c.post("/analyze", json={"text": TEXTS[0]})
    assert response.status_code == 200
    assert response.json()["label"] == predictor([TEXTS[0]])[0]["label"]


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_requests_are_micro_batched(run_dir, predictor):
    texts = [f"{TEXTS[i % 3]} {'quarter ' * (i % 5)}{i}" for i in range(40)]
    expected = predictor(texts)
    settings = ServeSettings(micro_batch=32, max_wait_ms=20)
    with TestClient(app_for_run(run_dir, settings)) as c:

        def analyze(text: str) -> dict:
            response = c.post("/analyze", json={"text": text})
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            results = list(pool.map(analyze, texts))
        serving = c.get("/model").json()["serving"]
    for got, want in zip(results, expected, strict=True):
        _assert_close(got, want)
    assert serving["texts"] == len(texts)
    assert serving["batches"] < len(texts)
    assert serving["largest_batch"] > 1
    assert serving["largest_batch"] <= settings.micro_batch
    assert serving["mean_batch"] > 1


def test_a_full_queue_is_a_503_with_retry_after_and_the_server_recovers():
    gate, started = threading.Event(), threading.Event()

    def slow(texts):
        started.set()
        gate.wait(5)
        return [{"label": "up", "confidence": 1.0, "scores": {"up": 1.0}} for _ in texts]

    summary = {"run": "r", "backbone": "b", "method": "full"}
    settings = ServeSettings(max_batch_texts=2, micro_batch=2, max_queue_texts=2)
    app = create_app(slow, summary, settings)
    with TestClient(app) as c, ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(c.post, "/analyze", json={"text": "in the model"})
        assert started.wait(5)
        queued = pool.submit(c.post, "/analyze/batch", json={"texts": ["a", "b"]})
        deadline = time.monotonic() + 5
        while app.state.batcher.stats.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = c.post("/analyze", json={"text": "one more"})
        gate.set()
        assert running.result().status_code == 200 and queued.result().status_code == 200
        assert c.post("/analyze", json={"text": "later"}).status_code == 200
        serving = c.get("/model").json()["serving"]
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert set(busy.json()) == {"error"} and "busy" in busy.json()["error"]
    assert serving["refused"] == 1 and serving["waiting"] == 0


def test_a_queue_smaller_than_a_batch_is_refused():
    with pytest.raises(FintuneError, match="--max-queue 10 is below --max-batch 64"):
        ServeSettings(max_queue_texts=10)


def test_the_default_queue_holds_at_least_one_full_batch_request():
    assert ServeSettings().max_queue_texts == 1024
    assert ServeSettings(max_batch_texts=2000).max_queue_texts == 2000


def test_a_client_gone_before_its_text_reaches_the_model_costs_no_model_time():
    """uvicorn lets a handler run on when its client disconnects: a request that timed out
    under overload still ran in the model. With uvicorn, a text sent by a client that then
    closed its connection while another request held the model was classified all the same
    ([['first'], ['gone']]; now [['first']])."""
    import asyncio

    gate, seen = threading.Event(), []

    def slow(texts):
        seen.append(list(texts))
        gate.wait(5)
        return [{"label": "up", "confidence": 1.0, "scores": {"up": 1.0}} for _ in texts]

    app = create_app(slow, {"run": "r", "backbone": "b", "method": "full"}, ServeSettings())

    async def call(text: str, leave: asyncio.Event) -> list[dict]:
        body = json.dumps({"text": text}).encode()
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/analyze", "raw_path": b"/analyze",
            "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000), "headers": [(b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), (b"host", b"127.0.0.1")],
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent = []

        async def receive():
            if messages:
                return messages.pop()
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return sent

    async def work():
        app.state.batcher.start()
        try:
            stay, go = asyncio.Event(), asyncio.Event()
            first = asyncio.ensure_future(call("first", stay))
            while not seen:
                await asyncio.sleep(0.01)
            gone = asyncio.ensure_future(call("gone", go))
            await asyncio.sleep(0.05)
            go.set()
            await gone
            gate.set()
            answer = await first
            waiting = app.state.batcher.stats.waiting
        finally:
            await app.state.batcher.stop()
        return answer, waiting

    answer, waiting = asyncio.run(work())
    assert answer[0]["status"] == 200
    assert seen == [["first"]]
    assert waiting == 0


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost:8000", 200),
        ("LOCALHOST", 200),
        ("[::1]:8000", 200),
        ("127.0.0.1", 200),
        ("attacker.example:8000", 400),
        ("localhost.attacker.example", 400),
        ("127.0.0.1.nip.io:8000", 400),
        ("", 400),
    ],
)
def test_a_keyless_loopback_server_answers_only_requests_addressed_to_loopback(host, status):
    """A keyless server on 127.0.0.1 answered any Host: a web page could read /model (the
    backbone's local path) and use the API through DNS rebinding."""
    answer = {"label": "up", "confidence": 1.0, "scores": {"up": 1.0}}
    summary = {"run": "r", "backbone": "/home/me/models/x", "method": "full"}
    app = create_app(
        lambda texts: [answer] * len(texts), summary, ServeSettings(loopback_only=True)
    )
    with TestClient(app) as c:
        responses = [
            c.get("/model", headers={"host": host}),
            c.post("/analyze", json={"text": "sales rose"}, headers={"host": host}),
        ]
    for response in responses:
        assert response.status_code == status, response.text
        if status == 400:
            assert set(response.json()) == {"error"}
            assert (
                "Host" in response.json()["error"] and "FINTUNE_API_KEY" in response.json()["error"]
            )
            assert "/home/me" not in response.text


def test_without_loopback_only_any_host_is_answered(client):
    assert client.get("/health", headers={"host": "fintune.internal:8000"}).status_code == 200


def _gated_app():
    """An app whose model call starts (`started`) and waits for `gate` (10 s at most)."""
    gate, started = threading.Event(), threading.Event()

    def slow(texts):
        started.set()
        gate.wait(10)
        return [{"label": "up", "confidence": 1.0, "scores": {"up": 1.0}} for _ in texts]

    app = create_app(slow, {"run": "r", "backbone": "b", "method": "full"}, ServeSettings())
    return app, gate, started


def test_a_request_during_shutdown_is_a_503_that_says_the_server_is_stopping():
    """A request waiting for the model when the server stopped, or arriving after, got a
    500 'internal error: RuntimeError', as if the model had failed."""
    app, gate, started = _gated_app()
    with TestClient(app) as c, ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(c.post, "/analyze", json={"text": "in the model"})
        assert started.wait(5)
        c.portal.call(app.state.batcher.stop)
        gate.set()
        during = running.result()
        after = c.post("/analyze/batch", json={"texts": ["sales rose"]})
    for response in (during, after):
        assert response.status_code == 503, response.text
        assert set(response.json()) == {"error"}
        assert "stopping" in response.json()["error"]


def test_the_first_ctrl_c_answers_what_is_not_classified_with_503_at_once():
    """uvicorn waited, silently, until every queued text was classified; a second Ctrl+C
    then cancelled the waiting requests as plain-text 500s with a traceback each."""
    import os
    import signal
    import urllib.error
    import urllib.request

    from fintune.serve.app import serve_until_stopped

    app, gate, started = _gated_app()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    def post(text: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/analyze",
            data=json.dumps({"text": text}).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def clients() -> list[tuple[int, dict]]:
        for _ in range(100):  # until the server listens
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        with ThreadPoolExecutor(max_workers=2) as pool:
            in_model = pool.submit(post, "in the model")
            assert started.wait(5)
            queued = pool.submit(post, "queued behind it")
            while app.state.batcher.stats.waiting == 0:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)
            answers = [in_model.result(), queued.result()]
        gate.set()  # only now: the answers did not wait for the model
        return answers

    said = []
    with ThreadPoolExecutor(max_workers=1) as outside:
        answers = outside.submit(clients)
        with pytest.raises(KeyboardInterrupt):  # uvicorn raises the signal again on its way out
            serve_until_stopped(app, "127.0.0.1", port, say=said.append)
        answers = answers.result(timeout=10)
    assert [status for status, _ in answers] == [503, 503]
    assert all("the server is stopping" in body["error"] for _, body in answers)
    assert said == ["Stopping: requests not yet classified are answered 503 (server stopping)"]


def test_every_answer_forbids_framing_and_type_sniffing():
    """No answer said X-Frame-Options or X-Content-Type-Options: another site could frame
    the page (clickjacking the Analyze button and the key field)."""

    def boom(texts):
        raise ValueError("the model failed")

    summary = {"run": "r", "backbone": "b", "method": "full"}
    settings = ServeSettings(api_key="k", max_batch_texts=1, max_text_chars=5)
    keyed_ok = {"authorization": "Bearer k"}
    with TestClient(create_app(boom, summary, settings), raise_server_exceptions=False) as c:
        responses = [
            c.get("/"),
            c.get("/static/app.js"),
            c.get("/health"),
            c.get("/model", headers=keyed_ok),
            c.get("/openapi.json", headers=keyed_ok),
            c.get("/model"),  # 401
            c.get("/nowhere", headers=keyed_ok),  # 404
            c.post("/analyze", json={"text": ""}, headers=keyed_ok),  # 422
            c.post("/analyze", content=b"x" * 10**6, headers=keyed_ok),  # 413 unread
            c.post("/analyze", json={"text": "up"}, headers=keyed_ok),  # 500
        ]
    with TestClient(
        create_app(boom, summary, ServeSettings(loopback_only=True)),
        raise_server_exceptions=False,
    ) as c:
        responses.append(c.get("/model", headers={"host": "evil.example"}))  # 400
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 401, 404, 422, 413, 500, 400]
    for response in responses:
        assert response.headers.get("x-frame-options") == "DENY", response.request.url
        assert response.headers.get("x-content-type-options") == "nosniff"
        policy = response.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("10.1.2.3:8000", 200),
        ("[fe80::1]:8000", 200),
        ("127.0.0.1:8000", 200),
        ("localhost", 200),
        (f"{socket.gethostname().upper()}:8000", 200),
        ("attacker.example:8000", 400),
        ("10.1.2.3.nip.io:8000", 400),
        ("", 400),
    ],
)
def test_a_keyless_server_on_every_interface_answers_only_its_addresses(host, status):
    """Bound to 0.0.0.0 without a key, the server answered any Host: through DNS rebinding,
    any web site visited by anyone who could reach the port could read /model and use the
    API. An IP address or the machine's own name cannot be an attacker's DNS name."""
    answer = {"label": "up", "confidence": 1.0, "scores": {"up": 1.0}}
    summary = {"run": "r", "backbone": "/home/me/models/x", "method": "full"}
    app = create_app(
        lambda texts: [answer] * len(texts), summary, ServeSettings(addresses_only=True)
    )
    with TestClient(app) as c:
        response = c.get("/model", headers={"host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert "FINTUNE_API_KEY" in response.json()["error"] and "/home/me" not in response.text


@pytest.mark.parametrize("host", ["gpu3.corp.example:8000", "GPU3.corp.example.", "gpu3"])
def test_a_keyless_server_answers_the_names_it_was_given(host):
    """Served with --host gpu3.corp.example (or on a machine whose full name is that, where
    `hostname` says gpu3), curl http://gpu3.corp.example:8000/health got 400: only the short
    name was taken for the machine's own."""
    answer = {"label": "up", "confidence": 1.0, "scores": {"up": 1.0}}
    summary = {"run": "r", "backbone": "b", "method": "full"}
    settings = ServeSettings(addresses_only=True, host_names=("gpu3.corp.example", "gpu3"))
    app = create_app(lambda texts: [answer] * len(texts), summary, settings)
    with TestClient(app) as c:
        assert c.get("/model", headers={"host": host}).status_code == 200
        assert c.get("/model", headers={"host": "gpu3.corp.example.evil"}).status_code == 400


def test_model_gives_no_zero_width_f1_interval_for_an_all_right_test(run_dir, tmp_path):
    """24 of 24 right: accuracy got its exact [0.858, 1.0], while F1 kept the bootstrap's
    [1.0, 1.0], a 95% interval of no width. Weighted F1 is at least 2 x accuracy - 1 (at
    most 2 x accuracy), so it gets that bound of the exact one; macro F1, which a rare
    label's unseen errors can pull anywhere, gets none (null)."""
    copy = shutil.copytree(run_dir, tmp_path / "run")
    metrics = json.loads((copy / "metrics.json").read_text())
    for value, weighted in ((1.0, [0.715, 1.0]), (0.0, [0.0, 0.285])):
        metrics["test"].update(n=24, accuracy=value, f1_macro=value, f1_weighted=value)
        for name in ("accuracy", "f1_macro", "f1_weighted"):
            metrics["test"]["ci95"][name] = [value, value]
        (copy / "metrics.json").write_text(json.dumps(metrics))
        shown = run_summary(copy)["test"]
        assert shown["f1_weighted"]["ci95"] == pytest.approx(weighted, abs=5e-4)
        assert shown["f1_macro"] == {"value": value, "ci95": None}


@pytest.mark.skipif(shutil.which("node") is None, reason="no node")
def test_the_page_never_shows_an_interval_narrower_than_model_gives(tmp_path):
    """/model's exact [0.85753, 1.0] for 24 of 24 right showed as '95% CI 85.8–100.0%' on
    the page, narrower than the interval; bounds now round outwards."""
    import subprocess

    app_js = Path(__file__).parents[2] / "src/fintune/serve/static/app.js"
    model = {"name": "r", "backbone": "b", "method": "full", "test": {"n": 24}}
    model["test"]["accuracy"] = {"value": 1.0, "ci95": [0.8575264, 1.0]}
    script = tmp_path / "page.js"
    script.write_text(
        "const els = {};\n"
        "globalThis.document = {getElementById: (id) => (els[id] ??= {value: '', "
        "textContent: '', addEventListener() {}})};\n"
        "globalThis.location = {host: 'h'};\n"
        f"globalThis.fetch = async () => ({{ok: true, json: async () => ({json.dumps(model)})}});\n"
        + app_js.read_text()
        + "\nsetTimeout(() => console.log(els['model-info'].textContent), 50);\n"
    )
    shown = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=30)
    assert "(95% CI 85.7–100.0%, n=24)" in shown.stdout, shown.stdout + shown.stderr


def test_a_batching_worker_stopped_by_a_bug_is_a_500_naming_it_not_stopping(caplog):
    """A model answering None stopped the batcher's worker: the request in it hung for ever,
    every later one got 503 'the server is stopping', and /health still said ok."""
    import asyncio

    summary = {"run": "r", "backbone": "b", "method": "full"}
    app = create_app(lambda texts: None, summary, ServeSettings())
    with TestClient(app) as c:
        with pytest.raises(Exception) as first:  # noqa: PT011 (any error, but at once)
            c.portal.call(asyncio.wait_for, app.state.batcher.submit(["sales rose"]), 3)
        later = c.post("/analyze/batch", json={"texts": ["profit fell"]})
        health, head = c.get("/health"), c.head("/health")
    assert "TypeError" in str(first.value), repr(first.value)
    assert later.status_code == 500, later.text
    message = later.json()["error"]
    assert message.startswith("internal error: ") and "TypeError" in message
    assert "restart the server" in message and "stopping" not in message
    assert health.status_code == 500 and health.json()["status"] == "failed"
    assert head.status_code == 500
    assert "stopped on a bug" in caplog.text and "TypeError" in caplog.text


def test_the_favicon_browsers_ask_for_is_answered_without_a_key(client, keyed):
    """Every page load asked /favicon.ico and got a 404 (401 with a key), which browsers
    log as an error in the console. It is now an empty 204, open like the page."""
    for c in (client, keyed):
        response = c.get("/favicon.ico")
        assert response.status_code == 204 and response.content == b""
    assert keyed.get("/favicon.ico/model").status_code == 401
    assert keyed.get("/model").status_code == 401
    assert "/favicon.ico" not in client.get("/openapi.json").json()["paths"]


def test_a_batching_worker_stopped_by_a_bug_names_its_type_not_its_message(caplog):
    """The 500 and the open /health quoted the bug's message, which can carry a request's
    text (a KeyError names its key); like every other 500 they now name only its type, and
    the message goes to the log."""
    import asyncio

    class Broken:  # answers, but cannot be sliced: the bug is past the model call
        def __init__(self, texts):
            self.texts = texts

        def __getitem__(self, _):
            raise KeyError(self.texts[0])

    summary = {"run": "r", "backbone": "b", "method": "full"}
    app = create_app(Broken, summary, ServeSettings())
    with TestClient(app) as c:
        with pytest.raises(BatcherFailed):
            c.portal.call(asyncio.wait_for, app.state.batcher.submit(["secret merger terms"]), 3)
        later = c.post("/analyze/batch", json={"texts": ["profit fell"]})
        health = c.get("/health")
    for answer in (later, health):
        assert answer.status_code == 500
        assert "KeyError" in answer.text and "secret" not in answer.text, answer.text
    assert "secret merger terms" in caplog.text


def test_model_names_the_base_commit_the_run_trained_on(run_dir, tmp_path):
    """predict and serve reload an adapter's hub base at environment.json's model_commit,
    but /model said only the backbone's name: which weights were served could not be seen.
    It gives the commit (null for a local or packaged base, or without the record)."""
    copy = shutil.copytree(run_dir, tmp_path / "run")
    assert run_summary(copy)["base_commit"] is None  # a local base
    commit = "c0ffee" * 6 + "c0ff"
    (copy / "environment.json").write_text(json.dumps({"model_commit": commit}))
    assert run_summary(copy)["base_commit"] == commit
    (copy / "environment.json").write_text("{")  # not the summary's to refuse
    assert run_summary(copy)["base_commit"] is None


def test_a_text_the_model_scores_nan_is_a_500_that_says_so_and_fails_only_its_request():
    """A model's NaN outputs were answered 200, with a label and confidence null."""

    def model(texts):
        if "nan" in texts:
            raise NonFiniteScores(f"the model's outputs are NaN or infinite for 1 of {len(texts)}")
        return [{"label": "up", "confidence": 1.0, "scores": {"up": 1.0}} for _ in texts]

    app = create_app(model, {"run": "r", "backbone": "b", "method": "full"}, ServeSettings())
    with TestClient(app) as c:
        broken = c.post("/analyze/batch", json={"texts": ["sales rose", "nan"]})
        after = c.post("/analyze", json={"text": "sales rose"})
        health = c.get("/health")
    assert broken.status_code == 500
    assert broken.json() == {"error": "the model's outputs are NaN or infinite for 1 of 2"}
    assert after.status_code == 200 and health.status_code == 200


def test_a_nan_scored_text_is_named_as_the_request_names_it():
    """The error counted texts from 1 (the CLI's "text 2") where every other error of the
    API names that text texts[1]: a user looked at the wrong text."""

    def model(texts):
        if rows := [i for i, text in enumerate(texts) if "nan" in text]:
            raise NonFiniteScores("text 2", rows, len(texts), "its weights are finite")
        return [{"label": "up", "confidence": 1.0, "scores": {"up": 1.0}} for _ in texts]

    app = create_app(model, {"run": "r", "backbone": "b", "method": "full"}, ServeSettings())
    with TestClient(app) as c:
        batch = c.post("/analyze/batch", json={"texts": ["sales rose", "nan", "fell"]})
        single = c.post("/analyze", json={"text": "nan"})
    assert batch.status_code == 500 and single.status_code == 500
    assert batch.json()["error"] == (
        "the model's outputs are NaN or infinite for 1 of 3 texts (texts[1]), so they have no "
        "label: its weights are finite"
    )
    assert single.json()["error"] == (
        "the model's outputs are NaN or infinite, so the text has no label: its weights are finite"
    )
