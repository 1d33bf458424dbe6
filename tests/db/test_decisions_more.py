"""The decisions beyond keep / relabel / unsure: "exclude" (from training; the label stays) and "ambiguous"
(kept, with a note), through workflow.decide and verify (approve, reject, override), their flags in
``states``, the cleaned CSV's columns, a re-audit that leaves excluded rows out of training and still scores
them, and a near-duplicate set resolved in one action (review.findings.resolve). Real SQLite files, the
audited demo dataset; dup_sets rows are inserted as the checks write them."""

from __future__ import annotations

import csv
import io
import json

import pytest

from review import audit, auth, datasets, export, store, trail, workflow
from review.errors import NotFound, ReviewError, StaleViewError
from review.findings.resolve import resolve_dup_set
from tests.helpers import PASSWORD, other_label


def _claim(db, ds, user):
    s = workflow.claim_next(db, ds, user)
    assert s is not None
    return s


def _flags(db, ds, idx) -> tuple:
    r = store.fetch_one(
        db, "SELECT state, excluded, ambiguous, current_label FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx]
    )
    return r["state"], r["excluded"], r["ambiguous"], r["current_label"]


def _cleaned(db, ds, lead) -> dict:
    text = "".join(export.export_cleaned(db, ds, lead))
    return {r["id"]: r for r in csv.DictReader(io.StringIO(text))}


def _trail(db, action: str) -> list[dict]:
    return [
        {**json.loads(r["payload"]), "idx": r["idx"], "actor": r["actor"]}
        for r in store.rows(db, "SELECT idx, actor, payload FROM audit_log WHERE action=? ORDER BY id", [action])
    ]


@pytest.fixture
def lead2(db, admin):
    return auth.create_user(db, "lex", "lead", PASSWORD, admin)


def test_exclude_approved_sets_the_flag_keeps_the_label_and_exports_it(db, demo_ds, lead, annotator):
    s = _claim(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "exclude", s.version, note="junk row")
    assert _flags(db, demo_ds, s.idx) == ("excluded", None, None, None)
    rev = store.fetch_one(db, "SELECT decision, new_label, status FROM reviews WHERE id=?", [rid])
    assert (rev["decision"], rev["new_label"], rev["status"]) == ("exclude", None, "pending")
    # the Verify queue lists it: the decision filter, the proposed label (the label stays) and the counts
    (p,) = workflow.pending(db, demo_ds, lead, decision="exclude")
    assert p["id"] == rid and p["proposed_label"] == s.current_label
    groups = workflow.pending_groups(db, demo_ds, lead)
    assert workflow.pending_count(groups, decision="exclude") == 1
    assert workflow.progress(db, demo_ds).pending == 1
    row = _cleaned(db, demo_ds, lead)[s.key]
    assert (row["status"], row["excluded"], row["ambiguous"], row["proposed_label"]) == (
        "excluded",
        "",
        "",
        s.current_label,
    )
    workflow.verify(db, rid, lead, "approve", s.version + 1)
    assert _flags(db, demo_ds, s.idx) == ("approved", 1, None, None)  # current label unchanged (the given one)
    assert store.scalar(db, "SELECT final_label FROM reviews WHERE id=?", [rid]) == s.given_label
    row = _cleaned(db, demo_ds, lead)[s.key]
    assert (row["status"], row["excluded"], row["ambiguous"], row["cleaned_label"], row["verified_by"]) == (
        "approved",
        "yes",
        "",
        s.given_label,
        lead.name,
    )
    assert workflow.progress(db, demo_ds).pending == 0
    v = _trail(db, "verify")[-1]
    assert v["decision"] == "exclude" and v["action"] == "approve" and v["final_label"] == s.given_label
    assert trail.verify_trail(db)[0]


def test_ambiguous_needs_a_note_then_approved_sets_its_flag(db, demo_ds, lead, annotator):
    s = _claim(db, demo_ds, annotator)
    with pytest.raises(ReviewError, match=f"Say why row {s.idx} is ambiguous"):
        workflow.decide(db, demo_ds, s.idx, annotator, "ambiguous", s.version, note="   ")
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == 0  # nothing written
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "ambiguous", s.version, note="billing or card?")
    assert _flags(db, demo_ds, s.idx)[0] == "ambiguous"
    assert _trail(db, "decision")[-1]["note"] == "billing or card?"
    workflow.verify(db, rid, lead, "approve", s.version + 1)
    assert _flags(db, demo_ds, s.idx) == ("approved", None, 1, None)
    row = _cleaned(db, demo_ds, lead)[s.key]
    assert (row["ambiguous"], row["excluded"], row["cleaned_label"]) == ("yes", "", s.given_label)
    assert trail.verify_trail(db)[0]


def test_reject_and_override_clear_the_flags(db, demo_ds, lead, annotator):
    s = _claim(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "exclude", s.version)
    workflow.verify(db, rid, lead, "reject", s.version + 1, note="it is a fine row")
    assert _flags(db, demo_ds, s.idx) == ("open", None, None, None)
    # decided again (ambiguous), then overridden by the lead with a label: the label wins, no flag
    s = workflow.claim_row(db, demo_ds, annotator, s.idx)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "ambiguous", s.version, note="two topics")
    new = other_label(demo_ds, s.given_label)
    workflow.verify(db, rid, lead, "override", s.version + 1, label=new)
    assert _flags(db, demo_ds, s.idx) == ("overridden", None, None, new)
    row = _cleaned(db, demo_ds, lead)[s.key]
    assert (row["cleaned_label"], row["excluded"], row["ambiguous"]) == (new, "", "")


def test_a_lead_decides_exclude_and_another_lead_verifies_it(db, demo_ds, lead, lead2):
    s = _claim(db, demo_ds, lead)
    rid = workflow.decide(db, demo_ds, s.idx, lead, "exclude", s.version)
    with pytest.raises(ReviewError, match="four eyes"):
        workflow.verify(db, rid, lead, "approve", s.version + 1)
    assert _flags(db, demo_ds, s.idx)[:2] == ("excluded", None)
    res = workflow.verify_many(db, demo_ds, lead2, [(rid, s.version + 1)])  # bulk approve takes it (not unsure)
    assert res["approved"] == [rid]
    assert _flags(db, demo_ds, s.idx)[:2] == ("approved", 1)


def test_exclude_and_ambiguous_refused_on_ner(ndb):
    ds = datasets.get(ndb, "dev")
    anna = auth.get_user(ndb, "anna")
    s = workflow.claim_next(ndb, ds, anna)
    for decision in ("exclude", "ambiguous"):
        with pytest.raises(ReviewError, match="applies to text datasets"):
            workflow.decide(ndb, ds, s.idx, anna, decision, s.version, note="x")
    with pytest.raises(ReviewError, match="NER dataset"):
        resolve_dup_set(ndb, ds, anna, 1, "keep_one", keep=0)


def test_re_audit_leaves_excluded_rows_out_of_training_and_still_scores_them(db, demo_ds, lead, annotator):
    a = _claim(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, a.idx, annotator, "exclude", a.version)
    workflow.verify(db, rid, lead, "approve", a.version + 1)  # approved: states.excluded
    b = _claim(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, b.idx, annotator, "exclude", b.version)  # pending
    given = audit.load_items(db, demo_ds)["given_label"]
    trained = audit.current_labels(db, demo_ds, given)
    assert trained.left_out[a.idx] and trained.left_out[b.idx] and int(trained.left_out.sum()) == 2
    assert trained.excluded == 2 and trained.labels == list(given)  # the labels stay
    run_id = audit.run_audit(db, demo_ds.id, lead)
    params = datasets.latest_run(db, demo_ds.id, "audit")["params"]
    assert datasets.latest_run(db, demo_ds.id, "audit")["id"] == run_id
    assert params["excluded_rows"] == 2 and params["left_out_rows"] == 2
    scored = {
        r["idx"]: r["quality"]
        for r in store.rows(
            db, "SELECT idx, quality FROM scores WHERE run_id=? AND idx IN (?, ?)", [run_id, a.idx, b.idx]
        )
    }
    assert set(scored) == {a.idx, b.idx} and all(q is not None for q in scored.values())  # still scored


def _dup_set(db, ds, rows, n_labels=2) -> int:
    run_id = datasets.latest_run(db, ds.id, "audit")["id"]
    cur = db.execute(
        "INSERT INTO dup_sets(run_id, dataset_id, n_rows, n_labels, leakage, rows, similarity) VALUES (?,?,?,?,0,?,0.97)",
        [run_id, ds.id, len(rows), n_labels, json.dumps(rows)],
    )
    db.conn.commit()
    return cur.lastrowid


def _labels(db, ds, rows) -> dict:
    return {
        r["idx"]: r["given_label"]
        for r in store.rows(
            db,
            f"SELECT idx, given_label FROM items WHERE dataset_id=? AND idx IN ({','.join('?' * len(rows))})",
            [ds.id, *rows],
        )
    }


def test_resolve_keep_one_excludes_the_rest_and_skips_rows_not_open(db, demo_ds, lead, annotator, lead2):
    rows = [300, 301, 302, 303]
    # row 303 decided already (not open); row 302 held by another reviewer
    s = workflow.claim_row(db, demo_ds, lead2, 303)
    workflow.decide(db, demo_ds, 303, lead2, "keep", s.version)
    workflow.claim_row(db, demo_ds, lead2, 302)
    set_id = _dup_set(db, demo_ds, rows)
    n_trail = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    res = resolve_dup_set(db, demo_ds, annotator, set_id, "keep_one", keep=300, note="same ticket twice")
    assert res.decided == {300: "keep", 301: "exclude"}
    assert res.skipped == {"not_open": [303], "claimed": [302]} and res.n_skipped == 2
    assert "row 300 kept, 1 row excluded from training" in res.message()
    assert [_flags(db, demo_ds, i)[0] for i in (300, 301)] == ["kept", "excluded"]
    revs = store.rows(
        db,
        "SELECT idx, decision, status, reviewer, note FROM reviews WHERE id IN (?, ?) ORDER BY idx",
        list(res.reviews.values()),
    )
    assert [(r["idx"], r["decision"], r["status"], r["reviewer"]) for r in revs] == [
        (300, "keep", "pending", annotator.name),
        (301, "exclude", "pending", annotator.name),
    ]
    assert "same ticket twice" in revs[0]["note"] and f"set {set_id}" in revs[0]["note"]
    d = store.fetch_one(db, "SELECT status, resolution, resolved_by, resolved_at FROM dup_sets WHERE id=?", [set_id])
    assert d["status"] == "resolved" and d["resolved_by"] == annotator.name and d["resolved_at"]
    got = json.loads(d["resolution"])
    assert got["how"] == "keep_one" and got["keep"] == 300 and got["decided"] == {"300": "keep", "301": "exclude"}
    # trail: the per-row decisions and one dup_set_resolve row, nothing else
    new = store.rows(db, "SELECT action, idx, payload FROM audit_log WHERE id>? ORDER BY id", [n_trail])
    assert [(r["action"], r["idx"]) for r in new] == [("decision", 300), ("decision", 301), ("dup_set_resolve", None)]
    p = json.loads(new[1]["payload"])
    assert p["decision"] == "exclude" and p["dup_set"] == set_id and p["blind_exempt"] == "near-duplicate set"
    summary = json.loads(new[2]["payload"])
    assert summary["set"] == set_id and summary["decided"] == 2 and summary["skipped"] == {"not_open": 1, "claimed": 1}
    assert trail.verify_trail(db)[0]
    # four eyes as usual: the lead verifies the annotator's exclude, the flag follows
    workflow.verify(db, res.reviews[301], lead, "approve", _version(db, demo_ds, 301))
    assert _flags(db, demo_ds, 301)[:3] == ("approved", 1, None)
    # resolved twice: refused, nothing changed
    before = store.scalar(db, "SELECT COUNT(*) FROM reviews")
    with pytest.raises(StaleViewError, match=f"set {set_id} was already resolved by {annotator.name}"):
        resolve_dup_set(db, demo_ds, lead, set_id, "one_label", label=demo_ds.labels[0])
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == before


def _version(db, ds, idx) -> int:
    return store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])


def test_resolve_one_label_relabels_where_it_differs_and_keeps_the_rest(db, demo_ds, lead, annotator):
    first = store.fetch_one(db, "SELECT idx, given_label FROM items WHERE dataset_id=? AND idx=310", [demo_ds.id])
    label = first["given_label"]
    same_as = "SELECT idx FROM items WHERE dataset_id=? AND idx>310 AND given_label{}? ORDER BY idx LIMIT 1"
    rows = [310, store.scalar(db, same_as.format("="), [demo_ds.id, label])]
    rows.append(store.scalar(db, same_as.format("!="), [demo_ds.id, label]))
    given = _labels(db, demo_ds, rows)
    differing = [i for i in rows if given[i] != label]
    same = [i for i in rows if given[i] == label]
    assert len(differing) == 1 and len(same) == 2
    set_id = _dup_set(db, demo_ds, rows)
    res = resolve_dup_set(db, demo_ds, lead, set_id, "one_label", label=label)
    assert res.decided == {**{i: "relabel" for i in differing}, **{i: "keep" for i in same}}
    assert not res.skipped
    for i in differing:
        r = store.fetch_one(db, "SELECT decision, new_label FROM reviews WHERE id=?", [res.reviews[i]])
        assert (r["decision"], r["new_label"]) == ("relabel", label) and _flags(db, demo_ds, i)[0] == "relabelled"
    for i in same:
        assert _flags(db, demo_ds, i)[0] == "kept"
    assert json.loads(store.scalar(db, "SELECT resolution FROM dup_sets WHERE id=?", [set_id]))["label"] == label
    # the lead resolved it: another lead has to verify (four eyes); the lead's own approve is refused
    with pytest.raises(ReviewError, match="four eyes"):
        workflow.verify(db, res.reviews[rows[0]], lead, "approve", _version(db, demo_ds, rows[0]))
    assert trail.verify_trail(db)[0]


def test_resolve_refusals(db, demo_ds, lead, annotator):
    set_id = _dup_set(db, demo_ds, [320, 321])
    with pytest.raises(ReviewError, match="Unknown way to resolve"):
        resolve_dup_set(db, demo_ds, annotator, set_id, "merge")
    with pytest.raises(ReviewError, match=r"Pick the row to keep .*\(320, 321\)"):
        resolve_dup_set(db, demo_ds, annotator, set_id, "keep_one", keep=5)
    with pytest.raises(ReviewError, match="'nope' is not a label"):
        resolve_dup_set(db, demo_ds, annotator, set_id, "one_label", label="nope")
    with pytest.raises(NotFound):
        resolve_dup_set(db, demo_ds, annotator, 99_999, "keep_one", keep=320)
    # every row decided already: refused, the set stays open
    for i in (320, 321):
        s = workflow.claim_row(db, demo_ds, lead, i)
        workflow.decide(db, demo_ds, i, lead, "unsure", s.version)
    with pytest.raises(ReviewError, match="None of the 2 rows"):
        resolve_dup_set(db, demo_ds, annotator, set_id, "keep_one", keep=320)
    assert store.scalar(db, "SELECT status FROM dup_sets WHERE id=?", [set_id]) == "open"
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='dup_set_resolve'") == 0
    # a deactivated account is refused (roles are checked where the action is done)
    other = _dup_set(db, demo_ds, [330, 331])
    admin = auth.get_user(db, "alice")
    auth.set_active(db, annotator.name, False, admin)
    with pytest.raises(ReviewError):
        resolve_dup_set(db, demo_ds, annotator, other, "keep_one", keep=330)
    assert store.scalar(db, "SELECT status FROM dup_sets WHERE id=?", [other]) == "open"


def test_the_cards_flag_keys_never_clash_with_a_labels_key():
    from streamlit.elements.lib.shortcut_utils import normalize_shortcut

    from review.ui import shortcuts
    from review.ui.views.text_card import flag_keys

    assert flag_keys(shortcuts.label_keys(["account", "billing"])) == ("X", "A")  # digits 1, 2 on the labels
    keys = shortcuts.label_keys(["axe", "xyz", "2"])  # a digit among words: letters, A, X, then a free one
    assert keys[:2] == ["A", "X"]
    ex, amb = flag_keys(keys)
    assert ex != amb and not {ex, amb} & (set(keys) | set("KUSBCR"))
    for k in (ex, amb):
        normalize_shortcut(k)  # st.button accepts them
