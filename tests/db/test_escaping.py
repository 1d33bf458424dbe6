"""Markdown from other people's text: labels, texts, reasons, names drawn as literal text.

Streamlit 1.67 draws st.markdown, captions, notices, tooltips (help=) and widget labels
(buttons, checkboxes, expanders, tabs, radio options) as Markdown. A value holding
``![b](http://host/img.png)`` would make every viewer's browser fetch that image, one holding
``[Sign in again here](http://host/phish)`` would be a live link, ``:red[x]``, ``$x$``,
``:material/home:`` would colour, typeset or draw icons. The unit tests check the escaper
(review.safe_text.md, which the pages use as safe_text.md) against a model of how Streamlit's
Markdown reads a string (CommonMark + GFM, its own plugins: the JS patterns are ported here);
the page tests drive every page with AppTest on data whose labels, texts, reasons, annotator,
user and dataset names are hostile, and check every string drawn as Markdown. The browser test
is tests/e2e/test_beacon.py.
"""

from __future__ import annotations

import io
import re
import string
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from review import audit, auth, datasets, safe_text, store, workflow
from review.text import ingest
from tests.helpers import ROOT, copy_db

WJ = "\u2060"
PUNCT = set(string.punctuation)

# ----------------------------------------------------------------------------- a model of Streamlit's reading


def resolve(src: str) -> list[tuple[str, bool]]:
    """The characters of a Markdown source after backslash escapes: (char, escaped)."""
    out, i = [], 0
    while i < len(src):
        if src[i] == "\\" and i + 1 < len(src) and src[i + 1] in PUNCT:
            out.append((src[i + 1], True))
            i += 2
        else:
            out.append((src[i], False))
            i += 1
    return out


def shown(src: str) -> str:
    """What a reader sees of an escaped value (the word joiner is invisible)."""
    return "".join(c for c, _ in resolve(src)).replace(WJ, "")


# Streamlit's frontend (StreamlitMarkdown): LaTeX is turned on only when the source matches these
_CODE = re.compile(r"(?:^|(?<=\n)) {0,3}(`{3,}|~{3,})[\s\S]*?(?:\n[ \t]*\1|\Z)|(?<!`)(`+)[^`\n]+\2(?!`)|\\[\\$`]")
_DISPLAY_MATH = re.compile(r"(?<!\$)\$\$+(?!\$)[\s\S]*?\$\$")
_INLINE_MATH = re.compile(r"(?<!\$)\$(?![\s$])[^$\n]*?[^\s$]\$(?![0-9])")


def latex_on(src: str) -> bool:
    if "$" not in src:
        return False
    n = _CODE.sub("_", src)
    return bool(_DISPLAY_MATH.search(n) or _INLINE_MATH.search(n))


# patterns matched in the parsed text (after escapes), where a backslash does not help
TEXT_PATTERNS = [
    (re.compile(r"https?://", re.I | re.A), "autolink http"),
    (re.compile(r"www(?=\.)", re.I | re.A), "autolink www"),
    (re.compile(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+", re.A), "autolink e-mail"),
    (re.compile(r"(?:mailto|xmpp):[-.\w+]", re.I | re.A), "autolink mailto"),
    (re.compile(r":material_\w+:", re.A), "material icon"),
    (re.compile(r":streamlit:"), "Streamlit logo"),
    (re.compile(r":[\w+-][\w_+-]*:", re.A), "emoji shortcode"),
]


def live(src: str) -> list[str]:
    """What Markdown would read in ``src``, an escaped value drawn alone: [] if nothing."""
    found = []
    toks = resolve(src)
    text = "".join(c for c, _ in toks)
    if re.search(r"[\r\n]", src):
        found.append("line break")
    if ":material/" in src:
        found.append("material icon (raw source)")
    found += [name for pat, name in TEXT_PATTERNS if pat.search(text)]
    if latex_on(src):
        found.append("LaTeX")
    for k, (c, esc) in enumerate(toks):
        if esc:
            continue
        prev = toks[k - 1][0] if k else ""
        nxt = toks[k + 1][0] if k + 1 < len(toks) else ""
        if c in "\\`*[]<>|~@":
            found.append(f"{c} unescaped")
        elif c == "_" and not (prev.isalnum() and nxt.isalnum()):
            found.append("_ emphasis")
        elif c == ":" and (not nxt or re.match(r"[A-Za-z0-9_+\-/:]", nxt)):
            found.append("directive / shortcode")
        elif c == "&" and re.match(r"#?[A-Za-z0-9]+;", "".join(x for x, _ in toks[k + 1 : k + 34])):
            found.append("entity")
    if toks and not toks[0][1] and toks[0][0] in "#>-+= \t":
        found.append("line start")
    ordered = re.match(r"\d{1,9}[.)](?=[ \t]|$)", text)
    if ordered and not toks[ordered.end() - 1][1]:
        found.append("ordered list")
    return found


BEACON = "http://127.0.0.1:9"
HOSTILE = {
    "image": f"![x]({BEACON}/beacon.png)",
    "link": "[Sign in again here](http://evil)",
    "html img": f"<img src={BEACON}/x.png>",
    "colour": ":red[x]",
    "latex": "$x$",
    "material icon": ":material/home:",
    "material icon, underscore": ":material_home:",
    "bold": "**b**",
    "heading after a line break": "a\n# h",
    "setext heading": "title\n===",
    "indented code": "    code block",
    "emoji": ":smile:",
    "streamlit logo": ":streamlit:",
    "www autolink": "www.evil.example",
    "e-mail autolink": "mallory@evil.example",
    "angle autolink": f"<{BEACON}/auto>",
    "bare url": f"{BEACON}/bare",
    "entities": "&lt;img src=x&gt; &#91;x&#93;",
    "ordered list": "1. first",
    "ordered list paren": "2) second",
    "bullet": "- item",
    "quote": "> quoted",
    "underscore emphasis": "_x_",
    "strikethrough": "~x~ ~~y~~",
    "code span": "`code`",
    "small directive": ":small[tiny]",
    "help directive": ":help[tip]",
    "leaf directive": "::leaf",
    "container directive": ":::note",
    "table": "a | b\n--|--\nc | d",
    "reference link": f"[x]\n\n[x]: {BEACON}/ref",
    "footnote": "text[^1]\n\n[^1]: note",
    "backslash before image": f"\\![x]({BEACON}/y.png)",
    "display math": "$$x^2$$",
    "dollars across": "$5 and $6$",
    "mailto": "mailto:a@b.example",
    "javascript": "javascript:alert(1)",
    "html comment": "<!-- x -->",
    "task list": "- [ ] todo",
}
NORMAL = [
    "billing",
    "Sci/Tech",
    "row(s)",
    "self_approved",
    "There is a charge of $250 on my debit card",
    "note: fine",
    "12.5% of rows - ok",
    "B-PER",
    'it\'s "quoted"',
    "1=World, 2=Sports",
    "a_b_c",
    "café",
    "(none)",
    "label #3",
    "t0001",
]
CONTEXTS = ["{}", "**{}**", "note: {}", "{} · row 3", "Relabel to {}"]


# ----------------------------------------------------------------------------- the escaper


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_value_is_read_as_text(name):
    value = HOSTILE[name]
    esc = safe_text.md(value)
    assert live(esc) == [], (value, esc)
    assert shown(esc) == " ".join(value.replace("\r\n", "\n").split("\n")).lstrip(" \t"), (value, esc)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_value_inside_our_markdown_stays_text(name):
    """In a sentence of ours, next to another value: no LaTeX across values, no link, no directive."""
    esc = safe_text.md(HOSTILE[name])
    for ctx in CONTEXTS:
        src = ctx.format(esc)
        text = "".join(c for c, _ in resolve(src))
        assert not latex_on(src) and ":material/" not in src, src
        assert not [n for p, n in TEXT_PATTERNS if p.search(text)], src
        assert not any(c in "[]<" for c, e in resolve(src) if not e), src
    for other in ("$5 and", "x$ y", ":red", "[", "](http://evil)"):
        pair = f"{esc} {safe_text.md(other)}"
        assert not latex_on(pair) and not any(c in "[]<" for c, e in resolve(pair) if not e), pair


@pytest.mark.parametrize("value", NORMAL)
def test_normal_text_comes_back_unchanged(value):
    assert safe_text.md(value) == value


def test_pages_and_safe_text_share_one_escaper():
    assert safe_text.md(None) == "" and safe_text.md(42) == "42"


def test_message_keeps_our_code_hints_and_escapes_the_data():
    msg = (
        f"{HOSTILE['image']}.csv is empty: it needs one line per gold item, `row,label` (the row as the app shows it)."
    )
    esc = safe_text.md_message(msg)
    assert "`row,label`" in esc and esc.endswith(" (the row as the app shows it).")
    assert live(esc.replace("`row,label`", "row,label")) == []
    assert shown(esc) == msg
    # a backtick in the data cannot open a code span that swallows ours, nor a link
    tricky = "`x [a](http://evil) ` and `row,label`"
    assert not any(c in "[]" for c, e in resolve(safe_text.md_message(tricky)) if not e)


def test_code_span_holds_any_value_literally():
    assert safe_text.code("review suspects demo") == "`review suspects demo`"
    for v in ("a`b", "``x``", "`lead", "tail`", " spaced ", HOSTILE["image"], HOSTILE["material icon"]):
        src = safe_text.code(v)
        fence = re.match(r"`+", src).group(0)
        assert src.endswith(fence) and fence not in src[len(fence) : -len(fence)], src
        assert ":material/" not in src


# ----------------------------------------------------------------------------- the pages

APP = ROOT / "app.py"
PW = "correct horse battery"
IMG = f"![b]({BEACON}/img.png)"
HTML_IMG = f"<img src={BEACON}/x>"
LINK = f"[Sign in again here]({BEACON}/phish)"
PAYLOAD = f"{IMG} {HTML_IMG} {LINK} :red[x] $x$ :material/home: **b**"
DS = f"tickets {IMG} {LINK}"
CROWD = f"crowd {IMG}"
GOOD, BAD = f"good {IMG}", f"bad {LINK}"
YES, NO = f"yes {HTML_IMG}", f"no :red[x] {LINK}"
WORKERS = [f"w0 {IMG}", f"w1 {LINK}", f"w2 {HTML_IMG} :material/home:"]
ODD_USERS = ["www.evil.example", "mallory@evil.example", "__init__"]
REASON = f"judge says {PAYLOAD}"
NOTE = f"rejected: {PAYLOAD}"


def drawn(at: AppTest) -> list[tuple[str, str]]:
    """Every string of the page that Streamlit draws as Markdown: (where, source)."""
    out = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error", "toast"):
        out += [(kind, str(e.value)) for e in at.get(kind)]
    out += [("expander", e.label) for e in at.expander] + [("tab", t.label) for t in at.tabs]
    out += [("progress", e.text) for e in at.get("progress")]
    for w in (
        list(at.button)
        + list(at.checkbox)
        + list(at.radio)
        + list(at.selectbox)
        + list(at.multiselect)
        + list(at.text_input)
        + list(at.number_input)
        + list(at.text_area)
        + list(at.get("download_button"))
    ):
        label = getattr(w, "label", None) or getattr(w.proto, "label", "")
        out += [(f"{w.type} label", label), (f"{w.type} help", getattr(w.proto, "help", "") or "")]
    for r in at.radio:  # radio options are Markdown (select box options are plain text)
        out += [("radio option", str(o)) for o in r.options]
    for m in at.metric:
        out += [("metric label", m.label), ("metric help", m.proto.help or "")]
    return [(k, s) for k, s in out if s]


def live_payload(src: str) -> list[str]:
    """The hostile payloads of this module that ``src`` (a sentence of ours with values in it) still
    lets Markdown read: links, images, HTML, LaTeX, directives, icons, emphasis, autolinks."""
    found = []
    toks = resolve(src)
    text = "".join(c for c, _ in toks)
    for k, (c, e) in enumerate(toks[:-1]):
        nxt, nxt_escaped = toks[k + 1]
        if not e and (
            (c == "]" and nxt in "([:" and not nxt_escaped) or (c == "<" and (nxt.isalpha() or nxt in "!/?"))
        ):
            found.append("link, image or HTML")
    if latex_on(src):
        found.append("LaTeX")
    if ":material/" in src or re.search(r":(?:material_\w+|red|small|help|streamlit)\b", text):
        found.append("directive or icon")
    if "**b**" in src or "__init__" in src:
        found.append("emphasis")
    if re.search(r"https?://127\.0\.0\.1|www(?=\.evil)|@evil\.", text, re.A):
        found.append("autolink")
    if "\n" in src:
        found.append("line break")
    return found


def sweep(at: AppTest) -> list[tuple[str, str, list[str]]]:
    return [(k, s, f) for k, s in drawn(at) if (f := live_payload(s))]


def csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def text_rows() -> list[dict]:
    words = {GOOD: "great lovely superb fine", BAD: "awful broken horrid bad"}
    rows = []
    for k, (lab, vocab) in enumerate(words.items()):
        for i in range(24):
            rows.append(
                {
                    "id": f"r{k}{i}",
                    "text": f"item {i} is {vocab.split()[i % 4]} really {vocab.split()[(i + 1) % 4]}",
                    "label": lab,
                }
            )
    for i in (3, 5, 7):  # a few wrong labels, and the same hostile text under both labels (a finding that quotes it)
        rows[i]["label"] = BAD
    rows[0]["text"] = rows[30]["text"] = f"dup {PAYLOAD}"
    rows[0]["label"], rows[30]["label"] = GOOD, BAD
    return rows


def crowd_rows() -> list[dict]:
    rows = []
    for i in range(40):
        for k, w in enumerate(WORKERS):
            wrong = (k == 2 and i % 3 == 0) or (k == 1 and i % 7 == 0) or (k == 0 and i % 10 == 0)
            lab = [YES, NO][(i + wrong) % 2]
            rows.append(
                {
                    "item_id": f"i{i}",
                    "text": f"crowd item {i} {'nice warm' if i % 2 == 0 else 'nasty cold'}",
                    "annotator": w,
                    "label": lab,
                }
            )
    return rows


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Users (alice admin, lena and leo leads, anna annotator, three oddly named annotators), the
    hostile text dataset audited with a judge's UNKNOWN answer on every row, and a hostile crowd."""
    path = tmp_path_factory.mktemp("escaping") / "t.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PW, None)
    lena = auth.create_user(db, "lena", "lead", PW, admin)
    auth.create_user(db, "leo", "lead", PW, admin)
    anna = auth.create_user(db, "anna", "annotator", PW, admin)
    for name in ODD_USERS:
        auth.create_user(db, name, "annotator", PW, admin)
    data = csv_bytes(text_rows())
    ds_id = ingest.ingest_bytes(db, data, "t.csv", DS, lena)
    audit.run_audit(db, ds_id, lena)
    run = datasets.latest_run(db, ds_id)
    db.execute("UPDATE scores SET judge_verdict='UNKNOWN', judge_reason=? WHERE run_id=?", [REASON, run["id"]])
    last = store.scalar(db, "SELECT MAX(rank) FROM scores WHERE run_id=?", [run["id"]])
    db.execute(
        "UPDATE scores SET judge_verdict=CASE rank WHEN ? THEN 'YES' ELSE 'NO' END, judge_label=? "
        "WHERE run_id=? AND rank >= ?",
        [last, GOOD, run["id"], last - 1],
    )  # (charts want a YES and a NO)
    df = pd.DataFrame(crowd_rows())
    prep = ingest.prepare(
        df, ingest.Mapping(text=["text"], label="label", id="item_id", annotator="annotator"), "c.csv", None
    )
    crowd_id = ingest.write_dataset(db, prep, CROWD, lena)
    audit.run_audit(db, crowd_id, lena)
    # anna relabels the first suspect; lena rejects it with a hostile reason: it comes back to anna
    ds = datasets.get(db, ds_id)
    s = workflow.claim_next(db, ds, anna)
    rid = workflow.decide(
        db,
        ds,
        s.idx,
        anna,
        "relabel",
        s.version,
        new_label=next(l for l in ds.labels if l != s.current_label),
        note=f"my note {PAYLOAD}",
    )
    row = db.execute("SELECT version FROM reviews WHERE id=?", [rid]).fetchone()
    workflow.verify(db, rid, lena, "reject", row[0], note=NOTE)
    db.conn.close()
    return path


@pytest.fixture
def hostile_db(tmp_path, monkeypatch, template):
    path = copy_db(template, tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    yield db
    db.conn.close()


def open_page(page: str, user: tuple[str, str], dataset: str | None = DS, **state) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (user[0], user[1], time.time())
    if dataset:
        at.session_state["dataset_name"] = dataset
    for k, v in state.items():
        at.session_state[k] = v
    if page != "app.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(thing) -> AppTest:
    at = thing.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_review_page_escapes_labels_judge_reason_and_reject_reason(hostile_db):
    ds = datasets.get(hostile_db, DS)
    at = open_page("pages/3_Review.py", ("anna", "annotator"))
    for i, label in enumerate(ds.labels):
        b = at.button(key=f"relabel_{i}")
        assert b.label == safe_text.md(label) and b.help == f"Relabel to {safe_text.md(label)}"
        assert live(b.label) == [] and shown(b.label) == label
    judge = [c.value for c in at.caption if c.value.startswith("The judge gave no usable answer")]
    assert judge == [f"The judge gave no usable answer: {safe_text.md(REASON)}"]
    rejected = [w.value for w in at.warning if w.value.startswith("A lead rejected")]
    assert len(rejected) == 1 and rejected[0].endswith(safe_text.md(NOTE)), rejected
    assert sweep(at) == []
    # a decision: the flash names the row and the hostile label
    at = run(next(b for b in at.button if b.key.startswith("relabel_") and not b.disabled).click())
    assert at.success and sweep(at) == []


def test_audit_page_escapes_finding_titles(hostile_db):
    at = open_page("pages/2_Audit.py", ("lena", "lead"))
    titles = [e.label for e in at.tabs[0].expander]
    dup = [t for t in titles if "dup" in shown(t)]
    assert dup and all(live_payload(t) == [] for t in titles), titles
    assert any(f"dup {IMG}" in shown(t) for t in dup), dup  # (the finding cuts the quoted text short)
    assert sweep(at) == []


def test_home_escapes_dataset_names_in_text_and_tooltips(hostile_db):
    at = open_page("app.py", ("lena", "lead"))
    helps = [b.help for b in at.main.button if b.help]
    assert f"Review the suspects of {safe_text.md(DS)}" in helps and f"Audit {safe_text.md(CROWD)}" in helps
    assert sweep(at) == []


def test_annotator_names_are_escaped_on_annotators_and_review(hostile_db):
    who = WORKERS[2]
    at = open_page("pages/8_Annotators.py", ("lena", "lead"), dataset=CROWD, annotator_pick=who)
    [b] = [b for b in at.button if b.key == "review_disagreements"]
    assert b.label == f"Review the items where {safe_text.md(who)} disagrees"
    assert sweep(at) == []
    at = open_page("pages/3_Review.py", ("lena", "lead"), dataset=CROWD, review_disagrees=who)
    assert any(
        i.value.startswith(f"Showing the items where annotator {safe_text.md(who)} disagrees") for i in at.info
    ), [i.value for i in at.info]
    assert sweep(at) == []


def test_label_page_escapes_the_label_buttons(hostile_db):
    ds = datasets.get(hostile_db, CROWD)
    at = open_page("pages/9_Label.py", ("anna", "annotator"), dataset=CROWD)
    assert [at.button(key=f"label_{i}").label for i in range(len(ds.labels))] == [safe_text.md(l) for l in ds.labels]
    assert sweep(at) == []
    at = run(at.button(key="label_0").click())
    assert at.success and sweep(at) == []


def test_verify_page_escapes_the_flash_after_an_override(hostile_db):
    ds = datasets.get(hostile_db, DS)
    anna = auth.User("anna", "annotator")
    s = workflow.claim_next(hostile_db, ds, anna)
    workflow.decide(hostile_db, ds, s.idx, anna, "unsure", s.version, note=f"unsure {PAYLOAD}")
    at = open_page("pages/4_Verify.py", ("leo", "lead"))
    assert sweep(at) == []
    [ov] = [b for b in at.button if b.key.startswith("override_")]
    rid = ov.key.split("_")[1]
    at.selectbox(key=f"ovl_{rid}").set_value(BAD)
    at = run(at.button(key=f"override_{rid}").click())
    assert any("overridden to" in m.value for m in at.success), [m.value for m in at.success]
    assert sweep(at) == []


def test_users_page_escapes_user_names(hostile_db):
    for name in ODD_USERS:
        at = open_page("pages/7_Users.py", ("alice", "admin"), dataset=None)
        at = run(at.selectbox(key="edit_user").set_value(name))
        at = run(at.selectbox(key=f"edit_role_{name}").set_value("lead"))
        boxes = {c.key: c.label for c in at.checkbox}
        assert boxes[f"confirm_role_{name}_lead"] == f"Yes, change {safe_text.md(name)} from annotator to lead."
        assert at.button(key="toggle_active").label == f"Deactivate {safe_text.md(name)}"
        assert sweep(at) == [], name
        at = run(at.checkbox(key=f"confirm_role_{name}_lead").check())
        at = run(at.button(key="set_role").click())
        assert at.success and sweep(at) == [], name


def test_upload_success_escapes_the_dataset_name_and_labels(hostile_db):
    at = open_page("pages/1_Upload.py", ("lena", "lead"), dataset=None)
    at.file_uploader(key="upload_file").upload("new.csv", csv_bytes(text_rows()), "text/csv")
    at = run(at)
    at.text_input(key="dataset_name_input").input(f"new {PAYLOAD}")
    at = run(at.button(key="ingest").click())
    assert not at.error and len(at.success) == 1, [e.value for e in at.error]
    assert shown(at.success[0].value).startswith(f"Dataset {'new ' + PAYLOAD!r} ingested: ")
    assert sweep(at) == []
