"""Optional text cleaning. Each step is a switch in `data.cleaning`, all off by default,
applied in a fixed order so that two configs with the same switches clean alike.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from html.entities import html5

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from fintune.config.schema import CleaningConfig

# HTML's elements, and some obsolete ones still found in old pages
_ELEMENTS = (
    "a|abbr|acronym|address|area|article|aside|audio|b|base|basefont|bdi|bdo|big|blink|"
    "blockquote|body|br|button|canvas|caption|center|cite|code|col|colgroup|data|"
    "datalist|dd|del|details|dfn|dialog|dir|div|dl|dt|em|embed|fieldset|figcaption|"
    "figure|font|footer|form|frame|frameset|h1|h2|h3|h4|h5|h6|head|header|hgroup|hr|html|"
    "i|iframe|img|input|ins|kbd|label|legend|li|link|main|map|mark|marquee|menu|meta|"
    "meter|nav|nobr|noframes|noscript|object|ol|optgroup|option|output|p|param|picture|"
    "pre|progress|q|rp|rt|ruby|s|samp|script|search|section|select|slot|small|source|"
    "span|strike|strong|style|sub|summary|sup|svg|table|tbody|td|template|textarea|tfoot|"
    "th|thead|time|title|tr|track|tt|u|ul|var|video|wbr"
)
# A tag opens with an element's name, in any case, and a space, '>' or '/>' ('<p>',
# '</TD >', '<br/>'), a namespaced one ('<o:p>', Word's), or '<!DOCTYPE' and '<?xml'. Any
# other '<' is text: a comparison ("EPS < 1.2 while margin > 5%", "<EUR 5m and >EUR 2m",
# "<P/E of 15": a browser reads '<p/e' as a tag, but in finance it is a ratio).
# A quoted attribute value and a comment may hold '>'. A quote inside an unquoted
# value (alt=O'Neil) is part of it, as browsers read it; each part is atomic, so that no
# backtracking reads it as the opening of a quoted run that swallows text up to a later
# quote and '>'. '<!--' is matched alone: strip_html finds the comment's end itself.
_HTML_TAG = re.compile(
    r"<!--|<(?:[!?][A-Za-z]|/?(?:[A-Za-z][\w-]*:[A-Za-z][\w-]*|"
    + _ELEMENTS
    + r")(?=\s|>|/\s*>))(?>=\s*[^\s<>\"'][^\s<>]*|[^<>\"']|\"[^\"]*\"|'[^']*')*>",
    re.IGNORECASE,
)
# an entity closed by ';': without it, '&not' in 'unit&not reported' is text, not '¬'
_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_CASHTAG = re.compile(r"\$[A-Za-z][A-Za-z.]{0,9}\b")
_NON_LETTER = re.compile(r"[^A-Za-z\s]")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\S+")


def _unescape(text: str) -> str:
    # html.unescape alone also reads '&not' without its ';', and '&notx;' as '¬x;'
    return _ENTITY.sub(
        lambda m: html.unescape(m[0]) if m[0][1] == "#" else html5.get(m[0][1:], m[0]), text
    )


def strip_html(text: str) -> str:
    if "<!--" not in text:
        return _unescape(_HTML_TAG.sub(" ", text))
    parts, pos, start = [], 0, 0
    unclosed = len(text)  # from here on, no '<!--' has a '-->' after it
    while found := _HTML_TAG.search(text, start):
        end = found.end()
        if found.group() == "<!--":
            # searched once, not from each '<!--' to the end: an unclosed comment stays text
            close = text.find("-->", end) if found.start() < unclosed else -1
            if close == -1:
                unclosed = min(unclosed, found.start())
                start = found.start() + 1
                continue
            end = close + 3
        parts += [text[pos : found.start()], " "]
        pos = start = end
    parts.append(text[pos:])
    return _unescape("".join(parts))


def strip_urls(text: str) -> str:
    return _URL.sub(" ", text)


def strip_cashtags(text: str) -> str:
    return _CASHTAG.sub(" ", text)


def letters_only(text: str) -> str:
    if text.isascii():
        return _NON_LETTER.sub(" ", text)
    # every script's letters ('Škoda', 'Łódź', 'Сбербанк'), not only Latin-1's, with the
    # marks that belong to them (Devanagari's vowel signs, the accent of a decomposed 'é')
    kept, in_letter = [], False
    for c in text:
        mark = in_letter and unicodedata.category(c).startswith("M")
        in_letter = c.isalpha() or mark
        kept.append(c if in_letter or c.isspace() else " ")
    return "".join(kept)


def lowercase(text: str) -> str:
    return text.lower()


def remove_stopwords(text: str) -> str:
    return " ".join(w for w in text.split() if w.lower() not in ENGLISH_STOP_WORDS)


def lemmatize(text: str) -> str:
    import simplemma  # dictionary-based, ships its data: works offline

    return _WORD.sub(lambda m: simplemma.lemmatize(m.group(0), lang="en"), text)


STEPS: dict[str, Callable[[str], str]] = {
    "strip_html": strip_html,
    "strip_urls": strip_urls,
    "strip_cashtags": strip_cashtags,
    "letters_only": letters_only,
    "lowercase": lowercase,
    "remove_stopwords": remove_stopwords,
    "lemmatize": lemmatize,
}


def make_cleaner(config: CleaningConfig) -> Callable[[str], str] | None:
    """A function applying the switched-on steps, or None when all are off."""
    steps = [fn for name, fn in STEPS.items() if getattr(config, name)]
    if not steps:
        return None

    def clean(text: str) -> str:
        for step in steps:
            text = step(text)
        return _SPACES.sub(" ", text).strip()

    return clean
