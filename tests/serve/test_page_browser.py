"""End to end in a real browser: `fintune serve` on a free loopback port, headless Chromium
(Debian's package) driven by Playwright types a sentence, clicks Analyze, and reads the
label and the bars off the page.

FINTUNE_E2E_RUN=<run dir> serves that run instead of a tiny one, and FINTUNE_SCREENSHOT=<png>
saves the page (the README's screenshot is made this way)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fintune.recipes.classification import run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SENTENCE = "Quarterly profit rose and the company raised its dividend."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("server did not become healthy")


@pytest.fixture
def served(make_config):
    if not CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    run_dir = Path(os.environ.get("FINTUNE_E2E_RUN") or run(make_config(training={"epochs": 2})))
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fintune.cli", "serve", str(run_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, run_dir
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_type_click_and_read_the_result(served):
    from playwright.sync_api import expect, sync_playwright

    url, run_dir = served
    labels = json.loads((run_dir / "metrics.json").read_text())["labels"]
    request = urllib.request.Request(
        url + "/analyze",
        data=json.dumps({"text": SENTENCE}).encode(),
        headers={"Content-Type": "application/json"},
    )
    expected = json.loads(urllib.request.urlopen(request, timeout=10).read())

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's width
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.get_by_label("Text to analyse").fill(SENTENCE)
        page.get_by_role("button", name="Analyze").click()
        page.locator("#result").wait_for(state="visible", timeout=15_000)

        assert page.locator("#label").inner_text() == expected["label"]
        bars = page.locator("#bars li")
        assert bars.count() == len(labels)
        shown = {}
        for i in range(bars.count()):
            bar = bars.nth(i)
            value = float(bar.locator(".track").get_attribute("aria-valuenow"))
            shown[bar.get_attribute("data-label")] = value
        assert set(shown) == set(labels)
        for label, percent in shown.items():
            assert percent == pytest.approx(expected["scores"][label] * 100, abs=0.06)
        assert SENTENCE[:40] in page.locator("#recent").inner_text()
        widths = page.evaluate(
            """() => [...document.querySelectorAll('#bars .fill')].map(
                (f) => f.getBoundingClientRect().width / f.parentElement.clientWidth * 100)"""
        )
        for width, percent in zip(widths, shown.values(), strict=True):  # drawn, not just said
            assert width == pytest.approx(percent, abs=1.0)
        # locators, not wait_for_function: the server's CSP forbids the eval that one uses
        expect(page.locator("#model-info")).to_contain_text("test accuracy")

        # keyboard only: Ctrl+Enter in the text area submits too
        page.get_by_label("Text to analyse").fill("Net sales fell 12% and the outlook was cut.")
        page.get_by_label("Text to analyse").press("Control+Enter")
        page.locator("#recent li").nth(1).wait_for()
        assert not [e for e in errors if "Content Security Policy" in e]  # nothing refused

        if os.environ.get("FINTUNE_SCREENSHOT"):
            page.get_by_label("Text to analyse").fill(SENTENCE)
            page.get_by_role("button", name="Analyze").click()
            page.locator("#recent li").nth(2).wait_for()
            page.screenshot(path=os.environ["FINTUNE_SCREENSHOT"], full_page=True)
        browser.close()


STATIC = Path(__file__).resolve().parents[2] / "src" / "fintune" / "serve" / "static"


def _page_with(answers: dict):
    """The page in Chromium with the API answered from `answers` (path -> JSON): no server,
    no model. Yields the page and the list of dialogs/console errors seen."""
    from playwright.sync_api import sync_playwright

    files = {"/": "index.html", "/static/app.js": "app.js", "/static/style.css": "style.css"}
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    def answer(route):
        path = "/" + route.request.url.split("/", 3)[3].split("?")[0]
        if path in files:
            name = files[path]
            body = (STATIC / name).read_text()
            return route.fulfill(body=body, content_type=kinds[Path(name).suffix])
        return route.fulfill(json=answers[path])

    p = sync_playwright().start()
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page()
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    page.route("http://fintune.test/**", answer)
    page.goto("http://fintune.test/")
    return p, browser, page, seen


MODEL = {
    "run": "r",
    "name": "tiny",
    "backbone": "b",
    "method": "full",
    "labels": ["down", "up"],
    "test": {"n": 10, "accuracy": {"value": 0.9, "ci95": [0.6, 1.0]}},
}


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_the_page_says_when_the_test_figures_are_not_the_served_precisions():
    """Served in int8, the page showed the fp32 model's test accuracy as if it were the
    served model's."""
    p, browser, page, _ = _page_with({"/model": {**MODEL, "precision": "int8"}})
    try:
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.startsWith('Loading')"
        )
        info = page.locator("#model-info").inner_text()
    finally:
        browser.close()
        p.stop()
    assert "test accuracy 90.0%" in info
    assert "served in int8; the test figures are the fp32 model's" in info


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_the_page_notes_a_text_cut_at_the_models_max_length():
    cut = {"label": "up", "confidence": 0.9, "scores": {"down": 0.1, "up": 0.9}, "truncated": True}
    answers = {"/model": {**MODEL, "precision": "fp32", "max_length": 64}, "/analyze": cut}
    p, browser, page, _ = _page_with(answers)
    try:
        page.wait_for_function(
            "!document.getElementById('model-info').textContent.startsWith('Loading')"
        )
        page.get_by_label("Text to analyse").fill("sales rose " * 100)
        page.get_by_role("button", name="Analyze").click()
        page.locator("#truncated").wait_for(state="visible", timeout=15_000)
        note = page.locator("#truncated").inner_text()
        answers["/analyze"] = {**cut, "truncated": False}
        page.get_by_role("button", name="Analyze").click()
        page.locator("#truncated").wait_for(state="hidden", timeout=15_000)
    finally:
        browser.close()
        p.stop()
    assert "64 tokens" in note and "beginning" in note


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_html_in_a_label_a_text_or_the_model_name_is_shown_never_run():
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    result = {"label": attack, "confidence": 0.9, "scores": {attack: 0.9, "up": 0.1}}
    answers = {"/model": {**MODEL, "name": attack, "precision": "fp32"}, "/analyze": result}
    p, browser, page, dialogs = _page_with(answers)
    try:
        page.get_by_label("Text to analyse").fill(attack)
        page.get_by_role("button", name="Analyze").click()
        page.locator("#result").wait_for(state="visible", timeout=15_000)
        page.wait_for_timeout(300)
        label = page.locator("#label").inner_text()
        recent = page.locator("#recent").inner_text()
        info = page.locator("#model-info").inner_text()
        images = page.locator("img").count()
    finally:
        browser.close()
        p.stop()
    assert dialogs == [] and images == 0
    assert label == attack and attack[:40] in recent and attack in info


def _model_loaded(page) -> None:
    page.wait_for_function(
        "!document.getElementById('model-info').textContent.startsWith('Loading')"
    )


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_ctrl_enter_while_an_analysis_is_running_sends_no_second_request():
    """The button is disabled while a request runs, but Ctrl+Enter submitted again: the
    answers could come back out of order, showing an older text's result under a newer text."""
    up = {"label": "up", "confidence": 0.9, "scores": {"down": 0.1, "up": 0.9}}
    p, browser, page, _ = _page_with({"/model": {**MODEL, "precision": "fp32"}})
    held = []
    page.route("http://fintune.test/analyze", lambda route: held.append(route))  # unanswered
    try:
        _model_loaded(page)
        box = page.get_by_label("Text to analyse")
        box.fill("Sales rose.")
        box.press("Control+Enter")
        box.fill("Sales fell.")
        box.press("Control+Enter")
        page.wait_for_timeout(500)
        sent = [json.loads(route.request.post_data)["text"] for route in held]
        held[0].fulfill(json=up)
        page.locator("#result").wait_for(state="visible", timeout=15_000)
        button_back = page.locator("#analyze").is_enabled()
    finally:
        browser.close()
        p.stop()
    assert sent == ["Sales rose."]
    assert button_back


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_a_failed_analysis_does_not_leave_the_previous_texts_result_on_show():
    """After a 503 (or any error) the previous text's label and bars stayed on the page
    under the new text, read as its result."""
    up = {"label": "up", "confidence": 0.9, "scores": {"down": 0.1, "up": 0.9}}
    answers = {"/model": {**MODEL, "precision": "fp32"}, "/analyze": up}
    p, browser, page, _ = _page_with(answers)
    busy = {"error": "the server is busy: 9 texts are waiting for the model; try again shortly"}
    try:
        _model_loaded(page)
        page.get_by_label("Text to analyse").fill("Sales rose.")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#result").wait_for(state="visible", timeout=15_000)
        page.route(
            "http://fintune.test/analyze",
            lambda route: route.fulfill(status=503, json=busy, headers={"Retry-After": "1"}),
        )
        page.get_by_label("Text to analyse").fill("Sales fell.")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#error").wait_for(state="visible", timeout=15_000)
        error = page.locator("#error").inner_text()
        result_shown = page.locator("#result").is_visible()
    finally:
        browser.close()
        p.stop()
    assert "the server is busy" in error
    assert not result_shown


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_a_server_that_is_gone_is_said_in_words_not_as_failed_to_fetch():
    """With the server stopped, the page said only the browser's 'Failed to fetch'."""
    p, browser, page, _ = _page_with({"/model": {**MODEL, "precision": "fp32"}})
    page.route("http://fintune.test/analyze", lambda route: route.abort("connectionrefused"))
    try:
        _model_loaded(page)
        page.get_by_label("Text to analyse").fill("Sales rose.")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#error").wait_for(state="visible", timeout=15_000)
        error = page.locator("#error").inner_text()
        button_back = page.locator("#analyze").is_enabled()
    finally:
        browser.close()
        p.stop()
    assert "cannot reach the server" in error and "running" in error
    assert button_back


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_77_long_label_names_are_each_shown_whole_beside_their_bar():
    """Banking77's names ('card_payment_fee_charged', 'card_payment_not_recognised', ...)
    ran under the bars: every row read 'card_payment_', so no bar could be told apart."""
    labels = [f"card_payment_wrong_exchange_rate_{i}" for i in range(77)]
    scores = {label: 1 / 77 for label in labels}
    result = {"label": labels[5], "confidence": 1 / 77, "scores": scores}
    answers = {"/model": {**MODEL, "labels": labels, "precision": "fp32"}, "/analyze": result}
    p, browser, page, _ = _page_with(answers)
    try:
        page.get_by_label("Text to analyse").fill("Why was I charged this rate?")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#result").wait_for(state="visible", timeout=15_000)
        rows = page.evaluate(
            """() => [...document.querySelectorAll('#bars li')].map((li) => {
                const name = li.querySelector('.name');
                return [name.scrollWidth <= name.clientWidth,
                        name.getBoundingClientRect().right
                          <= li.querySelector('.track').getBoundingClientRect().left];
            })"""
        )
    finally:
        browser.close()
        p.stop()
    assert len(rows) == 77
    assert all(fits and clear for fits, clear in rows)


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_a_key_with_characters_http_cannot_send_is_named_as_the_problem():
    """A key pasted with a non-Latin-1 character made fetch itself fail: the page blamed
    the server ('cannot reach the server') or showed the browser's header error."""
    p, browser, page, _ = _page_with({"/model": {**MODEL, "precision": "fp32"}})
    try:
        _model_loaded(page)
        page.locator("#key-box summary").click()
        page.get_by_label("API key", exact=True).fill("ключ-123")
        page.get_by_label("Text to analyse").fill("Sales rose.")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#error").wait_for(state="visible", timeout=15_000)
        error = page.locator("#error").inner_text()
    finally:
        browser.close()
        p.stop()
    assert error.startswith("API key:") and "printable ASCII" in error
    assert "reach the server" not in error


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_the_bars_are_ordered_by_probability_so_the_answer_is_on_top():
    """With Banking77's 77 labels the bars came in label order: the answer and its runners-up
    were somewhere in a list of 77. Ties keep the label order."""
    labels = [f"intent_{i:02d}" for i in range(77)]
    scores = {label: 0.001 for label in labels}
    scores.update({"intent_70": 0.6, "intent_03": 0.2, "intent_40": 0.1})
    result = {"label": "intent_70", "confidence": 0.6, "scores": scores}
    answers = {"/model": {**MODEL, "labels": labels, "precision": "fp32"}, "/analyze": result}
    p, browser, page, _ = _page_with(answers)
    try:
        page.get_by_label("Text to analyse").fill("Why was I charged this rate?")
        page.get_by_role("button", name="Analyze").click()
        page.locator("#result").wait_for(state="visible", timeout=15_000)
        shown = page.locator("#bars li .name").all_inner_texts()
        best = page.locator("#bars li.best .name").all_inner_texts()
    finally:
        browser.close()
        p.stop()
    assert shown[:5] == ["intent_70", "intent_03", "intent_40", "intent_00", "intent_01"]
    assert sorted(shown) == labels and best == ["intent_70"]


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
@pytest.mark.parametrize(
    ("precision", "want"),
    [
        ("fp32", "Model: tiny (b, full)"),
        ("int8", "Model: tiny (b, full) · served in int8"),
    ],
)
def test_a_run_without_test_metrics_shows_no_stray_separator(precision, want):
    """A run with no test split showed 'Model: tiny (b, full) · ' (and '·  · served in int8;
    the test figures are the fp32 model's', figures it does not have)."""
    model = {**MODEL, "test": {"n": None}, "precision": precision}
    p, browser, page, _ = _page_with({"/model": model})
    try:
        _model_loaded(page)
        info = page.locator("#model-info").inner_text()
    finally:
        browser.close()
        p.stop()
    assert info == want
