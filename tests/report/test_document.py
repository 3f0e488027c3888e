"""Markdown table rows stay one row whatever a label holds."""

import html
import re
from pathlib import Path

import pytest

from fintune.report.document import Document, bold, lead_bold, table_row


def test_a_line_break_or_a_pipe_in_a_cell_stays_inside_its_row():
    row = table_row(["new\nline", "a|b", "crlf\r\nhere", "0.5"])
    assert row == "| new line | a\\|b | crlf here | 0.5 |"
    assert row.replace("\\|", "").count("|") == 5


def _gfm_cells(row: str) -> list[str]:
    """A row's cells as GitHub's Markdown shows them: a backslash escapes the character
    after it (so in `\\|` the pipe ends the cell), then `\\|` is a pipe and a backslash
    before punctuation is dropped."""
    cells, cell, i = [], "", 0
    body = row.strip()[1:-1]  # without the outer pipes
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cell, i = cell + body[i : i + 2], i + 2
        elif body[i] == "|":
            cells.append(cell)
            cell, i = "", i + 1
        else:
            cell, i = cell + body[i], i + 1
    cells.append(cell)
    shown = [c.strip().replace("\\|", "|") for c in cells]
    return [re.sub(r"\\([!-/:-@[-`{-~])", r"\1", c) for c in shown]


def test_a_label_with_a_backslash_before_a_pipe_keeps_its_row_and_its_text():
    """A label `a\\|b`: its pipe was escaped to `a\\\\|b`, where the backslash escapes
    the backslash and the pipe ends the cell, so the row got a column too many."""
    labels = ["a\\|b", "c\\", "x\\<!-- y", "plain|pipe", "0.5"]
    assert _gfm_cells(table_row(labels)) == labels


def test_a_cell_cannot_open_an_html_comment_or_tag():
    """A label "<!-- down" opened an HTML comment: a viewer hid the rest of the report."""
    assert table_row(["<!-- down", "<b>up"]) == "| \\<!-- down | \\<b>up |"


def test_a_label_missing_from_train_is_listed_escaped_too():
    from fintune.report.markdown import _quality_lines

    (line,) = _quality_lines({"labels_missing_from_train": ["<!-- down", "up"]}, None)
    assert line == "- labels with no training example: \\<!-- down, up"


def test_labels_missing_from_a_held_out_split_are_a_data_quality_line():
    """A label with training examples but none in test was in no line of the report."""
    from fintune.report.markdown import _quality_lines

    report = {"labels_missing_from_validation": ["c"], "labels_missing_from_test": ["c", "d"]}
    assert _quality_lines(report, None) == [
        "- labels with no validation example: c",
        "- labels with no test example: c, d",
    ]


def test_texts_with_another_label_in_another_split_are_shown_with_examples():
    """The report said only 'conflicting texts across splits: 2', naming none of them."""
    from fintune.report.markdown import _quality_lines

    long = "Profit rose " + "x" * 100
    duplicates = {
        "conflicting_texts_across_splits": 2,
        "examples_of_conflicts_across_splits": [long, "<b>Sales fell"],
    }
    assert _quality_lines({"duplicates": duplicates}, None) == [
        "- texts with another label in another split: 2 (such as "
        f"'{long[:80]}…', '\\<b>Sales fell'; data.json lists up to 5)"
    ]
    none = {"conflicting_texts_across_splits": 0}
    assert _quality_lines({"duplicates": none}, None) == ["- conflicting texts across splits: 0"]


def test_texts_equal_only_in_unicode_form_are_a_data_quality_line():
    from fintune.report.markdown import _quality_lines

    variants = {"train": 1, "train/test": 2, "example": "Caf\u00e9"}
    (line,) = _quality_lines({"unicode_variants": variants}, None)
    assert line.endswith(
        "(composed or decomposed accents; neither deduplicated nor dropped): train 1, train/test 2"
    )


def test_a_heading_or_paragraph_naming_an_axis_value_stays_text():
    """A study's group heading and its lists of cells hold axis values as written (a
    variant's name, a data path): "<!--" opened a comment that hid the rest of report.md,
    "<script>" was a tag, and a line break ended the heading mid-name."""
    from pathlib import Path

    from fintune.report.document import Document

    doc = Document("Study s")
    doc.heading("data=fpb <!-- x\nz")
    doc.text("Not run: method=<script>alert(1)</script>")
    doc.text("in code it is as written: `a<b`")
    md = doc.markdown(Path("."))
    assert "## data=fpb \\<!-- x z\n" in md
    assert "Not run: method=\\<script>alert(1)\\</script>" in md
    assert "`a<b`" in md
    page = doc.html()
    assert "<h2>data=fpb &lt;!-- x\nz</h2>" in page and "\\&lt;" not in page


def _rendered(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")  # CommonMark, raw HTML on
    return markdown_it.MarkdownIt("commonmark").render(markdown)


def test_a_backslash_before_a_less_than_cannot_reopen_a_tag_outside_tables():
    """plain_text escaped "<" but not a backslash before it: a label `a\\<b>` became
    `a\\\\<b>`, an escaped backslash and then a real <b> element (in the edge note, the
    labels-missing lines, headings and paragraphs; table cells were right)."""
    from fintune.report.markdown import _quality_lines

    (line,) = _quality_lines({"labels_missing_from_test": ["a\\<b>"]}, None)
    assert "<b>" not in _rendered(line)
    doc = Document("Study s")
    doc.heading("data=a\\<b>x")
    doc.text("Not run: method=a\\<script> and `code <kept>`")
    page = _rendered(doc.markdown(Path(".")))
    assert "<b>" not in page and "<script>" not in page
    assert "a\\&lt;b&gt;x" in page and "<code>code &lt;kept&gt;</code>" in page


def test_backticks_in_labels_stay_text_in_the_reports_lines():
    """Two labels with a backtick each (a`b, c`d) made one code span across the labels-missing
    line, hiding the comma between them; a heading's label was code too."""
    from fintune.report.markdown import _quality_lines

    (line,) = _quality_lines({"labels_missing_from_test": ["a`b", "c`d <x>"]}, None)
    page = _rendered(line)
    assert "<code>" not in page and "a`b, c`d &lt;x&gt;" in page
    doc = Document("Study s")
    doc.heading("data=`fpb`")
    heading = _rendered(doc.markdown(Path(".")))
    assert "<code>" not in heading and "data=`fpb`" in heading


def test_a_code_span_in_a_table_cell_keeps_its_less_than():
    """Inside `code` a backslash shows: the traceback path `a<b` read `a\\<b`."""
    assert table_row(["`a<b`", "a<b"]) == "| `a<b` | a\\<b |"


MARKED_LABELS = [
    "*up*",
    "**bold**",
    "a**b**c",
    "_down_",
    "[flat](http://x)",
    "~~gone~~",
    "&amp;",
    "card_arrival",
]


def _rendered_gfm(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)


def test_markdown_marks_in_a_label_show_as_written_not_as_emphasis_links_or_strikes():
    """Labels `*up*`, `_down_` and `[flat](…)` were italics and a link in report.md's
    tables and lines, so the table showed "up", "down" and "flat" for three other labels."""
    from fintune.report.markdown import _quality_lines

    header = table_row(["label", "n"])
    rows = "\n".join(table_row([label, "1"]) for label in MARKED_LABELS)
    (line,) = _quality_lines({"labels_missing_from_test": MARKED_LABELS}, None)
    doc = Document("Study s")
    doc.heading("method=*up*")
    doc.text("Not run: label=_down_ and " + bold("bold kept"))
    for page in (
        _rendered_gfm(f"{header}\n|---|---|\n{rows}\n"),
        _rendered_gfm(line),
        _rendered_gfm(doc.markdown(Path("."))),
    ):
        assert not re.search(r"<(em|a|del|s)\b", page), page
    table = _rendered_gfm(f"{header}\n|---|---|\n{rows}\n")
    cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", table)][::2]
    assert cells == MARKED_LABELS
    assert "<strong>bold kept</strong>" in _rendered_gfm(doc.markdown(Path(".")))
    assert table_row(["card_arrival", "[0.1, 0.5]"]) == "| card_arrival | [0.1, 0.5] |"


def test_text_markdown_shows_as_written_keeps_its_raw_form():
    """Escaping every backslash and tilde made paths hard to read in report.md: a backslash
    before a letter and a lone "~" are text in Markdown already."""
    cells = ["C:\\Users\\me", "~/data/x.csv", "~~gone~~", "a\\<b>"]
    row = table_row(cells)
    assert row.startswith("| C:\\Users\\me | ~/data/x.csv | ")
    rendered = [
        html.unescape(c)
        for c in re.findall(
            r"<td>(.*?)</td>",
            _rendered_gfm(f"{table_row(['a', 'b', 'c', 'd'])}\n|---|---|---|---|\n{row}\n"),
        )
    ]
    assert rendered == cells


def test_only_the_reports_own_bold_is_bold_in_markdown_and_html():
    """'**' was spared for the reports' own bold, so a label `**up**` was bold too."""
    doc = Document("Study s")
    doc.table(["cell", "verdict"], [[bold("method=**x**"), bold("better")]])
    doc.text(lead_bold("**Small sample** (method=**x** test n = 24): few examples"))
    md = doc.markdown(Path("."))
    assert "| **method=\\*\\*x\\*\\*** | **better** |" in md
    assert "**Small sample** (method=\\*\\*x\\*\\* test n = 24)" in md
    rendered = _rendered_gfm(md)
    assert (
        "<strong>method=**x**</strong>" in rendered and "<strong>Small sample</strong>" in rendered
    )
    page = doc.html()
    assert "<strong>method=**x**</strong>" in page and "<strong>better</strong>" in page
    assert "<strong>Small sample</strong> (method=**x** test" in page


def test_a_line_break_in_a_name_cannot_start_a_heading_or_table_in_a_paragraph():
    """A study's notes and lists name cells as written: a variant label with line breaks
    ended the note mid-name, and its next lines became a heading and a table."""
    doc = Document("Study s")
    doc.text("Not run: method=full\n\n# Injected\n| a | b |\n|---|---|\n| c | d |")
    rendered = _rendered_gfm(doc.markdown(Path(".")))
    assert rendered.count("<h1>") == 1 and "<table>" not in rendered
    assert "Injected | a | b |" in html.unescape(rendered)


def test_a_bold_name_ending_in_a_backslash_stays_bold_with_its_backslash():
    """The backslash of `C:\\data\\` escaped the closing "*" of its bold in report.md."""
    doc = Document("Study s")
    doc.table(["cell"], [[bold("data=C:\\data\\")]])
    assert "<strong>data=C:\\data\\</strong>" in _rendered_gfm(doc.markdown(Path(".")))


def test_a_stop_while_the_report_is_written_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    """report.md and report.html were written in place: a Ctrl+C while a resumed study
    rewrote them left them cut short."""
    import fintune.run_dir as run_dir

    (tmp_path / "report.md").write_text("# earlier\n", encoding="utf-8")
    (tmp_path / "report.html").write_text("<p>earlier</p>\n", encoding="utf-8")
    doc = Document("Study s")
    doc.text("new " * 10_000)

    def stop(_path):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_dir, "_sync", stop)  # the stop comes before the rename
    with pytest.raises(KeyboardInterrupt):
        doc.write(tmp_path)
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == "# earlier\n"
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == "<p>earlier</p>\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md"]


def test_an_underscore_at_a_word_edge_in_a_name_is_not_emphasis():
    """A study named `q3._draft_` had a heading Markdown showed as 'q3.' and an italic 'draft'."""
    assert Document("Study q3._draft_").markdown(Path(".")).startswith("# Study q3.\\_draft\\_\n")
