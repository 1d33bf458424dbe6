"""Text from data, users or the judge, made safe to draw with Streamlit's Markdown (1.67).

Streamlit draws st.markdown, st.caption, st.info/warning/error/success, toasts, tooltips (help=)
and every widget label (buttons, checkboxes, expanders, tabs, radio options, progress texts) as
Markdown: CommonMark + GFM (links, images, autolinks such as www.x or http://x, tables,
strikethrough with one ~), LaTeX between dollars, directives (:red[x], :small[x], :help[x]),
emoji shortcodes (:smile:), Material icons (:material/home:, replaced in the raw source before
parsing, so a backslash does not stop it) and the Streamlit logo (:streamlit:). An image is fetched
when the page is viewed; a link can say "Sign in again here" and point anywhere.

``md(s)`` returns ``s`` as literal inline text: it reads the same in the browser and is unchanged
when it holds nothing Markdown could read (so 'Sci/Tech', 'row(s)', 'self_approved', '$250',
'note: fine' come back as they are). What it does:

* backslash-escapes, everywhere: ``\\ ` * [ ] < > | ~ @`` (links, images, autolinks, HTML,
  emphasis, code, tables, strikethrough);
* ``_`` unless inside a word (``a_b`` cannot be emphasis); ``$`` unless a digit follows ($250: a
  dollar before a digit never closes LaTeX, and Streamlit only turns LaTeX on for a closing one);
  ``&`` before an entity (``&lt;``);
* a WORD JOINER (U+2060, invisible) where a pattern is matched in the parsed text, which a
  backslash does not stop: after a colon followed by a letter, digit, ``_ + - / :`` or the end
  (also ``\\:``: directives, http: and mailto: links, emoji, Material icons), after ``@`` (e-mail
  links) and before the dot of ``www.`` (www links);
* line starts: line breaks become spaces and leading blanks go (a Markdown paragraph drops them
  anyway), then a leading ``# > - + =`` or ``1.``/``1)`` is escaped (heading, quote, list, rule).

``md_message(s)`` is md() for a sentence of ours holding data (an error, a flash): it keeps our
`code` hints whose content is plain (letters, digits, ``space , . = _ / -``), escapes the rest.
``code(s)`` puts any string in an inline code span (literal; fenced longer than its backticks).
"""

from __future__ import annotations

import html as _html
import re

WORD_JOINER = "\u2060"
ALWAYS = frozenset("\\`*[]<>|~@")
LINE_START = frozenset("#>-+=")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_ENTITY = re.compile(r"#?[A-Za-z0-9]+;")
_ORDERED = re.compile(r"\d{1,9}[.)](?=[ \t]|$)")  # a list marker is followed by a blank
_COLON_NEXT = re.compile(r"[\w+\-/:]")
_PLAIN_CODE = re.compile(r"`([A-Za-z0-9 ,.=_/\-]{1,80})`")


def _one_line(value) -> str:
    return _NEWLINES.sub(" ", "" if value is None else str(value))


def _word(ch: str) -> bool:
    return bool(ch) and ch.isalnum()


def _escape(s: str, at_start: bool) -> str:
    """``s`` (one line) escaped; ``at_start``: it may begin a Markdown line."""
    out = []
    n = len(s)
    ordered = _ORDERED.match(s) if at_start else None
    for i, c in enumerate(s):
        prev = s[i - 1] if i else ""
        nxt = s[i + 1] if i + 1 < n else ""
        if c == "@":
            out.append("\\@" + WORD_JOINER)
        elif c in ALWAYS:
            out.append("\\" + c)
        elif at_start and i == 0 and c in LINE_START:
            out.append("\\" + c)
        elif ordered is not None and i == ordered.end() - 1:
            out.append("\\" + c)
        elif c == "_":
            out.append(c if _word(prev) and _word(nxt) else "\\_")
        elif c == "$":
            out.append(c if nxt in "0123456789" and nxt and prev != "$" else "\\$")
        elif c == ":":
            out.append("\\:" + WORD_JOINER if not nxt or _COLON_NEXT.match(nxt) else c)
        elif c == "&":
            out.append("\\&" if _ENTITY.match(s, i + 1) else c)
        elif c == "." and s[max(0, i - 3) : i].lower() == "www":
            out.append(WORD_JOINER + "\\.")
        else:
            out.append(c)
    return "".join(out)


def md(value) -> str:
    """``value`` as literal inline Markdown text (see the module's docstring)."""
    return _escape(_one_line(value).lstrip(" \t"), True)


def md_message(value) -> str:
    """A message of ours that holds data: md(), keeping the plain `code` hints we write."""
    s = _one_line(value).lstrip(" \t")
    out, pos = [], 0
    for m in _PLAIN_CODE.finditer(s):
        out.append(_escape(s[pos : m.start()], pos == 0))
        out.append(m.group(0))
        pos = m.end()
    out.append(_escape(s[pos:], pos == 0))
    return "".join(out)


def code(value) -> str:
    """``value`` as an inline code span: drawn literally, in monospace."""
    s = _one_line(value).replace(":material/", ":" + WORD_JOINER + "material/")
    if not s.strip():
        return md(s)
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s[0] == "`" or s[-1] == "`" or (s[0] == " " and s[-1] == " ") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def html(value) -> str:
    """``value`` for an HTML context (st.html): every <, >, &, " and ' escaped."""
    return _html.escape("" if value is None else str(value), quote=True)
