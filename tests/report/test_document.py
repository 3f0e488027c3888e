"""Markdown table rows stay one row whatever a label holds."""

from fintune.report.document import table_row


def test_a_line_break_or_a_pipe_in_a_cell_stays_inside_its_row():
    row = table_row(["new\nline", "a|b", "crlf\r\nhere", "0.5"])
    assert row == "| new line | a\\|b | crlf here | 0.5 |"
    assert row.replace("\\|", "").count("|") == 5


def test_a_cell_cannot_open_an_html_comment_or_tag():
    """A label "<!-- down" opened an HTML comment: a viewer hid the rest of the report."""
    assert table_row(["<!-- down", "<b>up"]) == "| \\<!-- down | \\<b>up |"


def test_a_label_missing_from_train_is_listed_escaped_too():
    from fintune.report.markdown import _quality_lines

    (line,) = _quality_lines({"labels_missing_from_train": ["<!-- down", "up"]}, None)
    assert line == "- labels with no training example: \\<!-- down, up"
