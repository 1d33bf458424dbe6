"""A dataset's guideline page: Markdown that leads write and everyone reads beside the review card.

Every save is a new version (table ``guidelines``: dataset_id, version 1, 2, ..., body, note, edited_by,
edited_at); nothing is overwritten. A save names the version its editor started from (``base_version``):
when someone else saved in the meantime the save is refused (StaleViewError) and the editor keeps the
text, so two leads editing at once never overwrite each other. A save that changes nothing, or a body over
``MAX_BYTES``, is refused too. The audit trail gets one ``guidelines`` row per save: the version, the
body's SHA-256 and length, the note (never the body itself).

``draft_section`` turns a confusion pair (given, predicted) into a Markdown section: a heading, a
placeholder for the rule the lead writes, and examples of both classes from verified decisions (rows
relabelled from one class to the other first), or, when none are verified yet, flagged rows as uploaded,
labelled unverified. Example texts are escaped with ``safe_text.md`` and cut to ``EXAMPLE_CHARS``.

What "safely rendered" (``render``) covers, for Streamlit's ``st.markdown`` (which is never given
``unsafe_allow_html``):

* no HTML: every ``<`` outside code is backslash-escaped, so no tag, comment or autolink
  (``<javascript:...>``) forms; ``<script>`` and ``<img onerror=...>`` read as text;
* no image is fetched: every ``![`` outside code becomes ``\\![`` (an exclamation mark and a link), so
  an image from a remote host (a tracking pixel, a huge file) is shown as a link to it, never loaded;
* links only to http, https, mailto or a relative address: a link or a reference definition whose
  destination has another scheme (``javascript:``, ``data:``, ``vbscript:``, ``file:``; checked after
  undoing entities such as ``&#58;`` and ``&colon;``, backslash escapes, and dropping the blanks and
  control characters a browser drops) is broken up and shown as plain text;
* size: at most ``MAX_BYTES`` are drawn (a longer text, such as an unsaved draft, is cut with a note),
  a table at most ``MAX_TABLE_ROWS`` rows (then a note), blockquotes at most ``MAX_QUOTE_DEPTH`` deep;
* LaTeX (between dollars) cannot link or fetch: ``\\href``, ``\\url`` and ``\\includegraphics`` are
  broken by an invisible WORD JOINER after the backslash (KaTeX then shows them as unknown commands);
* code is left as written: fenced blocks and inline code spans draw their content literally anyway.

Everything else of Markdown stays: headings, lists, emphasis, tables, quotes, code, Streamlit's colour
directives and icons. The rest is the author's: a lead can still write a misleading sentence.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass

import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError, StaleViewError
from review.safe_text import WORD_JOINER, md

MAX_BYTES = 100_000  # a guideline page's body, UTF-8 (100 kB)
MAX_NOTE = 500  # characters of an edit's note
EXAMPLE_CHARS = 200  # an example's text in a drafted section
MAX_TABLE_ROWS = 200  # rows of one table drawn by render()
MAX_QUOTE_DEPTH = 8  # nested blockquote markers drawn by render()
SAFE_SCHEMES = ("http", "https", "mailto")
VERIFIED = ("approved", "overridden")


@dataclass(frozen=True)
class GuidelineVersion:
    """One saved version, without its body (for a list)."""

    dataset_id: int
    version: int
    note: str
    edited_by: str
    edited_at: str
    chars: int


@dataclass(frozen=True)
class Guideline:
    """One saved version with its Markdown body."""

    dataset_id: int
    version: int
    body: str
    note: str
    edited_by: str
    edited_at: str


def _guideline(row) -> Guideline:
    return Guideline(
        row["dataset_id"], row["version"], row["body"], row["note"] or "", row["edited_by"], row["edited_at"]
    )


def current(db: sqlite_utils.Database, ds: Dataset) -> Guideline | None:
    """The newest version of ``ds``'s guidelines (one indexed read), or None when there is none yet."""
    row = store.fetch_one(
        db,
        "SELECT dataset_id, version, body, note, edited_by, edited_at FROM guidelines WHERE dataset_id=?"
        " ORDER BY version DESC LIMIT 1",
        [ds.id],
    )
    return _guideline(row) if row else None


def history(db: sqlite_utils.Database, ds: Dataset, limit: int = 500) -> list[GuidelineVersion]:
    """Every version of ``ds``'s guidelines, newest first (at most ``limit``), without the bodies."""
    return [
        GuidelineVersion(r["dataset_id"], r["version"], r["note"] or "", r["edited_by"], r["edited_at"], r["chars"])
        for r in store.rows(
            db,
            "SELECT dataset_id, version, note, edited_by, edited_at, LENGTH(body) AS chars FROM guidelines"
            " WHERE dataset_id=? ORDER BY version DESC LIMIT ?",
            [ds.id, limit],
        )
    ]


def version(db: sqlite_utils.Database, ds: Dataset, n: int) -> Guideline:
    """Version ``n`` of ``ds``'s guidelines; NotFound naming the version when there is no such one."""
    row = store.fetch_one(
        db,
        "SELECT dataset_id, version, body, note, edited_by, edited_at FROM guidelines WHERE dataset_id=? AND version=?",
        [ds.id, int(n)],
    )
    if row is None:
        newest = store.scalar(db, "SELECT MAX(version) FROM guidelines WHERE dataset_id=?", [ds.id])
        raise NotFound(
            f"The guidelines of {ds.name!r} have no version {n}: "
            + (f"the versions are 1 to {newest}." if newest else "none has been saved yet.")
        )
    return _guideline(row)


def _normal(body: str) -> str:
    """Line ends as \\n, no trailing blanks at the end: the same text compares equal however it was typed."""
    return re.sub(r"\r\n?", "\n", body or "").rstrip()


def save(
    db: sqlite_utils.Database, ds: Dataset, user: User, body: str, note: str = "", base_version: int | None = None
) -> Guideline:
    """Save ``body`` as the next version of ``ds``'s guidelines (leads only) and return it.

    ``base_version`` is the version the editor started from (None or 0: there were none yet). Refused
    with StaleViewError when it is not the newest (someone saved meanwhile), with ReviewError when the
    text is the same as the newest version or longer than MAX_BYTES, or the note longer than MAX_NOTE.
    One transaction: the row and its ``guidelines`` audit row (version, SHA-256 and length of the body)."""
    user = require_active(db, user, "lead", "edit the guidelines")
    text = _normal(body)
    note = " ".join((note or "").split())
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise ReviewError(
            f"The guidelines of {ds.name!r} would be {size:,} bytes: the limit is {MAX_BYTES:,} (100 kB). Nothing "
            "was saved and your text is still in the editor: shorten it (long example lists, pasted tables) and save again."
        )
    if len(note) > MAX_NOTE:
        raise ReviewError(f"The note is {len(note):,} characters: keep it under {MAX_NOTE}. Nothing was saved.")
    base = int(base_version or 0)
    with store.transaction(db):
        newest = store.fetch_one(
            db,
            "SELECT version, body, edited_by, edited_at FROM guidelines WHERE dataset_id=? ORDER BY version DESC LIMIT 1",
            [ds.id],
        )
        top = newest["version"] if newest else 0
        if base != top:
            if newest is None:
                raise StaleViewError(
                    f"You edited version {base} of the guidelines of {ds.name!r}, but it has no versions: nothing "
                    "was saved. Your text is still in the editor; save it as the first version."
                )
            raise StaleViewError(
                f"{newest['edited_by']} saved version {top} of the guidelines of {ds.name!r} at "
                f"{newest['edited_at'][:16].replace('T', ' ')} while you were editing "
                + (f"version {base}" if base else "the empty page")
                + ": your text was not saved, so theirs is not overwritten. Your text is still in the editor: "
                f"read version {top}, merge what you need into your text and save again."
            )
        if text == _normal(newest["body"] if newest else ""):
            raise ReviewError(
                f"Nothing changed: the text is the same as version {top} of the guidelines of {ds.name!r}. Nothing was saved."
                if newest
                else f"The guidelines of {ds.name!r} are empty: write something before saving."
            )
        n = top + 1
        at = store.now_iso()
        db.execute(
            "INSERT INTO guidelines(dataset_id, version, body, note, edited_by, edited_at) VALUES (?,?,?,?,?,?)",
            [ds.id, n, text, note, user.name, at],
        )
        trail.log(
            db,
            user.name,
            "guidelines",
            ds.id,
            None,
            version=n,
            base_version=base,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            chars=len(text),
            bytes=size,
            note=note,
        )
    return Guideline(ds.id, n, text, note, user.name, at)


# ------------------------------------------------------------------------------------- drafting a section


@dataclass(frozen=True)
class _Example:
    key: str
    text: str
    given: str
    final: str | None  # None: not verified (a flagged row as uploaded)
    predicted: str | None
    verified_by: str | None


def _cut(text: str | None, limit: int = EXAMPLE_CHARS) -> str:
    s = " ".join(str(text or "").split())
    if len(s) <= limit:
        return s
    cut = s[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip(" ,.;:") + " …"


def _verified_examples(db, ds: Dataset, label: str, other: str, n: int) -> list[_Example]:
    """Up to ``n`` rows whose verified label (the latest approved / overridden decision) is ``label``;
    first those uploaded as ``other`` (the two classes confused), then those whose decision moved them from
    ``other``, newest verification first."""
    sql = (
        "SELECT i.key, i.text, i.given_label, r.final_label, r.verified_by, r.decision, r.new_label"
        " FROM reviews r JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
        f" WHERE r.dataset_id=? AND r.status IN ({','.join('?' * len(VERIFIED))}) AND r.final_label=?"
        " AND r.id=(SELECT MAX(r2.id) FROM reviews r2 WHERE r2.dataset_id=r.dataset_id AND r2.idx=r.idx"
        f"  AND r2.status IN ({','.join('?' * len(VERIFIED))}))"
        " ORDER BY (i.given_label=?) DESC, r.verified_at DESC, r.id DESC LIMIT ?"
    )
    return [
        _Example(r["key"], r["text"], r["given_label"], r["final_label"], None, r["verified_by"])
        for r in store.rows(db, sql, [ds.id, *VERIFIED, label, *VERIFIED, other, int(n)])
    ]


def _flagged_examples(db, ds: Dataset, label: str, other: str, n: int) -> list[_Example]:
    """Up to ``n`` flagged rows of the latest run uploaded as ``label``, those the model reads as ``other``
    first, most suspect first."""
    run = latest_run(db, ds.id, "audit")
    if run is None:
        return []
    rows = store.rows(
        db,
        "SELECT i.key, i.text, i.given_label, s.predicted_label FROM scores s"
        " JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
        " WHERE s.run_id=? AND s.is_issue=1 AND i.given_label=?"
        " ORDER BY (s.predicted_label=?) DESC, s.rank LIMIT ?",
        [ds.id, run["id"], label, other, int(n)],
    )
    return [_Example(r["key"], r["text"], r["given_label"], None, r["predicted_label"], None) for r in rows]


def _example_lines(ex: _Example) -> list[str]:
    if ex.final is not None:
        how = (
            f"uploaded as {md(ex.given)}, verified as {md(ex.final)}"
            if ex.given != ex.final
            else f"label {md(ex.final)} kept"
        )
        source = f"row {md(ex.key)}: {how} by {md(ex.verified_by or '?')}"
    else:
        source = f"row {md(ex.key)}: unverified, given label {md(ex.given)}" + (
            f", the model reads {md(ex.predicted)}" if ex.predicted else ""
        )
    return [f"> {md(_cut(ex.text)) or '(empty text)'}", ">", f"> — {source}", ""]


def draft_section(db: sqlite_utils.Database, ds: Dataset, given: str, predicted: str, n: int = 3) -> str:
    """A Markdown section for the confusion pair (``given``, ``predicted``): the heading
    ``### <given> vs <predicted>``, a placeholder line for the rule, and up to ``n`` examples of each
    class from verified decisions, each cut to about EXAMPLE_CHARS characters and escaped (a blockquote
    of safe_text.md text). A class with no verified decision yet gets flagged rows uploaded with that
    label instead, marked unverified, and the draft says so. Writes nothing."""
    if ds.task != "text":
        raise ReviewError(
            f"{ds.name!r} is a {ds.task} dataset: a section from a confusion pair is drafted for text datasets "
            "(one label per row). Write the section in the editor."
        )
    for lab in (given, predicted):
        if lab not in ds.labels:
            raise ReviewError(f"{lab!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")
    if given == predicted:
        raise ReviewError(f"Choose two different labels: {given!r} vs {given!r} is no confusion.")
    n = max(1, min(int(n), 20))
    out = [
        f"### {md(given)} vs {md(predicted)}",
        "",
        f"**Rule:** _(to write: when a text is {md(given)}, when it is {md(predicted)}, and what decides between them)_",
        "",
    ]
    for label, other in ((given, predicted), (predicted, given)):
        examples = _verified_examples(db, ds, label, other, n)
        if examples:
            out += [f"**{md(label)}**, from verified decisions:", ""]
        else:
            examples = _flagged_examples(db, ds, label, other, n)
            out += [
                f"**{md(label)}**: no verified decision has this label yet"
                + (
                    ", so these are flagged rows as uploaded (unverified: the given label may be wrong):"
                    if examples
                    else ", and no flagged row of the latest audit was uploaded with it: add examples by hand."
                ),
                "",
            ]
        for ex in examples:
            out += _example_lines(ex)
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------- rendering

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")
_TABLE_DELIM = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_QUOTE = re.compile(r"^((?: {0,3}>)+)")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_KATEX_FETCH = re.compile(r"\\(?=(?:href|url|includegraphics)(?![A-Za-z]))")
_BACKSLASH_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_BLANKS = r"[ \t]*(?:\n[ \t]*(?:>[ \t]*)*)?"  # blanks, and one line end (then a blockquote's markers)
_INLINE_DEST = re.compile(r"\]\(" + _BLANKS + r"(<[^>\n]*>?|[^\s)]*)")
_REF_DEF = re.compile(r"\[((?:[^\[\]\\]|\\.){0,999})\]:" + _BLANKS + r"(<[^>\n]*>?|\S*)")


def _escaped(s: str, i: int) -> bool:
    """Whether the character at ``i`` is backslash-escaped (an odd run of backslashes before it)."""
    k = i
    while k > 0 and s[k - 1] == "\\":
        k -= 1
    return (i - k) % 2 == 1


def safe_url(dest: str) -> bool:
    """Whether a link destination is http(s), mailto or relative, read as a browser would read it:
    entities undone (``&#58;``, ``&colon;``), backslash escapes undone, blanks and control characters
    dropped, case ignored."""
    s = dest.strip()
    if s.startswith("<"):
        s = s[1:].rstrip(">")
    s = html.unescape(_BACKSLASH_ESCAPE.sub(r"\1", s))
    s = "".join(ch for ch in s if ord(ch) > 0x20 and ord(ch) != 0x7F and not ch.isspace()).lower()
    m = _SCHEME.match(s)
    return m is None or m.group(1) in SAFE_SCHEMES


def _text_piece(s: str) -> str:
    """Markdown text outside code, made safe: bad link destinations and reference definitions broken
    up, images made links, ``<`` escaped."""
    cuts: set[int] = set()  # positions that get a backslash before them
    for m in _INLINE_DEST.finditer(s):
        if not _escaped(s, m.start()) and not safe_url(m.group(1)):
            cuts.add(m.start() + 1)  # ](  ->  ]\(  : no longer a link
    for m in _REF_DEF.finditer(s):
        if not _escaped(s, m.start()) and (not m.group(2) or not safe_url(m.group(2))):
            cuts.add(m.start())  # [x]: javascript:...  ->  \[x]: ...  : no longer a definition
    joins = {m.start() for m in _KATEX_FETCH.finditer(s)}  # LaTeX: \href, \url, \includegraphics never form
    out = []
    for i, ch in enumerate(s):
        if i in joins:
            out.append(ch + WORD_JOINER)
            continue
        if i in cuts and not _escaped(s, i):
            out.append("\\")
        elif ch == "<" and not _escaped(s, i):
            out.append("\\")
        elif ch == "!" and s[i + 1 : i + 2] == "[" and not _escaped(s, i):
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _inline(s: str) -> str:
    """Text outside fenced code: code spans (one line, matched backtick runs) kept, the rest made safe."""
    out, pos, i = [], 0, 0
    while True:
        m = _BACKTICKS.search(s, i)
        if m is None:
            break
        if _escaped(s, m.start()):
            i = m.start() + 1
            continue
        run = m.group(0)
        line_end = s.find("\n", m.end())
        line_end = len(s) if line_end < 0 else line_end
        close = next(
            (c for c in _BACKTICKS.finditer(s, m.end(), line_end) if len(c.group(0)) == len(run)),
            None,
        )
        if close is None:
            i = m.end()
            continue
        out.append(_text_piece(s[pos : m.start()]))
        out.append(s[m.start() : close.end()])
        pos = i = close.end()
    out.append(_text_piece(s[pos:]))
    return "".join(out)


def _limit_blocks(lines: list[str]) -> list[str]:
    """Tables cut at MAX_TABLE_ROWS rows, blockquote markers beyond MAX_QUOTE_DEPTH escaped (outside code)."""
    out, rows, cut = [], None, 0
    for k, line in enumerate(lines):
        if rows is not None:
            if line.strip():  # GFM: a table runs to a blank line
                rows += 1
                if rows > MAX_TABLE_ROWS:
                    cut += 1
                    continue
                out.append(line)
                continue
            if cut:
                out += ["", f"_(table cut: {cut:,} more rows not shown; at most {MAX_TABLE_ROWS} are drawn)_"]
            rows, cut = None, 0
        if "|" in line and k + 1 < len(lines) and "|" in lines[k + 1] and _TABLE_DELIM.match(lines[k + 1]):
            rows = -1  # the header and the delimiter row do not count
        q = _QUOTE.match(line)
        if q and q.group(1).count(">") > MAX_QUOTE_DEPTH:
            depth, j = 0, 0
            while depth < MAX_QUOTE_DEPTH:
                j = line.index(">", j) + 1
                depth += 1
            line = line[:j] + " \\" + line[j:].lstrip()  # the next marker escaped: text from here on
        out.append(line)
    if cut:
        out += ["", f"_(table cut: {cut:,} more rows not shown; at most {MAX_TABLE_ROWS} are drawn)_"]
    return out


def render(body: str | None) -> str:
    """``body`` (Markdown) made safe to draw with st.markdown: see the module's docstring for what that covers."""
    text = re.sub(r"\r\n?", "\n", body or "")
    note = ""
    if len(text.encode("utf-8")) > MAX_BYTES:
        text = text.encode("utf-8")[:MAX_BYTES].decode("utf-8", "ignore")
        text = text[: text.rfind("\n")] if "\n" in text else text
        note = f"\n\n_(cut here: only the first {MAX_BYTES:,} bytes are drawn)_"
    lines = text.split("\n")
    out: list[str] = []
    chunk: list[str] = []
    fence: tuple[str, int] | None = None  # the open fence's character and length

    def flush() -> None:
        if chunk:
            out.append(_inline("\n".join(_limit_blocks(chunk))))
            chunk.clear()

    for line in lines:
        m = _FENCE.match(line)
        if fence is None:
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                flush()
                fence = (m.group(1)[0], len(m.group(1)))
                out.append(line)
            else:
                chunk.append(line)
        else:
            out.append(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1] and not m.group(2).strip():
                fence = None
    flush()
    return "\n".join(out) + note
