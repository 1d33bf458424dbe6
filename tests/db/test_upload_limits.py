"""Decompression bombs and oversized uploads: a few-kB file must not decode to gigabytes.

Every format (CSV/TSV, JSONL, Parquet, CoNLL, NER JSONL) is capped on decoded bytes
(ingest.MAX_DECODED_BYTES) and cells (ingest.MAX_CELLS); the refusal is an IngestError that
names the file, the limit and what to do, raised before the data is materialised, and the
database is left byte for byte as it was. The caps are made small here (monkeypatch) so the
bombs can be small and the tests fast; one subprocess runs the real caps on a Parquet bomb
that decodes to 3 GB and measures the process's peak RSS.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from review.errors import IngestError
from review.ner import store as ner_store
from review.text import ingest
from tests.helpers import ROOT

MB = 1024**2


def dump(db) -> str:
    return "\n".join(db.conn.iterdump())


def parquet_bomb(rows: int, value_len: int, extra_label: bool = True) -> bytes:
    """A dictionary column of one long repeated string over ``rows`` rows, zstd: a few kB on
    disk, rows x value_len bytes decoded."""
    cols = {"text": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * value_len]))}
    if extra_label:
        cols["label"] = pa.DictionaryArray.from_arrays(
            pa.array([0] * (rows // 2) + [1] * (rows - rows // 2), pa.int32()), pa.array(["a", "b"])
        )
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf, compression="zstd", row_group_size=rows, write_statistics=False)
    return buf.getvalue()


def refused(db, lead, data: bytes, name: str) -> str:
    """Ingest ``data`` as a table; the IngestError's message. Asserts nothing was written and the
    Python heap stayed small (the data was not materialised)."""
    before = dump(db)
    tracemalloc.start()
    try:
        with pytest.raises(IngestError) as e:
            ingest.ingest_bytes(db, data, name, "bomb", lead)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * MB + 3 * len(data), f"peak {peak / MB:.0f} MB"
    assert dump(db) == before
    assert name in str(e.value)
    return str(e.value)


@pytest.fixture
def small_caps(monkeypatch):
    monkeypatch.setattr(ingest, "MAX_DECODED_BYTES", 10 * MB)
    monkeypatch.setattr(ingest, "MAX_CELLS", 200_000)


def test_caps_are_generous_for_the_benchmark():
    # benchmarks/scale.py's largest size: 1,000,000 rows x 3 columns (id, text, label), ~60 MB
    assert ingest.MAX_CELLS >= 10 * 1_000_000 * 3
    assert ingest.MAX_DECODED_BYTES >= 10 * 60 * MB


# ---------------------------------------------------------------------------- Parquet
def test_parquet_dictionary_bomb_refused_while_reading(db, lead, small_caps):
    data = parquet_bomb(50_000, 4_000)  # 200 MB decoded, 20x the cap
    assert len(data) < 20_000
    md = pq.ParquetFile(io.BytesIO(data)).metadata
    # the metadata alone does not show it: the dictionary expands beyond the uncompressed sizes
    assert (
        sum(md.row_group(0).column(j).total_uncompressed_size for j in range(md.num_columns)) < ingest.MAX_DECODED_BYTES
    )
    assert md.num_rows * md.num_columns < ingest.MAX_CELLS
    pool_before = pa.total_allocated_bytes()
    msg = refused(db, lead, data, "bomb.parquet")
    assert pa.total_allocated_bytes() - pool_before < 10 * MB
    assert "10.0 MB" in msg and "Split the file" in msg and "columns you need" in msg


def test_parquet_refused_from_metadata_before_reading(db, lead, small_caps, monkeypatch):
    def no_read(*a, **k):
        raise AssertionError("the data was read although the metadata is over the cap")

    monkeypatch.setattr(ingest, "_parquet_batches", no_read)
    # cells: 300,000 rows x 2 columns > 200,000
    msg = refused(db, lead, parquet_bomb(300_000, 10), "rows.parquet")
    assert "600,000 cells" in msg and "200,000" in msg and "Split" in msg
    # bytes: a plain, incompressible-ish column whose uncompressed size is over 10 MB
    buf = io.BytesIO()
    pq.write_table(
        pa.table({"text": [os.urandom(600).hex() for _ in range(10_000)], "label": ["a", "b"] * 5_000}),
        buf,
        compression="zstd",
        use_dictionary=False,
    )
    msg = refused(db, lead, buf.getvalue(), "wide.parquet")
    assert "more than 10.0 MB" in msg


def test_parquet_bomb_in_a_nested_column_refused(db, lead, small_caps):
    # list<string> whose one dictionary value repeats: counted through the list, before decoding
    rows = 20_000
    values = pa.DictionaryArray.from_arrays(pa.array([0] * rows * 5, pa.int32()), pa.array(["y" * 1_000]))
    toks = pa.ListArray.from_arrays(pa.array(range(0, rows * 5 + 1, 5), pa.int32()), values)
    buf = io.BytesIO()
    pq.write_table(pa.table({"toks": toks, "label": ["a", "b"] * (rows // 2)}), buf, compression="zstd")
    assert len(buf.getvalue()) < 50_000
    assert "Split the file" in refused(db, lead, buf.getvalue(), "nested.parquet")


def test_parquet_under_the_caps_reads_as_before(small_caps):
    import pandas as pd

    df = pd.DataFrame(
        {
            "text": [f"item {i}" for i in range(1_000)],
            "label": ["a", "b"] * 500,
            "toks": [["x", str(i)] for i in range(1_000)],
            "n": [1.0, None] * 500,
        }
    )
    buf = io.BytesIO()
    df.to_parquet(buf, row_group_size=300)
    got = ingest.read_table(buf.getvalue(), "ok.parquet")
    assert got.shape == (1_000, 4) and got["text"][999] == "item 999"
    old = pd.read_parquet(io.BytesIO(buf.getvalue()))  # what the reader did before the caps
    assert got["toks"].tolist() == [ingest._as_str(v) for v in old["toks"].tolist()]
    assert got["n"][0] == "1" and got["n"][1] is None


def test_real_caps_parquet_bomb_bounded_rss_and_nothing_written(tmp_path):
    """The attack as reported, at the real caps: a few-kB Parquet that decodes to 3 GB, through
    the CLI in a fresh process; its peak RSS may grow by far less than the decoded size."""
    bomb = tmp_path / "bomb.parquet"
    bomb.write_bytes(parquet_bomb(300_000, 10_000))  # 3 GB decoded > MAX_DECODED_BYTES (2 GB)
    assert bomb.stat().st_size < 20_000
    db_path = tmp_path / "x.db"
    child = (
        "import sys\nimport pyarrow.parquet, pandas\nfrom review.cli import main\n"
        "hwm = lambda: int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        "before = hwm()\nrc = main(sys.argv[1:])\nprint('GROWTH_KB', hwm() - before, file=sys.stderr)\nsys.exit(rc)"
    )
    r = subprocess.run(
        [sys.executable, "-c", child, "ingest", str(bomb), "--name", "bomb", "--db", str(db_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 2, r.stderr
    assert "bomb.parquet decodes to more than 2.0 GB" in r.stderr and "Split the file" in r.stderr
    growth_mb = int(r.stderr.split("GROWTH_KB")[1].split()[0]) / 1024
    assert growth_mb < 300, f"RSS grew by {growth_mb:.0f} MB"
    if db_path.exists():  # the CLI creates the schema; no rows, no growth
        import sqlite_utils

        assert db_path.stat().st_size < MB
        db = sqlite_utils.Database(db_path)
        assert "datasets" not in db.table_names() or db["datasets"].count == 0
        assert "items" not in db.table_names() or db["items"].count == 0


# ---------------------------------------------------------------------------- text formats
@pytest.mark.parametrize("name,sep", [("pad.csv", ","), ("pad.tsv", "\t")])
def test_delimited_padding_bomb_refused_before_parsing(db, lead, small_caps, name, sep):
    # a 2,000-column header, then 200,000 one-field lines: pandas pads each to 2,000 cells
    data = (sep.join(f"c{i}" for i in range(2_000)) + "\n" + "x\n" * 200_000).encode()
    msg = refused(db, lead, data, name)
    assert "cells (rows x columns)" in msg and "200,000" in msg and "text, label and id columns" in msg


def test_delimited_over_the_byte_cap_refused(db, lead, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_DECODED_BYTES", 100_000)
    data = ("text,label\n" + "".join(f"item {i},{'ab'[i % 2]}\n" for i in range(20_000))).encode()
    assert "more than 97.7 KB" not in (msg := refused(db, lead, data, "big.csv"))
    assert "big.csv decodes to more than" in msg and "Split the file" in msg


def test_jsonl_missing_keys_bomb_refused(db, lead, small_caps):
    # one line with 1,000 keys, then 200,000 empty objects: every row gets 1,000 cells
    data = (json.dumps({f"k{i}": "v" for i in range(1_000)}) + "\n" + "{}\n" * 200_000).encode()
    msg = refused(db, lead, data, "keys.jsonl")
    assert "cells (rows x columns)" in msg


def test_jsonl_over_the_byte_cap_refused(db, lead, monkeypatch):
    monkeypatch.setattr(ingest, "MAX_DECODED_BYTES", 100_000)
    data = "".join(json.dumps({"text": f"item {i}", "label": "ab"[i % 2]}) + "\n" for i in range(5_000)).encode()
    assert "decodes to more than" in refused(db, lead, data, "big.jsonl")


def test_jsonl_too_many_keys_refused_early(db, lead):
    data = (json.dumps({f"k{i}": "v" for i in range(ingest.MAX_COLUMNS + 1)}) + "\n").encode()
    assert "at most 2,000 columns" in refused(db, lead, data, "wide.jsonl")


# ---------------------------------------------------------------------------- NER readers
def ner_refused(db, lead, data: bytes, name: str) -> str:
    before = dump(db)
    tracemalloc.start()
    try:
        with pytest.raises(IngestError) as e:
            ner_store.write_ner_dataset(db, ner_store.read_corpus(data, name), data, "x", lead)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * MB + 3 * len(data), f"peak {peak / MB:.0f} MB"
    assert dump(db) == before
    assert name in str(e.value)
    return str(e.value)


def test_conll_over_the_caps_refused(db, lead, small_caps):
    sent = "EU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\n\n"
    msg = ner_refused(db, lead, ("-DOCSTART- -X- O\n\n" + sent * 20_000).encode(), "big.conll")
    assert "cells" in msg and "200,000" in msg
    assert "decodes to more than 10.0 MB" in ner_refused(db, lead, (sent * 300_000).encode(), "huge.conll")


def test_ner_jsonl_over_the_caps_refused(db, lead, small_caps):
    line = json.dumps({"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]}) + "\n"
    assert "cells" in ner_refused(db, lead, (line * 40_000).encode(), "big.jsonl")


def test_ner_under_the_caps_still_reads(small_caps):
    sent = "EU NNP B-ORG\nrejects VBZ O\n\n"
    corpus = ner_store.read_corpus((sent * 1_000).encode(), "ok.conll")
    assert len(corpus.sentences) == 1_000
