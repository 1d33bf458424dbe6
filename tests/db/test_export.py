"""export: the cleaned CSV, formula-safe cells, role check, audit-trail CSV."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from review import datasets, export, store, trail, workflow
from review.errors import PermissionDenied
from review.text import ingest
from review.trail import export as trail_export
from tests.helpers import other_label


def read_csv(chunks) -> list[dict]:
    text = "".join(chunks)
    return list(csv.DictReader(io.StringIO(text)))


def header(chunks) -> list[str]:
    return next(csv.reader(io.StringIO("".join(chunks))))


def test_cleaned_csv_columns_and_rows(db, demo_ds, lead, annotator):
    s = workflow.claim_next(db, demo_ds, annotator)
    new = other_label(demo_ds, s.given_label)
    workflow.decide(db, demo_ds, s.idx, annotator, "relabel", s.version, new_label=new)
    text = "".join(export.export_cleaned(db, demo_ds, lead))
    assert next(csv.reader(io.StringIO(text))) == [
        "id",
        "text",
        "given_label",
        "cleaned_label",
        "proposed_label",
        "status",
        "reviewer",
        "verified_by",
        "self_approved",
        "excluded",
        "ambiguous",
        "quality",
        "rank",
    ]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == demo_ds.n_items
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert frame["id"].tolist()[:3] == ["T0001", "T0002", "T0003"]
    assert frame["given_label"].tolist() == [
        r[0] for r in db.execute("SELECT given_label FROM items WHERE dataset_id=? ORDER BY idx", [demo_ds.id])
    ]
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, demo_ds.n_items + 1))
    by_id = {r["id"]: r for r in rows}
    decided = by_id[s.key]
    # a pending relabel does not change the cleaned label yet: it shows as the proposed label
    assert decided["status"] == "relabelled" and decided["reviewer"] == annotator.name
    assert decided["cleaned_label"] == s.given_label and decided["verified_by"] == ""
    assert decided["proposed_label"] == new and decided["self_approved"] == ""
    untouched = next(r for r in rows if r["id"] != s.key)
    assert untouched["status"] == "unreviewed" and untouched["cleaned_label"] == untouched["given_label"]
    assert untouched["proposed_label"] == untouched["reviewer"] == untouched["verified_by"] == ""
    assert 0.0 <= float(untouched["quality"]) <= 1.0


def test_cleaned_label_reflects_approved_relabel_and_override(db, demo_ds, lead, annotator):
    a = workflow.claim_next(db, demo_ds, annotator)
    new_a = other_label(demo_ds, a.given_label)
    ra = workflow.decide(db, demo_ds, a.idx, annotator, "relabel", a.version, new_label=new_a)
    b = workflow.claim_next(db, demo_ds, annotator)
    rb = workflow.decide(db, demo_ds, b.idx, annotator, "keep", b.version)
    c = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, c.idx, annotator, "keep", c.version)  # stays pending
    pend = {r["id"]: r["version"] for r in workflow.pending(db, demo_ds, lead)}
    workflow.verify(db, ra, lead, "approve", pend[ra])
    own = [lab for lab in demo_ds.labels if lab != b.given_label][-1]
    workflow.verify(db, rb, lead, "override", pend[rb], label=own)

    rows = {r["id"]: r for r in read_csv(export.export_cleaned(db, demo_ds, lead))}
    assert rows[a.key]["cleaned_label"] == new_a and rows[a.key]["status"] == "approved"
    assert rows[a.key]["given_label"] == a.given_label
    assert rows[a.key]["verified_by"] == lead.name and rows[a.key]["reviewer"] == annotator.name
    assert rows[a.key]["proposed_label"] == "" and rows[a.key]["self_approved"] == "no"
    assert rows[b.key]["cleaned_label"] == own and rows[b.key]["status"] == "overridden"
    assert rows[b.key]["verified_by"] == lead.name and rows[b.key]["proposed_label"] == ""
    assert rows[c.key]["cleaned_label"] == c.given_label and rows[c.key]["status"] == "kept"
    assert rows[c.key]["proposed_label"] == c.given_label and rows[c.key]["verified_by"] == ""  # a pending keep

    verified = read_csv(export.export_cleaned(db, demo_ds, lead, only_verified=True))
    assert {r["id"] for r in verified} == {a.key, b.key}


def test_only_verified_is_empty_without_verification(db, demo_ds, lead, annotator):
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    chunks = list(export.export_cleaned(db, demo_ds, lead, only_verified=True))
    assert header(chunks)[0] == "id"
    assert read_csv(chunks) == []  # a pending decision is not verified


def test_formula_cells_are_quoted_when_spreadsheet_safe(db, lead):
    """The formula guard is asked for (files meant for spreadsheets); without it every cell is as stored."""
    rows = []
    for i in range(6):
        rows.append({"id": f"a{i}", "text": f"plain text {i}", "label": "pos"})
        rows.append({"id": f"b{i}", "text": f"other words {i}", "label": "neg"})
    rows[0]["text"] = "=1+1"
    rows[1]["text"] = "+x"
    rows[2]["text"] = "-x"
    rows[3]["text"] = "@x"
    rows[4]["id"] = '=HYPERLINK("http://evil")'
    rows[5]["text"] = "a=1 is fine"
    df = pd.DataFrame(rows)
    ds_id = ingest.ingest_bytes(db, df.to_csv(index=False).encode(), "f.csv", "formulas", lead)
    ds = datasets.get(db, ds_id)
    assert db.execute("SELECT text FROM items WHERE dataset_id=? AND idx=0", [ds_id]).fetchone()[0] == "=1+1"
    out = read_csv(export.export_cleaned(db, ds, lead, spreadsheet_safe=True))
    assert [r["text"] for r in out[:4]] == ["'=1+1", "'+x", "'-x", "'@x"]
    assert out[4]["id"] == '\'=HYPERLINK("http://evil")'
    assert out[5]["text"] == "a=1 is fine"
    assert out[6]["text"] == "plain text 3"
    assert all(not r["text"].startswith(("=", "+", "-", "@")) for r in out)
    plain = read_csv(export.export_cleaned(db, ds, lead))  # the default: the data as stored
    assert [r["text"] for r in plain[:4]] == ["=1+1", "+x", "-x", "@x"]
    assert plain[4]["id"] == '=HYPERLINK("http://evil")'


def test_annotator_cannot_export(db, demo_ds, annotator):
    n = store.scalar(db, "SELECT COUNT(*) FROM audit_log")
    with pytest.raises(PermissionDenied):
        export.export_cleaned(db, demo_ds, annotator)
    with pytest.raises(PermissionDenied):
        trail_export.export_csv(db, annotator, demo_ds.id)
    assert store.scalar(db, "SELECT COUNT(*) FROM audit_log") == n


def test_export_is_logged(db, demo_ds, lead):
    list(export.export_cleaned(db, demo_ds, lead, only_verified=True))
    row = db.execute("SELECT actor, action, dataset_id, payload FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:3] == (lead.name, "export", demo_ds.id)
    payload = json.loads(row[3])
    assert payload["what"] == "cleaned labels" and payload["only_verified"] is True
    ok, _, msg = trail.verify_trail(db)
    assert ok, msg


def test_audit_trail_csv(db, demo_ds, lead, annotator, tmp_path):
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version, note="=cmd|' /C calc'!A0")
    path = tmp_path / "trail.csv"
    n_chars = export.write_file(trail_export.export_csv(db, lead, demo_ds.id), str(path))
    assert n_chars == len(path.read_text(encoding="utf-8"))
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0].keys()) == ["id", "at", "actor", "action", "dataset_id", "idx", "payload", "prev_hash", "hash"]
    assert {r["dataset_id"] for r in rows} == {str(demo_ds.id)}
    assert [r["action"] for r in rows] == ["upload", "audit_run", "decision", "export"]
    ids = [int(r["id"]) for r in rows]
    assert ids == sorted(ids)
    db_rows = {r[0]: r for r in db.execute("SELECT id, hash, actor FROM audit_log")}
    for r in rows:
        assert db_rows[int(r["id"])][1] == r["hash"]
    assert rows[2]["actor"] == annotator.name and json.loads(rows[2]["payload"])["note"].startswith("=cmd")
    # the whole trail (no dataset filter) also includes the user rows
    everything = read_csv(trail_export.export_csv(db, lead))
    assert {"user_add", "upload", "audit_run", "decision", "export"} <= {r["action"] for r in everything}
    assert len(everything) == store.scalar(db, "SELECT COUNT(*) FROM audit_log")


def test_export_pages_through_more_rows_than_a_page(db, lead):
    """More rows than one page of the keyset query (export.PAGE): every row exactly once, in order."""
    n = export.PAGE + 3
    rows = [{"text": f"{'good' if i % 2 else 'bad'} text {i}", "label": "pos" if i % 2 else "neg"} for i in range(n)]
    ds_id = ingest.ingest_bytes(db, pd.DataFrame(rows).to_csv(index=False).encode(), "big.csv", "paged", lead)
    out = read_csv(export.export_cleaned(db, datasets.get(db, ds_id), lead))
    assert [r["id"] for r in out] == [str(i) for i in range(n)]
    assert [r["text"] for r in out] == [r["text"] for r in rows]
    assert out[-1]["status"] == "unreviewed"
    assert out[0]["rank"] == "" and out[0]["quality"] == ""  # no audit run yet
