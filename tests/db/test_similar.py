"""Find similar (review.similar) on the real audited demo dataset: row_neighbours written here from sklearn's
NearestNeighbors (cosine) on a TF-IDF of the texts, as the audit's checks store them, so the tests do not wait
for the engine. similar(): order, labels, states, claims, the snippet, the unavailable cases. apply_to_similar:
pending decisions through workflow.decide (verified by a lead, four eyes), skipped rows counted, stale
versions and rows not listed refused alone, the blind first look, the trail rows (similar_to, the counts) and
verify_trail. Then the Review page through AppTest: the panel lists the rows, two ticked and applied are two
pending decisions. Last, one real audit: once review.findings writes row_neighbours, a flagged row has rows."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.neighbors import NearestNeighbors

from review import audit, auth, blind, datasets, demo, similar, store, trail, workflow
from review.errors import NotFound, PermissionDenied, ReviewError
from tests.builders import open_page, run
from tests.helpers import PASSWORD, copy_db

LEAD = auth.User("lena", "lead")
ANNA = auth.User("anna", "annotator")
BEN = auth.User("ben", "annotator")
REVIEW = "pages/3_Review.py"


def write_neighbours(db, ds, run_id: int, k: int = 10) -> dict[int, list[tuple[int, float]]]:
    """Each row's ``k`` nearest rows by cosine on a TF-IDF of the texts, written to row_neighbours as the
    checks do (JSON [[row, similarity], ...], nearest first, the row itself left out). Returns them."""
    rows = store.rows(db, "SELECT idx, text FROM items WHERE dataset_id=? ORDER BY idx", [ds.id])
    idxs = [r["idx"] for r in rows]
    x = TfidfVectorizer().fit_transform([r["text"] or "" for r in rows])
    dist, pos = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x).kneighbors(x)
    out = {}
    for i, (d, p) in enumerate(zip(dist, pos)):
        near = [(idxs[j], round(float(1 - dd), 6)) for dd, j in zip(d, p) if idxs[j] != idxs[i]][:k]
        out[idxs[i]] = near
    with store.transaction(db):
        db.execute("DELETE FROM row_neighbours WHERE run_id=?", [run_id])
        db.conn.executemany(
            "INSERT INTO row_neighbours(run_id, idx, neighbours) VALUES (?,?,?)",
            [(run_id, i, json.dumps([[r, s] for r, s in near])) for i, near in out.items()],
        )
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """alice (admin), lena and leo (leads), anna and ben (annotators), the audited demo dataset and its
    neighbours in the audit run."""
    path = tmp_path_factory.mktemp("similar") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    auth.create_user(db, LEAD.name, "lead", PASSWORD, admin)
    auth.create_user(db, "leo", "lead", PASSWORD, admin)
    for u in (ANNA, BEN):
        auth.create_user(db, u.name, "annotator", PASSWORD, admin)
    ds = datasets.get(db, demo.load_demo(db, LEAD))
    write_neighbours(db, ds, datasets.latest_run(db, ds.id, "audit")["id"])
    db.conn.close()
    return path


@pytest.fixture
def sdb(tmp_path, template, monkeypatch):
    path = copy_db(template, tmp_path / "review.db")
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    yield db
    db.conn.close()


def the_ds(db) -> datasets.Dataset:
    return datasets.get(db, demo.DEMO_NAME)


def run_id(db, ds) -> int:
    return datasets.latest_run(db, ds.id, "audit")["id"]


def stored(db, ds, idx: int) -> list[tuple[int, float]]:
    raw = store.scalar(db, "SELECT neighbours FROM row_neighbours WHERE run_id=? AND idx=?", [run_id(db, ds), idx])
    return [(int(r), float(s)) for r, s in json.loads(raw)]


def flagged_row(db, ds) -> int:
    return store.scalar(
        db, "SELECT idx FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank LIMIT 1", [run_id(db, ds)]
    )


def trail_rows(db, action: str) -> list[dict]:
    return [
        {**json.loads(r["payload"]), "_idx": r["idx"], "_actor": r["actor"]}
        for r in store.rows(db, "SELECT payload, idx, actor FROM audit_log WHERE action=? ORDER BY id", [action])
    ]


def mixed(db, ds) -> tuple[int, str]:
    """A flagged row and a label that one of its similar rows has and at least four others do not."""
    flagged = store.rows(db, "SELECT idx FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank", [run_id(db, ds)])
    for src in (r["idx"] for r in flagged):
        labels = [r.current_label for r in similar.similar(db, ds, src).rows]
        for label in ds.labels:
            if 1 <= labels.count(label) <= len(labels) - 4:
                return src, label
    raise AssertionError("no flagged row of the demo has similar rows of mixed labels")


def targets(db, ds, src: int, label: str, n: int) -> list[int]:
    """``n`` rows like ``src`` that are open and not labelled ``label`` (nearest first)."""
    got = similar.similar(db, ds, src)
    rows = [r.idx for r in got.rows if r.why_not(ANNA.name, "relabel", label) is None]
    assert len(rows) >= n, rows
    return rows[:n]


# ----------------------------------------------------------------------------- similar()


def test_similar_lists_the_nearest_rows_in_order_with_their_labels_states_and_the_models_label(sdb):
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    got = similar.similar(sdb, ds, src)
    assert got.available and got.reason is None and got.run_id == run_id(sdb, ds)
    near = stored(sdb, ds, src)
    assert [r.idx for r in got.rows] == [r for r, _ in near] and len(got) == 10
    assert [r.similarity for r in got.rows] == [s for _, s in near]
    assert all(a.similarity >= b.similarity for a, b in zip(got.rows, got.rows[1:]))  # nearest first
    assert src not in [r.idx for r in got.rows]
    for r in got.rows:
        item = store.fetch_one(
            sdb, "SELECT key, text, given_label FROM items WHERE dataset_id=? AND idx=?", [ds.id, r.idx]
        )
        pred = store.scalar(sdb, "SELECT predicted_label FROM scores WHERE run_id=? AND idx=?", [got.run_id, r.idx])
        assert (r.key, r.given_label, r.current_label, r.predicted_label) == (
            item["key"],
            item["given_label"],
            item["given_label"],
            pred,
        )
        assert (r.state, r.version, r.claimed_by) == ("open", 0, None)
        assert r.snippet == " ".join(item["text"].split()) and len(r.snippet) <= similar.SNIPPET
    assert [r.idx for r in similar.similar(sdb, ds, src, k=3).rows] == [r for r, _ in near[:3]]
    assert similar.similar(sdb, ds, src, run_id=got.run_id).rows == got.rows


def test_similar_shows_decisions_claims_a_changed_label_and_cuts_long_texts(sdb):
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    a, b, c = (r for r, _ in stored(sdb, ds, src)[:3])
    sa = workflow.claim_row(sdb, ds, ANNA, a)
    label = next(lab for lab in ds.labels if lab != sa.current_label)
    workflow.decide(sdb, ds, a, ANNA, "relabel", sa.version, new_label=label)
    workflow.claim_row(sdb, ds, BEN, b)  # ben holds b now
    long = "word " * 200 + "   tail"
    with store.transaction(sdb):
        sdb.execute("UPDATE items SET text=? WHERE dataset_id=? AND idx=?", [long, ds.id, c])
    rows = {r.idx: r for r in similar.similar(sdb, ds, src).rows}
    assert (rows[a].state, rows[a].version) == ("relabelled", 1)
    assert rows[a].why_not(ANNA.name, "keep") == "not_open"
    assert (rows[b].state, rows[b].claimed_by) == ("open", BEN.name)
    assert rows[b].why_not(ANNA.name, "keep") == "held" and rows[b].why_not(BEN.name, "keep") is None
    assert len(rows[c].snippet) == similar.SNIPPET and rows[c].snippet.endswith("…")
    assert rows[c].snippet.startswith("word word") and "  " not in rows[c].snippet
    # a lead approves a's relabel: its current label is the new one, and a relabel to it is "has_label"
    rid = store.scalar(sdb, "SELECT id FROM reviews WHERE idx=? AND status='pending'", [a])
    workflow.verify(sdb, rid, LEAD, "approve", 1)
    ra = next(r for r in similar.similar(sdb, ds, src).rows if r.idx == a)
    assert (ra.current_label, ra.given_label != label, ra.state) == (label, True, "approved")
    assert dataclasses.replace(ra, state="open").why_not(ANNA.name, "relabel", label) == "has_label"


def test_similar_says_why_when_there_are_no_rows_to_show(sdb, tmp_path):
    ds = the_ds(sdb)
    rid = run_id(sdb, ds)
    src = flagged_row(sdb, ds)
    ner = similar.similar(sdb, dataclasses.replace(ds, task="ner"), src)
    assert not ner.available and ner.rows == [] and "NER dataset" in ner.reason

    with store.transaction(sdb):  # a big dataset: only some rows have neighbours
        sdb.execute("DELETE FROM row_neighbours WHERE run_id=? AND idx=?", [rid, src])
    big = similar.similar(sdb, ds, src)
    assert not big.available and big.run_id == rid
    assert f"only for flagged rows and rows with findings ({ds.name!r} has 400 rows" in big.reason
    assert f"row {src} is neither" in big.reason

    with store.transaction(sdb):  # a run from before the checks: none at all
        sdb.execute("DELETE FROM row_neighbours WHERE run_id=?", [rid])
    old = similar.similar(sdb, ds, src)
    assert not old.available and f"Audit run {rid} recorded no rows like these" in old.reason

    with pytest.raises(NotFound, match=rf"has no run {rid + 99}"):
        similar.similar(sdb, ds, src, run_id=rid + 99)

    fresh = store.connect(tmp_path / "fresh.db")  # uploaded, not audited yet
    admin = auth.create_user(fresh, "alice", "admin", PASSWORD, None)
    from review.text import ingest

    fid = ingest.ingest_bytes(fresh, demo.demo_csv_bytes(40), "d.csv", "d", admin)
    none = similar.similar(fresh, datasets.get(fresh, fid), 0)
    assert not none.available and "has no audit run yet" in none.reason
    fresh.conn.close()


# ----------------------------------------------------------------------------- apply_to_similar()


def test_an_annotator_applies_a_relabel_to_ticked_rows_and_a_lead_verifies_them(sdb):
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    label = ds.labels[0]
    rows = targets(sdb, ds, src, label, 3)
    n_before = store.scalar(sdb, "SELECT COUNT(*) FROM audit_log")
    res = similar.apply_to_similar(sdb, ds, ANNA, src, [(r, 0) for r in rows], "relabel", label, note="same wording")
    assert (res.applied, res.skipped, res.refused, res.run_id) == (rows, {}, [], run_id(sdb, ds))
    assert res.describe().startswith(f"3 rows like row {src} relabelled to {label}, awaiting verification.")
    revs = store.rows(sdb, "SELECT * FROM reviews WHERE dataset_id=? ORDER BY id", [ds.id])
    assert [r["idx"] for r in revs] == rows and [r["id"] for r in revs] == res.reviews
    for r in revs:
        assert (r["decision"], r["new_label"], r["note"], r["reviewer"], r["status"]) == (
            "relabel",
            label,
            "same wording",
            "anna",
            "pending",
        )
        assert r["blind_decision"] is None
        assert workflow.get_suspect(sdb, ds, r["idx"]).state == "relabelled"
    assert workflow.get_suspect(sdb, ds, src).state == "open"  # the source row is decided on its card
    decisions = trail_rows(sdb, "decision")
    assert [d["_idx"] for d in decisions] == rows
    assert all(d["similar_to"] == src and d["blind_exempt"] == similar.EXEMPT for d in decisions)
    assert all(d["new_label"] == label and d["_actor"] == "anna" for d in decisions)
    [summary] = trail_rows(sdb, "apply_to_similar")
    assert (summary["_idx"], summary["applied"], summary["rows"], summary["reviews"]) == (src, 3, rows, res.reviews)
    assert (summary["decision"], summary["new_label"], summary["skipped"], summary["refused"]) == (
        "relabel",
        label,
        {},
        0,
    )
    assert res.trail_id == store.scalar(sdb, "SELECT MAX(id) FROM audit_log")
    assert store.scalar(sdb, "SELECT COUNT(*) FROM audit_log") == n_before + 4

    # four eyes as for any decision: a lead verifies them (anna cannot, nor can she approve)
    with pytest.raises(PermissionDenied):
        workflow.verify(sdb, res.reviews[0], ANNA, "approve", 1)
    out = workflow.verify_many(sdb, ds, LEAD, [(rid, 1) for rid in res.reviews])
    assert out["approved"] == res.reviews
    assert all(workflow.get_suspect(sdb, ds, r).current_label == label for r in rows)
    assert trail.verify_trail(sdb)[0]


def test_a_lead_applies_too_and_their_own_decisions_need_another_lead(sdb):
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    [row] = targets(sdb, ds, src, ds.labels[1], 1)
    res = similar.apply_to_similar(sdb, ds, LEAD, src, [(row, 0)], "keep")
    assert res.applied == [row] and res.new_label is None
    r = store.fetch_one(sdb, "SELECT decision, reviewer FROM reviews WHERE id=?", [res.reviews[0]])
    assert (r["decision"], r["reviewer"]) == ("keep", "lena")
    with pytest.raises(ReviewError, match="four eyes"):
        workflow.verify(sdb, res.reviews[0], LEAD, "approve", 1)
    workflow.verify(sdb, res.reviews[0], auth.User("leo", "lead"), "approve", 1)
    assert workflow.get_suspect(sdb, ds, row).state == "approved"


def test_rows_not_open_held_labelled_so_or_the_source_are_skipped_and_stale_ones_refused_alone(sdb):
    ds = the_ds(sdb)
    src, label = mixed(sdb, ds)
    near = [r.idx for r in similar.similar(sdb, ds, src).rows]
    cur = {r.idx: r.current_label for r in similar.similar(sdb, ds, src).rows}
    has = next(r for r in near if cur[r] == label)
    decided, held, stale, good = [r for r in near if cur[r] != label][:4]
    s = workflow.claim_row(sdb, ds, BEN, decided)
    workflow.decide(sdb, ds, decided, BEN, "keep", s.version)
    workflow.claim_row(sdb, ds, BEN, held)
    far = next(  # a row of the dataset that is not among src's rows
        i for i in range(400) if i not in near and i != src
    )
    ticked = [(decided, 0), (held, 0), (stale, 7), (good, 0), (src, 0), (far, 0), (good, 0), (has, 0)]
    n_reviews = store.scalar(sdb, "SELECT COUNT(*) FROM reviews")
    res = similar.apply_to_similar(sdb, ds, ANNA, src, ticked, "relabel", label)
    assert res.applied == [good]
    want = {"not_open": [decided], "held": [held], "source": [src], "has_label": [has]}
    assert res.skipped == want and res.n_skipped == len(want)
    assert [r for r, _ in res.refused] == [stale, far]
    assert "was changed by" in res.refused[0][1] and "your decision was not saved" in res.refused[0][1]
    assert f"not among the rows like row {src}" in res.refused[1][1]
    assert store.scalar(sdb, "SELECT COUNT(*) FROM reviews") == n_reviews + 1  # the refused rows wrote nothing
    assert workflow.get_suspect(sdb, ds, stale).state == "open"
    assert workflow.get_suspect(sdb, ds, held).claimed_by == BEN.name
    [summary] = trail_rows(sdb, "apply_to_similar")
    assert summary["skipped"] == {k: len(v) for k, v in want.items()}
    assert (summary["refused"], summary["refused_rows"], summary["applied"]) == (2, [stale, far], 1)
    assert "Skipped 1 (being reviewed by someone else)" in res.describe()
    assert trail.verify_trail(sdb)[0]

    # nothing that can be applied: nothing is written, not even the summary row
    n_trail = store.scalar(sdb, "SELECT COUNT(*) FROM audit_log")
    none = similar.apply_to_similar(sdb, ds, ANNA, src, [(decided, 0), (held, 0)], "relabel", label)
    assert (none.applied, none.trail_id, none.n_skipped) == ([], None, 2)
    assert store.scalar(sdb, "SELECT COUNT(*) FROM audit_log") == n_trail


def test_under_a_blind_first_look_the_rows_are_decided_with_the_exemption(sdb):
    ds = the_ds(sdb)
    blind.set_blind_first_look(sdb, ds, True, LEAD)
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    rows = targets(sdb, ds, src, ds.labels[3], 2)
    res = similar.apply_to_similar(sdb, ds, ANNA, src, [(r, 0) for r in rows], "unsure")
    assert res.applied == rows
    assert all(d["blind_exempt"] == "find similar" and "changed_mind" not in d for d in trail_rows(sdb, "decision"))
    with pytest.raises(ReviewError, match="blind first look"):  # the card's own decide still needs the call
        workflow.decide(sdb, ds, src, ANNA, "keep", 0)


def test_refusals_write_nothing(sdb):
    ds = the_ds(sdb)
    src = flagged_row(sdb, ds)
    [row] = targets(sdb, ds, src, ds.labels[0], 1)
    n = store.scalar(sdb, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(ReviewError, match=f"Tick at least one row like row {src}"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [], "keep")
    with pytest.raises(ReviewError, match="'nope' is not a label"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [(row, 0)], "relabel", "nope")
    with pytest.raises(ReviewError, match="Unknown decision 'drop'"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [(row, 0)], "drop")
    with pytest.raises(ReviewError, match="NER dataset"):
        similar.apply_to_similar(sdb, dataclasses.replace(ds, task="ner"), ANNA, src, [(row, 0)], "keep")
    with pytest.raises(ReviewError, match=f"at most {similar.MAX_ROWS} rows"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [(i, 0) for i in range(similar.MAX_ROWS + 1)], "keep")
    with store.transaction(sdb):
        sdb.execute("DELETE FROM row_neighbours WHERE idx=?", [src])
    with pytest.raises(ReviewError, match=f"recorded no rows like row {src}: nothing was changed"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [(row, 0)], "keep")
    auth.set_active(sdb, "anna", False, auth.User("alice", "admin"))
    with pytest.raises(PermissionDenied, match="deactivated"):
        similar.apply_to_similar(sdb, ds, ANNA, src, [(row, 0)], "keep")
    assert store.scalar(sdb, "SELECT COUNT(*) FROM reviews") == 0
    assert store.scalar(sdb, "SELECT COUNT(*) FROM audit_log") == n + 1  # the deactivation's own row


# ----------------------------------------------------------------------------- the Review page


def test_the_review_card_lists_rows_like_it_and_applies_a_correction_to_two_ticked_rows(sdb):
    ds = the_ds(sdb)
    at = open_page(REVIEW, ANNA, dataset=ds.name)
    [src] = [r[0] for r in sdb.execute("SELECT idx FROM states WHERE claimed_by='anna' AND state='open'")]
    assert not at.expander or not any(e.label.startswith("Rows like this one") for e in at.expander)
    at.toggle(key=f"similar_show_{ds.id}").set_value(True)
    run(at)
    [panel] = [e for e in at.expander if e.label.startswith("Rows like this one")]
    assert panel.label == "Rows like this one (10)"
    got = similar.similar(sdb, ds, src)
    shown = "\n".join(m.value for m in at.markdown)
    for r in got.rows:
        assert f"row {r.idx} · similarity {r.similarity:.2f}" in shown
    label = ds.labels[1]
    at.selectbox(key=f"similar_what_{ds.id}_{src}").set_value(("relabel", label))
    run(at)
    tick = f"similar_tick_{ds.id}_{src}_0_"
    boxes = {c.key: c for c in at.checkbox if c.key.startswith(tick)}
    assert len(boxes) == 10
    for r in got.rows:  # a checkbox only where the row can take the correction
        assert boxes[f"{tick}{r.idx}"].disabled == (r.current_label == label)
    two = [r.idx for r in got.rows if r.current_label != label][:2]
    apply_key = f"similar_apply_{ds.id}_{src}"
    assert at.button(key=apply_key).disabled
    for r in two:
        at.checkbox(key=f"{tick}{r}").check()
    run(at)
    assert at.button(key=apply_key).label == "Apply this correction to the 2 ticked rows"
    at.button(key=apply_key).click()
    run(at)
    revs = store.rows(sdb, "SELECT idx, decision, new_label, status, reviewer FROM reviews ORDER BY id")
    assert [(r["idx"], r["decision"], r["new_label"], r["status"], r["reviewer"]) for r in revs] == [
        (i, "relabel", label, "pending", "anna") for i in two
    ]
    assert [d["similar_to"] for d in trail_rows(sdb, "decision")] == [src, src]
    assert any(f"2 rows like row {src} relabelled to" in s.value for s in at.success)
    assert workflow.get_suspect(sdb, ds, src).state == "open"  # the card's row: still anna's to decide
    tick = f"similar_tick_{ds.id}_{src}_1_"  # a new round of checkboxes: none ticked
    boxes = {c.key: c for c in at.checkbox if c.key.startswith(tick)}
    assert len(boxes) == 10 and not any(c.value for c in boxes.values())
    assert all(boxes[f"{tick}{r}"].disabled for r in two)  # decided now: no checkbox to tick


def test_under_a_blind_first_look_the_panel_waits_for_the_first_call(sdb):
    ds = the_ds(sdb)
    blind.set_blind_first_look(sdb, ds, True, LEAD)
    at = open_page(REVIEW, ANNA, dataset=ds.name)
    assert f"similar_show_{ds.id}" not in {t.key for t in at.toggle}  # step 1: no panel
    at.button(key="blind_keep").click()
    run(at)
    assert f"similar_show_{ds.id}" in {t.key for t in at.toggle}  # step 2: the panel is offered


# ----------------------------------------------------------------------------- the real audit


def test_a_real_audit_records_rows_like_a_flagged_row(sdb):
    pytest.importorskip("review.findings", reason="the checks engine (review/findings/) is not there yet")
    ds = the_ds(sdb)
    rid = audit.run_audit(sdb, ds.id, LEAD)
    rid = rid if isinstance(rid, int) else run_id(sdb, ds)
    assert rid == run_id(sdb, ds) and rid != 1
    src = flagged_row(sdb, ds)
    got = similar.similar(sdb, ds, src)
    assert got.available and got.run_id == rid, got.reason
    assert 1 <= len(got.rows) <= 10 and src not in [r.idx for r in got.rows]
    sims = [r.similarity for r in got.rows]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= x <= 1.0 + 1e-6 for x in sims)
    assert np.isfinite(sims).all()
