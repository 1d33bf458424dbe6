"""The Review page's keyboard, without a browser: the NER tag keys and the suspect steps
(review.ui.shortcuts), the clickable token view (review.ner.view), and the NER card's tag buttons,
N / P / A and Enter-to-save buttons driven through AppTest (tests/e2e/test_keyboard.py presses the
real keys, clicks the tokens and checks the focus in Chromium)."""

from __future__ import annotations

import json

from streamlit.elements.lib.shortcut_utils import normalize_shortcut

from review import datasets, ner, workflow
from review.ner import store as ner_store
from review.ui.shortcuts import NER_KEYS, RESERVED, suspect_step, tag_keys
from tests.builders import ANNA, held, html_of, open_page, run

# the fixture page_db (a copy of the audited CoNLL template) is in tests/db/conftest.py

IOB1 = ["O"] + [f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER") for p in "IB"]
BIOES = ["O"] + [f"{p}-{t}" for t in ("LOC", "MISC", "ORG", "PER", "DATE", "TIME") for p in "BIES"]


def test_tag_keys_o_is_zero_then_digits_then_free_letters():
    assert tag_keys(IOB1) == ["0", "1", "2", "3", "4", "5", "6", "7", "8"]
    keys = tag_keys(BIOES)  # 25 tags
    assert keys[:10] == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    letters = [k for k in keys if k and k.isalpha()]
    taken = RESERVED | set(NER_KEYS.values()) | set("CR")  # keep/unsure/skip/back, N/P/A, Streamlit's own
    assert letters and not set(letters) & taken
    assert len(set(keys)) == len(keys) and None not in keys
    for k in keys:
        normalize_shortcut(k)  # st.button accepts every one
    assert tag_keys(BIOES * 2)[-1] is None  # beyond the keys: the tag list only


def test_suspect_step_wraps_round_the_sentence():
    assert suspect_step([4, 9, 2], 2, 1) == 4 and suspect_step([4, 9, 2], 9, 1) == 2
    assert suspect_step([4, 9, 2], 4, -1) == 2 and suspect_step([4, 9, 2], 2, -1) == 9
    assert suspect_step([4, 9, 2], 0, 1) == 2 and suspect_step([4, 9, 2], 6, -1) == 4  # from a token between
    assert suspect_step([5], 5, 1) == 5 and suspect_step([], 3, 1) is None


def test_clickable_view_marks_positions_and_the_selection_and_escapes_tokens():
    evil = '<img src=x onerror="alert(1)">'
    out = ner.token_view_html(
        [evil, "Bob", "says"],
        ["O", "I-PER", "O"],
        "IOB1",
        [1],
        ["O", "I-ORG", "O"],
        [0.9, 0.6, 0.9],
        selected=1,
        clickable=True,
    )
    assert 'data-pick="1"' in out and all(f'data-i="{k}"' in out for k in range(3))
    assert out.count("ner-selected") == 1 and 'class="ner-token ner-selected" data-i="1"' in out
    assert "<img" not in out and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
    plain = ner.token_view_html([evil, "Bob"], ["O", "I-PER"], "IOB1")
    assert "data-i" not in plain and "data-pick" not in plain and "ner-selected" not in plain


def test_ner_card_tag_buttons_next_previous_accept_and_save(page_db):
    ds = datasets.get(page_db, "dev")
    at = open_page("pages/3_Review.py", ANNA)
    idx = held(page_db, ds)
    s = workflow.get_suspect(page_db, ds, idx)
    tags, flagged, predicted = json.loads(s.current_label), s.probs["flagged"], s.probs["predicted"]
    ek = f"ner_edit_{ds.id}_{idx}_{s.version}"
    options = ner_store.tag_options(ds)
    keys = dict(zip(options, tag_keys(options)))
    page = html_of(at)
    assert page.count('data-pick="1"') == 1  # the card's sentence, clickable
    assert f'class="ner-token ner-selected" data-i="{flagged[0]}"' in page  # the first suspect selected
    buttons = {b.key: b for b in at.button}
    assert [buttons[f"tagkey_{i}"].proto.shortcut for i in range(len(options))] == [keys[t] for t in options]
    assert buttons["next_suspect"].proto.shortcut == "n" and buttons["prev_suspect"].proto.shortcut == "p"
    assert buttons["save_tags"].proto.shortcut == "enter" and buttons["save_tags"].disabled
    assert buttons[f"tagkey_{options.index(tags[flagged[0]])}"].disabled  # the selected token's own tag

    # N / P walk the suspects, wrapping
    at.button(key="next_suspect").click()
    run(at)
    assert at.session_state[f"tok_{ek}"] == suspect_step(flagged, flagged[0], 1)
    at.button(key="prev_suspect").click()
    run(at)
    assert at.session_state[f"tok_{ek}"] == flagged[0]

    # a B- tag after O breaks IOB1: set in the draft, the token named, the save refused
    jo = next(
        k
        for k, t in enumerate(tags)
        if t == "O" and (k == 0 or tags[k - 1] == "O") and (k + 1 == len(tags) or not tags[k + 1].startswith("B-"))
    )
    at.selectbox(key=f"tok_{ek}").set_value(jo)
    run(at)
    at.button(key=f"tagkey_{options.index('B-PER')}").click()
    run(at)
    assert any(f"token {jo} " in e.value and "Not a valid IOB1" in e.value for e in at.error)
    at.button(key="save_tags").click()
    run(at)
    assert any(f"token {jo}" in w.value for w in at.warning)
    assert not list(page_db.query("SELECT id FROM reviews WHERE dataset_id=?", [ds.id]))
    at.button(key=f"tagkey_{options.index('O')}").click()  # back to O: valid, nothing changed
    run(at)
    assert not at.error and at.button(key="save_tags").disabled

    # A: the model's tag for the selected suspect (the entity around it repaired), then save
    j = next(k for k in flagged if predicted[k] != tags[k])
    at.selectbox(key=f"tok_{ek}").set_value(j)
    run(at)
    assert at.button(key="accept_token").proto.shortcut == "a"
    at.button(key="accept_token").click()
    run(at)
    want = ner_store.accept_span(tags, predicted, j, j + 1, "IOB1")
    assert at.session_state[ek] == want and want[j] == predicted[j]
    assert any(f"{j} {s.tokens[j]}: {tags[j]} → {predicted[j]}" in m.value.replace("\\", "") for m in at.markdown)
    at.button(key="save_tags").click()
    run(at)
    got = page_db.execute(
        "SELECT decision, new_label FROM reviews WHERE dataset_id=? AND idx=?", [ds.id, idx]
    ).fetchone()
    assert got[0] == "relabel" and json.loads(got[1]) == want


def test_review_page_mounts_the_keyboard_helper_in_the_sidebar(page_db):
    at = open_page("pages/3_Review.py", ANNA)
    helpers = [e for e in at.sidebar.children.values() if e.type == "bidi_component"]
    assert [e.proto.component_name for e in helpers] == ["review_keyboard"]
    assert not [e for e in at.main.children.values() if e.type == "bidi_component"]  # nothing in the page itself
    assert "Escape" in helpers[0].proto.js_content and "data-pick" in helpers[0].proto.js_content
    assert at.session_state["keyboard_runs"] == 1
    run(at)
    assert at.session_state["keyboard_runs"] == 2  # new data each run: the focus hand-back runs
