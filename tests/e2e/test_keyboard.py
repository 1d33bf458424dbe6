"""End to end, the Review page's keyboard flow in headless Chromium: no test here blurs the page
for the user (tests.e2e.helpers.press_shortcut does), keys are pressed where the focus is.

* text: switch the dataset, then K keeps (the key is not typed into the dataset box); click a
  filter, then S skips; change the order, then U marks unsure; type a note, Esc, K keeps with the note;
* NER (a CoNLL-2003 slice): click a suspect token, its tag's key sets it; a B- tag after O is
  refused with the token named; N selects the next suspect, A gives it the model's tag, Enter saves.
Screenshots go to artifacts/ (e2e-keyboard-*.png).
"""

from __future__ import annotations

import json
import re
import time

import pytest

from review import audit, auth, datasets, ner, store, workflow
from review.ner import store as ner_store
from review.text import ingest
from review.text.ingest import Mapping
from review.ui import shortcuts
from tests.builders import CONLL, E2E_CONLL_DOCS, conll_slice
from tests.e2e.helpers import choose, go, see, shot, sign_in, wait_idle

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"
LEAD, ANN = auth.User("leo", "lead"), auth.User("anna", "annotator")


def _users(db) -> None:
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    auth.create_user(db, LEAD.name, "lead", PASSWORD, admin)
    auth.create_user(db, ANN.name, "annotator", PASSWORD, admin)


def _csv(words: dict[str, list[str]]) -> bytes:
    """240 short texts, every ninth label flipped: the audit flags some."""
    a, b = list(words)
    rows = ["text,label"] + [
        f"{words[l][i % 4]} film number {i},{l if i % 9 else (b if l == a else a)}" for i in range(120) for l in (a, b)
    ]
    return ("\n".join(rows) + "\n").encode()


def _wait_for(fetch, timeout: float = 30.0):
    """Poll ``fetch`` (a database read) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _held(db, ds_id: int) -> int | None:
    row = db.execute(
        "SELECT idx FROM states WHERE dataset_id=? AND claimed_by=? AND state='open'", [ds_id, ANN.name]
    ).fetchone()
    return row[0] if row else None


def _review(db, ds_id: int, idx: int):
    return db.execute(
        "SELECT decision, new_label, note FROM reviews WHERE dataset_id=? AND idx=?", [ds_id, idx]
    ).fetchone()


def _focus(page) -> str:
    return page.evaluate("() => { const a = document.activeElement; return a ? a.tagName + ':' + (a.type || '') : '' }")


def _focus_leaves(page, test: str, what: str) -> None:
    """Wait (5 s at most) until the widget just changed has given the focus back to the page."""
    try:
        page.wait_for_function(f"() => {{ const a = document.activeElement; return !a || !({test}); }}", timeout=5000)
    except Exception:
        raise AssertionError(f"the focus stayed in the {what} after its rerun: {_focus(page)}") from None


def test_text_card_keys_work_after_widget_changes(app, pages):
    db = store.connect(app.db_path)
    try:
        _users(db)
        films = ingest.ingest_bytes(
            db,
            _csv({"neg": ["dull", "slow", "bad", "weak"], "pos": ["fine", "great", "good", "fun"]}),
            "films.csv",
            "films",
            LEAD,
            mapping=Mapping(text=["text"], label="label"),
        )
        audit.run_audit(db, films, LEAD)
        books = ingest.ingest_bytes(
            db,
            _csv({"old": ["dusty", "worn", "yellow", "torn"], "new": ["crisp", "shiny", "fresh", "clean"]}),
            "books.csv",
            "books",
            LEAD,
            mapping=Mapping(text=["text"], label="label"),
        )
        audit.run_audit(db, books, LEAD)
        page = pages("annotator")
        sign_in(page, app.url, ANN.name, PASSWORD)
        go(page, "Review")
        main = page.locator('[data-testid="stMain"]')
        combo = main.get_by_role("combobox", name="Dataset")
        assert combo.input_value() == "books"  # the newest dataset comes first

        # the dataset box: choose films with the mouse, then K keeps films' held row
        choose(page, main, "Dataset", "films")
        wait_idle(page)
        idx = _wait_for(lambda: _held(db, films))
        assert idx is not None
        _focus_leaves(page, "a.getAttribute('role') === 'combobox'", "dataset box")
        page.keyboard.press("k")
        assert _wait_for(lambda: _review(db, films, idx)) == ("keep", None, ""), _focus(page)
        wait_idle(page)
        assert combo.input_value() == "films"  # nothing typed into the box
        see(page, "kept.")

        # the filter: click "Relabel", then S skips the row shown
        main.get_by_text("Relabel", exact=True).click()
        wait_idle(page)
        shown = _wait_for(lambda: _held(db, films))
        _focus_leaves(page, "a.type === 'radio'", "filter")
        page.keyboard.press("s")
        assert _wait_for(lambda: shown in auth.load_queue_state(db, ANN, films).get("skipped", [])), (
            _focus(page),
            shown,
            auth.load_queue_state(db, ANN, films),
            shot(page, "keyboard-text-FAILED"),
        )
        wait_idle(page)
        assert _review(db, films, shown) is None  # skipped, not decided

        # the order: choose "by action", then U marks the row shown unsure
        choose(page, main, "Order", "by action")
        wait_idle(page)
        idx = _wait_for(lambda: _held(db, films))
        _focus_leaves(page, "a.getAttribute('role') === 'combobox'", "order box")
        page.keyboard.press("u")
        assert _wait_for(lambda: _review(db, films, idx)) == ("unsure", None, ""), _focus(page)
        wait_idle(page)

        # the note: type, Esc, K keeps with the note
        idx = _wait_for(lambda: _held(db, films))
        note = main.get_by_role("textbox", name="Note (optional)")
        note.click()
        page.keyboard.type("checked twice")
        page.keyboard.press("Escape")
        assert _focus(page) != "INPUT:text"
        page.keyboard.press("k")
        assert _wait_for(lambda: _review(db, films, idx)) == ("keep", None, "checked twice"), _focus(page)
        wait_idle(page)
        assert note.input_value() == ""  # the next row's note starts empty
        shot(page, "keyboard-01-text")
    finally:
        db.conn.close()


def _selects(page, j: int) -> None:
    """Wait until token j is the selected one (boxed) in the clickable sentence."""
    page.locator(f'.ner-sentence[data-pick] .ner-selected[data-i="{j}"]').wait_for()
    wait_idle(page)
    assert page.locator(".ner-sentence[data-pick] .ner-selected").count() == 1


def _press(page, key: str) -> None:
    page.keyboard.press(key)
    page.wait_for_timeout(150)
    wait_idle(page)


def test_ner_card_token_click_tag_keys_next_accept_save(app, pages):
    if not CONLL.is_file():
        pytest.fail(f"{CONLL} is missing: this test reviews a slice of it")
    db = store.connect(app.db_path)
    try:
        _users(db)
        data = conll_slice(E2E_CONLL_DOCS)
        ds_id = ner_store.write_ner_dataset(db, ner_store.read_corpus(data, "dev.conll"), data, "dev", LEAD)
        audit.run_integrity(db, ds_id, LEAD)
        audit.run_audit(db, ds_id, LEAD)
        ds = datasets.get(db, ds_id)
        options = ner_store.tag_options(ds)
        keys = dict(zip(options, shortcuts.tag_keys(options)))
        page = pages("annotator")
        sign_in(page, app.url, ANN.name, PASSWORD)
        go(page, "Review")
        see(page, re.compile(r"^Sentence \d+ · rank 1 · "))

        def suspect():
            s = workflow.get_suspect(db, ds, _held(db, ds_id))
            return s, json.loads(s.current_label), s.probs["flagged"], s.probs["predicted"]

        # a sentence with two suspects or more, one of them tagged otherwise by the model (skip the others)
        for _ in range(15):
            s, tags, flagged, predicted = suspect()
            movable = [j for j in flagged if predicted[j] != tags[j]]
            if len(flagged) >= 2 and movable:
                break
            _press(page, "s")
        else:
            pytest.fail("no sentence with two suspects in the first 15")
        jb = movable[0]  # N lands on it, A gives it the model's tag
        ja = shortcuts.suspect_step(flagged, jb, -1)  # the suspect before it: clicked first
        assert ja != jb

        # a B- tag after O breaks IOB1: refused with the token named, until the token gets O back
        jo = next(
            (
                j
                for j in range(len(tags))
                if tags[j] == "O"
                and (j == 0 or tags[j - 1] == "O")
                and j not in (ja, jb)
                and (j + 1 >= len(tags) or tags[j + 1] == "O" or tags[j + 1].startswith("I-"))
            ),
            None,
        )
        if jo is not None:
            page.locator(f'.ner-sentence[data-pick] [data-i="{jo}"]').click()
            _selects(page, jo)
            _press(page, keys["B-PER"])
            see(page, re.compile(rf"Not a valid IOB1 sequence yet: token {jo} "))
            _press(page, keys["O"])
            page.get_by_text("Not a valid IOB1 sequence").first.wait_for(state="detached")  # valid again

        # click a suspect token, press a tag's key: the token's tag changes (in the draft)
        page.locator(f'.ner-sentence[data-pick] [data-i="{ja}"]').click()
        _selects(page, ja)
        new = next(
            t
            for t in options
            if t.startswith("I-")
            and t != tags[ja]
            and keys[t]
            and not ner.scheme_violations(tags[:ja] + [t] + tags[ja + 1 :], "IOB1")
        )
        shot(page, "keyboard-02-ner-selected")
        _press(page, keys[new])
        see(page, f"{ja} {s.tokens[ja]}: {tags[ja]} → {new}")
        assert page.locator(f'.ner-sentence[data-pick] [data-i="{ja}"]').count() == 1
        draft = tags[:ja] + [new] + tags[ja + 1 :]

        # N: the next suspect is selected; A: it gets the model's tag
        _press(page, "n")
        _selects(page, jb)
        _press(page, "a")
        want = ner_store.accept_span(draft, predicted, jb, jb + 1, "IOB1")
        assert want[jb] == predicted[jb]
        see(page, f"{jb} {s.tokens[jb]}: {tags[jb]} → {predicted[jb]}")
        shot(page, "keyboard-03-ner-accepted")

        # Enter saves the draft
        idx = s.idx
        _press(page, "Enter")
        got = _wait_for(lambda: _review(db, ds_id, idx))
        assert got and got[0] == "relabel" and json.loads(got[1]) == want, (got, want)
        see(page, f"Sentence {s.key}: ")
    except Exception:
        shot(page, "keyboard-ner-FAILED") if "page" in locals() else None
        print(f"\n--- streamlit log ---\n{app.log_tail(60)}")
        raise
    finally:
        db.conn.close()
