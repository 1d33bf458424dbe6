"""Versions (review.versions): every export is a numbered version with a manifest; two versions compared.

On the demo dataset (400 rows, audited): exports through versions.export_csv and the `review` command
record versions 1, 2, ... with the file's SHA-256 and a manifest (the upload's hash, the run, the model's
params, the library versions, counts by state and approvals equal to what SQL says); the manifest file
the command writes next to the CSV is the stored one; a verified correction between two exports is
exactly the one row compare_versions reports; a subset export holds only the rows it names. The NER
corpus export records a version too. The Compare page (AppTest) shows the comparison.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

from review import audit, auth, datasets, export, store, trail, versions, workflow
from review.browse import RowFilter, matching
from review.errors import NotFound, PermissionDenied
from tests.builders import open_page, run
from tests.helpers import PASSWORD, other_label

COMPARE = "pages/14_Compare.py"
EXPORT = "pages/5_Export.py"


def path_of(db) -> str:
    return db.conn.execute("PRAGMA database_list").fetchone()[2]


def cli(db, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("REVIEW_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *map(str, args), "--db", path_of(db)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )


def write(out: versions.VersionedExport, path) -> str:
    export.write_file(out, str(path))
    return path.read_text(encoding="utf-8")


def correct(db, ds, annotator, lead, action: str = "approve") -> tuple[int, str, str]:
    """The annotator relabels the next suspect, the lead verifies it (approve, override with a third
    label, or reject): (row, label before, label after)."""
    s = workflow.claim_next(db, ds, annotator)
    new = other_label(ds, s.current_label)
    label = next(lab for lab in ds.labels if lab not in (s.current_label, new)) if action == "override" else None
    rid = workflow.decide(db, ds, s.idx, annotator, "relabel", s.version, new_label=new)
    version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, s.idx])
    workflow.verify(db, rid, lead, action, version, label=label, note="no" if action == "reject" else "")
    return s.idx, s.current_label, label or new


def keys_of(text: str) -> list[str]:
    return [r["id"] for r in csv.DictReader(io.StringIO(text))]


def test_exports_record_versions_in_order_with_their_hash_and_manifest_file(db, lead, demo_ds, tmp_path):
    first = write(versions.export_csv(db, demo_ds, lead), tmp_path / "v1.csv")
    res = cli(db, "export", demo_ds.name, "--out", tmp_path / "v2.csv")
    assert res.returncode == 0, res.stderr
    assert "version 2" in res.stdout
    listed = versions.versions(db, demo_ds)
    assert [v.number for v in listed] == [2, 1]  # newest first
    assert [v.created_by for v in listed] == ["cli", lead.name]
    assert all(v.kind == "cleaned" and v.n_rows == 400 for v in listed)
    v1, v2 = versions.get_version(db, demo_ds, 1), versions.get_version(db, demo_ds, 2)
    assert v1.sha256 == hashlib.sha256(first.encode("utf-8")).hexdigest()
    second = (tmp_path / "v2.csv").read_bytes()
    assert v2.sha256 == hashlib.sha256(second).hexdigest()
    assert first.encode("utf-8") == second  # nothing changed between them: the same file, the same hash
    on_disk = (tmp_path / "v2.csv.manifest.json").read_text(encoding="utf-8")
    assert json.loads(on_disk) == versions.manifest(db, demo_ds, 2) == v2.manifest
    assert on_disk == v2.manifest_json()
    assert v2.manifest["sha256"] == v2.sha256 and v2.manifest["version"] == 2
    logged = [
        json.loads(r["payload"])
        for r in store.rows(db, "SELECT payload FROM audit_log WHERE action='export_version' ORDER BY id")
    ]
    assert [(p["number"], p["kind"], p["sha256"], p["n_rows"]) for p in logged] == [
        (1, "cleaned", v1.sha256, 400),
        (2, "cleaned", v2.sha256, 400),
    ]
    assert trail.verify_trail(db)[0]
    listing = cli(db, "versions", demo_ds.name)
    assert listing.returncode == 0, listing.stderr
    rows = list(csv.DictReader(io.StringIO(listing.stdout)))
    assert [(r["number"], r["created_by"], r["kind"], r["n_rows"], r["sha256"]) for r in rows] == [
        ("2", "cli", "cleaned", "400", v2.sha256),
        ("1", lead.name, "cleaned", "400", v1.sha256),
    ]


def test_only_verified_export_is_its_own_kind_and_a_half_read_export_records_nothing(db, lead, annotator, demo_ds):
    correct(db, demo_ds, annotator, lead)
    half = iter(versions.export_csv(db, demo_ds, lead))
    next(half)  # a download abandoned after its first chunk
    assert versions.versions(db, demo_ds) == []
    out = versions.export_csv(db, demo_ds, lead, only_verified=True)
    text = "".join(out)
    assert out.version.kind == "verified" and out.version.n_rows == 1 == len(keys_of(text))


def test_the_manifest_says_what_the_export_was_made_from(db, admin, lead, annotator, demo_ds):
    ben = auth.create_user(db, "ben", "annotator", PASSWORD, admin)
    lex = auth.create_user(db, "lex", "lead", PASSWORD, admin)
    correct(db, demo_ds, annotator, lead)  # approved by lena
    overridden = correct(db, demo_ds, ben, lead, "override")
    correct(db, demo_ds, annotator, lex, "reject")
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)  # pending
    datasets.set_setting(db, demo_ds, "allow_self_approval", True, lead)
    s = workflow.claim_next(db, demo_ds, lead)
    rid = workflow.decide(
        db, demo_ds, s.idx, lead, "relabel", s.version, new_label=other_label(demo_ds, s.current_label)
    )
    version = store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [demo_ds.id, s.idx])
    workflow.verify(db, rid, lead, "approve", version)  # her own: self-approved

    out = versions.export_csv(db, demo_ds, lead)
    "".join(out)
    m = out.version.manifest
    run_row = store.fetch_one(
        db, "SELECT id, params, versions FROM runs WHERE dataset_id=? ORDER BY id DESC", [demo_ds.id]
    )
    assert m["source"]["sha256"] == store.scalar(db, "SELECT source_sha256 FROM datasets WHERE id=?", [demo_ds.id])
    assert m["source"]["name"] == demo_ds.source_name
    assert m["rows"] == {"upload": 400, "export": 400}
    assert m["run"]["id"] == run_row["id"] == out.version.run_id
    assert [r["id"] for r in m["runs"]] == [
        r[0] for r in db.execute("SELECT id FROM runs WHERE dataset_id=? ORDER BY id", [demo_ds.id])
    ]
    assert m["model"]["run_id"] == run_row["id"]
    assert m["model"]["params"] == json.loads(run_row["params"])
    assert m["model"]["model"] == json.loads(run_row["params"])["model"]
    assert m["libraries"]["run"] == json.loads(run_row["versions"])
    mine = audit.library_versions()
    assert {k: m["libraries"]["exporter"][k] for k in mine} == mine
    states = dict(
        db.execute(
            "SELECT COALESCE(st.state, 'open'), COUNT(*) FROM items i LEFT JOIN states st"
            " ON st.dataset_id=i.dataset_id AND st.idx=i.idx WHERE i.dataset_id=? GROUP BY 1",
            [demo_ds.id],
        ).fetchall()
    )
    assert m["states"] == states
    assert states["approved"] == 2 and states["overridden"] == 1 and states["kept"] == 1
    assert m["reviews"] == dict(
        db.execute("SELECT status, COUNT(*) FROM reviews WHERE dataset_id=? GROUP BY status", [demo_ds.id]).fetchall()
    )
    assert m["approvals"]["leads"] == {
        "lena": {"approved": 2, "overridden": 1, "rejected": 0, "self_approved": 1},
        "lex": {"approved": 0, "overridden": 0, "rejected": 1, "self_approved": 0},
    }
    assert m["approvals"]["annotators"] == {
        "anna": {"decisions": 3, "keep": 1, "relabel": 2, "unsure": 0},
        "ben": {"decisions": 1, "keep": 0, "relabel": 1, "unsure": 0},
        "lena": {"decisions": 1, "keep": 0, "relabel": 1, "unsure": 0},
    }
    flagged = store.scalar(db, "SELECT COUNT(*) FROM scores WHERE run_id=? AND is_issue=1", [run_row["id"]])
    assert m["flags"]["run_id"] == run_row["id"] and m["flags"]["flagged"] == flagged
    assert m["flags"]["decided"] >= 1 and 0 <= m["flags"]["precision"] <= 1
    assert m["taxonomy"] == {"version": 0, "events": []}
    assert m["created_by"] == lead.name and m["kind"] == "cleaned" and m["subset"] is None
    assert m["format"] == versions.MANIFEST_FORMAT
    assert store.scalar(db, "SELECT final_label FROM reviews WHERE status='overridden'") == overridden[2]


def test_compare_after_a_verified_correction_names_exactly_that_row(db, lead, annotator, demo_ds):
    "".join(versions.export_csv(db, demo_ds, lead))
    idx, before, after = correct(db, demo_ds, annotator, lead)
    "".join(versions.export_csv(db, demo_ds, lead))
    diff = versions.compare_versions(db, demo_ds, 1, 2)
    assert diff.changed == 1 and diff.only_a == diff.only_b == 0
    assert [(r.idx, r.label_a, r.label_b) for r in diff.rows] == [(idx, before, after)]
    assert diff.rows[0].key == store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, idx])
    assert diff.moved == [(before, after, 1)]
    counts = {c: (x, y) for c, x, y in diff.counts}
    given = dict(db.execute("SELECT given_label, COUNT(*) FROM items WHERE dataset_id=? GROUP BY 1", [demo_ds.id]))
    assert {c: x for c, (x, _) in counts.items()} == given
    assert counts[before][1] == given[before] - 1 and counts[after][1] == given[after] + 1
    assert diff.flags_a["decided"] == 0 and diff.flags_b["decided"] == 1
    assert diff.run_lines == []  # the same audit run
    lines = versions.format_version_diff(diff)
    assert "1 label changed" in lines and f"  {before} -> {after}: 1" in lines
    assert versions.compare_versions(db, demo_ds, 1, 2, after=idx).rows == []  # the next page is empty
    res = cli(db, "diff", demo_ds.name, "--versions", 1, 2)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == lines
    bad = cli(db, "diff", demo_ds.name, "--versions", 1, 9)
    assert bad.returncode == 2 and "has no version 9: its versions are 1, 2" in bad.stderr
    with pytest.raises(NotFound, match="no version 3"):
        versions.compare_versions(db, demo_ds, 1, 3)


def test_changed_rows_page_by_keyset(db, lead, annotator, demo_ds):
    "".join(versions.export_csv(db, demo_ds, lead))
    rows = sorted(correct(db, demo_ds, annotator, lead)[0] for _ in range(5))
    "".join(versions.export_csv(db, demo_ds, lead))
    seen, after = [], -1
    while True:
        d = versions.compare_versions(db, demo_ds, 1, 2, after=after, limit=2)
        seen += [r.idx for r in d.rows]
        if d.next_after is None:
            break
        after = d.next_after
    assert seen == rows and d.changed == 5


def test_subset_export_holds_only_the_rows_it_names(db, lead, annotator, demo_ds):
    approved = sorted(correct(db, demo_ds, annotator, lead)[0] for _ in range(3))
    correct(db, demo_ds, annotator, lead, "reject")
    s = workflow.claim_next(db, demo_ds, annotator)
    workflow.decide(db, demo_ds, s.idx, annotator, "keep", s.version)
    out = versions.export_csv(db, demo_ds, lead, subset=versions.Subset(states=versions.VERIFIED_STATES))
    text = "".join(out)
    keys = dict(db.execute("SELECT idx, key FROM items WHERE dataset_id=?", [demo_ds.id]).fetchall())
    assert keys_of(text) == [keys[i] for i in approved]
    assert {r["status"] for r in csv.DictReader(io.StringIO(text))} == {"approved"}
    v = out.version
    assert (v.kind, v.n_rows) == ("subset", 3)
    labels = versions.labels_of(db, demo_ds, v.number)
    assert [i for i, lab in enumerate(labels) if lab is not None] == approved
    assert v.manifest["subset"]["states"] == ["approved", "overridden"]
    assert v.manifest["rows"]["export"] == 3

    label = demo_ds.labels[1]  # a Rows page filter: given label, and decided rows only
    f = RowFilter(given=(label,))
    out = versions.export_csv(db, demo_ds, lead, subset=versions.Subset(f, versions.DECIDED_STATES))
    text = "".join(out)
    decided = {r[0] for r in db.execute("SELECT idx FROM states WHERE dataset_id=? AND state!='open'", [demo_ds.id])}
    want = [i for i in matching(db, demo_ds, f) if i in decided]
    assert keys_of(text) == [keys[i] for i in want]
    assert out.version.manifest["subset"]["filter"] == json.loads(f.to_json())
    assert out.version.manifest["subset"]["describe"] == f"given {label}, status " + " or ".join(
        versions.DECIDED_STATES
    )
    d = versions.compare_versions(db, demo_ds, v.number, out.version.number)
    assert (d.changed, d.only_a, d.only_b) == (0, len(set(approved) - set(want)), len(set(want) - set(approved)))


def test_only_a_lead_exports_a_version(db, annotator, demo_ds):
    with pytest.raises(PermissionDenied):
        versions.export_csv(db, demo_ds, annotator)
    with pytest.raises(PermissionDenied):
        versions.record_version(db, demo_ds, annotator, "cleaned", [], None, {})
    assert versions.versions(db, demo_ds) == []


def test_ner_corpus_export_records_a_version(ndb, tmp_path):
    ds = datasets.get(ndb, "dev")
    res = cli(ndb, "export", "dev", "--out", tmp_path / "dev.conll")
    assert res.returncode == 0, res.stderr
    res = cli(ndb, "export", "dev", "--out", tmp_path / "dev.csv", "--format", "csv")
    assert res.returncode == 0, res.stderr
    (v2, v1) = versions.versions(ndb, ds)
    assert (v1.kind, v2.kind) == ("ner", "cleaned")
    assert v1.sha256 == hashlib.sha256((tmp_path / "dev.conll").read_bytes()).hexdigest()
    assert v1.n_rows == ds.n_items
    assert json.loads((tmp_path / "dev.conll.manifest.json").read_text()) == versions.manifest(ndb, ds, 1)
    assert versions.manifest(ndb, ds, 1)["rows"]["format"] == "conll"
    labels = versions.labels_of(ndb, ds, 1)
    assert labels[0] == json.loads(
        store.scalar(ndb, "SELECT given_tags FROM items WHERE dataset_id=? AND idx=0", [ds.id])
    )


# ----------------------------------------------------------------------------- the pages (AppTest)


@pytest.fixture
def two_versions(db, db_path, lead, annotator, demo_ds, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    "".join(versions.export_csv(db, demo_ds, lead))
    correct(db, demo_ds, annotator, lead)
    "".join(versions.export_csv(db, demo_ds, lead))
    return demo_ds


def test_compare_page_shows_the_change(two_versions, db, lead):
    at = open_page(COMPARE, lead, two_versions.name)
    assert [h.value for h in at.subheader] == ["1 label changed"]
    moved, counts, changed = (df.value for df in at.dataframe)
    assert moved.to_dict("records") == [
        {"from": r.label_a, "to": r.label_b, "rows": 1} for r in versions.compare_versions(db, two_versions, 1, 2).rows
    ]
    assert list(counts.columns) == ["class", "version 1", "version 2", "change"]
    assert counts["change"].abs().sum() == 2
    assert len(changed) == 1
    assert at.button(key="compare_next").disabled
    assert [m.label for m in at.metric] == ["Flagged (run 1)", "Precision", "Flagged (run 1)", "Precision"]
    at.radio(key="compare_mode").set_value("Two runs")
    run(at)
    assert any("1 finished audit run" in i.value for i in at.info)


def test_compare_page_with_one_version_says_what_to_do(db, db_path, lead, demo_ds, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    "".join(versions.export_csv(db, demo_ds, lead))
    at = open_page(COMPARE, lead, demo_ds.name)
    assert any("has 1 version" in i.value and "Export twice" in i.value for i in at.info)


def test_export_page_lists_the_versions(two_versions, lead):
    at = open_page(EXPORT, lead, two_versions.name)
    assert "Versions" in [h.value for h in at.subheader]
    table = at.dataframe[-1].value
    assert list(table["version"]) == [2, 1] and set(table["kind"]) == {"cleaned"}
    assert at.selectbox(key="manifest_version").options == ["2", "1"]
    labels = {d.key: d.proto.label for d in at.get("download_button")}
    assert labels["dl_manifest"] == "Download the manifest of version 2 (JSON)"
    assert "dl_subset" not in labels
    at.toggle(key="subset_on").set_value(True)
    run(at)
    labels = {d.key: d.proto.label for d in at.get("download_button")}
    assert labels["dl_subset"] == "Download the reviewed subset (CSV)"
    assert "dl_manifest_subset" not in labels  # no subset exported yet
    assert at.radio(key="subset_states").value == "Approved or overridden only"
    assert at.checkbox(key="subset_use_filter").disabled  # no filter set on the Rows page


def test_export_page_downloads_record_versions(db, db_path, lead, annotator, demo_ds, monkeypatch, deferred):
    """The page's downloads (built on click) record versions: the cleaned labels, then an approved-only subset."""
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    idx = correct(db, demo_ds, annotator, lead)[0]
    at = open_page(EXPORT, lead, demo_ds.name)
    at.toggle(key="subset_on").set_value(True)
    run(at)
    cleaned = deferred[f"{demo_ds.name}-cleaned.csv"]()
    assert [(v.number, v.kind, v.n_rows) for v in versions.versions(db, demo_ds)] == [(1, "cleaned", 400)]
    assert versions.get_version(db, demo_ds, 1).sha256 == hashlib.sha256(cleaned).hexdigest()
    subset = deferred[f"{demo_ds.name}-subset.csv"]().decode("utf-8")
    key = store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, idx])
    assert keys_of(subset) == [key]
    assert [(v.number, v.kind, v.n_rows) for v in versions.versions(db, demo_ds)][0] == (2, "subset", 1)
    run(at)
    labels = {d.key: d.proto.label for d in at.get("download_button")}
    assert labels["dl_manifest"] == "Download the manifest of version 1 (JSON)"
    assert labels["dl_manifest_subset"] == "Download the manifest of version 2 (JSON)"
    got = json.loads(deferred[f"{demo_ds.name}-v2.manifest.json"]())
    assert got == versions.manifest(db, demo_ds, 2) and got["subset"]["states"] == ["approved", "overridden"]
