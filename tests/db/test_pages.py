"""Page-level tests: every Streamlit page driven through ``streamlit.testing.v1.AppTest``.

Real SQLite files (one per test, copied from a module-wide template), the real demo
dataset audited once with real cleanlab, real sign-in. Nothing of ``review`` is mocked:
the tests click the pages' widgets and check the database through ``review``'s own reads.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from html import escape as html_escape
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from review import audit, auth, datasets, demo, safe_text, store, workflow
from review.text import ingest
from tests.helpers import ROOT, copy_db

APP = ROOT / "app.py"
PW = "correct horse battery"

HOME = "app.py"
UPLOAD = "pages/1_Upload.py"
AUDIT = "pages/2_Audit.py"
REVIEW = "pages/3_Review.py"
VERIFY = "pages/4_Verify.py"
EXPORT = "pages/5_Export.py"
TRAIL = "pages/6_Audit_trail.py"
USERS = "pages/7_Users.py"
ALL_PAGES = [HOME, UPLOAD, AUDIT, REVIEW, VERIFY, EXPORT, TRAIL, USERS]

ADMIN = ("alice", "admin")
LEAD = ("lena", "lead")
ANNA = ("anna", "annotator")
BEN = ("ben", "annotator")

XSS_TEXT = "Hi <script>alert(1)</script> and <img src=x onerror=alert(1)> bye"


# ----------------------------------------------------------------------------- fixtures


def _make_users(db, *extra: tuple[str, str]) -> auth.User:
    admin = auth.create_user(db, ADMIN[0], "admin", PW, None)
    for name, role in extra:
        auth.create_user(db, name, role, PW, admin)
    return admin


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Two template databases built once: users only, and users + the audited demo."""
    base = tmp_path_factory.mktemp("page_templates")
    users_only, with_demo = base / "users.db", base / "demo.db"
    db = store.connect(users_only)
    _make_users(db, LEAD, ANNA, BEN)
    db.conn.close()
    copy_db(users_only, with_demo)
    db = store.connect(with_demo)
    demo.load_demo(db, auth.User(*LEAD))
    db.conn.close()
    return {"users": users_only, "demo": with_demo}


def _use(tmp_path, monkeypatch, template: Path | None) -> Path:
    path = tmp_path / "review.db"
    if template is not None:
        copy_db(template, path)
    monkeypatch.setenv("REVIEW_DB", str(path))
    return path


@pytest.fixture
def conns():
    opened = []

    def open_(path):
        db = store.connect(path)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.conn.close()


@pytest.fixture
def empty_db(tmp_path, monkeypatch, conns):
    """A brand-new database file with no account at all."""
    return conns(_use(tmp_path, monkeypatch, None))


@pytest.fixture
def users_db(tmp_path, monkeypatch, templates, conns):
    """Accounts alice (admin), lena (lead), anna and ben (annotators); no dataset."""
    return conns(_use(tmp_path, monkeypatch, templates["users"]))


@pytest.fixture
def demo_db(tmp_path, monkeypatch, templates, conns):
    """The accounts plus the demo dataset, ingested and audited by lena."""
    return conns(_use(tmp_path, monkeypatch, templates["demo"]))


# ----------------------------------------------------------------------------- helpers


def open_page(page: str, user: tuple[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if user is not None:
        at.session_state["user"] = (user[0], user[1], time.time())
    if page != HOME:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(thing) -> AppTest:
    """Run the app again (after a widget change); ``thing`` is the AppTest or a widget of it."""
    at = thing.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def labels(buttons) -> list[str]:
    return [b.label for b in buttons]


def main_buttons(at: AppTest) -> list[str]:
    """Button labels outside the sidebar (the sidebar holds only 'Sign out')."""
    return [b.label for b in at.main.button]


def signed_in_as(at: AppTest) -> str | None:
    s = at.session_state["user"] if "user" in at.session_state else None
    return s[0] if s else None


def demo_ds(db) -> datasets.Dataset:
    return datasets.get(db, demo.DEMO_NAME)


def claimed(db, ds, name: str) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT idx FROM states WHERE dataset_id=? AND state='open' AND claimed_by=? AND claimed_until>?",
            [ds.id, name, time.time()],
        )
    ]


def shown_row_key(at: AppTest) -> str:
    heads = [m for m in texts(at.markdown) if m.startswith("**") and " · row " in m]
    assert len(heads) == 1, heads
    return heads[0]


def key_of(db, ds, idx: int) -> str:
    return store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx])


def reviews(db, ds, **where) -> list[dict]:
    cond = " AND ".join(f"{k}=?" for k in where)
    return list(
        db.query(
            f"SELECT * FROM reviews WHERE dataset_id=?{' AND ' + cond if cond else ''} ORDER BY id",
            [ds.id, *where.values()],
        )
    )


def state_of(db, ds, idx: int) -> str:
    return store.scalar(db, "SELECT state FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])


def csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def small_table(n_per_class: int = 8) -> list[dict]:
    words = {"pos": "great lovely superb fine", "neg": "awful broken horrid bad"}
    rows = []
    for lab, vocab in words.items():
        for i in range(n_per_class):
            rows.append(
                {"text": f"item {i} is {vocab.split()[i % 4]} really {vocab.split()[(i + 1) % 4]}", "label": lab}
            )
    return [{"id": f"r{k}", **r} for k, r in enumerate(rows)]


def pending_decision(db, ds, who=ANNA, decision="relabel") -> dict:
    """anna decides on the first suspect through review.workflow; returns the pending row."""
    user = auth.User(*who)
    s = workflow.claim_next(db, ds, user)
    new_label = next(l for l in ds.labels if l != s.current_label) if decision == "relabel" else None
    rid = workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=new_label)
    return {"id": rid, "idx": s.idx, "new_label": new_label, "given": s.current_label, "text": s.text}


# ----------------------------------------------------------------------------- sign-in on every page


@pytest.mark.parametrize("page", ALL_PAGES)
def test_signed_out_sees_only_the_sign_in_form(page, demo_db):
    at = open_page(page)
    assert texts(at.subheader) == ["Sign in"]
    assert labels(at.button) == ["Sign in"]  # the form's submit button, nothing else
    assert [t.key for t in at.text_input] == ["signin_name", "signin_pw"]
    # no page content: no data, no pickers, no uploads, no downloads, no sidebar
    for kind in (
        "dataframe",
        "selectbox",
        "multiselect",
        "file_uploader",
        "download_button",
        "html",
        "metric",
        "checkbox",
        "radio",
        "markdown",
        "warning",
        "info",
    ):
        assert len(at.get(kind)) == 0, (kind, at.get(kind))
    assert len(at.tabs) == 0 and len(at.sidebar.children) == 0
    assert signed_in_as(at) is None


@pytest.mark.parametrize("page", ALL_PAGES)
def test_first_admin_form_on_empty_db_creates_admin_and_signs_in(page, empty_db):
    at = open_page(page)
    assert texts(at.subheader) == ["Welcome: create the admin account"]
    assert labels(at.button) == ["Create admin account"]
    at.text_input(key="first_name").input("root")
    at.text_input(key="first_pw").input("s3cret-pass")
    at.text_input(key="first_pw2").input("s3cret-pass")
    rerun(at.button[0].click())
    assert auth.get_user(empty_db, "root") == auth.User("root", "admin")
    assert auth.sign_in(empty_db, "root", "s3cret-pass").role == "admin"
    assert signed_in_as(at) == "root"
    assert "Signed in as **root** (admin)" in texts(at.sidebar.markdown)
    assert "Welcome: create the admin account" not in texts(at.subheader)
    assert not [t for t in at.text_input if t.key.startswith("first_")]


def test_first_admin_form_refuses_different_passwords(empty_db):
    at = open_page(HOME)
    at.text_input(key="first_name").input("root")
    at.text_input(key="first_pw").input("s3cret-pass")
    at.text_input(key="first_pw2").input("s3cret-pasS")
    rerun(at.button[0].click())
    assert texts(at.error) == ["The two passwords differ: type them again."]
    assert not auth.has_users(empty_db)
    assert signed_in_as(at) is None


@pytest.mark.parametrize("page", ALL_PAGES)
def test_wrong_password_errors_right_password_signs_in(page, demo_db):
    at = open_page(page)
    at.text_input(key="signin_name").input("alice")
    at.text_input(key="signin_pw").input("not the password")
    rerun(at.button[0].click())
    assert texts(at.error) == ["Wrong user name or password."]
    assert signed_in_as(at) is None
    assert texts(at.subheader) == ["Sign in"]
    assert store.scalar(demo_db, "SELECT COUNT(*) FROM audit_log WHERE action='sign_in_failed' AND actor='alice'") == 1

    at.text_input(key="signin_name").input("alice")
    at.text_input(key="signin_pw").input(PW)
    rerun(at.button[0].click())
    assert signed_in_as(at) == "alice"
    assert not at.error
    assert "Sign in" not in texts(at.subheader)
    assert "Signed in as **alice** (admin)" in texts(at.sidebar.markdown)
    assert store.scalar(demo_db, "SELECT failed_logins FROM users WHERE name='alice'") == 0


def test_sign_out_returns_to_the_sign_in_form(demo_db):
    at = open_page(REVIEW, LEAD)
    assert "Keep" in main_buttons(at)
    rerun(at.sidebar.button(key="sign_out").click())
    assert signed_in_as(at) is None
    assert texts(at.subheader) == ["Sign in"]
    assert "Keep" not in labels(at.button)


# ----------------------------------------------------------------------------- role gating


@pytest.mark.parametrize("page", [UPLOAD, VERIFY, EXPORT, TRAIL, USERS])
def test_annotator_is_turned_away_from_lead_pages(page, demo_db):
    at = open_page(page, ANNA)
    need = "admin" if page == USERS else "lead"
    assert texts(at.warning) == [f"This page is for a {need} or above; you are signed in as annotator."]
    assert main_buttons(at) == []
    assert labels(at.sidebar.button) == ["Sign out"]
    for kind in ("file_uploader", "download_button", "dataframe", "selectbox", "text_input", "form"):
        assert len(at.get(kind)) == 0, kind


def test_lead_is_turned_away_from_users(demo_db):
    at = open_page(USERS, LEAD)
    assert texts(at.warning) == ["This page is for a admin or above; you are signed in as lead."]
    assert main_buttons(at) == []
    assert not at.get("form") and not at.dataframe


def test_annotator_on_audit_sees_results_but_no_run_button(demo_db):
    at = open_page(AUDIT, ANNA)
    assert "Run the audit" not in main_buttons(at)
    assert any(s.startswith("Run 1 (audit)") for s in texts(at.subheader))


# ----------------------------------------------------------------------------- home


def test_home_lead_loads_the_demo_in_one_click(users_db):
    at = open_page(HOME, LEAD)
    assert "No dataset yet." in texts(at.markdown)
    assert not at.dataframe
    rerun(at.button(key="load_demo").click())
    assert "No dataset yet." not in texts(at.markdown)
    table = at.dataframe[0].value
    assert list(table["name"]) == [demo.DEMO_NAME]
    assert int(table["rows"].iloc[0]) == 400
    assert int(table["suspects"].iloc[0]) > 0
    ds = demo_ds(users_db)
    run = datasets.latest_run(users_db, ds.id)
    assert run["kind"] == "audit" and run["status"] == "done" and run["created_by"] == "lena"
    assert at.session_state["dataset_name"] == demo.DEMO_NAME
    assert "load_demo" not in [b.key for b in at.button]


def test_home_annotator_on_empty_db_gets_no_demo_button(users_db):
    at = open_page(HOME, ANNA)
    assert "load_demo" not in [b.key for b in at.button]
    assert texts(at.info) == ["A lead has not uploaded a dataset yet. Come back when they have."]


# ----------------------------------------------------------------------------- upload


def test_upload_maps_columns_and_ingests(users_db):
    # headers that guess_mapping cannot read, so the columns are mapped by hand
    rows = [{"ref": r["id"], "words": r["text"], "verdict": r["label"], "extra": "x"} for r in small_table()]
    at = open_page(UPLOAD, LEAD)
    assert at.file_uploader[0].label == "Data file"
    at.file_uploader(key="upload_file").upload("reviews.csv", csv_bytes(rows), "text/csv")
    rerun(at)
    assert texts(at.subheader)[0] == "Preview: 16 rows, 4 columns"
    assert any(i.startswith("Choose the columns yourself") for i in texts(at.info))
    at.multiselect(key="map_text").set_value(["words"])
    at.selectbox(key="map_label").set_value("verdict")
    at.selectbox(key="map_id").set_value("ref")
    at.text_input(key="dataset_name_input").input("my reviews")
    rerun(at.button(key="ingest").click())
    assert not at.error
    assert texts(at.success) == [
        "Dataset 'my reviews' ingested: 16 rows, classes neg, pos. "
        "Integrity checks done; run the audit to rank suspects."
    ]
    ds = datasets.get(users_db, "my reviews")
    assert ds.n_items == 16 and ds.labels == ["neg", "pos"] and ds.created_by == "lena"
    items = list(
        users_db.query("SELECT key, text, given_label, meta FROM items WHERE dataset_id=? ORDER BY idx", [ds.id])
    )
    assert items[0]["key"] == "r0" and items[0]["given_label"] == "pos" and items[0]["text"] == rows[0]["words"]
    assert json.loads(items[0]["meta"]) == {"extra": "x"}
    assert datasets.latest_run(users_db, ds.id)["kind"] == "integrity"


def _upload_and_ingest(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="upload_file").upload(name, data, "text/csv")
    rerun(at)
    return rerun(at.button(key="ingest").click())


def test_upload_refuses_a_class_with_two_rows(users_db):
    rows = small_table() + [
        {"id": "m1", "text": "a lone one", "label": "meh"},
        {"id": "m2", "text": "another lone one", "label": "meh"},
    ]
    at = _upload_and_ingest(open_page(UPLOAD, LEAD), "tiny.csv", csv_bytes(rows))
    assert len(at.error) == 1
    assert "class 'meh' has only 2 labelled row(s)" in at.error[0].value
    assert not at.success
    assert store.scalar(users_db, "SELECT COUNT(*) FROM datasets") == 0
    assert store.scalar(users_db, "SELECT COUNT(*) FROM items") == 0


def test_upload_refuses_duplicate_ids(users_db):
    rows = small_table()
    rows[5]["id"] = rows[2]["id"]
    at = _upload_and_ingest(open_page(UPLOAD, LEAD), "dups.csv", csv_bytes(rows))
    assert len(at.error) == 1
    msg = at.error[0].value
    assert "the id 'r2' in column 'id' appears on data rows 3, 6" in msg and "Ids must be unique" in msg
    assert not at.success
    assert store.scalar(users_db, "SELECT COUNT(*) FROM datasets") == 0


def test_upload_refuses_a_file_that_is_not_a_table(users_db):
    at = open_page(UPLOAD, LEAD)
    at.file_uploader(key="upload_file").upload("data.csv", b"PK\x03\x04" + b"\x00" * 40, "text/csv")
    rerun(at)
    assert len(at.error) == 1 and "ZIP archive" in at.error[0].value
    assert "ingest" not in [b.key for b in at.button]
    assert store.scalar(users_db, "SELECT COUNT(*) FROM datasets") == 0


def test_upload_takes_embeddings_and_a_loss_column_and_refuses_a_bad_one(users_db):
    rows = [{**r, "emb": f"[{k % 2}, {k / 10:.1f}, 1]", "loss": k / 16} for k, r in enumerate(small_table())]
    rows[6]["loss"] = "n/a"
    at = open_page(UPLOAD, LEAD)
    at.file_uploader(key="upload_file").upload("signals.csv", csv_bytes(rows), "text/csv")
    rerun(at)
    at.selectbox(key="map_embedding").set_value("emb")
    at.selectbox(key="map_loss").set_value("loss")
    at.text_input(key="dataset_name_input").input("with signals")
    rerun(at.button(key="ingest").click())
    assert len(at.error) == 1 and "signals.csv: data row 7, column 'loss': 'n/a' is not a number" in at.error[0].value
    assert store.scalar(users_db, "SELECT COUNT(*) FROM datasets") == 0
    rows[6]["loss"] = 0.5
    at = open_page(UPLOAD, LEAD)
    at.file_uploader(key="upload_file").upload("signals.csv", csv_bytes(rows), "text/csv")
    rerun(at)
    at.selectbox(key="map_embedding").set_value("emb")
    at.selectbox(key="map_loss").set_value("loss")
    at.multiselect(key="map_text").set_value(["text"])
    at.text_input(key="dataset_name_input").input("with signals")
    rerun(at.button(key="ingest").click())
    assert not at.error and at.success
    ds = datasets.get(users_db, "with signals")
    assert ds.mapping.embedding == "emb" and ds.mapping.loss == "loss" and ds.mapping.text == ["text"]
    from review.text import signals

    E, loss = signals.load(users_db, ds.id, ds.n_items)
    assert E.shape == (16, 3) and loss[6] == 0.5 and loss[15] == 15 / 16


# ----------------------------------------------------------------------------- audit


def test_audit_run_button_makes_a_new_run(demo_db):
    ds = demo_ds(demo_db)
    before = datasets.latest_run(demo_db, ds.id)["id"]
    at = open_page(AUDIT, LEAD)
    assert texts(at.subheader)[0].startswith(f"Run {before} (audit)")
    rerun(at.button(key="run_audit").click())
    run = datasets.latest_run(demo_db, ds.id)
    assert run["id"] > before and run["kind"] == "audit" and run["status"] == "done"
    assert texts(at.subheader)[0].startswith(f"Run {run['id']} (audit)")
    assert len(datasets.runs(demo_db, ds.id)) == 2


def test_audit_findings_tab_shows_the_duplicate_text(demo_db):
    at = open_page(AUDIT, LEAD)
    tabs = at.tabs
    assert [t.label for t in tabs] == [
        "Integrity findings",
        "Charts",
        "Suspects",
        "Runs",
        "Model",
        "Self-check",
        "Judge",
        "Precision",
        "Beyond label errors",
    ]
    findings = tabs[0]
    assert "**conflicting duplicates** (2)" in texts(findings.markdown)
    heads = [e.label for e in findings.expander]
    dup = [h for h in heads if "have the same text" in h]
    assert len(dup) == 2, heads
    assert any("There is a charge of $250 on my debit card" in h for h in dup)
    assert findings.dataframe[0].value.iloc[0]["check"] == "conflicting duplicates"
    suspects = tabs[2].dataframe[0].value
    flagged = workflow.progress(demo_db, demo_ds(demo_db)).flagged
    assert len(suspects) == min(50, flagged) > 0 and list(suspects["rank"][:3]) == [1, 2, 3]


def test_audit_model_tab_shows_every_candidate_and_the_classes(demo_db):
    ds = demo_ds(demo_db)
    params = datasets.latest_run(demo_db, ds.id)["params"]
    at = open_page(AUDIT, LEAD)
    tab = next(t for t in at.tabs if t.label == "Model")
    assert escape_md_plain(params["model"]) in texts(tab.markdown)[0]
    cands = tab.dataframe[0].value
    assert list(cands["candidate"]) == [c["name"] for c in params["candidates"]]
    assert abs(cands["weight"].sum() - 1) < 1e-9
    classes = tab.dataframe[1].value
    assert sorted(classes["class"]) == sorted(ds.labels) and classes["rows"].sum() == ds.n_items


def test_audit_selfcheck_tab_runs_and_shows_recall_per_kind(demo_db):
    ds = demo_ds(demo_db)
    before = {t: store.scalar(demo_db, f"SELECT COUNT(*) FROM {t}") for t in ("runs", "scores", "reviews", "states")}
    at = open_page(AUDIT, LEAD)
    tab = next(t for t in at.tabs if t.label == "Self-check")
    assert any("No self-check yet" in i.value for i in tab.info)
    at = rerun(tab.button(key="selfcheck_run").click())
    tab = next(t for t in at.tabs if t.label == "Self-check")
    assert any("On your data, the audit finds about" in m.value for m in tab.markdown)
    labels = [m.label for m in tab.metric]
    assert labels == ["Flips found", "Swaps found", "Shifted block found"]
    assert all(m.value.endswith("%") for m in tab.metric)
    after = {t: store.scalar(demo_db, f"SELECT COUNT(*) FROM {t}") for t in before}
    assert after == before  # the dataset, its runs and reviews are untouched
    assert store.scalar(demo_db, "SELECT COUNT(*) FROM self_checks WHERE dataset_id=?", [ds.id]) == 1
    annotator_view = open_page(AUDIT, ANNA)
    tab = next(t for t in annotator_view.tabs if t.label == "Self-check")
    assert "selfcheck_run" not in [b.key for b in tab.button] and tab.metric


def test_audit_queue_warning_is_shown_as_text(demo_db):
    ds = demo_ds(demo_db)
    run = datasets.latest_run(demo_db, ds.id)
    hostile = "Class '[click](javascript:alert(1))' holds 90% of the first 30 suspects"
    demo_db.execute(
        "UPDATE runs SET metrics=? WHERE id=?", [json.dumps({**run["metrics"], "queue warning": hostile}), run["id"]]
    )
    at = open_page(AUDIT, LEAD)
    assert len(at.warning) == 1 and at.warning[0].value == safe_text.md(hostile)


def escape_md_plain(s: str) -> str:
    return safe_text.md(s)


# ----------------------------------------------------------------------------- review


def test_review_keep_records_a_decision_and_moves_on(demo_db):
    ds = demo_ds(demo_db)
    at = open_page(REVIEW, ANNA)
    shown = main_buttons(at)
    assert {"Keep", "Unsure", "Skip"} <= set(shown)
    assert [l for l in shown if l in ds.labels] == list(ds.labels)
    [first] = claimed(demo_db, ds, "anna")
    assert shown_row_key(at).startswith(f"**{safe_text.md(key_of(demo_db, ds, first))}**")
    assert any("item-text" in h for h in texts(at.html))

    rerun(at.button(key="keep").click())
    [rev] = reviews(demo_db, ds)
    assert (rev["idx"], rev["decision"], rev["reviewer"], rev["status"]) == (first, "keep", "anna", "pending")
    assert state_of(demo_db, ds, first) == "kept"
    [second] = claimed(demo_db, ds, "anna")
    assert second != first
    assert shown_row_key(at).startswith(f"**{safe_text.md(key_of(demo_db, ds, second))}**")
    assert f"Row {key_of(demo_db, ds, first)}: kept." in texts(at.success)
    assert workflow.progress(demo_db, ds).pending == 1


def test_review_relabel_button_records_the_new_label(demo_db):
    ds = demo_ds(demo_db)
    at = open_page(REVIEW, ANNA)
    [idx] = claimed(demo_db, ds, "anna")
    s = workflow.get_suspect(demo_db, ds, idx)
    i, target = next((i, l) for i, l in enumerate(ds.labels) if l != s.current_label)
    assert at.button(key=f"relabel_{ds.labels.index(s.current_label)}").disabled
    rerun(at.button(key=f"relabel_{i}").click())
    [rev] = reviews(demo_db, ds)
    assert (rev["idx"], rev["decision"], rev["new_label"]) == (idx, "relabel", target)
    assert state_of(demo_db, ds, idx) == "relabelled"
    assert claimed(demo_db, ds, "anna") != [idx]


def test_review_skip_moves_on_without_deciding(demo_db):
    ds = demo_ds(demo_db)
    at = open_page(REVIEW, ANNA)
    [first] = claimed(demo_db, ds, "anna")
    rerun(at.button(key="skip").click())
    assert reviews(demo_db, ds) == []
    [second] = claimed(demo_db, ds, "anna")
    assert second != first
    assert state_of(demo_db, ds, first) == "open"
    assert at.session_state[f"review_{ds.id}"]["skipped"] == [first]
    assert shown_row_key(at).startswith(f"**{safe_text.md(key_of(demo_db, ds, second))}**")


def test_review_back_returns_to_the_decided_row_and_can_revise(demo_db):
    ds = demo_ds(demo_db)
    at = open_page(REVIEW, ANNA)
    assert "back" not in [b.key for b in at.button]  # nothing decided yet
    [first] = claimed(demo_db, ds, "anna")
    rerun(at.button(key="keep").click())
    [second] = claimed(demo_db, ds, "anna")
    rerun(at.button(key="back").click())
    head = shown_row_key(at)
    assert head.startswith(f"**{safe_text.md(key_of(demo_db, ds, first))}**")
    assert head.endswith("going back to a row you decided")
    assert claimed(demo_db, ds, "anna") == []  # the other row was given back
    assert len(reviews(demo_db, ds)) == 1  # going back decides nothing
    assert "Return to the queue" in main_buttons(at) and "Skip" not in main_buttons(at)
    assert any(i.value.startswith("Your earlier decision: **kept ") and "pending" in i.value for i in at.info)
    rerun(at.button(key="unsure").click())  # revise: keep -> unsure
    revs = reviews(demo_db, ds, idx=first)
    assert [(r["decision"], r["status"]) for r in revs] == [("keep", "superseded"), ("unsure", "pending")]
    assert state_of(demo_db, ds, first) == "unsure"
    assert "going back" not in shown_row_key(at)


def test_two_annotators_see_different_suspects(demo_db):
    ds = demo_ds(demo_db)
    a = open_page(REVIEW, ANNA)
    b = open_page(REVIEW, BEN)
    [ia], [ib] = claimed(demo_db, ds, "anna"), claimed(demo_db, ds, "ben")
    assert ia != ib
    assert shown_row_key(a) != shown_row_key(b)
    assert shown_row_key(b).startswith(f"**{safe_text.md(key_of(demo_db, ds, ib))}**")
    # a rerun keeps each on their own row
    rerun(a)
    assert claimed(demo_db, ds, "anna") == [ia]


# ----------------------------------------------------------------------------- verify


def test_verify_lead_sees_the_pending_decision(demo_db):
    ds = demo_ds(demo_db)
    at = open_page(VERIFY, LEAD)
    assert texts(at.success) == ["Nothing awaits verification."]
    p = pending_decision(demo_db, ds)
    rerun(at)
    assert texts(at.caption)[0].startswith("1 decision awaiting verification")
    assert any(html_escape(p["text"]) in h and "item-text" in h for h in texts(at.html))
    assert any(f"relabel → {p['new_label']}" in h and f"given: {p['given']}" in h for h in texts(at.html))
    assert any(" · by **anna** at " in m for m in texts(at.markdown))
    assert {f"approve_{p['id']}", f"reject_{p['id']}", f"override_{p['id']}"} <= {b.key for b in at.button}
    assert not at.button(key=f"approve_{p['id']}").disabled
    assert "Nothing awaits verification." not in texts(at.success)


def test_verify_approve(demo_db):
    ds = demo_ds(demo_db)
    p = pending_decision(demo_db, ds)
    at = open_page(VERIFY, LEAD)
    rerun(at.button(key=f"approve_{p['id']}").click())
    [rev] = reviews(demo_db, ds)
    assert rev["status"] == "approved" and rev["verified_by"] == "lena" and rev["final_label"] == p["new_label"]
    assert state_of(demo_db, ds, p["idx"]) == "approved"
    assert texts(at.success)[-1] == "Nothing awaits verification."


def test_verify_reject_needs_a_reason(demo_db):
    ds = demo_ds(demo_db)
    p = pending_decision(demo_db, ds)
    at = open_page(VERIFY, LEAD)
    rerun(at.button(key=f"reject_{p['id']}").click())
    assert "Say why you reject the decision: the note goes back to the annotator." in texts(at.warning) + texts(
        at.error
    )
    assert reviews(demo_db, ds)[0]["status"] == "pending"
    assert state_of(demo_db, ds, p["idx"]) == "relabelled"


def test_verify_reject_with_reason_reopens_the_row(demo_db):
    ds = demo_ds(demo_db)
    p = pending_decision(demo_db, ds)
    at = open_page(VERIFY, LEAD)
    at.text_input(key=f"reason_{p['id']}").input("the text is about billing")
    rerun(at.button(key=f"reject_{p['id']}").click())
    [rev] = reviews(demo_db, ds)
    assert rev["status"] == "rejected" and rev["verify_note"] == "the text is about billing"
    assert state_of(demo_db, ds, p["idx"]) == "open"
    # the annotator gets the row back, with the lead's reason
    ann = open_page(REVIEW, ANNA)
    assert claimed(demo_db, ds, "anna") == [p["idx"]]
    assert any("the text is about billing" in w for w in texts(ann.warning))


def test_verify_override_with_a_label(demo_db):
    ds = demo_ds(demo_db)
    p = pending_decision(demo_db, ds, decision="unsure")
    at = open_page(VERIFY, LEAD)
    assert at.button(key=f"approve_{p['id']}").disabled  # nothing to approve on 'unsure'
    label = next(l for l in ds.labels if l != p["given"])
    at.selectbox(key=f"ovl_{p['id']}").set_value(label)
    rerun(at.button(key=f"override_{p['id']}").click())
    [rev] = reviews(demo_db, ds)
    assert rev["status"] == "overridden" and rev["final_label"] == label
    assert state_of(demo_db, ds, p["idx"]) == "overridden"
    assert (
        store.scalar(demo_db, "SELECT current_label FROM states WHERE dataset_id=? AND idx=?", [ds.id, p["idx"]])
        == label
    )
    assert f"Row {key_of(demo_db, ds, p['idx'])}: overridden to {label}." in texts(at.success)


# ----------------------------------------------------------------------------- export


def test_export_lead_sees_both_downloads(demo_db):
    at = open_page(EXPORT, LEAD)
    dl = at.get("download_button")
    assert [(d.key, d.label) for d in dl] == [
        ("dl_cleaned", "Download cleaned labels (CSV)"),
        ("dl_audit", "Download the audit trail (CSV)"),
    ]
    counts = at.dataframe[0].value
    assert set(counts["label"]) == set(demo_ds(demo_db).labels)
    assert int(counts["given"].sum()) == 400


# ----------------------------------------------------------------------------- audit trail


def test_audit_trail_lists_filters_and_checks_the_chain(demo_db):
    at = open_page(TRAIL, LEAD)
    rows = at.dataframe[0].value
    total = store.scalar(demo_db, "SELECT COUNT(*) FROM audit_log")
    assert len(rows) == min(50, total) and len(rows) > 0
    assert {"user_add", "upload", "audit_run"} <= set(rows["action"])
    at.selectbox(key="trail_action").set_value("user_add")
    rerun(at)
    rows = at.dataframe[0].value
    assert set(rows["action"]) == {"user_add"}
    assert len(rows) == store.scalar(demo_db, "SELECT COUNT(*) FROM audit_log WHERE action='user_add'") == 4
    rerun(at.button(key="verify_chain").click())
    assert not at.error
    assert texts(at.success) == [
        f"audit trail intact: {store.scalar(demo_db, 'SELECT COUNT(*) FROM audit_log')} rows, hash chain verified"
    ]


def test_audit_trail_chain_check_reports_tampering(demo_db, tmp_path):
    at = open_page(TRAIL, LEAD)
    # someone with the file drops the append-only triggers and rewrites a row
    raw = sqlite3.connect(str(tmp_path / "review.db"), isolation_level=None)
    raw.execute("DROP TRIGGER audit_log_no_update")
    raw.execute("UPDATE audit_log SET actor='mallory' WHERE action='upload'")
    raw.close()
    row = store.scalar(demo_db, "SELECT id FROM audit_log WHERE action='upload'")
    rerun(at.button(key="verify_chain").click())
    assert not at.success
    assert len(at.error) == 1
    assert at.error[0].value.startswith(f"audit row {row} (upload by mallory")
    assert "was changed after it was written" in at.error[0].value


# ----------------------------------------------------------------------------- users


def test_admin_adds_a_user_through_the_form(demo_db):
    at = open_page(USERS, ADMIN)
    assert set(at.dataframe[0].value["name"]) == {"alice", "lena", "anna", "ben"}
    at.text_input(key="new_name").input("carl")
    at.selectbox(key="new_role").set_value("lead")
    at.text_input(key="new_pw").input("long enough pw")
    rerun(at.form_submit_button[0].click())
    assert texts(at.success) == ["Added lead carl."]
    assert auth.get_user(demo_db, "carl") == auth.User("carl", "lead")
    assert auth.sign_in(demo_db, "carl", "long enough pw").role == "lead"


def test_admin_add_user_short_password_errors(demo_db):
    at = open_page(USERS, ADMIN)
    at.text_input(key="new_name").input("carl")
    at.text_input(key="new_pw").input("short")
    rerun(at.form_submit_button[0].click())
    assert texts(at.error) == ["The password is too short: use at least 8 characters."]
    assert store.scalar(demo_db, "SELECT COUNT(*) FROM users WHERE name='carl'") == 0


# ----------------------------------------------------------------------------- content is data


def _assert_text_is_escaped(at: AppTest) -> None:
    bodies = [h for h in texts(at.html) if 'class="item-text"' in h]
    assert len(bodies) == 1, texts(at.html)
    body = bodies[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    for m in texts(at.markdown) + texts(at.html):  # nowhere as live markup
        assert "<script" not in m and "<img" not in m and "<b>" not in m, m


def test_review_shows_html_in_texts_as_text(users_db):
    lead = auth.User(*LEAD)
    rows = small_table()
    # the same hostile text twice with different labels: a conflicting duplicate, so both rows are suspects
    rows[0]["text"] = rows[8]["text"] = XSS_TEXT
    rows[0]["id"] = "<b>bold</b>"
    ds_id = ingest.ingest_bytes(users_db, csv_bytes(rows), "xss.csv", "xss", lead)
    audit.run_integrity(users_db, ds_id, lead)
    ds = datasets.get(users_db, ds_id)

    at = open_page(REVIEW, ANNA)
    seen = set()
    for _ in range(2):
        [idx] = claimed(users_db, ds, "anna")
        seen.add(idx)
        _assert_text_is_escaped(at)
        assert shown_row_key(at).startswith(f"**{safe_text.md(key_of(users_db, ds, idx))}**")
        rerun(at.button(key="skip").click())
    assert seen == {0, 8}


# ----------------------------------------------------------------------------- Label page and golden set

LABEL = "pages/9_Label.py"
ANNOTATORS_PAGE = "pages/8_Annotators.py"


@pytest.fixture(scope="module")
def crowd_template(tmp_path_factory):
    """Users as above plus the small audited crowd of tests/db/test_label_queue.py (dataset 'crowd')."""
    from tests.builders import build_crowd_db

    path = tmp_path_factory.mktemp("crowd_pages") / "crowd.db"
    build_crowd_db(path)
    return path


@pytest.fixture
def crowd_db(tmp_path, monkeypatch, crowd_template, conns):
    return conns(_use(tmp_path, monkeypatch, crowd_template))


def open_crowd(page: str, user: tuple[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (user[0], user[1], time.time())
    at.session_state["dataset_name"] = "crowd"
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_words(at: AppTest) -> str:
    """Every text of the page a user can read: markdown, captions, notices, html, widget labels,
    options and help, table cells; lower-cased."""
    parts = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "info",
        "success",
        "warning",
        "error",
        "html",
        "metric",
        "code",
        "json",
    ):
        parts += [str(getattr(e, "value", "")) for e in at.get(kind)]
    for w in list(at.button) + list(at.selectbox) + list(at.radio) + list(at.text_input) + list(at.number_input):
        parts += [str(w.label), str(getattr(w, "help", "") or "")]
        parts += [str(o) for o in getattr(w, "options", []) or []]
    for d in at.dataframe:
        parts.append(d.value.to_csv())
    parts += [str(e.proto) for e in at.get("page_link")]
    return "\n".join(parts).lower()


def label_head(at: AppTest) -> str:
    heads = [m for m in texts(at.markdown) if m.startswith("**") and " · row " in m]
    assert len(heads) == 1, heads
    return heads[0]


def test_label_page_shows_the_text_only_no_gold_and_no_other_labels(crowd_db):
    from review.crowd import gold, labeling

    ds = datasets.get(crowd_db, "crowd")
    for i in range(ds.n_items):  # every item gold: none may say so
        gold.set_gold(crowd_db, ds, i, ds.labels[i % 2], auth.User(*LEAD))
    first = labeling.next_item(crowd_db, ds, auth.User(*ANNA))
    at = open_crowd(LABEL, ANNA)
    assert not at.error and not at.warning
    assert label_head(at) == f"**{safe_text.md(first.key)}** · row {first.idx} of the upload"
    [body] = [h for h in texts(at.html) if 'class="item-text"' in h]
    assert html_escape(first.text) in body
    assert any("the consensus updates on the next audit run" in c.lower() for c in texts(at.caption))
    assert [b.label for b in at.main.button if b.key and b.key.startswith("label_")] == ds.labels
    words = page_words(at)
    assert "gold" not in words and "trusted" not in words
    for name in ("ann1", "ann2", "ann3"):  # no other annotator, no consensus, no model view
        assert name not in words
    assert "consensus:" not in words and "majority" not in words and not at.dataframe and not at.get("plotly_chart")
    assert not crowd_db.execute("SELECT 1 FROM annotations WHERE annotator='anna'").fetchall()


def test_label_page_adds_the_label_and_moves_on(crowd_db):
    from review.crowd import labeling

    ds = datasets.get(crowd_db, "crowd")
    first = labeling.next_item(crowd_db, ds, auth.User(*ANNA))
    at = open_crowd(LABEL, ANNA)
    at = rerun(at.button(key="label_1").click())
    assert crowd_db.execute(
        "SELECT label FROM annotations WHERE dataset_id=? AND idx=? AND annotator='anna'", [ds.id, first.idx]
    ).fetchall() == [(ds.labels[1],)]
    assert texts(at.success) == [
        f"Row {first.key}: labelled {ds.labels[1]}. The consensus updates on the next audit run."
    ]
    nxt = labeling.next_item(crowd_db, ds, auth.User(*ANNA))
    assert nxt.idx != first.idx and label_head(at).startswith(f"**{safe_text.md(nxt.key)}** · row {nxt.idx} ")
    assert [p.proto.text for p in at.get("progress")] == [f"You have labelled 1 of {ds.n_items} items"]
    row = crowd_db.execute("SELECT actor, action, idx, payload FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:3] == ("anna", "label", first.idx) and json.loads(row[3])["label"] == ds.labels[1]


def test_label_page_skip_back_and_replace_ones_own_label(crowd_db):
    from review.crowd import labeling

    ds = datasets.get(crowd_db, "crowd")
    anna = auth.User(*ANNA)
    first = labeling.next_item(crowd_db, ds, anna)
    at = open_crowd(LABEL, ANNA)
    assert "back" not in [b.key for b in at.main.button]  # nothing labelled yet: no way back
    at = rerun(at.button(key="skip").click())
    second = labeling.next_item(crowd_db, ds, anna, exclude=[first.idx])
    assert label_head(at).startswith(f"**{safe_text.md(second.key)}** · row {second.idx} ")
    assert labeling.my_label(crowd_db, ds, first.idx, anna) is None  # skipping writes nothing
    at = rerun(at.button(key="label_0").click())
    at = rerun(at.button(key="back").click())
    assert label_head(at).endswith("changing the label you gave")
    assert f"Your label: **{ds.labels[0]}**" in texts(at.markdown)
    assert at.button(key="label_0").disabled and not at.button(key="label_1").disabled
    at = rerun(at.button(key="label_1").click())
    assert labeling.my_label(crowd_db, ds, second.idx, anna) == ds.labels[1]
    assert (
        crowd_db.execute(
            "SELECT COUNT(*) FROM annotations WHERE dataset_id=? AND idx=? AND annotator='anna'", [ds.id, second.idx]
        ).fetchone()[0]
        == 1
    )
    assert texts(at.success) == [
        f"Row {second.key}: your label is now {ds.labels[1]}. The consensus updates on the next audit run."
    ]
    # back in the queue: the skipped item is not offered again this session, the labelled one never
    shown = label_head(at)
    assert f" · row {first.idx} " not in shown and f" · row {second.idx} " not in shown


def test_label_page_for_a_single_label_dataset_and_before_the_audit(demo_db):
    at = open_page(LABEL, ANNA)  # the demo: one label per item
    assert any("has one label per item" in i for i in texts(at.info))
    assert [e.proto.page for e in at.get("page_link") if "Review" in e.proto.label]
    lead = auth.User(*LEAD)
    from tests.builders import crowd_frame

    ingest.ingest_bytes(demo_db, crowd_frame().to_csv(index=False).encode(), "crowd.csv", "fresh crowd", lead)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (ANNA[0], ANNA[1], time.time())
    at.session_state["dataset_name"] = "fresh crowd"
    at.switch_page(LABEL)
    at.run()
    assert texts(at.info) == ["No audit run yet: the queue is ordered by the audit's scores. Ask a lead to run it."]
    at.session_state["user"] = (LEAD[0], LEAD[1], time.time())
    at.run()
    assert any(e.proto.label == "Run the audit on the Audit page" for e in at.get("page_link"))


def test_label_page_needs_sign_in(crowd_db):
    at = open_page(LABEL)
    assert texts(at.subheader) == ["Sign in"] and labels(at.button) == ["Sign in"]


def test_review_page_does_not_reveal_gold(crowd_db):
    from review.crowd import gold

    ds = datasets.get(crowd_db, "crowd")
    for i in range(ds.n_items):
        gold.set_gold(crowd_db, ds, i, ds.labels[0], auth.User(*LEAD))
    at = open_crowd(REVIEW, ANNA)
    assert shown_row_key(at)  # a suspect is shown, with every annotator's label (the Review page's own view)
    assert "gold" not in page_words(at) and "trusted" not in page_words(at)


def test_golden_set_tab_marks_lists_and_removes_gold(crowd_db):
    from review.crowd import annotators, gold

    ds = datasets.get(crowd_db, "crowd")
    lead = auth.User(*LEAD)
    at = open_crowd(ANNOTATORS_PAGE, LEAD)
    assert [t.label for t in at.tabs] == ["Annotators", "Reviewers", "Golden set"]
    assert "No gold item yet: mark one above or import a CSV." in texts(at.caption)
    at.number_input(key=f"gold_row_{ds.id}").set_value(7)
    at = rerun(at)
    key7 = key_of(crowd_db, ds, 7)
    assert f"**{safe_text.md(key7)}** · row 7 · not gold" in texts(at.markdown)
    at.selectbox(key=f"gold_label_{ds.id}_7").set_value("neg")
    at = rerun(at.button(key="gold_set").click())
    assert texts(at.success) == [f"Row 7 ({key7}) is gold: neg."]
    assert gold.gold_label(crowd_db, ds, 7, lead) == "neg"
    listed = [d.value for d in at.dataframe if "gold_label" in d.value.columns]
    assert listed and list(listed[0]["row"]) == [7] and list(listed[0]["gold_label"]) == ["neg"]
    assert f"**{safe_text.md(key7)}** · row 7 · gold: **neg**" in texts(at.markdown)
    assert at.button(key="gold_set").disabled  # already gold with that label
    # the annotator table now carries the gold columns beside the quality
    table = [d.value for d in at.dataframe if "worst_class" in d.value.columns][0]
    assert list(table.columns)[:4] == ["annotator", "quality", "gold_accuracy", "gold_labels"]
    assert (
        list(table["gold_labels"]) == [r["gold_labels"] for r in annotators.annotator_table(crowd_db, ds)] == [1, 1, 1]
    )
    # change it, then remove it
    at = rerun(at.selectbox(key=f"gold_label_{ds.id}_7").set_value("pos"))
    at = rerun(at.button(key="gold_set").click())
    assert texts(at.success) == [f"Row 7 ({key7}) is gold: pos (was neg)."]
    at.selectbox(key="gold_remove_pick").set_value(7)
    at = rerun(at.button(key="gold_remove").click())
    assert texts(at.success) == ["Row 7 is no longer gold (it was pos)."]
    assert gold.count(crowd_db, ds, lead) == 0
    actions = [r[0] for r in crowd_db.execute("SELECT action FROM audit_log WHERE action LIKE 'gold%' ORDER BY id")]
    assert actions == ["gold_set", "gold_set", "gold_removed"]


def test_golden_set_tab_csv_refused_with_the_line_then_imported(crowd_db):
    from review.crowd import gold

    ds = datasets.get(crowd_db, "crowd")
    at = open_crowd(ANNOTATORS_PAGE, LEAD)
    at.file_uploader(key="gold_csv").upload("gold.csv", b"row,label\n0,pos\n3,maybe\n", "text/csv")
    at = rerun(at)
    at = rerun(at.button(key="gold_import").click())
    assert texts(at.error) == [
        "gold.csv, line 3: row 3: label 'maybe' is not a label of 'crowd' (labels: neg, pos). "
        "Nothing was imported: fix the file and upload it again."
    ]
    assert gold.count(crowd_db, ds, auth.User(*LEAD)) == 0
    at.file_uploader(key="gold_csv").upload("gold2.csv", b"row,label\n0,pos\n99,neg\n", "text/csv")
    at = rerun(at)
    at = rerun(at.button(key="gold_import").click())
    assert texts(at.error) == [
        "gold2.csv, line 3: row '99' is not a row of 'crowd' (rows are 0 to 30). "
        "Nothing was imported: fix the file and upload it again."
    ]
    assert gold.count(crowd_db, ds, auth.User(*LEAD)) == 0
    at.file_uploader(key="gold_csv").upload("gold3.csv", b"row,label\n0,pos\n3,neg\n30,neg\n", "text/csv")
    at = rerun(at)
    at = rerun(at.button(key="gold_import").click())
    assert texts(at.success) == ["Imported gold3.csv: 3 added, 0 changed, 0 already gold with that label."]
    assert [(g["row"], g["gold_label"]) for g in gold.list_gold(crowd_db, ds, auth.User(*LEAD))] == [
        (0, "pos"),
        (3, "neg"),
        (30, "neg"),
    ]


def test_precision_tab_says_there_is_nothing_to_draw_before_any_decision(demo_db):
    at = open_page(AUDIT, LEAD)
    tab = next(t for t in at.tabs if t.label == "Precision")
    assert any("No flagged row has been decided yet" in i.value for i in tab.info)
    assert not tab.get("plotly_chart")


def test_audit_trail_page_names_datasets_and_reads_payloads_in_words(demo_db):
    at = open_page("pages/6_Audit_trail.py", LEAD)
    shown = at.dataframe[0].value
    assert (
        {"dataset", "details"} <= set(shown.columns)
        and "payload" not in shown.columns
        and "dataset_id" not in shown.columns
    )
    run = shown[shown["action"] == "audit_run"].iloc[0]
    assert run["dataset"] == demo_ds(demo_db).name
    assert "flagged: " in run["details"] and "{" not in run["details"]


def test_home_next_steps_are_buttons_that_open_the_page_on_that_dataset(demo_db):
    at = open_page(HOME, LEAD)
    name = demo_ds(demo_db).name
    b = at.button(key=f"next_review_{name}")
    assert b.label.startswith("Review ") and b.label.endswith(" suspects")
    b.click().run()
    assert not at.exception and at.session_state["dataset_name"] == name


def test_users_table_reads_in_words_not_flags(users_db):
    at = open_page(USERS, ADMIN)
    shown = at.dataframe[0].value
    assert {"status", "locked until"} <= set(shown.columns) and "active" not in shown.columns
    assert set(shown["status"]) <= {"active", "deactivated"} and "not locked" in set(shown["locked until"])


def test_review_progress_bar_counts_what_the_filter_shows(demo_db):
    ds = demo_ds(demo_db)
    every, relabel = workflow.progress(demo_db, ds), workflow.progress(demo_db, ds, action="relabel")
    n = store.scalar(
        demo_db,
        "SELECT COUNT(*) FROM scores WHERE run_id=? AND is_issue=1 AND action='relabel'",
        [datasets.latest_run(demo_db, ds.id)["id"]],
    )
    assert relabel.flagged == n < every.flagged
    at = open_page(REVIEW, ANNA)
    at.radio(key="action_filter").set_value("Relabel")
    rerun(at)
    bar = at.get("progress")[0].proto.text
    assert bar.startswith(f"Relabel: 0 of {n:,} suspects decided")


def test_the_dataset_is_named_in_the_url_so_a_reload_keeps_it(demo_db):
    lead = auth.User(LEAD[0], "lead")
    ingest.ingest_bytes(
        demo_db,
        csv_bytes([{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(20)]),
        "second.csv",
        "second",
        lead,
    )
    at = open_page(REVIEW, ANNA)
    first = at.selectbox(key="dataset_picker").value
    assert at.query_params["dataset"] in (first, [first])
    at.selectbox(key="dataset_picker").set_value("second" if first != "second" else demo_ds(demo_db).name).run()
    chosen = at.selectbox(key="dataset_picker").value
    assert chosen != first and at.query_params["dataset"] in (chosen, [chosen])

    fresh = AppTest.from_file(str(APP), default_timeout=60)  # a reload: a new session, the URL kept
    fresh.session_state["user"] = (ANNA[0], ANNA[1], time.time())
    fresh.query_params["dataset"] = chosen
    fresh.switch_page(REVIEW)
    fresh.run()
    assert not fresh.exception and fresh.selectbox(key="dataset_picker").value == chosen
