"""Markdown table rows stay one row whatever a label holds."""

from fintune.report.document import table_row


def test_a_line_break_or_a_pipe_in_a_cell_stays_inside_its_row():
    row = table_row(["new\nline", "a|b", "crlf\r\nhere", "0.5"])
    assert row == "| new line | a\\|b | crlf here | 0.5 |"
    assert row.replace("\\|", "").count("|") == 5
