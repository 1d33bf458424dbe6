"""Several annotators per item, through the whole loop: ingest (long and wide form, upload
and `review ingest`), the consensus audit, the review queue, reviewer and annotator
statistics, export. Real SQLite files, real cleanlab, real data (a slice of
sentiment_mturk; its `gold` column is kept as metadata and used here only to measure).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review import audit, auth, datasets, export, safe_text, stats, store, workflow
from review.crowd import annotators, labeling
from review.crowd import consensus as crowd
from review.errors import IngestError, PermissionDenied
from review.text import ingest
from tests.helpers import DATA, PASSWORD, ROOT, copy_db, counts

SENTIMENT = DATA / "sentiment_mturk" / "sentiment_mturk_long.csv"
N_ITEMS = 600


def long_slice() -> pd.DataFrame:
    """The first N_ITEMS items of sentiment_mturk in long form, with labels as words, plus
    an item labelled by one annotator only and an annotator who labelled one item."""
    df = pd.read_csv(SENTIMENT, dtype=str)
    keep = df["item_id"].drop_duplicates().iloc[:N_ITEMS]
    df = df[df["item_id"].isin(keep)].copy()
    df["label"] = df["label"].map({"0": "negative", "1": "positive"})
    df["gold"] = df["gold"].map({"0": "negative", "1": "positive"})
    first = df["item_id"].iloc[0]
    df = df[(df["item_id"] != first) | (df.groupby("item_id").cumcount() == 0)]  # item 0: one label only
    solo = df[df["item_id"] == df["item_id"].iloc[-1]].iloc[[0]].assign(annotator_id="solo")
    return pd.concat([df, solo], ignore_index=True)


def to_wide(long: pd.DataFrame) -> pd.DataFrame:
    wide = long.pivot(index="item_id", columns="annotator_id", values="label")
    wide.columns = [f"a{c}" for c in wide.columns]
    first = long.drop_duplicates("item_id").set_index("item_id")[["text", "gold"]]
    out = first.join(wide).reset_index()
    return out.set_index("item_id").loc[long["item_id"].drop_duplicates()].reset_index()


def csv_of(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def majority(long: pd.DataFrame) -> dict[str, str]:
    """Items with a clear majority -> that label (ties are left out: broken at random)."""
    out = {}
    for item, labs in long.groupby("item_id")["label"]:
        vc = labs.value_counts()
        if len(vc) == 1 or vc.iloc[0] > vc.iloc[1]:
            out[item] = vc.index[0]
    return out


@pytest.fixture(scope="module")
def data():
    if not SENTIMENT.is_file():
        pytest.fail(f"{SENTIMENT} is missing: the multi-annotator tests read the real sentiment_mturk data")
    long = long_slice()
    return {"long": long, "wide": to_wide(long)}


@pytest.fixture(scope="module")
def audited(tmp_path_factory, data):
    """A database with users and the long-form slice ingested and audited (built once)."""
    path = tmp_path_factory.mktemp("multi") / "template.db"
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PASSWORD, None)
    lead = auth.create_user(db, "lena", "lead", PASSWORD, admin)
    auth.create_user(db, "anna", "annotator", PASSWORD, admin)
    auth.create_user(db, "ben", "annotator", PASSWORD, admin)
    frame = ingest.read_table(csv_of(data["long"]), "mturk.csv")
    prep = ingest.prepare(frame, ingest.guess_mapping(frame), "mturk.csv", None)
    ds_id = ingest.write_dataset(db, prep, "mturk", lead)
    audit.run_audit(db, ds_id, lead)
    db.conn.close()
    return path


@pytest.fixture
def mdb(tmp_path, audited):
    db = store.connect(copy_db(audited, tmp_path / "m.db"))
    yield db
    db.conn.close()


LEAD, ANNA, BEN = auth.User("lena", "lead"), auth.User("anna", "annotator"), auth.User("ben", "annotator")


def verify(db, review_id: int, user, action: str, note: str = "") -> None:
    """workflow.verify with the row's current state version (as the Verify page passes it)."""
    version = store.scalar(
        db,
        "SELECT st.version FROM reviews r JOIN states st ON st.dataset_id=r.dataset_id AND st.idx=r.idx WHERE r.id=?",
        [review_id],
    )
    workflow.verify(db, review_id, user, action, version, note=note)


# ----------------------------------------------------------------------------- ingest


def test_long_form_guessed_mapping_and_majority_vote(data, db, lead):
    long = data["long"]
    frame = ingest.read_table(csv_of(long), "mturk.csv")
    mapping = ingest.guess_mapping(frame)
    assert (mapping.id, mapping.annotator, mapping.label, mapping.text) == (
        "item_id",
        "annotator_id",
        "label",
        ["text"],
    )
    prep = ingest.prepare(frame, mapping, "mturk.csv", None)
    ds = datasets.get(db, ingest.write_dataset(db, prep, "mturk", lead))
    assert ds.mapping.multi and ds.n_items == N_ITEMS and ds.labels == ["negative", "positive"]
    assert store.scalar(db, "SELECT COUNT(*) FROM annotations WHERE dataset_id=?", [ds.id]) == len(long)
    items = {
        r["key"]: r for r in db.query("SELECT key, text, given_label, meta FROM items WHERE dataset_id=?", [ds.id])
    }
    clear = majority(long)
    assert len(clear) > N_ITEMS * 0.8
    assert all(items[k]["given_label"] == v for k, v in clear.items())
    first = long.iloc[0]
    assert items[first["item_id"]]["text"] == first["text"]
    assert json.loads(items[first["item_id"]]["meta"]) == {"gold": first["gold"]}  # kept, never an input
    # the item with one label and the annotator with one label are in
    one = db.execute("SELECT COUNT(*) FROM annotations WHERE dataset_id=? AND idx=0", [ds.id]).fetchone()[0]
    assert one == 1
    assert store.scalar(db, "SELECT COUNT(*) FROM annotations WHERE dataset_id=? AND annotator='solo'", [ds.id]) == 1


def test_wide_form_gives_the_same_labels_as_long_form(data, db, lead):
    long, wide = data["long"], data["wide"]
    frame = ingest.read_table(csv_of(wide), "wide.csv")
    ann_cols = [c for c in frame.columns if c.startswith("a")]
    assert len(ann_cols) == long["annotator_id"].nunique() and frame[ann_cols].isna().to_numpy().mean() > 0.9
    mapping = ingest.Mapping(text=["text"], id="item_id", annotators=ann_cols)
    prep = ingest.prepare(frame, mapping, "wide.csv", None)
    ds = datasets.get(db, ingest.write_dataset(db, prep, "wide", lead))
    got = {
        (k, a[1:], l)
        for k, a, l in db.execute(
            "SELECT i.key, a.annotator, a.label FROM annotations a JOIN items i ON i.dataset_id=a.dataset_id AND i.idx=a.idx"
            " WHERE a.dataset_id=?",
            [ds.id],
        )
    }
    assert got == set(long[["item_id", "annotator_id", "label"]].itertuples(index=False, name=None))
    given = dict(db.execute("SELECT key, given_label FROM items WHERE dataset_id=?", [ds.id]).fetchall())
    assert all(given[k] == v for k, v in majority(long).items())


def test_refusals_name_the_rows_and_leave_nothing(data, db, lead):
    long = data["long"]
    before = counts(db)
    twice = pd.concat([long, long.iloc[[5]].assign(label="negative")], ignore_index=True)
    frame = ingest.read_table(csv_of(twice), "twice.csv")
    with pytest.raises(IngestError) as e:
        ingest.prepare(frame, ingest.guess_mapping(frame), "twice.csv", None)
    r = long.iloc[5]
    assert f"annotator {r['annotator_id']!r} labelled item {r['item_id']!r} more than once" in str(e.value)
    assert f"data rows 6, {len(twice)}" in str(e.value)

    frame = ingest.read_table(csv_of(long), "noid.csv")
    with pytest.raises(IngestError, match="map the item id column too"):
        ingest.prepare(frame, ingest.Mapping(text=["text"], label="label", annotator="annotator_id"), "noid.csv", None)

    blank = long.copy()
    blank.loc[blank.index[3], "annotator_id"] = None
    frame = ingest.read_table(csv_of(blank), "blank.csv")
    with pytest.raises(IngestError, match=r"data row 4 has no annotator in column 'annotator_id'"):
        ingest.prepare(frame, ingest.guess_mapping(frame), "blank.csv", None)

    one = long.assign(label="positive")
    frame = ingest.read_table(csv_of(one), "one.csv")
    with pytest.raises(IngestError, match=r"only one class \('positive'\)"):
        ingest.prepare(frame, ingest.guess_mapping(frame), "one.csv", None)
    assert counts(db) == before


# ----------------------------------------------------------------------------- audit


def test_audit_writes_consensus_item_scores_and_annotator_stats(mdb, data):
    ds = datasets.get(mdb, "mturk")
    run = datasets.latest_run(mdb, ds.id)
    assert run["kind"] == "audit" and run["status"] == "done"
    assert run["metrics"]["annotators"] == data["long"]["annotator_id"].nunique()
    rows = list(
        mdb.query(
            "SELECT i.key, i.given_label, s.consensus_label, s.quality, s.agreement, s.n_annotators, s.is_issue, s.reason"
            " FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx WHERE s.run_id=?",
            [ds.id, run["id"]],
        )
    )
    assert len(rows) == N_ITEMS
    n_by_item = data["long"].groupby("item_id").size()
    assert all(r["n_annotators"] == n_by_item[r["key"]] for r in rows)
    assert all(0 <= r["quality"] <= 1 and 0 <= r["agreement"] <= 1 for r in rows)
    # shaky consensus and consensus against the majority are suspects, with the votes in the reason
    for r in rows:
        if r["consensus_label"] != r["given_label"] or r["quality"] < 0.8:
            assert r["is_issue"] == 1 and "annotator" in r["reason"]
    assert 0 < sum(r["is_issue"] for r in rows) < N_ITEMS / 2
    # the consensus is closer to gold than the majority vote (gold is metadata, never an input)
    gold = data["long"].drop_duplicates("item_id").set_index("item_id")["gold"]
    acc_cons = np.mean([r["consensus_label"] == gold[r["key"]] for r in rows])
    acc_major = np.mean([r["given_label"] == gold[r["key"]] for r in rows])
    assert acc_cons >= acc_major, (acc_cons, acc_major)

    table = annotators.annotator_table(mdb, ds)
    assert len(table) == run["metrics"]["annotators"]
    assert set(table[0]) == {"annotator", "quality", "agreement", "worst_class", "n_labels"}
    solo = next(r for r in table if r["annotator"] == "solo")
    assert solo["n_labels"] == 1
    assert sum(r["n_labels"] for r in table) == len(data["long"])
    assert [r["quality"] for r in table] == sorted((r["quality"] for r in table), reverse=True)


def test_confusion_pairwise_and_disagreements_agree_with_the_labels(mdb, data):
    ds = datasets.get(mdb, "mturk")
    top = data["long"]["annotator_id"].value_counts().index[0]
    conf = annotators.confusion(mdb, ds, top)
    assert sum(n for _, _, n in conf) == (data["long"]["annotator_id"] == top).sum()
    off = sum(n for cons, lab, n in conf if cons != lab)
    assert off == annotators.disagreements(mdb, ds, top)
    pairs = annotators.pairwise(mdb, ds)
    assert pairs and all(0 <= p["agreement"] <= 1 and p["shared"] >= 1 and p["a"] < p["b"] for p in pairs)
    long = data["long"]
    p = max(pairs, key=lambda p: p["shared"])
    a, b = (
        long[long.annotator_id == p["a"]].set_index("item_id")["label"],
        long[long.annotator_id == p["b"]].set_index("item_id")["label"],
    )
    shared = a.index.intersection(b.index)
    assert p["shared"] == len(shared) and p["agreement"] == pytest.approx((a[shared] == b[shared]).mean())


# ----------------------------------------------------------------------------- statistics on hand-made data

HAND_CLASSES = ["neg", "neu", "pos"]


def filler(*who: str) -> list[dict]:
    """Five items per class that only ``who`` label (each the class itself): ingest cross-validates
    every class, so a hand-made crowd of a few items needs them. They share no item with anyone else."""
    return [
        {"item_id": f"f{c}{j}", "text": f"{c} filler number {j}", **{a: c for a in who}}
        for c in HAND_CLASSES
        for j in range(5)
    ]


def ingest_wide(db, lead, rows: list[dict], name: str) -> datasets.Dataset:
    """Wide form (item_id, text, one column per annotator; None: not labelled) -> the dataset."""
    df = pd.DataFrame(rows)
    who = [c for c in df.columns if c not in ("item_id", "text")]
    frame = ingest.read_table(csv_of(df), f"{name}.csv")
    prep = ingest.prepare(frame, ingest.Mapping(text=["text"], id="item_id", annotators=who), f"{name}.csv", None)
    return datasets.get(db, ingest.write_dataset(db, prep, name, lead))


def matrix(conf: list[tuple[str, str, int]]) -> list[list[int]]:
    """annotators.confusion's (consensus, their label, count) -> K x K counts, row = consensus class."""
    n = {(c, l): k for c, l, k in conf}
    assert set(n) <= {(c, l) for c in HAND_CLASSES for l in HAND_CLASSES}, conf  # no item without consensus
    return [[n.get((c, l), 0) for l in HAND_CLASSES] for c in HAND_CLASSES]


def test_pairwise_agreement_only_pairs_with_shared_items(db, lead):
    # a and b share items 0, 1 and 3 and agree on 0 and 3; c and the filler annotator share nothing
    rows = [
        {"item_id": "i0", "text": "one", "a": "neg", "b": "neg", "c": None},
        {"item_id": "i1", "text": "two", "a": "neu", "b": "neg", "c": None},
        {"item_id": "i2", "text": "three", "a": None, "b": None, "c": "pos"},
        {"item_id": "i3", "text": "four", "a": "neu", "b": "neu", "c": None},
    ] + filler("pad")
    ds = ingest_wide(db, lead, rows, "pairs")
    assert annotators.pairwise(db, ds) == [{"a": "a", "b": "b", "shared": 3, "agreement": pytest.approx(2 / 3)}]


def test_confusion_vs_consensus_counts(db, lead, annotator):
    # anna and ben as in the hand-made matrix; x and y agree with the intended consensus, so it is clear
    rows = [
        {"item_id": "i0", "text": "one", "anna": "neg", "ben": "neg", "x": "neg", "y": "neg"},
        {"item_id": "i1", "text": "two", "anna": "neg", "ben": "neu", "x": "neg", "y": "neg"},
        {"item_id": "i2", "text": "three", "anna": "neu", "ben": "neu", "x": "neu", "y": "neu"},
        {"item_id": "i3", "text": "four", "anna": None, "ben": None, "x": None, "y": None},  # no label yet
    ] + filler("x", "y")
    ds = ingest_wide(db, lead, rows, "conf")
    run = audit.run_audit(db, ds.id, lead)
    cons = [
        store.scalar(
            db,
            "SELECT s.consensus_label FROM scores s JOIN items i ON i.dataset_id=? AND i.idx=s.idx"
            " WHERE s.run_id=? AND i.key=?",
            [ds.id, run, k],
        )
        for k in ("i0", "i1", "i2", "i3")
    ]
    assert cons == ["neg", "neg", "neu", None]
    i3 = store.scalar(db, "SELECT idx FROM items WHERE dataset_id=? AND key='i3'", [ds.id])
    assert labeling.add_label(db, ds, i3, annotator, "pos") == "added"  # after the run: no consensus for it
    assert matrix(annotators.confusion(db, ds, "ben")) == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert matrix(annotators.confusion(db, ds, "anna")) == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]  # i3 left out
    assert annotators.disagreements(db, ds, "ben") == 1 and annotators.disagreements(db, ds, "anna") == 0


@pytest.mark.filterwarnings("ignore:May not flag all label issues")  # cleanlab, on a class of one row
def test_length_by_class_numbers(db, lead):
    texts = ["aa", "aaaa", "aaaaaa", "b", None, "ccc", "zzzzzzzzzz"]
    labels = ["A", "A", "A", "B", "B", "C", None]
    probs = {f"prob_{c}": [1 / 3] * len(texts) for c in "ABC"}  # the team's own model: no five-per-class minimum
    frame = ingest.read_table(csv_of(pd.DataFrame({"text": texts, "label": labels, **probs})), "len.csv")
    mapping = ingest.Mapping(text=["text"], label="label", probs=list(probs))
    ds = datasets.get(db, ingest.write_dataset(db, ingest.prepare(frame, mapping, "len.csv", None), "len", lead))
    assert store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=? AND text IS NULL", [ds.id]) == 1
    want = [
        # rows without a label have a row of their own (NULL sorts first)
        {"label": "(no label)", "rows": 1, "mean chars": 10.0, "std chars": 0.0, "min chars": 10, "max chars": 10},
        # population std: sqrt(((2-4)² + 0 + (6-4)²) / 3) = 1.63
        {"label": "A", "rows": 3, "mean chars": 4.0, "std chars": 1.6, "min chars": 2, "max chars": 6},
        # the empty text is stored as NULL: counted in rows, but it has no length to average
        {"label": "B", "rows": 2, "mean chars": 1.0, "std chars": 0.0, "min chars": 1, "max chars": 1},
        {"label": "C", "rows": 1, "mean chars": 3.0, "std chars": 0.0, "min chars": 3, "max chars": 3},
    ]
    assert stats.length_by_class(db, ds) == want  # no run yet: computed live
    audit.run_audit(db, ds.id, lead)
    assert stats.aggregates(db, ds)["lengths"] == want  # stored with the run, and read from there
    assert stats.length_by_class(db, ds) == want


# ----------------------------------------------------------------------------- review, verify, statistics


def test_reviewer_sees_every_annotators_label(mdb, data):
    ds = datasets.get(mdb, "mturk")
    s = workflow.claim_next(mdb, ds, ANNA)
    long = data["long"]
    want = sorted(long[long.item_id == s.key][["annotator_id", "label"]].itertuples(index=False, name=None))
    assert sorted(s.annotations) == want and len(want) >= 1
    assert s.suggested_label == s.predicted_label  # the consensus is the suggestion


def test_disagreement_queue_holds_exactly_that_annotators_disagreements(mdb):
    ds = datasets.get(mdb, "mturk")
    table = annotators.annotator_table(mdb, ds)
    who = max(table, key=lambda r: annotators.disagreements(mdb, ds, r["annotator"]))["annotator"]
    n = annotators.disagreements(mdb, ds, who)
    assert n >= 2
    seen = []
    for _ in range(n + 1):
        s = workflow.claim_next(mdb, ds, ANNA, exclude=seen, disagrees=who)
        if s is None:
            break
        mine = dict(s.annotations)[who]
        assert mine != s.predicted_label
        seen.append(s.idx)
    assert len(seen) == n


def test_reviewer_and_corrected_annotator_statistics(mdb):
    ds = datasets.get(mdb, "mturk")
    decided = []
    for user, how in ((ANNA, "take"), (ANNA, "other"), (ANNA, "correct"), (BEN, "take")):
        s = workflow.claim_next(mdb, ds, user)
        other = lambda lab: next(l for l in ds.labels if l != lab)
        label = {"take": s.suggested_label, "other": other(s.suggested_label), "correct": other(s.current_label)}[how]
        if label == s.current_label:
            rid = workflow.decide(mdb, ds, s.idx, user, "keep", s.version)
        else:
            rid = workflow.decide(mdb, ds, s.idx, user, "relabel", s.version, new_label=label)
        decided.append((user, rid, s, label))
    with pytest.raises(PermissionDenied):
        verify(mdb, decided[0][1], ANNA, "approve")
    verify(mdb, decided[0][1], LEAD, "approve")
    verify(mdb, decided[1][1], LEAD, "reject", note="the consensus was right")
    verify(mdb, decided[2][1], LEAD, "approve")

    rows = {r["reviewer"]: r for r in annotators.reviewer_table(mdb, ds)}
    assert rows["anna"]["decisions"] == 3 and rows["ben"]["decisions"] == 1
    assert rows["anna"]["approved"] == 2 and rows["anna"]["rejected"] == 1
    assert rows["anna"]["share approved"] == pytest.approx(2 / 3, abs=1e-3) and rows["ben"]["share approved"] is None
    took = sum(label == s.suggested_label for user, _, s, label in decided[:3])
    assert rows["anna"]["took suggestion"] == took and rows["ben"]["share took suggestion"] == 1.0
    assert rows["anna"]["median seconds per decision"] is not None

    # a verified correction (the approved label differs from the given one) changes the labels
    # of the annotators who gave another label; a verified keep changes nothing
    changed = {r["annotator"]: r for r in annotators.changed_by_corrections(mdb, ds)}
    want: dict[str, int] = {}
    for _user, _rid, s, label in (decided[0], decided[2]):
        if label != s.current_label:
            for a, l in s.annotations:
                if l != label:
                    want[a] = want.get(a, 0) + 1
    assert want and {a: r["labels changed"] for a, r in changed.items()} == want
    for _a, r in changed.items():
        assert all(" → " in part for part in r["classes"].split(", "))

    # a label renamed afterwards (review.taxonomy) is not a change: the same counts, under the new name
    from review import taxonomy

    old = ds.labels[0]
    taxonomy.apply(mdb, ds, LEAD, taxonomy.Rename(old, old + "-renamed"))
    ds = datasets.get(mdb, "mturk")
    after = {r["annotator"]: r for r in annotators.changed_by_corrections(mdb, ds)}
    assert {a: r["labels changed"] for a, r in after.items()} == want
    assert all(f"{old} →" not in r["classes"] and f"→ {old} (" not in r["classes"] for r in after.values())


def test_reviewer_table_works_for_single_label_data(demo_ds, db, annotator, lead):
    s = workflow.claim_next(db, demo_ds, annotator)
    rid = workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    verify(db, rid, lead, "approve")
    rows = annotators.reviewer_table(db, demo_ds)
    assert rows == [
        {
            "reviewer": "anna",
            "decisions": 1,
            "approved": 1,
            "rejected": 0,
            "overridden": 0,
            "took suggestion": int(s.suggested_label == s.current_label),
            "share approved": 1.0,
            "share rejected": 0.0,
            "median seconds per decision": None,
            "share took suggestion": float(s.suggested_label == s.current_label),
        }
    ]
    assert annotators.changed_by_corrections(db, demo_ds) == []


# ----------------------------------------------------------------------------- export


def test_export_adds_consensus_columns_and_verified_labels_win(mdb):
    ds = datasets.get(mdb, "mturk")
    s = workflow.claim_next(mdb, ds, ANNA)
    label = next(l for l in ds.labels if l != s.suggested_label)
    rid = workflow.decide(
        mdb,
        ds,
        s.idx,
        ANNA,
        "relabel" if label != s.current_label else "keep",
        s.version,
        new_label=label if label != s.current_label else None,
    )
    verify(mdb, rid, LEAD, "approve")
    text = "".join(export.export_cleaned(mdb, ds, LEAD))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == export.CLEANED_COLUMNS + ["consensus_label", "consensus_quality", "n_annotators"]
    assert len(rows) == N_ITEMS
    scores = {
        r["idx"]: r
        for r in mdb.query(
            "SELECT idx, consensus_label, quality, n_annotators FROM scores WHERE run_id=?",
            [datasets.latest_run(mdb, ds.id)["id"]],
        )
    }
    for i, r in enumerate(rows):
        assert r["consensus_label"] == scores[i]["consensus_label"]
        assert int(r["n_annotators"]) == scores[i]["n_annotators"]
        assert float(r["consensus_quality"]) == pytest.approx(scores[i]["quality"], abs=1e-6)
        assert r["cleaned_label"] == (label if i == s.idx else scores[i]["consensus_label"]), (i, s, label, r)
    assert rows[s.idx]["status"] == "approved"

    ann = list(csv.DictReader(io.StringIO("".join(export.export_annotators(mdb, ds, LEAD)))))
    assert [r["annotator"] for r in ann] == [r["annotator"] for r in annotators.annotator_table(mdb, ds)]
    assert list(ann[0]) == export.ANNOTATOR_COLUMNS
    with pytest.raises(PermissionDenied):
        export.export_annotators(mdb, ds, ANNA)


# ----------------------------------------------------------------------------- the command line


def _review(*args, db: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_long_and_wide_ingest_audit_annotators_suspects(tmp_path, data):
    db = tmp_path / "cli.db"
    long_file, wide_file = tmp_path / "long.csv", tmp_path / "wide.csv"
    long_file.write_bytes(csv_of(data["long"]))
    wide = data["wide"]
    wide_file.write_bytes(csv_of(wide))
    r = _review("ingest", str(long_file), "--name", "long", "--annotator-col", "annotator_id", db=db)
    assert r.returncode == 0, r.stderr
    n_ann = data["long"]["annotator_id"].nunique()
    assert f"ingested {N_ITEMS:,} items ({len(data['long']):,} labels from {n_ann} annotators)" in r.stdout
    cols = ",".join(c for c in wide.columns if c.startswith("a"))
    r = _review("ingest", str(wide_file), "--name", "wide", "--annotator-col", cols, db=db)
    assert r.returncode == 0, r.stderr
    assert f"ingested {N_ITEMS:,} items ({len(data['long']):,} labels from {n_ann} annotators)" in r.stdout

    r = _review("annotators", "long", db=db)
    assert r.returncode == 2 and "run `review audit long` first" in r.stderr
    r = _review("audit", "long", db=db)
    assert r.returncode == 0, r.stderr
    assert "consensus differs from the majority vote on" in r.stdout
    r = _review("annotators", "long", "--format", "json", db=db)
    assert r.returncode == 0, r.stderr
    table = json.loads(r.stdout)
    assert len(table) == n_ann and {"annotator", "quality", "agreement", "worst_class", "n_labels"} <= set(table[0])
    r = _review("annotators", "long", db=db)
    assert r.stdout.splitlines()[0] == "annotator,quality,agreement,worst_class,n_labels"
    assert len(r.stdout.splitlines()) == n_ann + 1
    r = _review("suspects", "long", "--limit", "5", db=db)
    head = r.stdout.splitlines()[0].split(",")
    assert head[:7] == ["id", "given_label", "predicted_label", "confidence", "quality", "is_issue", "rank"]
    assert {"consensus_label", "annotators"} <= set(head) and len(r.stdout.splitlines()) == 6


def test_cli_annotators_refuses_single_label_data(tmp_path):
    db = tmp_path / "one.db"
    assert _review("demo", db=db).returncode == 0
    r = _review("annotators", "demo-support-tickets", db=db)
    assert r.returncode == 2 and "one label per item" in r.stderr


# ----------------------------------------------------------------------------- pages (AppTest)

from streamlit.testing.v1 import AppTest  # noqa: E402

APP = ROOT / "app.py"


@pytest.fixture
def page_db(mdb, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", mdb.conn.execute("PRAGMA database_list").fetchone()[2])
    return mdb


def open_page(page: str, who: auth.User, dataset: str | None = "mturk") -> AppTest:
    import time

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (who.name, who.role, time.time())
    if dataset:
        at.session_state["dataset_name"] = dataset
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame_with(at: AppTest, column: str):
    """The first dataframe on the page that has ``column`` (AppTest does not keep dataframe keys)."""
    hits = [d.value for d in at.dataframe if column in d.value.columns]
    assert hits, [list(d.value.columns) for d in at.dataframe]
    return hits[0]


def test_annotators_page_table_charts_and_disagreements(page_db):
    ds = datasets.get(page_db, "mturk")
    table = annotators.annotator_table(page_db, ds)
    at = open_page("pages/8_Annotators.py", LEAD)
    assert not at.error
    shown = frame_with(at, "worst_class")
    assert list(shown["annotator"]) == [r["annotator"] for r in table]
    assert list(shown.columns) == ["annotator", "quality", "agreement", "worst_class", "n_labels"]
    charts = at.get("plotly_chart")
    assert len(charts) == 3
    figs = [json.loads(c.proto.spec) for c in charts]
    scatter = figs[0]["data"][0]
    assert len(scatter["x"]) == len(table)
    assert figs[1]["data"][0]["type"] == "heatmap"

    # pick the annotator who disagrees most and open their disagreements in the review queue
    who = max(table, key=lambda r: annotators.disagreements(page_db, ds, r["annotator"]))["annotator"]
    at.selectbox(key="annotator_pick").set_value(who)
    at.run()
    assert f"{annotators.disagreements(page_db, ds, who):,}" in [m.value for m in at.metric]
    confusion = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert confusion["data"][0]["type"] == "heatmap" and who in confusion["layout"]["title"]["text"]
    at.button(key="review_disagreements").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # the Review page now shows one of that annotator's disagreements, with every annotator's label
    assert any(f"annotator {who} disagrees" in i.value for i in at.info)
    held = page_db.execute(
        "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='lena' AND state='open'", [ds.id]
    ).fetchall()
    assert len(held) == 1
    mine = dict(
        page_db.execute(
            "SELECT annotator, label FROM annotations WHERE dataset_id=? AND idx=?", [ds.id, held[0][0]]
        ).fetchall()
    )
    cons = store.scalar(
        page_db,
        "SELECT consensus_label FROM scores WHERE run_id=? AND idx=?",
        [datasets.latest_run(page_db, ds.id)["id"], held[0][0]],
    )
    assert mine[who] != cons
    labels_shown = [d.value for d in at.dataframe if "annotator" in d.value.columns]
    assert labels_shown and dict(zip(labels_shown[0]["annotator"], labels_shown[0]["label"])) == mine
    # back to every suspect
    at.button(key="clear_disagrees").click()
    at.run()
    assert not any("disagrees" in i.value for i in at.info)


def test_annotators_page_reviewers_tab_and_single_label_dataset(page_db):
    ds = datasets.get(page_db, "mturk")
    s = workflow.claim_next(page_db, ds, ANNA)
    workflow.decide(page_db, ds, s.idx, ANNA, "keep", s.version)
    at = open_page("pages/8_Annotators.py", LEAD)
    rev = frame_with(at, "reviewer")
    assert list(rev["reviewer"]) == ["anna"] and list(rev["decisions"]) == [1]
    # an annotator may not open the page
    at = open_page("pages/8_Annotators.py", ANNA)
    assert not [d for d in at.dataframe if "annotator" in getattr(d.value, "columns", [])]
    assert any("lead" in e.value for e in at.error) or any("lead" in w.value for w in at.warning)


def test_upload_page_long_and_wide_form(page_db, data):
    # long form: the guessed mapping (item_id, annotator_id) is enough
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    at.file_uploader(key="upload_file").upload("long.csv", csv_of(data["long"]), "text/csv")
    at.run()
    assert at.selectbox(key="map_annotator").value == "annotator_id"
    at.text_input(key="dataset_name_input").input("uploaded long")
    at.button(key="ingest").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    n_ann = data["long"]["annotator_id"].nunique()
    assert at.success[0].value.startswith(
        f"Dataset 'uploaded long' ingested: {N_ITEMS:,} items with {len(data['long']):,} labels from {n_ann} annotators"
    )
    assert datasets.get(page_db, "uploaded long").mapping.annotator == "annotator_id"

    # wide form: the annotator columns are chosen by hand
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    wide = data["wide"]
    at.file_uploader(key="upload_file").upload("wide.csv", csv_of(wide), "text/csv")
    at.run()
    at.multiselect(key="map_wide").set_value([c for c in wide.columns if c.startswith("a")])
    at.selectbox(key="map_id").set_value("item_id")
    at.text_input(key="dataset_name_input").input("uploaded wide")
    at.button(key="ingest").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    ds = datasets.get(page_db, "uploaded wide")
    assert ds.n_items == N_ITEMS and len(ds.mapping.annotators) == n_ann and ds.mapping.label is None
    assert store.scalar(page_db, "SELECT COUNT(*) FROM annotations WHERE dataset_id=?", [ds.id]) == len(data["long"])

    # a long-form file with one annotator labelling an item twice is refused, nothing is written
    before = counts(page_db)
    twice = pd.concat([data["long"], data["long"].iloc[[5]]], ignore_index=True)
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    at.file_uploader(key="upload_file").upload("twice.csv", csv_of(twice), "text/csv")
    at.run()
    at.button(key="ingest").click()
    at.run()
    assert any("more than once" in e.value and "twice.csv" in e.value for e in at.error)
    assert counts(page_db) == before


def test_audit_records_and_the_model_tab_shows_how_the_consensus_method_was_chosen(page_db):
    ds = datasets.get(page_db, "mturk")
    params = datasets.latest_run(page_db, ds.id)["params"]
    figures = params["held-out log-likelihood"]
    assert set(figures) <= set(crowd.SELECTION_ORDER) and params["method"] in figures
    assert params["method"] in params["why"]
    if all(v == v for v in figures.values()):  # compared (not too few labels): the best one was used
        assert figures[params["method"]] == max(figures.values())
    at = open_page("pages/2_Audit.py", LEAD)
    tab = next(t for t in at.tabs if t.label == "Model")
    assert any(f"**Consensus**: {safe_text.md(params['method'])}" in m.value for m in tab.markdown), [
        m.value for m in tab.markdown
    ]
    shown = [d.value for d in tab.dataframe][0]
    assert shown["method"].tolist() == list(figures)
