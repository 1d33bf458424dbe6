"""The shared steps of an upload: the mapping the user's choices make (ingest.mapping_from_choices, used by
the `review ingest` command and the Upload page), the write followed by the integrity check
(audit.ingest_checked), the dataset row and the upload's trail row (datasets.insert_dataset, datasets.log_upload,
used by the text and the NER writes), and the flagged tokens the command prints (ner_store.flagged_tokens)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from review import audit, datasets, stats, store
from review.errors import IngestError, ReviewError
from review.ner import store as ner_store
from review.text import ingest

CONLL = b"".join(
    (
        b"EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\ncall NN I-NP O\n\n",
        b"Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n",
        b"BRUSSELS NNP B-NP B-LOC\n1996-08-22 CD I-NP O\n\n",
    )
)


def frame(**cols) -> pd.DataFrame:
    return pd.DataFrame({k: [str(x) for x in v] for k, v in cols.items()})


def test_choices_as_specs_guess_the_rest():
    df = frame(id=[1, 2], text=["a b", "c d"], label=["x", "y"], emb=["[1]", "[2]"])
    m = ingest.mapping_from_choices(df, embedding="4", guess=True)
    assert (m.text, m.label, m.id, m.embedding, m.annotators) == (["text"], "label", "id", "emb", [])


def test_one_annotator_column_is_the_long_form_several_the_wide_form():
    df = frame(id=[1, 1], text=["a", "a"], a1=["x", "y"], a2=["y", "y"], label=["x", "y"])
    long = ingest.mapping_from_choices(df, annotator="a1", guess=True)
    assert (long.annotator, long.annotators, long.label) == ("a1", [], "label")
    wide = ingest.mapping_from_choices(df, annotator="a1,a2", label="no such column", guess=True)
    assert (wide.annotator, wide.annotators, wide.label) == (None, ["a1", "a2"], None)  # the label is not read


def test_the_pages_lists_are_taken_as_they_are():
    df = frame(**{"a, b": ["t", "u"], "lab": ["x", "y"], "w1": ["x", "x"]})
    m = ingest.mapping_from_choices(
        df, text=["a, b"], label=["lab"], id=[], annotator=[], annotators=[], class_names={"x": "X"}
    )
    assert (m.text, m.label, m.id, m.annotator, m.class_names) == (["a, b"], "lab", None, None, {"x": "X"})
    wide = ingest.mapping_from_choices(df, text=["a, b"], label=["lab"], annotator=["w1"], annotators=["w1"])
    assert (wide.label, wide.annotator, wide.annotators) == (None, None, ["w1"])


def test_a_guess_that_cannot_tell_raises_with_the_file_and_the_hint():
    df = frame(a=["1", "2"], b=["3", "4"])
    with pytest.raises(IngestError) as err:
        ingest.mapping_from_choices(df, guess=True, filename="f.csv", hint="Add --no-header.")
    assert str(err.value).startswith("f.csv: ") and str(err.value).endswith(" Add --no-header.")
    assert ingest.mapping_from_choices(df, text="a", label="b", guess=True).text == ["a"]  # chosen: no refusal


def test_ingest_checked_writes_then_checks_text(db, lead):
    df = frame(text=[f"row {i}" for i in range(12)] + ["", "row 0"], label=["a", "b"] * 7)
    prep = ingest.prepare(df, ingest.mapping_from_choices(df, guess=True), "t.csv", b"t")
    seen = []
    got = audit.ingest_checked(db, prep, "t", lead, lambda f, m: seen.append((f, m)), checking="Checking")
    assert isinstance(got, audit.Ingested)
    assert datasets.get(db, "t").id == got.dataset_id
    run = datasets.latest_run(db, got.dataset_id)
    assert (run["id"], run["kind"]) == (got.integrity_run_id, "integrity")
    assert got.findings == len(stats.findings(db, got.integrity_run_id)) > 0
    assert seen[-1] == (1.0, "Checking")
    with pytest.raises(IngestError, match="exists already"):  # refused at the write: no second run
        audit.ingest_checked(db, prep, "t", lead)
    assert store.scalar(db, "SELECT COUNT(*) FROM runs") == 1


def test_ingest_checked_ner_and_its_flagged_tokens(db, lead):
    corpus = ner_store.read_corpus(CONLL, "x.conll")
    got = audit.ingest_checked(db, corpus, "x", lead, source=CONLL)
    ds = datasets.get(db, got.dataset_id)
    assert (ds.task, ds.n_items, got.findings) == ("ner", 3, 0)
    row = db.execute("SELECT source_sha256 FROM datasets WHERE id=?", [ds.id]).fetchone()
    upload = json.loads(db.execute("SELECT payload FROM audit_log WHERE action='upload'").fetchone()[0])
    assert upload["sha256"] == row[0] and upload["source"] == "x.conll" and upload["sentences"] == 3
    assert ner_store.flagged_tokens(db, ds, [0, 1, 2]) == {}  # the integrity run flagged no token
    run_id = got.integrity_run_id
    db.conn.executemany(
        "INSERT INTO token_issues(run_id, idx, token, text, given_tag, predicted_tag, confidence, quality, reason)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        [(run_id, 0, 2, "German", "B-MISC", "O", 0.9, 0.1, "r"), (run_id, 0, 0, "EU", "B-ORG", "O", 0.9, 0.1, "r")],
    )
    assert ner_store.flagged_tokens(db, ds, [0, 1]) == {0: [0, 2]}


def test_insert_dataset_refuses_a_taken_name(db, lead):
    with store.transaction(db):
        ds = datasets.insert_dataset(
            db, "n", "text", ["a"], True, ingest.Mapping(text=["t"]), 0, None, "0" * 64, "lena"
        )
    got = datasets.get(db, ds)
    assert (got.name, got.labels, got.label_set_declared, got.created_by) == ("n", ["a"], True, "lena")
    with pytest.raises(ReviewError, match="A dataset named 'n' exists already: choose another name."):
        with store.transaction(db):
            datasets.insert_dataset(db, "n", "ner", [], False, ingest.Mapping(), 0, None, "0" * 64, "lena")
