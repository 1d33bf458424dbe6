"""ingest: real files in every format, and refusals that name the problem and write nothing."""

from __future__ import annotations

import io
import json
import zipfile

import pandas as pd
import pytest

from review import datasets, store, trail
from review.errors import IngestError, PermissionDenied
from review.text import ingest
from tests.helpers import counts


def frame(n: int = 6) -> pd.DataFrame:
    """n rows of each of two classes, an id column and one unmapped column."""
    rows = []
    for i in range(n):
        rows.append({"id": f"p{i}", "text": f"good happy lovely text {i}", "label": "pos", "source": f"web{i}"})
        rows.append({"id": f"n{i}", "text": f"bad sad awful text {i}", "label": "neg", "source": f"mail{i}"})
    return pd.DataFrame(rows)


def items(db, ds_id) -> list[dict]:
    return list(
        db.query("SELECT idx, key, text, given_label, meta, probs FROM items WHERE dataset_id=? ORDER BY idx", [ds_id])
    )


def check_frame_stored(db, ds_id, df):
    got = items(db, ds_id)
    assert [r["key"] for r in got] == df["id"].tolist()
    assert [r["text"] for r in got] == df["text"].tolist()
    assert [r["given_label"] for r in got] == df["label"].tolist()
    assert [r["idx"] for r in got] == list(range(len(df)))
    ds = datasets.get(db, ds_id)
    assert ds.labels == ["neg", "pos"]
    assert ds.n_items == len(df)
    assert ds.mapping.text == ["text"] and ds.mapping.label == "label" and ds.mapping.id == "id"


def to_parquet(df) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_formats_from_real_files(db, lead, tmp_path, fmt):
    df = frame()
    path = tmp_path / f"upload.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path, index=False, engine="pyarrow")
    data = path.read_bytes()
    ds_id = ingest.ingest_bytes(db, data, path.name, f"ds-{fmt}", lead)
    check_frame_stored(db, ds_id, df)
    row = db.execute("SELECT source_name, source_sha256, created_by FROM datasets WHERE id=?", [ds_id]).fetchone()
    import hashlib

    assert row == (path.name, hashlib.sha256(data).hexdigest(), lead.name)
    log = db.execute("SELECT actor, action, dataset_id FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert log == (lead.name, "upload", ds_id)


def test_unmapped_columns_go_to_meta(db, lead):
    df = frame()
    df["channel"] = ["chat", None] * (len(df) // 2)
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "m.csv", "meta", lead)
    got = items(db, ds_id)
    assert json.loads(got[0]["meta"]) == {"source": "web0", "channel": "chat"}
    assert json.loads(got[1]["meta"]) == {"source": "mail0"}  # blank cells are left out
    assert "web0" not in got[0]["text"]


def test_ag_news_headerless_text_columns_joined(db, lead, tmp_path):
    lines = []
    for i in range(12):
        lines.append(f'"3","Wall St. climbs {i}","Stocks rose, again, on day {i}."')
        lines.append(f'"4","New chip {i}","A faster processor, number {i}."')
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    df = ingest.read_table(path.read_bytes(), path.name, no_header=True)
    assert list(df.columns) == ["1", "2", "3"]
    mapping = ingest.Mapping(text=ingest.resolve_columns(df, "2,3"), label=ingest.resolve_columns(df, "1")[0])
    assert mapping.text == ["2", "3"] and mapping.label == "1"
    assert ingest.guess_mapping(df) == mapping  # the guess for a headerless file is the same
    ds_id = ingest.write_dataset(db, ingest.prepare(df, mapping, path.name, path.read_bytes()), "ag", lead)
    got = items(db, ds_id)
    assert len(got) == 24
    assert got[0]["text"] == "Wall St. climbs 0\nStocks rose, again, on day 0."  # joined with datasets.TEXT_SEP
    assert got[1]["given_label"] == "4" and got[0]["given_label"] == "3"
    assert got[0]["key"] == "0" and got[23]["key"] == "23"
    assert datasets.get(db, ds_id).labels == ["3", "4"]


def test_very_long_text_kept_whole(db, lead):
    df = frame()
    long = "word " * 30_000 + "end"  # > 100,000 characters
    assert len(long) > 100_000
    df.loc[2, "text"] = long
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "long.csv", "long", lead)
    assert items(db, ds_id)[2]["text"] == long


def test_semicolon_csv_sniffed(db, lead):
    df = frame()
    df.loc[0, "text"] = "commas, inside, the text"
    data = df.to_csv(index=False, sep=";").encode()
    ds_id = ingest.ingest_bytes(db, data, "semi.csv", "semi", lead)
    check_frame_stored(db, ds_id, df)


def test_probability_columns(db, lead):
    df = frame()
    df["prob_pos"] = [0.9 if lab == "pos" else 0.2 for lab in df["label"]]
    df["prob_neg"] = [0.3 if lab == "pos" else 0.6 for lab in df["label"]]  # rows need not sum to 1
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "p.csv", "probs", lead)
    ds = datasets.get(db, ds_id)
    assert ds.mapping.probs == ["prob_pos", "prob_neg"]
    got = items(db, ds_id)
    # stored in label order (neg, pos), normalised to sum to 1
    assert json.loads(got[0]["probs"]) == pytest.approx([0.25, 0.75], abs=1e-6)
    assert json.loads(got[1]["probs"]) == pytest.approx([0.75, 0.25], abs=1e-6)
    assert got[0]["meta"] == json.dumps({"source": "web0"})  # probability columns are not metadata


def test_annotator_cannot_upload(db, annotator):
    before = counts(db)
    with pytest.raises(PermissionDenied):
        ingest.ingest_bytes(db, frame().to_csv(index=False).encode(), "a.csv", "nope", annotator)
    assert counts(db) == before


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.csv", frame().to_csv(index=False))
    return buf.getvalue()


def _csv(df) -> bytes:
    return df.to_csv(index=False).encode()


def _bad_json_lines() -> bytes:
    lines = frame().to_json(orient="records", lines=True).splitlines()
    lines[4] = '{"id": "x", "text": "broken'
    return ("\n".join(lines) + "\n").encode()


def _one_class():
    df = frame()
    df["label"] = "pos"
    return _csv(df)


def _small_class():
    df = pd.concat([frame(), pd.DataFrame([{"id": f"m{i}", "text": f"meh {i}", "label": "meh"} for i in range(3)])])
    return _csv(df)


def _dup_ids():
    df = frame()
    df.loc[5, "id"] = "p1"
    return _csv(df)


def _no_labels():
    df = frame()
    df["label"] = None
    return _csv(df)


def _ambiguous():
    df = frame()
    df["class"] = df["label"]
    return _csv(df)


def _unknown_prob_class():
    df = frame()
    df["prob_pos"] = 0.5
    df["prob_neg"] = 0.5
    df["prob_maybe"] = 0.1
    return _csv(df)


def _missing_prob_class():
    df = frame()
    df["prob_pos"] = 0.5
    return _csv(df)


REFUSALS = [
    # (case, bytes, filename, extra kwargs, regex the message must match)
    ("empty", b"", "e.csv", {}, r"e\.csv is empty"),
    ("whitespace", b"  \n\n ", "e.csv", {}, r"e\.csv is empty"),
    ("header only", b"id,text,label\n", "h.csv", {}, r"h\.csv has a header but no data rows"),
    (
        "latin-1",
        "text,label\ncaf\u00e9 cr\u00e8me,pos\n".encode("latin-1"),
        "l.csv",
        {},
        r"l\.csv: the bytes at line 2 .* are not UTF-8",
    ),
    ("NUL byte", b"text,label\nab\x00c,pos\n", "n.csv", {}, r"n\.csv: line 2 contains a NUL byte"),
    ("zip as csv", _zip_bytes(), "z.csv", {}, r"z\.csv is a ZIP archive"),
    ("not parquet", _csv(frame()), "p.parquet", {}, r"p\.parquet is not a Parquet file"),
    (
        "missing column",
        _csv(frame()),
        "m.csv",
        {"mapping": ingest.Mapping(text=["body"], label="label")},
        r"column 'body' is not in the file",
    ),
    ("ambiguous", _ambiguous(), "a.csv", {}, r"Ambiguous columns: 'label', 'class'"),
    ("duplicate ids", _dup_ids(), "d.csv", {}, r"the id 'p1' in column 'id' appears on data rows 3, 6"),
    ("no labels", _no_labels(), "nl.csv", {}, r"no row has a label in column 'label'"),
    ("one class", _one_class(), "o.csv", {}, r"only one class \('pos'\)"),
    ("small class", _small_class(), "s.csv", {}, r"class 'meh' has only 3 labelled row\(s\)"),
    ("broken jsonl", _bad_json_lines(), "b.jsonl", {}, r"b\.jsonl: line 5 is not valid JSON"),
    ("unknown prob class", _unknown_prob_class(), "u.csv", {}, r"probability column 'prob_maybe' names class 'maybe'"),
    ("missing prob class", _missing_prob_class(), "u.csv", {}, r"no probability column for class\(es\) 'neg'"),
    ("unknown type", b"text,label\na,b\n", "x.xlsx", {}, r"x\.xlsx: unknown file type"),
    ("ragged row", b"text,label\na,pos\nb,neg,extra\n", "r.csv", {}, r"r\.csv: .*Expected 2 fields in line 3, saw 3"),
    ("empty header", b",\nx,y\n", "eh.csv", {}, r"eh\.csv: the header row is empty"),
]


@pytest.mark.parametrize("case,data,filename,kwargs,pattern", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_problem_and_write_nothing(db, lead, case, data, filename, kwargs, pattern):
    ingest.ingest_bytes(db, _csv(frame()), "ok.csv", "existing", lead)  # an earlier upload stays untouched
    before = counts(db)
    chain = trail.verify_trail(db)
    with pytest.raises(IngestError, match=pattern):
        ingest.ingest_bytes(db, data, filename, "new", lead, **kwargs)
    assert counts(db) == before
    assert trail.verify_trail(db) == chain
    assert store.scalar(db, "SELECT COUNT(*) FROM datasets WHERE name='new'") == 0


def test_refusal_inside_the_write_transaction_leaves_nothing(db, lead):
    """A duplicate name is found inside write_dataset's transaction: everything is rolled back."""
    ingest.ingest_bytes(db, _csv(frame()), "a.csv", "same", lead)
    before = counts(db)
    prep = ingest.prepare(
        ingest.read_table(_csv(frame(8)), "b.csv"), ingest.Mapping(text=["text"], label="label"), "b.csv"
    )
    with pytest.raises(IngestError, match="'same' exists already"):
        ingest.write_dataset(db, prep, "same", lead)
    with pytest.raises(IngestError, match="Give the dataset a name"):
        ingest.write_dataset(db, prep, "   ", lead)
    assert counts(db) == before
    assert not db.conn.in_transaction


def test_parquet_with_numeric_labels_and_nulls(db, lead):
    df = frame()
    df["label"] = [1 if lab == "pos" else 0 for lab in df["label"]]
    df["score"] = [None if i % 3 == 0 else float(i) for i in range(len(df))]
    ds_id = ingest.ingest_bytes(db, to_parquet(df), "n.parquet", "numeric", lead)
    got = items(db, ds_id)
    assert {r["given_label"] for r in got} == {"0", "1"}
    assert datasets.get(db, ds_id).labels == ["0", "1"]
    assert json.loads(got[0]["meta"]) == {"source": "web0"}  # None score left out
    assert json.loads(got[1]["meta"]) == {"source": "mail0", "score": "1"}


def test_jsonl_missing_key_is_left_out_of_meta(db, lead):
    lines = []
    for i in range(6):
        lines.append(json.dumps({"text": f"good happy {i}", "label": "pos", **({"source": "web"} if i else {})}))
        lines.append(json.dumps({"text": f"bad sad {i}", "label": "neg", "source": "mail"}))
    ds_id = ingest.ingest_bytes(db, ("\n".join(lines) + "\n").encode(), "gaps.jsonl", "gaps", lead)
    meta = items(db, ds_id)[0]["meta"]

    def strict(constant):
        raise ValueError(f"{constant} is not JSON")

    parsed = json.loads(meta or "{}", parse_constant=strict)
    assert "source" not in parsed
