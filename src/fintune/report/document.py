"""A report as a list of blocks, rendered twice: Markdown next to its PNGs, and one
self-contained HTML file with the images inlined (mail it, open it offline)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from fintune.run_dir import write_whole


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self, base: Path) -> str:
        out = [f"# {plain_text(self.title)}", ""]
        for block in self.blocks:
            if block[0] == "h2":
                out += [f"## {plain_text(block[1])}", ""]
            elif block[0] == "p":
                out += [_no_tags(block[1]), ""]
            elif block[0] == "table":
                out.append(table_row(block[1]))
                out.append("|" + "---|" * len(block[1]))
                out += [table_row(row) for row in block[2]]
                out.append("")
            elif block[0] == "img":
                out += [f"![{block[2]}]({block[1].relative_to(base).as_posix()})", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if block[0] == "h2":
                body.append(f"<h2>{html.escape(block[1])}</h2>")
            elif block[0] == "p":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif block[0] == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in block[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in block[2]
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif block[0] == "img":
                data = base64.b64encode(block[1].read_bytes()).decode()
                alt = html.escape(block[2])
                body.append(f'<img alt="{alt}" src="data:image/png;base64,{data}">')
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n"
        )

    def write(self, folder: Path, stem: str = "report") -> tuple[Path, Path]:
        md, page = folder / f"{stem}.md", folder / f"{stem}.html"
        # whole or not at all: a stop while a resumed study or sweep rewrites its report
        # would leave it cut short
        write_whole(md, self.markdown(folder))
        write_whole(page, self.html())
        return md, page


def table_row(cells: list[str]) -> str:
    """A Markdown table row; a "|" inside a cell (say, in a label) is escaped, and so is a
    backslash outside `code` (in a label `a\\|b`, it escaped the escape, and the pipe split
    the cell); a line break, which would end the row, becomes a space."""
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


BOLD = "\ue000"  # (private use) the reports' own bold: "**" in text from the data stays text


def bold(text: str) -> str:
    return f"{BOLD}{text}{BOLD}"


def lead_bold(note: str) -> str:
    """A note that opens with a fixed title in **…** (metrics.py's), its title as bold()."""
    match = re.match(r"\*\*([^*]+)\*\*", note)
    return bold(match.group(1)) + note[match.end() :] if match else note


def _cell(text: str) -> str:
    one_line = " ".join(str(text).splitlines())
    return _marks(_outside_code(one_line, _literal).replace("|", "\\|"))


def plain_text(text: str) -> str:
    """Text from the data (a label) as one line that Markdown shows as it is: a "<" could
    open an HTML tag or comment ("<!-- down" hid the rest of the report), and a backtick a
    code span reaching into the next label (such a line holds no code of its own)."""
    return _marks(_literal(" ".join(str(text).splitlines())).replace("`", "\\`"))


def _no_tags(text: str) -> str:
    """A paragraph that may name axis values or paths: "<" is text, except in `code`,
    which Markdown shows as it is; one line (a line break in a name could start a heading
    or a table)."""
    return _marks(_outside_code(" ".join(str(text).splitlines()), _literal))


def _marks(markdown: str) -> str:
    return markdown.replace(BOLD, "**")


# What Markdown would read as markup in text from the data (a label, an axis value): a
# backslash before punctuation, at the end or before bold()'s mark (left alone, the one in
# `a\\<b>` escaped the escape and <b> was a tag again, and the one in a bold `C:\data\` the
# closing "*"; before a letter, as in C:\Users, it is text), "<" (a tag
# or comment), "](" (a link), "~" where two could strike through, "&" before an entity
# name, "*" and a "_" at a word's edge (emphasis: `*up*`, `**up**`, `_up_`). Kept: "_"
# inside a word (`card_arrival`), which is never emphasis. The reports' own bold is bold().
_MARKUP = re.compile(
    r"\\(?=[!-/:-@\[-`{-~]|\ue000|$)|[<~]|\](?=[(\[])|&(?=#?\w+;)|\*"
    r"|(?<![^\W_])_|_(?![^\W_])"
)


def _literal(text: str) -> str:
    strikes = text.count("~") > 1  # one alone strikes nothing through: ~/data stays as is
    return _MARKUP.sub(
        lambda m: m.group() if m.group() == "~" and not strikes else "\\" + m.group(), text
    )


def _outside_code(text: str, escape) -> str:
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code span
        return escape(text)
    return "`".join(p if i % 2 else escape(p) for i, p in enumerate(parts))


def _inline(text: str) -> str:
    """Escape, then the reports' own marks: bold() and `code`."""
    out = html.escape(text)
    for mark, tag in ((BOLD, "strong"), ("`", "code")):
        parts = out.split(mark)
        if len(parts) % 2 == 1:
            out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(parts))
    return out


STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;
color:#1a1a1a}
table{border-collapse:collapse;margin:1rem 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f2f2f2}
img{max-width:100%;display:block;margin:1rem 0}
code{background:#f2f2f2;padding:0 3px}
"""
