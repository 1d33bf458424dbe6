"""The label queue (review.crowd.labeling, cleanlab ActiveLab) and the golden set (review.crowd.gold).

Real SQLite files, real cleanlab, the real audit: a small crowd (three annotators over 30 clear
texts, a few of their labels wrong, and one neutral text they split on) ingested and audited
once per module, copied per test.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest

from review import audit, auth, datasets, export, store, trail, workflow
from review.crowd import annotators, gold, labeling
from review.crowd import consensus as crowd
from review.errors import NotFound, PermissionDenied, ReviewError
from review.text import ingest
from tests.builders import CONTESTED, NEG, POS, build_crowd_db, crowd_frame
from tests.helpers import PASSWORD, copy_db, counts, raw

LEAD, ANNA, BEN = auth.User("lena", "lead"), auth.User("anna", "annotator"), auth.User("ben", "annotator")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("labeling") / "crowd.db"
    build_crowd_db(path)
    return path


@pytest.fixture
def cdb(tmp_path, template):
    db = store.connect(copy_db(template, tmp_path / "c.db"))
    yield db
    db.conn.close()


def crowd_ds(db) -> datasets.Dataset:
    return datasets.get(db, "crowd")


def idx_of(db, ds, key: str) -> int:
    return store.scalar(db, "SELECT idx FROM items WHERE dataset_id=? AND key=?", [ds.id, key])


def stored_order(db, run_id: int) -> list[int]:
    return [r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=? ORDER BY activelab, idx", [run_id])]


def labels_of(db, ds, idx: int) -> list[tuple[str, str]]:
    return [
        tuple(r)
        for r in db.execute(
            "SELECT annotator, label FROM annotations WHERE dataset_id=? AND idx=? ORDER BY annotator", [ds.id, idx]
        )
    ]


def trail_rows(db, action: str) -> list[dict]:
    return [
        {**r, "payload": json.loads(r["payload"])}
        for r in db.query(
            "SELECT actor, action, dataset_id, idx, payload FROM audit_log WHERE action=? ORDER BY id", [action]
        )
    ]


# ----------------------------------------------------------------------------- ActiveLab (pure)


def test_activelab_scores_are_cleanlabs_with_nan_for_missing_and_unlabelled_items_apart():
    from cleanlab.multiannotator import get_active_learning_scores

    L = np.array([[0, 0, 0], [1, 1, 1], [0, 1, -1], [1, -1, -1], [-1, -1, -1], [0, 0, 1]])
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.3, 0.7], [0.6, 0.4], [0.7, 0.3]])
    got = labeling.activelab_scores(L, P)
    frame = pd.DataFrame(np.where(L >= 0, L, np.nan)[[0, 1, 2, 3, 5]])
    np.random.seed(0)  # cleanlab breaks the tie of item 2 (0 vs 1, model 50/50) with np.random
    want, want_unl = get_active_learning_scores(frame, P[[0, 1, 2, 3, 5]], P[[4]])
    assert np.allclose(got[[0, 1, 2, 3, 5]], want) and np.allclose(got[[4]], want_unl)
    # seeded, and the caller's random state is left as it was
    state = np.random.get_state()[1].copy()
    assert np.array_equal(labeling.activelab_scores(L, P), got)
    assert np.array_equal(np.random.get_state()[1], state)
    # a split with a coin-flip model, one label, no label: all need another label more than a unanimous three
    assert got[2] < got[0] and got[3] < got[1] and got[4] < got[0]
    assert ((0 <= got) & (got <= 1)).all()


def test_activelab_refuses_inconsistent_input_naming_it():
    P = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="labels have 2 items but pred_probs 3"):
        labeling.activelab_scores(np.zeros((2, 2), int), P)
    with pytest.raises(ValueError, match=r"class indices 0..1 or -1 .* found 0..2"):
        labeling.activelab_scores(np.array([[0, 2], [1, 1], [0, 0]]), P)
    with pytest.raises(ValueError, match="at least 2 classes"):
        labeling.activelab_scores(np.zeros((3, 2), int), np.ones((3, 1)))
    with pytest.raises(ValueError, match="finite"):
        labeling.activelab_scores(np.zeros((3, 2), int), np.array([[0.5, np.nan]] * 3))
    with pytest.raises(ValueError, match=r"\(items, annotators\)"):
        labeling.activelab_scores(np.zeros(3, int), P)


def test_model_probs_prefers_the_consensus_models_probabilities_else_the_posteriors():
    post = np.array([[0.9, 0.1], [0.4, 0.6]])
    model = np.array([[0.7, 0.3], [0.5, 0.5]])
    res = lambda details: crowd.CrowdResult(
        np.array([0, 1]), np.ones(2), np.ones(2), np.ones(2, int), post, pd.DataFrame(), "x", details
    )
    P, source = labeling.model_probs(res({"pred_probs": model}))
    assert P is not post and np.array_equal(P, model) and "model" in source
    for details in ({}, {"pred_probs": np.ones((3, 2))}, {"pred_probs": None}):  # none, or not one row per item
        P, source = labeling.model_probs(res(details))
        assert np.array_equal(P, post) and "posteriors" in source


# ----------------------------------------------------------------------------- at audit time


def test_audit_stores_one_activelab_score_per_item_from_the_labels_and_the_model(cdb):
    ds = crowd_ds(cdb)
    run = datasets.latest_run(cdb, ds.id)
    stored = dict(cdb.execute("SELECT idx, activelab FROM scores WHERE run_id=?", [run["id"]]).fetchall())
    assert len(stored) == ds.n_items and all(v is not None and 0 <= v <= 1 for v in stored.values())
    # the same computation from scratch: the consensus of the same labels (seeded), then ActiveLab
    L, _ = audit.load_annotations(cdb, ds)
    items = audit.load_items(cdb, ds)
    res = crowd.consensus(L, ds.labels, items["text"], method="default")
    P, source = labeling.model_probs(res)
    assert np.allclose([stored[i] for i in range(ds.n_items)], labeling.activelab_scores(L, P), atol=2e-6)
    assert run["params"]["label queue"] == f"cleanlab ActiveLab on the annotators' labels and {source}"
    # the item the two annotators split on, with a neutral text, needs another label most
    assert stored_order(cdb, run["id"])[0] == idx_of(cdb, ds, CONTESTED)


def test_queue_order_comes_from_the_stored_scores(cdb):
    ds = crowd_ds(cdb)
    run_id = datasets.latest_run(cdb, ds.id)["id"]
    seen, item = [], labeling.next_item(cdb, ds, ANNA)
    while item is not None:
        assert item.run_id == run_id and item.score == store.scalar(
            cdb, "SELECT activelab FROM scores WHERE run_id=? AND idx=?", [run_id, item.idx]
        )
        seen.append(item.idx)
        item = labeling.next_item(cdb, ds, ANNA, exclude=seen)
    assert seen == stored_order(cdb, run_id)
    # change one stored score: the queue follows the table, not a recomputation
    last = seen[-1]
    cdb.execute("UPDATE scores SET activelab=-1 WHERE run_id=? AND idx=?", [run_id, last])
    assert labeling.next_item(cdb, ds, ANNA).idx == last
    # nothing was written by reading the queue
    assert store.scalar(cdb, "SELECT COUNT(*) FROM annotations WHERE annotator='anna'") == 0


def test_queue_skips_what_each_user_labelled_and_only_for_them(cdb):
    ds = crowd_ds(cdb)
    first = labeling.next_item(cdb, ds, ANNA)
    assert labeling.add_label(cdb, ds, first.idx, ANNA, "pos", run_id=first.run_id) == "added"
    assert labeling.next_item(cdb, ds, ANNA).idx != first.idx
    assert labeling.next_item(cdb, ds, BEN).idx == first.idx
    assert labeling.queue_status(cdb, ds, ANNA).mine == 1 and labeling.queue_status(cdb, ds, BEN).mine == 0
    # a user named like an annotator of the upload has labelled what that annotator labelled
    ann1 = auth.create_user(cdb, "ann1", "annotator", PASSWORD, auth.User("alice", "admin"))
    theirs = {r[0] for r in cdb.execute("SELECT idx FROM annotations WHERE dataset_id=? AND annotator='ann1'", [ds.id])}
    left = set(range(ds.n_items)) - theirs
    assert not left  # ann1 labelled every item, the contested one too
    assert labeling.next_item(cdb, ds, ann1) is None
    assert labeling.queue_status(cdb, ds, ann1).mine == ds.n_items


def test_an_added_label_joins_the_annotations_and_flips_the_next_consensus(cdb):
    ds = crowd_ds(cdb)
    lead = LEAD
    run1 = datasets.latest_run(cdb, ds.id)
    c = idx_of(cdb, ds, CONTESTED)
    before = store.scalar(cdb, "SELECT consensus_label FROM scores WHERE run_id=? AND idx=?", [run1["id"], c])
    other = next(lab for lab in ds.labels if lab != before)
    item = labeling.next_item(cdb, ds, ANNA)
    assert item.idx == c and item.text == "the parcel came on a tuesday"
    assert labeling.add_label(cdb, ds, c, ANNA, other, run_id=item.run_id) == "added"
    assert labels_of(cdb, ds, c) == sorted([("ann1", "pos"), ("ann2", "neg"), ("anna", other)])
    [row] = trail_rows(cdb, labeling.ACTION)
    assert (row["actor"], row["dataset_id"], row["idx"]) == ("anna", ds.id, c)
    assert row["payload"] == {"label": other, "previous_label": None, "outcome": "added", "run": item.run_id}
    # the consensus of the run before is untouched; the next audit run counts the new label
    assert store.scalar(cdb, "SELECT consensus_label FROM scores WHERE run_id=? AND idx=?", [run1["id"], c]) == before
    run2 = audit.run_audit(cdb, ds.id, lead)
    after, n = cdb.execute(
        "SELECT consensus_label, n_annotators FROM scores WHERE run_id=? AND idx=?", [run2, c]
    ).fetchone()
    assert (after, n) == (other, 3)
    assert "anna" in {r["annotator"] for r in annotators.annotator_table(cdb, ds)}
    ok, _, msg = trail.verify_trail(cdb)
    assert ok, msg


def test_a_second_label_replaces_ones_own_and_the_same_label_writes_nothing(cdb):
    ds = crowd_ds(cdb)
    idx = idx_of(cdb, ds, "t3")
    assert labeling.add_label(cdb, ds, idx, ANNA, "pos") == "added"
    assert labeling.add_label(cdb, ds, idx, ANNA, "neg") == "replaced"
    mine = cdb.execute(
        "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator='anna'", [ds.id, idx]
    ).fetchall()
    assert mine == [("neg",)]
    assert labeling.my_label(cdb, ds, idx, ANNA) == "neg"
    n_trail = store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    assert labeling.add_label(cdb, ds, idx, ANNA, "neg") == "unchanged"
    assert store.scalar(cdb, "SELECT COUNT(*) FROM audit_log") == n_trail
    assert [(r["payload"]["outcome"], r["payload"]["previous_label"]) for r in trail_rows(cdb, labeling.ACTION)] == [
        ("added", None),
        ("replaced", "pos"),
    ]
    # the item is still out of anna's queue, and the others' labels are untouched
    assert [a for a, _ in labels_of(cdb, ds, idx)] == ["ann1", "ann2", "ann3", "anna"]
    # an upload annotator signed in under their own name replaces their uploaded label, never adds one
    ann2 = auth.create_user(cdb, "ann2", "annotator", PASSWORD, auth.User("alice", "admin"))
    was = dict(labels_of(cdb, ds, idx))["ann2"]
    flip = "pos" if was == "neg" else "neg"
    assert labeling.add_label(cdb, ds, idx, ann2, flip) == "replaced"
    assert [lab for a, lab in labels_of(cdb, ds, idx) if a == "ann2"] == [flip]
    assert trail_rows(cdb, labeling.ACTION)[-1]["payload"]["previous_label"] == was


def test_add_label_refuses_bad_input_and_writes_nothing(cdb, tmp_path):
    ds = crowd_ds(cdb)
    before, n_trail = counts(cdb), store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(ReviewError, match=r"'maybe' is not a label of 'crowd': choose one of neg, pos"):
        labeling.add_label(cdb, ds, 0, ANNA, "maybe")
    for bad in (ds.n_items, -1):
        with pytest.raises(NotFound, match=rf"has no row {bad}: rows are 0 to {ds.n_items - 1}"):
            labeling.add_label(cdb, ds, bad, ANNA, "pos")
    with pytest.raises(NotFound, match="is not a row number"):
        labeling.add_label(cdb, ds, "three", ANNA, "pos")
    with pytest.raises(PermissionDenied):
        labeling.add_label(cdb, ds, 0, None, "pos")
    # a dataset with one label per item has no label queue
    rows = [
        {"text": f"{w} thing {i}", "label": lab}
        for lab, vocab in (("pos", POS), ("neg", NEG))
        for i, w in enumerate(vocab)
    ]
    single = datasets.get(
        cdb, ingest.ingest_bytes(cdb, pd.DataFrame(rows).to_csv(index=False).encode(), "one.csv", "one", LEAD)
    )
    before, n_trail = counts(cdb), store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    for call in (
        lambda: labeling.add_label(cdb, single, 0, ANNA, "pos"),
        lambda: labeling.queue_status(cdb, single, ANNA),
        lambda: labeling.next_item(cdb, single, ANNA),
    ):
        with pytest.raises(ReviewError, match="has one label per item: .* Use the Review page"):
            call()
    assert counts(cdb) == before and store.scalar(cdb, "SELECT COUNT(*) FROM audit_log") == n_trail


def test_queue_status_before_any_audit_and_when_activelab_fails(tmp_path, monkeypatch):
    path = tmp_path / "fresh.db"
    build_crowd_db(path, audit_it=False)
    db = store.connect(path)
    try:
        ds = crowd_ds(db)
        st = labeling.queue_status(db, ds, ANNA)
        assert (st.run_id, st.scored) == (None, False) and "No audit run yet" in st.reason
        assert labeling.next_item(db, ds, ANNA) is None

        def broken(L, P):
            raise ValueError("labels_multiannotator cannot have rows with all NaN")

        monkeypatch.setattr(labeling, "activelab_scores", broken)
        run_id = audit.run_audit(db, ds.id, LEAD)  # the audit still finishes: consensus and suspects are kept
        run = datasets.latest_run(db, ds.id)
        assert run["id"] == run_id and run["status"] == "done"
        assert store.scalar(db, "SELECT COUNT(consensus_label) FROM scores WHERE run_id=?", [run_id]) == ds.n_items
        assert store.scalar(db, "SELECT COUNT(activelab) FROM scores WHERE run_id=?", [run_id]) == 0
        st = labeling.queue_status(db, ds, ANNA)
        assert not st.scored and st.run_id == run_id
        assert st.reason == (
            f"The latest audit (run {run_id}) could not score the items for labelling "
            "(labels_multiannotator cannot have rows with all NaN). Run the audit again."
        )
        assert labeling.next_item(db, ds, ANNA) is None
        monkeypatch.undo()
        run2 = audit.run_audit(db, ds.id, LEAD)
        assert labeling.queue_status(db, ds, ANNA).scored and labeling.next_item(db, ds, ANNA).run_id == run2
    finally:
        db.conn.close()


def test_schema_6_database_migrates_to_7_keeping_its_data(tmp_path, template):
    path = copy_db(template, tmp_path / "old.db")
    c = raw(path)  # make it a version-6 file: no activelab column, no gold table
    c.execute("DROP INDEX scores_activelab")
    c.execute("ALTER TABLE scores DROP COLUMN activelab")
    c.execute("DROP TABLE gold")
    c.execute("UPDATE meta_info SET value='6' WHERE key='schema_version'")
    n_scores = c.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    c.close()
    db = store.connect(path)
    try:
        assert store.scalar(db, "SELECT value FROM meta_info WHERE key='schema_version'") == str(store.SCHEMA_VERSION)
        assert "activelab" in db["scores"].columns_dict and db["gold"].exists()
        assert store.scalar(db, "SELECT COUNT(*) FROM scores") == n_scores
        assert store.scalar(db, "SELECT COUNT(*) FROM scores WHERE activelab IS NOT NULL") == 0
        assert "scores_activelab" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        ds = crowd_ds(db)
        st = labeling.queue_status(db, ds, ANNA)  # the old run cannot order the queue, and says so
        assert not st.scored and "made before the label queue existed" in st.reason
        gold.set_gold(db, ds, 0, "pos", LEAD)  # the new table works
        assert gold.count(db, ds, LEAD) == 1
        store.connect(path).conn.close()  # a second connect finds it current
        ok, _, msg = trail.verify_trail(db)
        assert ok, msg
    finally:
        db.conn.close()


# ----------------------------------------------------------------------------- gold


def test_gold_accuracy_per_annotator_beside_the_quality_and_in_the_csv(cdb):
    ds = crowd_ds(cdb)
    keys = ["t0", "t1", "t2", "t16", "t17", CONTESTED]
    truth = {
        "t0": "pos",
        "t1": "pos",
        "t2": "neg",
        "t16": "neg",
        "t17": "pos",
        CONTESTED: "neg",
    }  # some against the crowd
    for k in keys:
        gold.set_gold(cdb, ds, idx_of(cdb, ds, k), truth[k], LEAD)
    frame = crowd_frame()
    on_gold = frame[frame["item_id"].isin(keys)]
    want = {a: ((g["label"] == g["item_id"].map(truth)).sum(), len(g)) for a, g in on_gold.groupby("annotator")}
    assert gold.accuracy(cdb, ds) == {a: (int(r), int(n)) for a, (r, n) in want.items()}
    assert want["ann3"][1] == 5 and want["ann1"][1] == 6  # ann3 did not label the contested item
    table = annotators.annotator_table(cdb, ds)
    assert list(table[0]) == [
        "annotator",
        "quality",
        "gold_accuracy",
        "gold_labels",
        "agreement",
        "worst_class",
        "n_labels",
    ]
    for r in table:
        right, n = want[r["annotator"]]
        assert r["gold_labels"] == n and r["gold_accuracy"] == pytest.approx(right / n)
    # someone without a label on a gold item: no accuracy, zero labels
    labeling.add_label(cdb, ds, idx_of(cdb, ds, "t5"), ANNA, "pos")
    audit.run_audit(cdb, ds.id, LEAD)
    anna = next(r for r in annotators.annotator_table(cdb, ds) if r["annotator"] == "anna")
    assert (anna["gold_accuracy"], anna["gold_labels"]) == (None, 0)
    # the CSV export carries the same columns and values
    rows = list(csv.DictReader(io.StringIO("".join(export.export_annotators(cdb, ds, LEAD)))))
    assert list(rows[0]) == [
        "annotator",
        "quality",
        "gold_accuracy",
        "gold_labels",
        "agreement",
        "worst_class",
        "n_labels",
    ]
    by = {r["annotator"]: r for r in rows}
    for a, (right, n) in want.items():
        assert float(by[a]["gold_accuracy"]) == pytest.approx(right / n) and int(by[a]["gold_labels"]) == n
    assert (by["anna"]["gold_accuracy"], by["anna"]["gold_labels"]) == ("", "0")
    # without gold the table and the CSV keep their columns
    for k in keys:
        gold.remove_gold(cdb, ds, idx_of(cdb, ds, k), LEAD)
    assert list(annotators.annotator_table(cdb, ds)[0]) == [
        "annotator",
        "quality",
        "agreement",
        "worst_class",
        "n_labels",
    ]
    assert next(csv.reader(io.StringIO("".join(export.export_annotators(cdb, ds, LEAD))))) == export.ANNOTATOR_COLUMNS


def test_gold_does_not_feed_the_consensus(cdb):
    ds = crowd_ds(cdb)
    run1 = datasets.latest_run(cdb, ds.id)["id"]
    cons = dict(cdb.execute("SELECT idx, consensus_label FROM scores WHERE run_id=?", [run1]).fetchall())
    for i in range(0, ds.n_items, 3):  # gold against the consensus on a third of the items
        gold.set_gold(cdb, ds, i, "neg" if cons[i] == "pos" else "pos", LEAD)
    run2 = audit.run_audit(cdb, ds.id, LEAD)
    cols = "idx, consensus_label, quality, agreement, activelab"
    assert (
        cdb.execute(f"SELECT {cols} FROM scores WHERE run_id=? ORDER BY idx", [run1]).fetchall()
        == cdb.execute(f"SELECT {cols} FROM scores WHERE run_id=? ORDER BY idx", [run2]).fetchall()
    )
    stats = "SELECT annotator, quality, agreement, n_labels FROM annotator_stats WHERE run_id=? ORDER BY annotator"
    assert cdb.execute(stats, [run1]).fetchall() == cdb.execute(stats, [run2]).fetchall()


def test_gold_is_invisible_to_the_label_queue_and_the_review_queue(cdb):
    ds = crowd_ds(cdb)
    order = stored_order(cdb, datasets.latest_run(cdb, ds.id)["id"])
    first = labeling.next_item(cdb, ds, ANNA)
    suspect = workflow.claim_next(cdb, ds, ANNA)
    workflow.release(cdb, ds, suspect.idx, ANNA)
    for i in range(ds.n_items):
        gold.set_gold(cdb, ds, i, "pos", LEAD)
    # the same items in the same order, and nothing about gold on what annotators are given
    again = labeling.next_item(cdb, ds, ANNA)
    assert again == first and set(vars(again)) == {"dataset_id", "idx", "key", "text", "run_id", "score", "my_label"}
    assert workflow.claim_next(cdb, ds, ANNA) == suspect
    assert not any("gold" in f for f in vars(suspect))
    assert stored_order(cdb, datasets.latest_run(cdb, ds.id)["id"]) == order
    # and the gold reads are for leads only
    for call in (
        lambda: gold.list_gold(cdb, ds, ANNA),
        lambda: gold.count(cdb, ds, ANNA),
        lambda: gold.gold_label(cdb, ds, 0, ANNA),
        lambda: gold.item(cdb, ds, 0, ANNA),
        lambda: gold.set_gold(cdb, ds, 0, "pos", ANNA),
        lambda: gold.remove_gold(cdb, ds, 0, ANNA),
        lambda: gold.import_csv(cdb, ds, b"row,label\n0,pos\n", "g.csv", ANNA),
    ):
        with pytest.raises(PermissionDenied, match="only a lead or above"):
            call()


def test_gold_set_replace_remove_and_refusals(cdb):
    ds = crowd_ds(cdb)
    n_trail = store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    assert gold.set_gold(cdb, ds, 4, "pos", LEAD) is None
    assert gold.set_gold(cdb, ds, "4", "neg", LEAD) == "pos"  # a row number typed as text
    assert gold.set_gold(cdb, ds, 4, "neg", LEAD) == "neg"  # the same: no second audit row
    [r] = gold.list_gold(cdb, ds, LEAD)
    assert (r["row"], r["id"], r["gold_label"], r["set_by"], r["annotators"]) == (4, "t4", "neg", "lena", 3)
    assert gold.item(cdb, ds, 4, LEAD)["gold_label"] == "neg" and gold.item(cdb, ds, 5, LEAD)["gold_label"] is None
    assert gold.remove_gold(cdb, ds, 4, LEAD) == "neg"
    assert gold.count(cdb, ds, LEAD) == 0
    assert [
        (t["action"], t["idx"], t["payload"]) for t in trail_rows(cdb, "gold_set") + trail_rows(cdb, "gold_removed")
    ] == [
        ("gold_set", 4, {"label": "pos", "previous_label": None}),
        ("gold_set", 4, {"label": "neg", "previous_label": "pos"}),
        ("gold_removed", 4, {"label": "neg"}),
    ]
    assert store.scalar(cdb, "SELECT COUNT(*) FROM audit_log") == n_trail + 3
    before = store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(NotFound, match="Row 4 of 'crowd' is not in the golden set: nothing was removed"):
        gold.remove_gold(cdb, ds, 4, LEAD)
    with pytest.raises(ReviewError, match="'maybe' is not a label of 'crowd'"):
        gold.set_gold(cdb, ds, 4, "maybe", LEAD)
    with pytest.raises(NotFound, match=rf"Dataset 'crowd' has no row {ds.n_items}: rows are 0 to {ds.n_items - 1}"):
        gold.set_gold(cdb, ds, ds.n_items, "pos", LEAD)
    with pytest.raises(NotFound, match="'x1' is not a row number"):
        gold.set_gold(cdb, ds, "x1", "pos", LEAD)
    assert gold.count(cdb, ds, LEAD) == 0 and store.scalar(cdb, "SELECT COUNT(*) FROM audit_log") == before


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "row,label\n0,pos\n1,maybe\n",
            r"gold\.csv, line 3: row 1: label 'maybe' is not a label of 'crowd' \(labels: neg, pos\)",
        ),
        ("row,label\n0,pos\n31,neg\n", r"gold\.csv, line 3: row '31' is not a row of 'crowd' \(rows are 0 to 30\)"),
        ("row,label\n-1,neg\n", r"line 2: row '-1' is not a row of 'crowd'"),
        ("row,label\nseven,neg\n", r"line 2: row 'seven' is not a row of 'crowd'"),
        ("row,label\n0,pos,extra\n", r"line 2: expected 2 values \(row,label\), found 3"),
        ("row,label\n0,pos\n0,neg\n", r"line 3: row 0 is labelled 'neg' here and 'pos' on line 2"),
        ("idx,gold\n0,pos\n", r"line 1: the header must be `row,label`, not 'idx,gold'"),
        ("", r"gold\.csv is empty"),
        ("row,label\n", r"has a header but no gold item"),
        ("row,label\n0,pos\n1,maybe\n99,neg\n", r"line 3: .*'maybe' .* \(1 more problem after it\)"),
    ],
)
def test_gold_csv_is_checked_at_the_door_and_a_refusal_writes_nothing(cdb, content, message):
    ds = crowd_ds(cdb)
    gold.set_gold(cdb, ds, 0, "neg", LEAD)
    before, n_trail = gold.list_gold(cdb, ds, LEAD), store.scalar(cdb, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(gold.GoldError, match=message):
        gold.import_csv(cdb, ds, content.encode(), "gold.csv", LEAD)
    assert gold.list_gold(cdb, ds, LEAD) == before and store.scalar(cdb, "SELECT COUNT(*) FROM audit_log") == n_trail


def test_gold_csv_import_writes_every_row_in_one_go(cdb):
    ds = crowd_ds(cdb)
    gold.set_gold(cdb, ds, 0, "neg", LEAD)
    gold.set_gold(cdb, ds, 1, "pos", LEAD)
    data = "\ufeffrow,label\n0,pos\n1,pos\n 2 , neg \n\n30,pos\n".encode()  # BOM, spaces, a blank line
    r = gold.import_csv(cdb, ds, data, "gold.csv", LEAD)
    assert (r.added, r.changed, r.unchanged) == (2, 1, 1)
    assert [(g["row"], g["gold_label"]) for g in gold.list_gold(cdb, ds, LEAD)] == [
        (0, "pos"),
        (1, "pos"),
        (2, "neg"),
        (30, "pos"),
    ]
    assert [(t["idx"], t["payload"].get("source")) for t in trail_rows(cdb, "gold_set")][-3:] == [
        (0, "gold.csv"),
        (2, "gold.csv"),
        (30, "gold.csv"),
    ]
    # no header works too; keyset pages cover every gold item once
    assert gold.import_csv(cdb, ds, b"5,neg\n6,neg\n", "more.csv", LEAD).added == 2
    page1 = gold.list_gold(cdb, ds, LEAD, limit=4)
    page2 = gold.list_gold(cdb, ds, LEAD, limit=4, after=page1[-1]["row"])
    assert [g["row"] for g in page1 + page2] == [0, 1, 2, 5, 6, 30]
