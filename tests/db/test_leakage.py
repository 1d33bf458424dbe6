"""Leakage across two uploads (review.findings.leakage), on a real SQLite file with real features and nearest
rows: a training split and a test split uploaded as two datasets, the test split holding edited copies of
some training rows (two of them with another label). The check finds exactly those pairs, counts the
conflicting ones, stores and logs itself; its pairs page by keyset with each side's current label; the rows
here are excluded from training as decisions pending verification (and a lead's approval sets
states.excluded); the refusals say what to do; the export manifest names the check; `review leakage` prints
it; the Audit page's section runs it and excludes the rows (AppTest)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from review import auth, datasets, store, versions, workflow
from review.errors import NotFound, PermissionDenied, ReviewError
from review.findings import leakage
from review.text import ingest
from tests.builders import open_page, run

LABELS = ("sport", "business", "science")
COPIES = {3: 0, 17: 1, 29: 2, 41: 3, 55: 4}  # train row -> the test row holding its edited copy
RELABELLED = {29, 55}  # train rows whose copy has another label


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{seed}x{i}" for i in range(3000)]
    return [" ".join(rng.choice(vocab, 18)) for _ in range(n)]


def _frame(texts: list[str], labels: list[str]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"id": range(len(texts)), "text": texts, "label": labels}).to_csv(buf, index=False)
    return buf.getvalue()


def _upload(db, user, name: str, texts: list[str], labels: list[str]) -> datasets.Dataset:
    mapping = ingest.Mapping(text=["text"], label="label", id="id")
    ds_id = ingest.ingest_bytes(db, _frame(texts, labels), f"{name}.csv", name, user, mapping=mapping)
    return datasets.get(db, ds_id)


@pytest.fixture
def splits(db, lead):
    """train (80 rows) and test (60 rows, its first five edited copies of train rows)."""
    train = _texts(80, 1)
    train_labels = [LABELS[i % 3] for i in range(80)]
    test = _texts(60, 2)
    test_labels = [LABELS[(i + 1) % 3] for i in range(60)]
    for a, b in COPIES.items():
        words = train[a].split()
        test[b] = " ".join(words[1:] + ["!"])  # a word dropped, punctuation added
        test_labels[b] = LABELS[(LABELS.index(train_labels[a]) + 1) % 3] if a in RELABELLED else train_labels[a]
    return _upload(db, lead, "train", train, train_labels), _upload(db, lead, "test", test, test_labels)


def test_the_check_finds_the_copies_across_the_two_uploads_and_stores_them(db, lead, splits):
    train, test = splits
    chk = leakage.check(db, train, test, lead)
    got = {(r[0], r[1]) for r in db.execute("SELECT idx, other_idx FROM leakage_pairs WHERE check_id=?", [chk.id])}
    assert got == set(COPIES.items())
    assert (chk.rows, chk.other_rows, chk.pairs, chk.conflicting) == (5, 5, 5, len(RELABELLED))
    assert chk.other_name == "test" and chk.created_by == "lena" and chk.method == "exact"
    sims = [r[0] for r in db.execute("SELECT similarity FROM leakage_pairs WHERE check_id=?", [chk.id])]
    assert all(0.85 <= s <= 1.0 for s in sims)
    entry = store.fetch_one(
        db, "SELECT actor, dataset_id, payload FROM audit_log WHERE action='leakage_check' ORDER BY id DESC"
    )
    assert entry["actor"] == "lena" and entry["dataset_id"] == train.id
    assert json.loads(entry["payload"]) == {
        "against": "test",
        "against_id": test.id,
        "conflicting": 2,
        "pairs": 5,
        "rows": 5,
    }
    assert [c.id for c in leakage.latest(db, train)] == [chk.id]
    assert leakage.latest(db, test) == []  # a check belongs to the dataset checked


def test_pairs_page_by_keyset_with_the_current_labels_of_both_sides(db, lead, annotator, splits):
    train, test = splits
    chk = leakage.check(db, train, test, lead)
    first = leakage.pairs_page(db, chk, limit=2)
    rest = leakage.pairs_page(db, chk, after=(first[-1].idx, first[-1].other_idx), limit=10)
    assert [(p.idx, p.other_idx) for p in first + rest] == sorted(COPIES.items())
    assert {p.idx for p in first + rest if p.conflicting} == RELABELLED
    # a decision in the other dataset shows at the next read (labels and states are read, not stored)
    before = [p for p in first + rest if p.idx == 3][0]
    workflow.decide(db, test, COPIES[3], annotator, "relabel", 0, new_label="science")
    pair = [p for p in leakage.pairs_page(db, chk, limit=10) if p.idx == 3][0]
    assert (before.other_state, pair.other_state) == ("open", "relabelled")


def test_exclude_the_leaked_rows_decisions_pending_verification(db, lead, annotator, admin, splits):
    train, test = splits
    leo = auth.create_user(db, "leo", "lead", "correct horse battery", admin)
    chk = leakage.check(db, train, test, lead)
    done = leakage.exclude_rows(db, train, annotator, chk.id)
    assert sorted(done.reviews) == sorted(COPIES) and done.skipped == {}
    assert "5 rows excluded from training" in done.message()
    states = dict(db.execute("SELECT idx, state FROM states WHERE dataset_id=?", [train.id]).fetchall())
    assert {i: states[i] for i in COPIES} == {i: "excluded" for i in COPIES}
    pending = store.rows(db, "SELECT id, idx, decision, status, note FROM reviews WHERE dataset_id=?", [train.id])
    assert {r["idx"] for r in pending} == set(COPIES) and {r["decision"] for r in pending} == {"exclude"}
    assert all(r["status"] == "pending" and "near copy in test" in r["note"] for r in pending)
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log WHERE action='leakage_exclude'") == 1
    # a lead approves one: the row leaves training, its label stays
    r = pending[0]
    version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [train.id, r["idx"]])
    workflow.verify(db, r["id"], leo, "approve", version)
    assert store.scalar(db, "SELECT excluded FROM states WHERE dataset_id=? AND idx=?", [train.id, r["idx"]]) == 1
    # nothing left open: refused, and nothing changes
    with pytest.raises(ReviewError, match="None of the 5 rows leakage check .* is open"):
        leakage.exclude_rows(db, train, annotator, chk.id)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=?", [train.id]) == 5


def test_refusals_name_what_to_do(db, lead, annotator, splits, monkeypatch):
    train, test = splits
    with pytest.raises(ReviewError, match="Pick another dataset than 'train'"):
        leakage.check(db, train, train, lead)
    with pytest.raises(ReviewError, match="is NER: the leakage check compares texts"):
        leakage.check(db, train, dataclasses.replace(test, task="ner"), lead)
    with pytest.raises(PermissionDenied, match="only a lead or above can check datasets for leakage"):
        leakage.check(db, train, test, annotator)
    monkeypatch.setattr(leakage, "MAX_ROWS", 100)
    with pytest.raises(ReviewError, match="have 140 rows together: the leakage check runs up to 100"):
        leakage.check(db, train, test, lead)
    monkeypatch.undo()
    chk = leakage.check(db, train, test, lead)
    with pytest.raises(NotFound, match="'test' has no leakage check"):
        leakage.exclude_rows(db, test, annotator, chk.id)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews") == 0
    assert [c for c, _ in leakage.candidates(db, train)] == [test.id]


def test_two_unrelated_uploads_have_no_pairs(db, lead):
    a = _upload(db, lead, "a", _texts(70, 5), [LABELS[i % 3] for i in range(70)])
    b = _upload(db, lead, "b", _texts(70, 6), [LABELS[i % 3] for i in range(70)])
    chk = leakage.check(db, a, b, lead)
    assert (chk.pairs, chk.rows, chk.other_rows) == (0, 0, 0)
    assert leakage.pairs_page(db, chk) == []


def test_the_export_manifest_names_the_newest_check_against_each_dataset(db, lead, splits):
    train, test = splits
    assert versions.build_manifest(db, train, None, "cleaned", {"export": 80}, user=lead).leakage is None
    leakage.check(db, train, test, lead)
    newest = leakage.check(db, train, test, lead)
    got = versions.build_manifest(db, train, None, "cleaned", {"export": 80}, user=lead).leakage
    assert got == [
        {
            "against": "test",
            "checked_at": newest.created_at,
            "rows": 5,
            "other_rows": 5,
            "pairs": 5,
            "conflicting": 2,
        }
    ]


def test_review_leakage_prints_the_check(db, db_path, lead, splits, tmp_path):
    db.conn.close()
    out = subprocess.run(
        [sys.executable, "-m", "review.cli", "leakage", "train", "--against", "test", "--db", str(db_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "REVIEW_TRAIL_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "5 rows of 'train' have a near copy among 5 rows of 'test' (5 pairs" in out.stdout
    assert "2 with different labels" in out.stdout
    assert out.stdout.count(" ~ test row ") == 5
    bad = subprocess.run(
        [sys.executable, "-m", "review.cli", "leakage", "train", "--against", "train", "--db", str(db_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Pick another dataset than 'train'" in bad.stderr


def test_the_audit_page_runs_the_check_and_excludes_the_rows(db, db_path, lead, splits, monkeypatch):
    from review import audit

    train, test = splits
    audit.run_audit(db, train.id, lead)
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = open_page("pages/2_Audit.py", lead, dataset="train")
    assert any(m.value == "#### Leakage against another upload" for m in at.markdown)
    assert at.selectbox(key=f"leakage_other_{train.id}").value == test.id
    at.button(key=f"leakage_run_{train.id}").click()
    run(at)
    assert any("Leakage check against test: 5 rows here have a near copy there" in s.value for s in at.success)
    chk = leakage.latest(db, train)[0]
    frame = [d.value for d in at.dataframe if "row in test" in d.value.columns][0]
    assert sorted(zip(frame["row"], frame["row in test"])) == sorted(COPIES.items())
    assert at.button(key=f"leakage_exclude_{chk.id}").label == "Exclude the 5 open rows here from training"
    at.button(key=f"leakage_exclude_{chk.id}").click()
    run(at)
    assert any("5 rows excluded from training" in s.value for s in at.success)
    assert store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND decision='exclude'", [train.id]) == 5
    # nothing left open: no button, a line that says so
    assert not [b for b in at.button if b.key == f"leakage_exclude_{chk.id}"]
    assert any("All 5 rows here are decided already" in c.value for c in at.caption)


def test_the_audit_page_says_what_to_upload_when_there_is_no_other_dataset(db, db_path, lead, monkeypatch):
    from review import audit

    only = _upload(db, lead, "only", _texts(70, 7), [LABELS[i % 3] for i in range(70)])
    audit.run_audit(db, only.id, lead)
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = open_page("pages/2_Audit.py", lead, dataset="only")
    assert any("upload the other split (a test set, say) as its own dataset" in i.value for i in at.info)


def test_copies_of_a_row_and_the_review_card_line(db, db_path, lead, splits, monkeypatch):
    """copies_of reads the newest check against each other dataset; the review card of a leaked row (opened
    from the Audit page's pairs) says where its copy is; a row without one says nothing."""
    from review import audit

    train, test = splits
    assert leakage.copies_of(db, train, 3) == []
    leakage.check(db, train, test, lead)
    chk = leakage.check(db, train, test, lead)  # the newest counts, not both
    [c] = leakage.copies_of(db, train, 3)
    assert (c.check_id, c.other_name, c.other_idx) == (chk.id, "test", COPIES[3]) and c.similarity >= 0.85
    assert leakage.copies_of(db, train, 4) == []
    audit.run_audit(db, train.id, lead)
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = open_page("pages/2_Audit.py", lead, dataset="train")
    at.selectbox(key=f"leakage_row_{chk.id}_1").set_value(29)
    at.button(key=f"leakage_open_row_{chk.id}").click()
    run(at)  # the Review page, row 29 on its card
    lines = [m.value for m in at.markdown if m.value.startswith("**Leakage:**")]
    label = store.scalar(db, "SELECT given_label FROM items WHERE dataset_id=? AND idx=?", [test.id, COPIES[29]])
    assert len(lines) == 1
    assert re.fullmatch(
        rf"\*\*Leakage:\*\* a near copy in test, row {COPIES[29]} \(similarity (0\.8[5-9]|0\.9\d|1\.00), label {label}\)",
        lines[0],
    )
    assert store.scalar(db, "SELECT claimed_by FROM states WHERE dataset_id=? AND idx=29", [train.id]) == "lena"


def test_texts_with_next_to_no_words_are_checked_without_an_error(db, lead):
    """Texts of punctuation alone leave the features one column or none: no SVD, no error, no pair."""
    marks = ["...", "!!", "?", "-", "--"] * 2
    a = _upload(db, lead, "marks_a", marks, ["sport", "science"] * 5)
    b = _upload(db, lead, "marks_b", marks[::-1], ["sport", "science"] * 5)
    chk = leakage.check(db, a, b, lead)
    assert chk.pairs == 0 and chk.method == "exact"


def test_the_review_queue_filters_to_the_leaked_rows(db, db_path, lead, annotator, splits, monkeypatch):
    """After a check, the Review page offers "Leakage": only rows with a near copy in the other upload, flagged
    by the label check or not; its bar counts them; the card says where the copy is."""
    from review import audit

    train, test = splits
    audit.run_audit(db, train.id, lead)
    assert workflow.claim_next(db, train, annotator, finding="leakage") is None  # no check yet: no leaked row
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    at = open_page("pages/3_Review.py", annotator, dataset="train")
    assert "Leakage" not in at.radio(key="action_filter").options
    leakage.check(db, train, test, lead)
    assert workflow.progress(db, train, finding="leakage").flagged == len(COPIES)
    at = open_page("pages/3_Review.py", annotator, dataset="train")
    at.radio(key="action_filter").set_value("Leakage")
    run(at)
    held = store.scalar(db, "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='anna'", [train.id])
    assert held in COPIES
    assert any(m.value.startswith("**Leakage:** a near copy in test, row ") for m in at.markdown)
    decided = []
    while (s := workflow.claim_next(db, train, annotator, finding="leakage")) is not None:  # the filter, row by row
        workflow.decide(db, train, s.idx, annotator, "exclude", s.version)
        decided.append(s.idx)
    assert sorted(decided) == sorted(COPIES)
    assert workflow.progress(db, train, finding="leakage").open == 0
