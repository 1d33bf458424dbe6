"""review.guidelines: versioned saves (stale base, unchanged, too long, annotators refused, the trail row),
sections drafted from verified decisions on the real demo dataset, render() on hostile bodies, and the
Guidelines page through AppTest (a lead saves, the version is listed; a refused save keeps the text)."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest

from review import auth, datasets, guidelines, stats, store, trail, workflow
from review.errors import NotFound, PermissionDenied, ReviewError, StaleViewError
from review.text import ingest
from tests.builders import open_page, run
from tests.helpers import PASSWORD

PAGE = "pages/13_Guidelines.py"


@pytest.fixture
def lea(db, admin):
    return auth.create_user(db, "lea", "lead", PASSWORD, admin)


@pytest.fixture
def tiny(db, lead):
    """Three-class text dataset, not audited (decisions need no run)."""
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(15)],
            "text": [f"plain text number {i}" for i in range(15)],
            "label": ["cat", "dog", "bird"] * 5,
        }
    )
    return datasets.get(db, ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "tiny.csv", "tiny", lead))


def trail_rows(db, action="guidelines") -> list[dict]:
    return [
        {"actor": r["actor"], "dataset_id": r["dataset_id"], **json.loads(r["payload"])}
        for r in store.rows(db, "SELECT actor, dataset_id, payload FROM audit_log WHERE action=? ORDER BY id", [action])
    ]


def n_versions(db, ds) -> int:
    return store.scalar(db, "SELECT COUNT(*) FROM guidelines WHERE dataset_id=?", [ds.id])


# ----------------------------------------------------------------------------- saving


def test_save_versions_history_and_trail(db, demo_ds, lead):
    assert guidelines.current(db, demo_ds) is None and guidelines.history(db, demo_ds) == []
    g1 = guidelines.save(db, demo_ds, lead, "## Billing\r\nCharges go to billing.\n\n", note="first  draft")
    assert (g1.version, g1.body, g1.note, g1.edited_by) == (
        1,
        "## Billing\nCharges go to billing.",
        "first draft",
        "lena",
    )
    body2 = g1.body + "\n\n## Shipping\nParcels go to shipping. Ünïcode ✓"
    g2 = guidelines.save(db, demo_ds, lead, body2, base_version=1)
    assert g2.version == 2 and guidelines.current(db, demo_ds) == g2
    assert guidelines.version(db, demo_ds, 1) == g1
    hist = guidelines.history(db, demo_ds)
    assert [h.version for h in hist] == [2, 1] and [h.note for h in hist] == ["", "first draft"]
    assert hist[0].chars == len(body2) and not hasattr(hist[0], "body")  # the list carries no bodies
    with pytest.raises(NotFound, match="no version 7: the versions are 1 to 2"):
        guidelines.version(db, demo_ds, 7)
    rows = trail_rows(db)
    assert len(rows) == 2
    last = rows[-1]
    assert last["actor"] == "lena" and last["dataset_id"] == demo_ds.id and last["version"] == 2
    assert last["base_version"] == 1 and last["chars"] == len(body2) and last["bytes"] == len(body2.encode())
    assert last["sha256"] == hashlib.sha256(body2.encode("utf-8")).hexdigest()
    assert "body" not in last and "Parcels" not in json.dumps(rows)  # the trail holds the hash, not the text
    ok, n, msg = trail.verify_trail(db)
    assert ok, msg


def test_stale_base_refused_and_nothing_overwritten(db, demo_ds, lead, lea):
    guidelines.save(db, demo_ds, lead, "v1 text")
    guidelines.save(db, demo_ds, lea, "lea's v2", base_version=1)  # lea saved while lena was editing v1
    with pytest.raises(StaleViewError) as exc:
        guidelines.save(db, demo_ds, lead, "lena's edit of v1", base_version=1)
    msg = str(exc.value)
    assert "lea saved version 2" in msg and "your text was not saved" in msg and "still in the editor" in msg
    with pytest.raises(StaleViewError, match="saved version 2"):  # None: "there was none yet", not "any"
        guidelines.save(db, demo_ds, lead, "from an empty editor")
    assert n_versions(db, demo_ds) == 2 and guidelines.current(db, demo_ds).body == "lea's v2"
    assert len(trail_rows(db)) == 2
    assert guidelines.save(db, demo_ds, lead, "lena's merged text", base_version=2).version == 3


def test_unchanged_empty_too_long_refused(db, demo_ds, lead):
    with pytest.raises(ReviewError, match="are empty: write something"):
        guidelines.save(db, demo_ds, lead, "  \n\n ")
    guidelines.save(db, demo_ds, lead, "Rule one.\nRule two.")
    with pytest.raises(ReviewError, match="Nothing changed: the text is the same as version 1"):
        guidelines.save(db, demo_ds, lead, "Rule one.\r\nRule two.\n\n", base_version=1)
    big = "| a | b |\n|---|---|\n" + "| 1234567890 | 1234567890 |\n" * 4000
    with pytest.raises(ReviewError) as exc:
        guidelines.save(db, demo_ds, lead, big, base_version=1)
    assert f"{len(big.rstrip().encode()):,} bytes" in str(exc.value) and "limit is 100,000 (100 kB)" in str(exc.value)
    with pytest.raises(ReviewError, match="keep it under 500"):
        guidelines.save(db, demo_ds, lead, "Rule three.", note="x" * 501, base_version=1)
    assert n_versions(db, demo_ds) == 1 and len(trail_rows(db)) == 1


def test_annotator_and_deactivated_lead_refused(db, demo_ds, annotator, lead, admin):
    with pytest.raises(PermissionDenied, match="only a lead or above can edit the guidelines"):
        guidelines.save(db, demo_ds, annotator, "my own rules")
    auth.set_active(db, lead.name, False, admin)
    with pytest.raises(PermissionDenied, match="deactivated"):
        guidelines.save(db, demo_ds, lead, "rules")
    assert n_versions(db, demo_ds) == 0 and trail_rows(db) == []


# ----------------------------------------------------------------------------- drafting a section


def flagged(db, ds, given: str, predicted: str | None = None) -> list[int]:
    run_id = datasets.latest_run(db, ds.id)["id"]
    return [
        r["idx"]
        for r in store.rows(
            db,
            "SELECT s.idx FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx WHERE s.run_id=?"
            " AND s.is_issue=1 AND i.given_label=? AND (? IS NULL OR s.predicted_label=?) ORDER BY s.rank",
            [ds.id, run_id, given, predicted, predicted],
        )
    ]


def key_of(db, ds, idx: int) -> str:
    return store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx])


def decide_and_verify(db, ds, idx, annotator, lead, decision, new_label=None, action="approve", label=None):
    version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx]) or 0
    rid = workflow.decide(db, ds, idx, annotator, decision, version, new_label=new_label)
    if action:
        workflow.verify(db, rid, lead, action, version + 1, label=label)
    return rid


def unflagged(db, ds, given: str) -> list[int]:
    run_id = datasets.latest_run(db, ds.id)["id"]
    return [
        r["idx"]
        for r in store.rows(
            db,
            "SELECT s.idx FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx WHERE s.run_id=?"
            " AND s.is_issue=0 AND i.given_label=? ORDER BY s.idx",
            [ds.id, run_id, given],
        )
    ]


def test_draft_section_from_verified_decisions(db, demo_ds, annotator, lead):
    g, p, _ = max(stats.flagged_confusion(db, demo_ds), key=lambda t: t[2])  # the most flagged pair
    confused_to_p = flagged(db, demo_ds, g, p)[:2]  # uploaded as g, relabelled to p, approved
    for idx in confused_to_p:
        decide_and_verify(db, demo_ds, idx, annotator, lead, "relabel", p)
    other = next(lab for lab in demo_ds.labels if lab not in (g, p))
    plain_p = unflagged(db, demo_ds, other)[0]  # uploaded as another class, overridden to p by the lead
    decide_and_verify(db, demo_ds, plain_p, annotator, lead, "keep", action="override", label=p)
    kept_g = unflagged(db, demo_ds, g)[:4]  # g kept and approved: four of them, only three are shown
    for idx in kept_g:
        decide_and_verify(db, demo_ds, idx, annotator, lead, "keep")
    confused_to_g = flagged(db, demo_ds, p)[0]  # uploaded as p, relabelled to g: shown first among g
    decide_and_verify(db, demo_ds, confused_to_g, annotator, lead, "relabel", g)
    pending = flagged(db, demo_ds, g, p)[2]  # relabelled to p but not verified yet: no example
    decide_and_verify(db, demo_ds, pending, annotator, lead, "relabel", p, action=None)
    rejected = unflagged(db, demo_ds, other)[1]  # rejected: back to open, no example
    version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [demo_ds.id, rejected]) or 0
    rid = workflow.decide(db, demo_ds, rejected, annotator, "relabel", version, new_label=p)
    workflow.verify(db, rid, lead, "reject", version + 1, note="no")
    n_trail = store.scalar(db, "SELECT COUNT(*) FROM audit_log")

    draft = guidelines.draft_section(db, demo_ds, g, p)
    lines = draft.splitlines()
    assert lines[0] == f"### {g} vs {p}"
    assert lines[2].startswith("**Rule:** _(to write: when a text is")
    g_at, p_at = lines.index(f"**{g}**, from verified decisions:"), lines.index(f"**{p}**, from verified decisions:")
    assert g_at < p_at and "unverified" not in draft and "no verified decision" not in draft
    sources = [ln for ln in lines if ln.startswith("> — row ")]
    g_keys = [re.match(r"> — row (\S+):", ln).group(1) for ln in sources if lines.index(ln) < p_at]
    p_keys = [re.match(r"> — row (\S+):", ln).group(1) for ln in sources if lines.index(ln) > p_at]
    assert len(g_keys) == 3 and g_keys[0] == key_of(db, demo_ds, confused_to_g)  # the confused row first, n=3
    assert set(g_keys[1:]) <= {key_of(db, demo_ds, i) for i in kept_g}
    assert p_keys[:2] == [key_of(db, demo_ds, i) for i in reversed(confused_to_p)]  # confused first, newest first
    assert p_keys[2] == key_of(db, demo_ds, plain_p) and len(p_keys) == 3
    assert key_of(db, demo_ds, pending) not in draft and key_of(db, demo_ds, rejected) not in draft
    assert f"uploaded as {g}, verified as {p} by lena" in draft and f"label {g} kept by lena" in draft
    for ln in lines:
        if ln.startswith("> ") and not ln.startswith("> — "):
            assert len(ln) <= 2 + 300  # ~200 characters of text, escaped
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n_trail  # drafting writes nothing
    one = guidelines.draft_section(db, demo_ds, g, p, n=1)
    assert sum(ln.startswith("> — row ") for ln in one.splitlines()) == 2


def test_draft_section_without_verified_decisions_uses_flagged_rows(db, demo_ds):
    g, p, n = max(stats.flagged_confusion(db, demo_ds), key=lambda t: t[2])
    draft = guidelines.draft_section(db, demo_ds, g, p)
    assert (
        f"**{g}**: no verified decision has this label yet, so these are flagged rows as uploaded (unverified" in draft
    )
    assert f"**{p}**: no verified decision has this label yet" in draft
    keys = re.findall(r"> — row (\S+): unverified, given label (\S+), the model reads (\S+)", draft)
    want_g = [key_of(db, demo_ds, i) for i in flagged(db, demo_ds, g, p)[:3]]
    assert [k for k, given, _ in keys if given == g] == want_g  # the pair's rows, most suspect first
    assert all(pred == p for _k, given, pred in keys if given == g) and len(keys) == 6
    with pytest.raises(ReviewError, match="is not a label of"):
        guidelines.draft_section(db, demo_ds, g, "nonsense")
    with pytest.raises(ReviewError, match="two different labels"):
        guidelines.draft_section(db, demo_ds, g, g)


def test_draft_section_escapes_hostile_texts_and_cuts_long_ones(db, tiny, annotator, lead):
    hostile = (
        "# Heading? <img src=x onerror=alert(1)> [win](javascript:alert(1)) ![t](http://evil.example/t.png) "
        "| a | b | **bold** `code` \n> quote\n```\n<script>alert(2)</script> " + "long " * 80
    )
    db.execute("UPDATE items SET text=? WHERE dataset_id=? AND idx=0", [hostile, tiny.id])  # as if uploaded so
    decide_and_verify(db, tiny, 0, annotator, lead, "relabel", "dog")  # r0: cat -> dog
    draft = guidelines.draft_section(db, tiny, "dog", "cat")
    assert "cat**: no verified decision has this label yet, and no flagged row" in draft  # no audit run
    example = next(ln for ln in draft.splitlines() if "Heading" in ln)
    assert example.startswith("> \\# Heading?") and example.endswith(" …")  # cut, marked
    assert "\\<img" in example and "\\<script" in example and "\\[win\\]" in example and "!\\[t\\]" in example
    assert "\\|" in example and "\\*\\*bold" in example and "\\`code\\`" in example and "\\`\\`\\`" in example
    assert "\n" not in example and len(example) < 400
    assert "> — row r0: uploaded as cat, verified as dog by lena" in draft
    safe = guidelines.render(draft)
    assert safe == draft  # nothing left for render() to neutralise


def test_draft_section_refuses_ner(db, lead):
    ds = datasets.Dataset(1, "ner-set", "ner", ["O", "B-PER"], True, None, 0, None, "lena", "")
    with pytest.raises(ReviewError, match="is a ner dataset"):
        guidelines.draft_section(db, ds, "O", "B-PER")


# ----------------------------------------------------------------------------- render


def unescaped(s: str, out: str) -> bool:
    """Whether ``s`` occurs in ``out`` without a backslash escaping its first character."""
    for m in re.finditer(re.escape(s), out):
        k = m.start()
        while k > 0 and out[k - 1] == "\\":
            k -= 1
        if (m.start() - k) % 2 == 0:
            return True
    return False


@pytest.mark.parametrize(
    "body, must_not, must",
    [
        ("<script>alert(1)</script>", ["<script"], ["\\<script>"]),
        ("Hi <img src=x onerror=alert(1)> there", ["<img"], ["\\<img"]),
        ("<!-- hidden --> <a href='javascript:alert(1)'>x</a>", ["<!--", "<a "], ["\\<!--", "\\<a "]),
        ("[click](javascript:alert(1))", ["](javascript"], ["]\\(javascript"]),
        ("[c](JaVa&#x09;ScRiPt&#58;alert(1))", ["](JaVa"], ["]\\(JaVa"]),
        ("[c](javascript\\:x) [d](jav&Tab;ascript&colon;x)", ["](jav"], ["]\\(javascript\\:", "]\\(jav&Tab;"]),
        ("> [c](\n> javascript:alert(1))", ["](\n"], ["]\\(\n> javascript"]),
        ("[c](\n   javascript:alert(1))", ["](\n"], ["]\\(\n"]),
        ("[c](<javascript:alert(1)>)", ["](<"], ["]\\(\\<javascript"]),
        ("[c](data:text/html;base64,PHNjcmlwdD4=) [v](vbscript:x) [f](file:///etc/passwd)", ["]("], []),
        ("<javascript:alert(1)> <http://x.example>", ["<javascript", "<http"], ["\\<javascript"]),
        ("[r]: javascript:alert(1)\n\nsee [r]", ["\n[r]:"], ["\\[r]: javascript"]),
        ("> [r]:\n> javascript:alert(1)\n\n[r]", ["> [r]:"], ["> \\[r]:"]),
        ("![pixel](http://tracker.example/p.gif?u=1)", ["\n![", " ![", "(!["], ["\\![pixel](http://tracker.example"]),
        ("![a][ref]\n\n[ref]: https://evil.example/i.png", [], ["\\![a][ref]", "\n[ref]: https://evil.example/i.png"]),
        ("\\![x](http://e/x.png) \\\\![y](http://e/y.png)", [], ["\\![x]", "\\\\\\![y]"]),
        (
            "$\\href{javascript:alert(1)}{x}$ $\\includegraphics{http://e/p.png}$",
            ["\\href", "\\incl"],
            ["\\\u2060href"],
        ),
    ],
)
def test_render_neutralises_hostile_bodies(body, must_not, must):
    out = guidelines.render(body)
    for s in must_not:
        assert not unescaped(s, out), (s, out)
    for s in must:
        assert s in out, (s, out)
    for m in re.finditer(r"(?<!\\)\]\((\S*)", out):  # every link that still forms goes somewhere safe
        assert guidelines.safe_url(m.group(1)), (m.group(1), out)
    assert not re.search(r"(?<!\\)<[A-Za-z!/]", out), out  # no HTML tag can form
    assert not re.search(r"(?<!\\)!\[", out), out  # no image is fetched


def test_render_keeps_ordinary_markdown_and_code():
    body = (
        "### World vs Sports\n\n**Rule:** a _match report_ is Sports.\n\n- one\n- two\n\n"
        "| class | example |\n|---|---|\n| World | summit |\n\n"
        "[the style guide](https://example.com/guide) · [Review](/Review) · [mail](mailto:team@example.com)\n\n"
        "> a quote\n\nUse `<b>` for bold in the old tool.\n\n```html\n<script>kept as code</script>\n```\n"
        ":red[careful] :material/info:"
    )
    assert guidelines.render(body) == body


def test_render_unclosed_fence_and_backtick_info_string():
    assert guidelines.render("```\n<b>in code to the end") == "```\n<b>in code to the end"  # CommonMark: code
    out = guidelines.render("```a`b\n<script>x</script>\n```")  # not a fence: a backtick in its info string
    assert "\\<script>" in out


def test_render_huge_table_deep_quotes_and_huge_body():
    table = "| a | b |\n|---|---|\n" + "".join(f"| {i} | <i>{i}</i> |\n" for i in range(3000)) + "\nafter"
    out = guidelines.render(table)
    assert out.count("\n| ") == guidelines.MAX_TABLE_ROWS  # the rows drawn (the header is the first line)
    assert "| 199 |" in out and "| 200 |" not in out
    assert f"table cut: {3000 - guidelines.MAX_TABLE_ROWS:,} more rows not shown" in out and out.endswith("after")
    assert "<i>" not in out.replace("\\<i>", "")
    deep = guidelines.render(">" * 5000 + " deep")
    assert deep.startswith(">" * guidelines.MAX_QUOTE_DEPTH + " \\>") and deep.endswith("deep")
    huge = guidelines.render(("word " * 20 + "\n") * 3000)  # 300 kB, e.g. an unsaved draft in the preview
    assert len(huge.encode()) < guidelines.MAX_BYTES + 200 and huge.endswith("bytes are drawn)_")
    assert guidelines.render(None) == "" and guidelines.render("") == ""


# ----------------------------------------------------------------------------- the page (AppTest)


@pytest.fixture
def page_env(db_path, demo_ds, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    return demo_ds


def editor(at, ds):
    return at.text_area(key=f"guidelines_editor_{ds.id}")


def test_page_lead_saves_and_the_version_is_listed(db, page_env, lead, annotator):
    ds = page_env
    at = open_page(PAGE, lead, ds.name)
    assert [t.label for t in at.tabs] == ["Guidelines", "Edit", "Versions"]
    assert any("No guidelines for this dataset yet" in i.value for i in at.info)
    editor(at, ds).set_value("### Billing\n\nA charge is **billing**. <script>x</script>")
    at.text_input(key=f"guidelines_note_{ds.id}").set_value("first rules")
    run(at)
    assert any("A charge is **billing**. \\<script>" in m.value for m in at.markdown)  # the live preview, escaped
    at.button(key=f"guidelines_save_{ds.id}").click()
    run(at)
    assert [s.value for s in at.success] == [f"Saved version 1 of the guidelines of {ds.name}."]
    g = guidelines.current(db, ds)
    assert g.version == 1 and g.note == "first rules" and g.edited_by == "lena"
    listed = at.dataframe[0].value
    assert list(listed["version"]) == [1] and list(listed["edited by"]) == ["lena"]
    assert list(listed["note"]) == ["first rules"]
    assert at.text_input(key=f"guidelines_note_{ds.id}").value == ""  # the note is cleared for the next edit
    assert editor(at, ds).value == g.body

    # the pair picker appends a drafted section to the editor, saved only by Save
    pair = at.selectbox(key=f"guidelines_pair_{ds.id}")
    g0, p0 = pair.value
    at.button(key=f"guidelines_add_{ds.id}").click()
    run(at)
    assert editor(at, ds).value.startswith(g.body + "\n\n### " + g0 + " vs " + p0)
    assert guidelines.current(db, ds).version == 1

    # another lead saves meanwhile: this save is refused, the text stays in the editor
    lea = auth.create_user(db, "lea", "lead", PASSWORD, auth.User("alice", "admin"))
    guidelines.save(db, ds, lea, "lea's rules", base_version=1)
    mine = editor(at, ds).value + "\n\nmy extra rule"
    editor(at, ds).set_value(mine)
    run(at)
    at.button(key=f"guidelines_save_{ds.id}").click()
    run(at)
    assert any("lea saved version 2" in e.value and "your text was not saved" in e.value for e in at.error)
    assert editor(at, ds).value == mine and guidelines.current(db, ds).body == "lea's rules"
    assert any("Version 2 was saved by lea" in w.value for w in at.warning)
    at.button(key=f"guidelines_rebase_{ds.id}").click()  # keep my text, save over version 2
    run(at)
    at.button(key=f"guidelines_save_{ds.id}").click()
    run(at)
    assert guidelines.current(db, ds).version == 3 and guidelines.current(db, ds).body == mine.rstrip()
    assert list(at.dataframe[0].value["version"]) == [3, 2, 1]

    # an annotator reads the current version, with no editor
    ann = open_page(PAGE, annotator, ds.name)
    assert [t.label for t in ann.tabs] == ["Guidelines", "Versions"]
    assert not ann.text_area and any("my extra rule" in m.value for m in ann.markdown)
    ann.selectbox(key=f"guidelines_open_{ds.id}").set_value(1)
    run(ann)
    assert any("A charge is **billing**." in m.value for m in ann.markdown)
    assert ann.code[0].value == g.body  # the old version's source, read-only
