"""The team's own signals: embeddings (a column or a .npy file) and a training-loss column.
Refused at the door naming the row; used by the audit as one more candidate view and in the trust."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from review import audit, datasets, store
from review.errors import IngestError
from review.text import ingest, signals
from tests.helpers import counts


def _frame(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    words = [["apple", "pear", "plum"], ["car", "bus", "train"], ["red", "blue", "green"]]
    texts = [" ".join(rng.choice(words[c], 3)) + " " + " ".join(rng.choice(list("abcdefgh"), 4)) for c in y]
    E = np.eye(3)[y] * 3 + rng.normal(0, 0.5, (n, 3))
    noisy = y.copy()
    flip = rng.choice(n, 12, replace=False)
    noisy[flip] = (y[flip] + 1) % 3
    loss = rng.random(n) * 0.1
    loss[flip] = 2.0 + rng.random(len(flip))  # the team's model found the flipped rows hard
    df = pd.DataFrame(
        {
            "text": texts,
            "label": [f"c{c}" for c in noisy],
            "emb": [json.dumps([round(float(x), 5) for x in e]) for e in E],
            "loss": loss,
        }
    )
    return df.astype({"loss": object}), E.astype(np.float32), flip


def _ingest(db, lead, df, name, embeddings=None, **mapping):
    m = ingest.Mapping(text=["text"], label="label", **mapping)
    prep = ingest.prepare(df, m, f"{name}.csv", b"x", embeddings=embeddings)
    return datasets.get(db, ingest.write_dataset(db, prep, name, lead))


def test_embedding_column_and_loss_are_stored_and_used(db, lead):
    df, E, flip = _frame()
    ds = _ingest(db, lead, df, "sig", embedding="emb", loss="loss")
    got_E, got_loss = signals.load(db, ds.id, ds.n_items)
    assert got_E.shape == (240, 3) and np.allclose(got_E, E, atol=1e-4)
    assert np.allclose(got_loss, df["loss"].astype(float))
    audit.run_audit(db, ds.id, lead)
    p = datasets.latest_run(db, ds.id)["params"]
    assert "embeddings" in p["views"] and any(c["view"] == "embeddings" for c in p["candidates"])
    reasons = [
        r[0] for r in db.execute("SELECT reason FROM scores WHERE run_id=(SELECT MAX(id) FROM runs) AND is_issue=1")
    ]
    assert any("training loss is in the top" in (r or "") for r in reasons)
    # the loss moves the flipped rows (high loss) up: every flipped row among the first 30 ranks
    top = {r[0] for r in db.execute("SELECT idx FROM scores WHERE run_id=(SELECT MAX(id) FROM runs) AND rank <= 30")}
    assert set(flip.tolist()) <= top


def test_embeddings_from_npy_and_forced_embedding_model(db, lead):
    df, E, _ = _frame()
    buf = io.BytesIO()
    np.save(buf, E)
    vectors = signals.read_npy(buf.getvalue(), "emb.npy", len(df))
    ds = _ingest(db, lead, df.drop(columns=["emb", "loss"]), "npy", embeddings=vectors, embedding_file="emb.npy")
    audit.run_audit(db, ds.id, lead, model="logreg-embeddings")
    p = datasets.latest_run(db, ds.id)["params"]
    assert p["model"].startswith("logreg-embeddings(C=") and {c["view"] for c in p["candidates"]} == {"embeddings"}


@pytest.mark.parametrize(
    "cell, message",
    [
        ("[1, 2]", "data row 8, column 'emb': 2 numbers where row 1 has 3"),
        ("[1, x, 3]", "data row 8, column 'emb': '[1, x, 3]' is not a vector of numbers"),
        ("", "data row 8, column 'emb' is empty"),
        ("[1, NaN, 3]", "data row 8, column 'emb': a value is NaN or infinite"),
    ],
)
def test_bad_embedding_cells_are_refused_naming_the_row(db, lead, cell, message):
    df, _, _ = _frame()
    df.loc[7, "emb"] = cell
    before = counts(db)
    with pytest.raises(IngestError) as exc:
        _ingest(db, lead, df, "bad", embedding="emb")
    assert message in str(exc.value) and "bad.csv" in str(exc.value)
    assert counts(db) == before


@pytest.mark.parametrize("cell", ["abc", "", None, "inf"])
def test_bad_loss_cells_are_refused_naming_the_row(db, lead, cell):
    df, _, _ = _frame()
    df.loc[4, "loss"] = cell
    with pytest.raises(IngestError, match="data row 5, column 'loss'.*is not a number"):
        _ingest(db, lead, df, "bad", loss="loss")
    assert store.scalar(db, "SELECT COUNT(*) FROM row_signals") == 0


def test_bad_npy_files_are_refused_naming_the_shape():
    E = np.zeros((10, 4), dtype=np.float32)
    buf = io.BytesIO()
    np.save(buf, E)
    with pytest.raises(IngestError, match="emb.npy: 10 rows of embeddings for an upload of 11 rows"):
        signals.read_npy(buf.getvalue(), "emb.npy", 11)
    buf = io.BytesIO()
    np.save(buf, np.zeros(10))
    with pytest.raises(IngestError, match=r"shape \(10,\); embeddings must be a 2-D array"):
        signals.read_npy(buf.getvalue(), "emb.npy", 10)
    with pytest.raises(IngestError, match="emb.npy: not a NumPy .npy file"):
        signals.read_npy(b"id,text\n1,a\n", "emb.npy", 10)
    buf = io.BytesIO()
    np.save(buf, np.array([["a", "b"]] * 10))
    with pytest.raises(IngestError, match="embeddings must be numbers"):
        signals.read_npy(buf.getvalue(), "emb.npy", 10)


def test_signals_with_several_annotators_are_refused():
    df = pd.DataFrame(
        {"id": ["1", "1"], "text": ["a", "a"], "annotator": ["x", "y"], "label": ["p", "q"], "loss": [1, 2]}
    )
    m = ingest.Mapping(text=["text"], label="label", id="id", annotator="annotator", loss="loss")
    with pytest.raises(IngestError, match="go with one label per row"):
        ingest.prepare(df, m, "crowd.csv")


def test_fuse_loss_orders_by_both_signals():
    quality = np.array([0.9, 0.9, 0.1, 0.1])
    loss = np.array([0.1, 5.0, 0.1, 5.0])
    trust = signals.fuse_loss(quality, loss)
    assert np.argmin(trust) == 3 and np.argmax(trust) == 0
    assert trust[1] < trust[0] and trust[3] < trust[2]


def _cli(*args):
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "review.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    return p.returncode, p.stdout, p.stderr


def test_cli_ingest_with_signals_audit_and_selfcheck(tmp_path):
    df, E, _ = _frame()
    good = tmp_path / "sig.csv"
    df.to_csv(good, index=False)
    np.save(tmp_path / "emb.npy", E)
    db = tmp_path / "cli.db"
    code, out, err = _cli(
        "ingest",
        good,
        "--name",
        "s",
        "--text-col",
        "text",
        "--label-col",
        "label",
        "--embeddings",
        tmp_path / "emb.npy",
        "--loss-col",
        "loss",
        "--db",
        db,
    )
    assert code == 0, err
    code, out, err = _cli("audit", "s", "--db", db)
    assert code == 0, err
    assert "  model: " in out and "candidates tried on fold 1" in out
    code, out, err = _cli("selfcheck", "s", "--seed", "1", "--db", db)
    assert code == 0, err
    assert "On your data, the audit finds about" in out and "flips" in out and "shifted block" in out
    code, out, err = _cli("audit", "s", "--model", "nb-embeddings", "--db", db)
    assert code == 2 and "Unknown model 'nb-embeddings'" in err
    df.loc[9, "emb"] = "[0.1, 0.2]"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    code, out, err = _cli(
        "ingest", bad, "--name", "b", "--text-col", "text", "--label-col", "label", "--embedding-col", "emb", "--db", db
    )
    assert code == 2 and "bad.csv: data row 10, column 'emb': 2 numbers where row 1 has 3" in err
    code, out, err = _cli(
        "ingest", good, "--name", "c", "--text-col", "text", "--label-col", "label", "--embeddings", good, "--db", db
    )
    assert code == 2 and "sig.csv: not a NumPy .npy file" in err
