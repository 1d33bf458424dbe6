"""Blind first look (review.blind): decide with a first call keeps both calls (reviews and the trail);
without one it is refused while the dataset asks for it, allowed when it does not, allowed for a revision
of one's own pending decision (which keeps the first call) and for callers that say they show no card;
changed_mind_stats against direct SQL with two annotators; the setting is a lead's, and not for NER.
Then the Review page through AppTest: step 1 shows no model view, the first call reveals it, the saved
review holds the first call."""

from __future__ import annotations

import json

import pytest

from review import auth, blind, datasets, demo, store, workflow
from review.blind import BlindCall
from review.errors import PermissionDenied, ReviewError
from review.ner import store as ner_store
from review.precision import wilson
from tests.builders import conll_slice, html_of, open_page, run
from tests.helpers import PASSWORD, copy_db

LEAD = auth.User("lena", "lead")
ANNA = auth.User("anna", "annotator")
BEN = auth.User("ben", "annotator")
REVIEW = "pages/3_Review.py"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Users alice (admin), lena (lead), anna and ben (annotators) and the audited demo dataset."""
    path = tmp_path_factory.mktemp("blind") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    auth.create_user(db, LEAD.name, "lead", PASSWORD, admin)
    for u in (ANNA, BEN):
        auth.create_user(db, u.name, "annotator", PASSWORD, admin)
    demo.load_demo(db, LEAD)
    db.conn.close()
    return path


@pytest.fixture
def bdb(tmp_path, template, monkeypatch):
    path = copy_db(template, tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    yield db
    db.conn.close()


def the_ds(db, on: bool | None = True) -> datasets.Dataset:
    ds = datasets.get(db, demo.DEMO_NAME)
    if on is not None:
        blind.set_blind_first_look(db, ds, on, LEAD)
    return datasets.get(db, ds.id)


def last_trail(db, action: str = "decision") -> dict:
    row = store.fetch_one(db, "SELECT payload FROM audit_log WHERE action=? ORDER BY id DESC LIMIT 1", [action])
    return json.loads(row["payload"])


def review_row(db, rid: int):
    return store.fetch_one(db, "SELECT * FROM reviews WHERE id=?", [rid])


def other_label(ds, s, not_this: str | None = None) -> str:
    return next(lab for lab in ds.labels if lab not in (s.current_label, not_this))


# ----------------------------------------------------------------------------- decide


def test_decide_with_a_first_call_stores_both_calls_and_the_trail_row(bdb):
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    target = other_label(ds, s)
    rid = workflow.decide(bdb, ds, s.idx, ANNA, "relabel", s.version, new_label=target, blind=BlindCall.looks_right())
    r = review_row(bdb, rid)
    assert (r["decision"], r["new_label"], r["blind_decision"], r["blind_label"]) == ("relabel", target, "keep", None)
    p = last_trail(bdb)
    assert (p["review"], p["decision"], p["new_label"]) == (rid, "relabel", target)
    assert (p["blind_decision"], p["blind_label"], p["changed_mind"]) == ("keep", None, True)

    s2 = workflow.claim_next(bdb, ds, ANNA)  # the same call twice: not a change of mind
    t2 = other_label(ds, s2)
    rid2 = workflow.decide(bdb, ds, s2.idx, ANNA, "relabel", s2.version, new_label=t2, blind=BlindCall.looks_wrong(t2))
    assert (review_row(bdb, rid2)["blind_decision"], review_row(bdb, rid2)["blind_label"]) == ("relabel", t2)
    p = last_trail(bdb)
    assert (p["blind_decision"], p["blind_label"], p["changed_mind"]) == ("relabel", t2, False)

    s3 = workflow.claim_next(bdb, ds, ANNA)  # looks wrong as X, then relabelled to Y: changed
    x, y = other_label(ds, s3), other_label(ds, s3, other_label(ds, s3))
    workflow.decide(bdb, ds, s3.idx, ANNA, "relabel", s3.version, new_label=y, blind=BlindCall.looks_wrong(x))
    assert last_trail(bdb)["changed_mind"] is True


def test_without_a_first_call_it_is_refused_while_the_setting_is_on_and_nothing_is_written(bdb):
    before = the_ds(bdb, on=None)  # read while the setting was off
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    n_trail = store.scalar(bdb, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(ReviewError, match=rf"asks for a blind first look: make your own call on row {s.idx}"):
        workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version)
    assert store.scalar(bdb, "SELECT COUNT(*) FROM reviews") == 0
    assert store.scalar(bdb, "SELECT COUNT(*) FROM audit_log") == n_trail
    assert workflow.get_suspect(bdb, ds, s.idx).state == "open"
    # decide reads the setting itself: a page that drew the row from a Dataset read before the lead turned
    # it on (so it showed the model's view) is refused too
    assert before.settings["blind_first_look"] is False
    with pytest.raises(ReviewError, match="blind first look"):
        workflow.decide(bdb, before, s.idx, ANNA, "keep", s.version)


def test_without_a_first_call_it_is_allowed_while_the_setting_is_off(bdb):
    ds = the_ds(bdb, on=None)
    assert ds.settings["blind_first_look"] is False
    s = workflow.claim_next(bdb, ds, ANNA)
    rid = workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version)
    r = review_row(bdb, rid)
    assert (r["blind_decision"], r["blind_label"]) == (None, None)
    p = last_trail(bdb)
    assert not {"blind_decision", "blind_label", "changed_mind", "blind_exempt"} & set(p)


def test_a_revision_of_ones_own_pending_decision_keeps_the_first_call(bdb):
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    first = workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall.unsure())
    assert last_trail(bdb)["changed_mind"] is True
    again = workflow.get_suspect(bdb, ds, s.idx)
    rid = workflow.decide(bdb, ds, s.idx, ANNA, "unsure", again.version)  # no first call: a revision
    assert review_row(bdb, first)["status"] == "superseded"
    r = review_row(bdb, rid)
    assert (r["decision"], r["status"], r["blind_decision"], r["blind_label"]) == ("unsure", "pending", "unsure", None)
    p = last_trail(bdb)
    assert (p["revises"], p["blind_decision"], p["changed_mind"]) == (first, "unsure", False)
    # someone else's decision is not a revision: refused as before (the row is not open)
    with pytest.raises(ReviewError, match="not open for review"):
        workflow.decide(bdb, ds, s.idx, BEN, "keep", workflow.get_suspect(bdb, ds, s.idx).version)


def test_callers_without_a_card_say_so_explicitly(bdb):
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    with pytest.raises(ReviewError, match="needs a reason"):
        workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall.not_applicable(" "))
    rid = workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall.not_applicable("bulk action"))
    assert (review_row(bdb, rid)["blind_decision"], review_row(bdb, rid)["blind_label"]) == (None, None)
    p = last_trail(bdb)
    assert p["blind_exempt"] == "bulk action" and "changed_mind" not in p
    assert blind.changed_mind_stats(bdb, ds) == []  # not a first call


def test_a_first_call_must_make_sense(bdb):
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    with pytest.raises(ReviewError, match=f"already labelled {s.current_label!r}"):
        workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall.looks_wrong(s.current_label))
    with pytest.raises(ReviewError, match="'nonsense' is not a label"):
        workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall.looks_wrong("nonsense"))
    with pytest.raises(ReviewError, match="Unknown first call 'maybe'"):
        workflow.decide(bdb, ds, s.idx, ANNA, "keep", s.version, blind=BlindCall("maybe"))
    assert store.scalar(bdb, "SELECT COUNT(*) FROM reviews") == 0


# ----------------------------------------------------------------------------- changed_mind_stats

DIRECT = """
SELECT r.reviewer, COUNT(*) AS calls,
  SUM(CASE WHEN r.decision <> r.blind_decision OR (r.decision='relabel' AND r.new_label <> r.blind_label)
      THEN 1 ELSE 0 END) AS changed,
  SUM(CASE WHEN (r.decision <> r.blind_decision OR (r.decision='relabel' AND r.new_label <> r.blind_label))
       AND CASE r.decision WHEN 'relabel' THEN r.new_label WHEN 'keep' THEN i.given_label END = sc.suggested_label
      THEN 1 ELSE 0 END) AS toward,
  SUM(CASE WHEN (r.decision <> r.blind_decision OR (r.decision='relabel' AND r.new_label <> r.blind_label))
       AND r.decision='unsure' THEN 1 ELSE 0 END) AS unsure
FROM reviews r JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx
JOIN scores sc ON sc.run_id=r.run_id AND sc.idx=r.idx
WHERE r.dataset_id=? AND r.blind_decision IS NOT NULL AND r.status <> 'superseded'
GROUP BY r.reviewer ORDER BY r.reviewer
"""


def test_changed_mind_stats_match_direct_sql_with_two_annotators(bdb):
    ds = the_ds(bdb)

    passed: list[int] = []

    def one(who, first: str, final: str) -> None:
        """first / final: 'right', 'unsure', 'sugg' (the model's suggestion), 'other' (another label), on
        the next row whose suggestion is another label than its own."""
        s = workflow.claim_next(bdb, ds, who, exclude=passed)
        while s.suggested_label in (None, s.current_label):
            passed.append(s.idx)
            s = workflow.claim_next(bdb, ds, who, exclude=passed)
        sugg = s.suggested_label
        other = other_label(ds, s, sugg)
        call = {
            "right": BlindCall.looks_right(),
            "unsure": BlindCall.unsure(),
            "sugg": BlindCall.looks_wrong(sugg),
            "other": BlindCall.looks_wrong(other),
        }[first]
        dec, lab = {"right": ("keep", None), "unsure": ("unsure", None), "sugg": ("relabel", sugg)}.get(
            final, ("relabel", other)
        )
        workflow.decide(bdb, ds, s.idx, who, dec, s.version, new_label=lab, blind=call)

    for first, final in [
        ("right", "sugg"),  # toward the model
        ("right", "sugg"),
        ("other", "sugg"),  # toward
        ("sugg", "other"),  # away
        ("sugg", "unsure"),  # to unsure
        ("right", "right"),  # unchanged
        ("sugg", "sugg"),
    ]:
        one(ANNA, first, final)
    for first, final in [("unsure", "right"), ("right", "right"), ("other", "other")]:
        one(BEN, first, final)
    s = workflow.claim_next(bdb, ds, BEN, exclude=passed)  # one decision without a first call: the CLI's
    workflow.decide(bdb, ds, s.idx, BEN, "keep", s.version, blind=BlindCall.not_applicable("cli"))

    got = blind.changed_mind_stats(bdb, ds)
    want = store.rows(bdb, DIRECT, [ds.id])
    assert [g.reviewer for g in got] == [w["reviewer"] for w in want] == ["anna", "ben"]
    for g, w in zip(got, want, strict=True):
        assert (g.blind_calls, g.changed, g.toward_model, g.to_unsure) == (
            w["calls"],
            w["changed"],
            w["toward"],
            w["unsure"],
        )
        assert g.away_from_model == w["changed"] - w["toward"] - w["unsure"]
        assert (g.rate, g.low, g.high) == wilson(w["changed"], w["calls"])
    anna, ben = got  # every row's suggestion is another label than its own: a keep is never toward the model
    assert (anna.blind_calls, anna.changed, anna.toward_model, anna.away_from_model, anna.to_unsure) == (7, 5, 3, 1, 1)
    assert (ben.blind_calls, ben.changed, ben.toward_model, ben.to_unsure) == (3, 1, 0, 0)
    assert ben.away_from_model == 1  # unsure at first, then kept a label the model disagrees with
    assert 0 < anna.low < anna.rate == 5 / 7 < anna.high < 1
    assert anna.table_row()["95% interval"].endswith("%")


# ----------------------------------------------------------------------------- the setting


def test_the_setting_is_a_leads_and_refused_for_ner(bdb):
    ds = the_ds(bdb, on=None)
    with pytest.raises(PermissionDenied):
        blind.set_blind_first_look(bdb, ds, True, ANNA)
    assert datasets.settings(bdb, ds.id)["blind_first_look"] is False
    assert blind.set_blind_first_look(bdb, ds, True, LEAD) is True
    p = last_trail(bdb, "dataset_setting")
    assert (p["setting"], p["value"], p["previous"]) == ("blind_first_look", True, False)
    assert blind.set_blind_first_look(bdb, ds, True, LEAD) is False  # already on: nothing written
    assert blind.required(datasets.get(bdb, ds.id))

    data = conll_slice(2)
    ner_id = ner_store.write_ner_dataset(bdb, ner_store.read_corpus(data, "n.conll"), data, "ner-blind", LEAD)
    ner = datasets.get(bdb, ner_id)
    with pytest.raises(ReviewError, match="'ner-blind' is a NER dataset: blind first look applies to text"):
        blind.set_blind_first_look(bdb, ner, True, LEAD)
    assert datasets.settings(bdb, ner_id)["blind_first_look"] is False
    assert not blind.applies(ner)


# ----------------------------------------------------------------------------- the Review page (AppTest)

MODEL_WORDS = ("model:", "suggested:", "recommended:", "judge:")


def test_review_page_step_one_hides_the_model_view_and_the_first_call_reveals_it(bdb):
    ds = the_ds(bdb)
    at = open_page(REVIEW, ANNA, dataset=ds.name)
    [idx] = [r[0] for r in bdb.execute("SELECT idx FROM states WHERE claimed_by='anna' AND state='open'")]
    s = workflow.get_suspect(bdb, ds, idx)
    assert s.predicted_label and s.reason  # the model has a view of this row ...
    shown = html_of(at) + "\n".join(m.value for m in at.markdown) + "\n".join(i.value for i in at.info)
    assert not any(w in shown for w in MODEL_WORDS)  # ... and step 1 shows none of it
    assert f"{s.confidence:.0%}" not in shown and "Why it is flagged" not in shown
    assert not at.get("plotly_chart")
    assert f"given: {s.current_label}" in html_of(at)
    keys = {b.key for b in at.button}
    assert {"blind_keep", "blind_unsure", "skip"} <= keys and not {"keep", "unsure"} & keys
    assert any("Your first call: is the label right?" in m.value for m in at.markdown)

    wrong = other_label(ds, s)
    at.button(key=f"blind_relabel_{ds.labels.index(wrong)}").click()
    run(at)
    assert at.session_state[f"blind_{ds.id}_{idx}_{s.version}"] == {"decision": "relabel", "label": wrong}
    html = html_of(at)
    assert f"model: {s.predicted_label} ({s.confidence:.0%})" in html
    assert at.get("plotly_chart") and any("Why it is flagged" in m.value for m in at.markdown)
    assert any(i.value.startswith("Your first call: **looks wrong: label ") for i in at.info)
    assert {"keep", "unsure"} <= {b.key for b in at.button}
    assert store.scalar(bdb, "SELECT COUNT(*) FROM reviews") == 0  # the first call alone saves nothing

    run(at)  # a rerun keeps the first call: still step 2
    assert "keep" in {b.key for b in at.button}
    at.button(key="keep").click()
    run(at)  # changed their mind: kept after all
    r = store.fetch_one(bdb, "SELECT * FROM reviews WHERE idx=?", [idx])
    assert (r["decision"], r["blind_decision"], r["blind_label"], r["reviewer"]) == ("keep", "relabel", wrong, "anna")
    assert last_trail(bdb)["changed_mind"] is True
    # the next row starts at step 1 again: it does not inherit the first call
    [nxt] = [r[0] for r in bdb.execute("SELECT idx FROM states WHERE claimed_by='anna' AND state='open'")]
    assert nxt != idx and "blind_keep" in {b.key for b in at.button}
    assert not any(w in html_of(at) for w in MODEL_WORDS)
    assert any("looks wrong: label" in x.value for x in at.success)  # the flash names the first call


def test_no_queue_filter_or_rows_column_tells_an_annotator_what_the_model_recommends(bdb):
    """With the setting on, the Review page offers no "Relabel" / "Needs review" filter and no order by
    action, and the Rows page shows an annotator no predicted label, confidence or action (a lead still sees
    them: the bulk fix works from them)."""
    ds = the_ds(bdb)
    at = open_page(REVIEW, ANNA, dataset=ds.name)
    assert at.radio(key="action_filter").options == ["All suspects", "Spot checks"]
    assert at.selectbox(key="queue_order").options == ["most suspect first"]
    rows = open_page("pages/10_Rows.py", ANNA, dataset=ds.name)
    labels = {w.label for w in [*rows.multiselect, *rows.selectbox, *rows.radio]}
    assert "Predicted label" not in labels and "Action" not in labels and "Flagged" not in labels
    columns = list(rows.dataframe[0].value.columns)
    assert "given" in columns and not {"predicted", "confidence", "action"} & set(columns)
    lead_rows = open_page("pages/10_Rows.py", LEAD, dataset=ds.name)
    assert {"predicted", "confidence", "action"} <= set(lead_rows.dataframe[0].value.columns)
    the_ds(bdb, on=False)
    again = open_page(REVIEW, ANNA, dataset=ds.name)
    assert "Relabel" in again.radio(key="action_filter").options


# ----------------------------------------------------------------------------- several annotators


@pytest.fixture(scope="module")
def crowd_template(tmp_path_factory):
    from tests.builders import build_crowd_db

    path = tmp_path_factory.mktemp("blind_crowd") / "crowd.db"
    build_crowd_db(path)
    return path


def test_a_crowd_dataset_takes_a_first_call_and_step_one_hides_the_consensus(tmp_path, crowd_template, monkeypatch):
    path = copy_db(crowd_template, tmp_path / "crowd.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    try:
        ds = datasets.get(db, "crowd")
        assert ds.mapping.multi and blind.set_blind_first_look(db, ds, True, LEAD)
        ds = datasets.get(db, "crowd")
        at = open_page(REVIEW, ANNA, dataset="crowd")
        [idx] = [r[0] for r in db.execute("SELECT idx FROM states WHERE claimed_by='anna' AND state='open'")]
        s = workflow.get_suspect(db, ds, idx)
        assert s.annotations and s.predicted_label  # the annotators' labels and the consensus exist ...
        words = html_of(at) + "\n".join(m.value for m in at.markdown)
        assert "consensus:" not in words and "Every annotator's label" not in words  # ... step 1 hides them
        assert not at.dataframe and not at.get("plotly_chart")
        with pytest.raises(ReviewError, match=f"make your own call on row {idx}"):
            workflow.decide(db, ds, idx, ANNA, "keep", s.version)
        at.button(key="blind_unsure").click()
        run(at)
        assert "consensus:" in html_of(at) and any("Every annotator's label" in m.value for m in at.markdown)
        assert at.dataframe and at.get("plotly_chart")
        at.button(key="keep").click()
        run(at)
        r = store.fetch_one(
            db, "SELECT decision, blind_decision FROM reviews WHERE idx=? AND dataset_id=?", [idx, ds.id]
        )
        assert (r["decision"], r["blind_decision"]) == ("keep", "unsure")
        [m] = blind.changed_mind_stats(db, ds)
        assert (m.reviewer, m.blind_calls, m.changed) == ("anna", 1, 1)
    finally:
        db.conn.close()


def test_the_verify_page_turns_it_on_and_off(bdb):
    ds = the_ds(bdb, on=None)
    at = open_page("pages/4_Verify.py", LEAD, dataset=ds.name)
    assert any(e.label == "Blind first look: off" for e in at.expander)
    at.button(key="blind_first_look_toggle").click()
    run(at)
    assert datasets.settings(bdb, ds.id)["blind_first_look"] is True
    assert f"Blind first look is now on for {ds.name}." in [x.value for x in at.success]
    assert any(e.label == "Blind first look: on for this dataset" for e in at.expander)
    at.button(key="blind_first_look_toggle").click()
    run(at)
    assert datasets.settings(bdb, ds.id)["blind_first_look"] is False
    assert [last_trail(bdb, "dataset_setting")[k] for k in ("setting", "value")] == ["blind_first_look", False]


def test_the_verify_card_shows_the_blind_first_call_and_whether_it_changed(bdb):
    """The lead verifying a decision sees the reviewer's first call beside the final one."""
    ds = the_ds(bdb)
    s = workflow.claim_next(bdb, ds, ANNA)
    target = other_label(ds, s)
    workflow.decide(bdb, ds, s.idx, ANNA, "relabel", s.version, new_label=target, blind=BlindCall.looks_right())
    at = open_page("pages/4_Verify.py", LEAD, dataset=ds.name)
    shown = [m.value for m in at.markdown]
    assert "blind first call: looks right · changed after seeing the model's view" in shown
    s2 = workflow.claim_next(bdb, ds, BEN)
    t2 = other_label(ds, s2)
    workflow.decide(bdb, ds, s2.idx, BEN, "relabel", s2.version, new_label=t2, blind=BlindCall.looks_wrong(t2))
    for r in workflow.pending(bdb, ds, LEAD):
        if r["reviewer"] == "anna":
            workflow.verify(bdb, r["id"], LEAD, "approve", r["version"])
    at = open_page("pages/4_Verify.py", LEAD, dataset=ds.name)
    shown = [m.value for m in at.markdown]
    assert any(
        v.startswith("blind first call: looks wrong: label ") and "kept after the model's view" in v for v in shown
    )


def test_a_first_call_against_the_final_decision_in_words():
    assert BlindCall.looks_right().against("keep", None) == "looks right · kept after the model's view"
    assert (
        BlindCall.looks_wrong("b").against("relabel", "c")
        == "looks wrong: label b · changed after seeing the model's view"
    )
