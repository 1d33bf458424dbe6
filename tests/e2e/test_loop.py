"""End to end: the real app (`streamlit run app.py`) driven in headless Chromium as its users would.

admin creates the first account and adds a lead and an annotator on the Users page; the lead uploads
a CSV and runs the audit; the annotator relabels one suspect (button) and keeps the next (keyboard K);
the lead approves the relabel and downloads the cleaned CSV, which is checked row by row.
Screenshots of each main step go to artifacts/ (gitignored).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from review.demo import demo_csv_bytes
from tests.e2e.helpers import (
    RUN_TIMEOUT,
    choose,
    go,
    open_app,
    press_shortcut,
    see,
    shot,
    sign_in,
    wait_idle,
)

pytestmark = pytest.mark.e2e

ADMIN, LEAD, ANNOTATOR = "ada", "leo", "ann"
PASSWORD = "e2e password 123"
DATASET = "tickets-e2e"
HEADER = [
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


def _step(title: str) -> None:
    print(f"\n== {title}")


def test_upload_audit_review_verify_export(app, pages, tmp_path):
    shots: list[Path] = []
    current = {}

    def guarded(page, name):
        current["page"], current["name"] = page, name

    try:
        _run_workflow(app, pages, tmp_path, shots, guarded)
    except Exception:
        page = current.get("page")
        if page is not None and not page.is_closed():
            try:
                shot(page, f"FAILED-{current['name']}")
            except Exception as exc:  # the screenshot must not hide the real failure
                print(f"(no failure screenshot: {exc})")
        print(f"\n--- streamlit log ({app.log_path}) ---\n{app.log_tail(80)}")
        raise
    print("\nscreenshots:\n" + "\n".join(f"  {p}" for p in shots))


def _run_workflow(app, pages, tmp_path, shots, guarded):
    # ---------------------------------------------------------------- admin
    _step("first visit: create the admin account")
    admin = pages("admin")
    guarded(admin, "admin")
    open_app(admin, app.url)
    see(admin, "Welcome: create the admin account")
    form = admin.locator('[data-testid="stForm"]')
    form.get_by_role("textbox", name="User name", exact=True).fill(ADMIN)
    form.get_by_role("textbox", name="Password (at least 8 characters)", exact=True).fill(PASSWORD)
    form.get_by_role("textbox", name="Repeat the password", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="Create admin account").click()
    admin.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {ADMIN}").wait_for()
    wait_idle(admin)
    see(admin, "No dataset yet.")
    shots.append(shot(admin, "01-home-admin"))

    _step("admin adds a lead and an annotator on the Users page")
    go(admin, "Users")
    for name, role in ((LEAD, "lead"), (ANNOTATOR, "annotator")):
        form = admin.locator('[data-testid="stForm"]')
        form.get_by_role("textbox", name="User name", exact=True).fill(name)
        choose(admin, form, "Role", role)
        form.get_by_role("textbox", name="Password (at least 8 characters)", exact=True).fill(PASSWORD)
        form.get_by_role("button", name="Add").click()
        see(admin, f"Added {role} {name}.")
        wait_idle(admin)
    shots.append(shot(admin, "02-users"))

    # ---------------------------------------------------------------- lead: upload + audit
    _step("lead uploads a CSV")
    csv_bytes = demo_csv_bytes()
    upload = tmp_path / "tickets.csv"
    upload.write_bytes(csv_bytes)
    uploaded = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"))))
    n_rows = len(uploaded)
    given = {r["id"]: r["label"] for r in uploaded}
    labels = sorted(set(given.values()))

    lead = pages("lead", downloads=True)
    guarded(lead, "lead")
    sign_in(lead, app.url, LEAD, PASSWORD)
    go(lead, "Upload")
    lead.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
    see(lead, f"Preview: {n_rows:,} rows", timeout=RUN_TIMEOUT)
    wait_idle(lead)
    name_box = lead.get_by_role("textbox", name="Dataset name", exact=True)
    assert name_box.input_value() == "tickets"
    name_box.fill(DATASET)
    name_box.press("Enter")
    wait_idle(lead)
    lead.get_by_role("button", name="Check and ingest").click()
    see(lead, f"Dataset '{DATASET}' ingested: {n_rows:,} rows", timeout=RUN_TIMEOUT)
    wait_idle(lead)
    shots.append(shot(lead, "03-upload"))

    _step("lead runs the audit")
    go(lead, "Audit")
    see(lead, re.compile(r"Run 1 \(integrity\)"))  # the ingest ran the integrity checks
    lead.get_by_role("button", name="Run the audit").click()
    see(lead, re.compile(r"Run 2 \(audit\)"), timeout=RUN_TIMEOUT)
    metrics = lead.locator('[data-testid="stMetric"]')
    wait_idle(lead)
    assert metrics.filter(has=lead.get_by_text("Rows", exact=True)).inner_text().split()[-1] == f"{n_rows:,}"
    suspects = int(
        metrics.filter(has=lead.get_by_text("Suspects", exact=True))
        .locator('[data-testid="stMetricValue"]')
        .inner_text()
        .replace(",", "")
    )
    assert suspects >= 2, f"the audit flagged {suspects} suspects: need 2 to review"
    shots.append(shot(lead, "04-audit"))
    lead.get_by_role("tab", name="Charts").click()
    charts = lead.locator('[data-testid="stPlotlyChart"]')
    charts.nth(3).wait_for()
    lead.locator(".js-plotly-plot .main-svg").first.wait_for()
    wait_idle(lead)
    lead.wait_for_timeout(1000)  # let plotly finish drawing
    shots.append(shot(lead, "05-audit-charts"))
    lead.get_by_role("tab", name="Model").click()
    see(lead, re.compile(r"predicts the given labels out of sample"))
    see(lead, "Classes in the queue")
    wait_idle(lead)
    shots.append(shot(lead, "05b-audit-model"))
    lead.get_by_role("tab", name="Self-check").click()
    lead.get_by_role("button", name="Run the self-check").click()
    see(lead, re.compile(r"On your data, the audit finds about \d+% of errors like these"), timeout=RUN_TIMEOUT)
    assert lead.locator('[data-testid="stMetric"]').filter(has=lead.get_by_text("Flips found", exact=True)).count() == 1
    wait_idle(lead)
    shots.append(shot(lead, "05c-audit-selfcheck"))

    # ---------------------------------------------------------------- annotator: review
    _step("annotator relabels one suspect with a button and keeps the next with K")
    ann = pages("annotator")
    guarded(ann, "annotator")
    sign_in(ann, app.url, ANNOTATOR, PASSWORD)
    go(ann, "Review")
    row_line = ann.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text=re.compile(r"^\S+ · row \d+ of the upload · rank \d+")
    )

    def shown_row() -> tuple[str, str]:
        text = row_line.first.inner_text()
        m = re.match(r"(\S+) · row \d+ of the upload · rank (\d+)", text)
        assert m, text
        return m.group(1), m.group(2)

    see(ann, "Decide")
    first_id, first_rank = shown_row()
    assert first_id in given, first_id
    assert first_rank == "1"
    shots.append(shot(ann, "06-review"))
    pill = ann.locator('[data-testid="stMain"]').get_by_text(re.compile(r"^model: \S+ \(\d+%\)$")).first
    model_label = re.match(r"model: (\S+)", pill.inner_text()).group(1)
    # the annotator agrees with the model (any other label would do if the model repeats the given one)
    new_label = model_label if model_label != given[first_id] else next(l for l in labels if l != given[first_id])
    ann.locator('[data-testid="stMain"] button', has_text=re.compile(rf"^{re.escape(new_label)}")).first.click()
    see(ann, f"Row {first_id}: relabelled to {new_label}.")
    wait_idle(ann)
    second_id, _ = shown_row()
    assert second_id != first_id and second_id in given
    press_shortcut(ann, "k")  # the Keep button's shortcut
    see(ann, f"Row {second_id}: kept.")
    wait_idle(ann)
    shots.append(shot(ann, "07-review-after-keyboard"))
    assert shown_row()[0] not in (first_id, second_id)

    # ---------------------------------------------------------------- lead: verify + export
    _step("lead approves the relabel")
    guarded(lead, "lead")
    go(lead, "Verify")
    see(lead, "2 decisions awaiting verification")
    # the decision's card: the innermost block holding both its badge and an Approve button
    approve = lead.get_by_role("button", name="Approve")
    assert approve.count() == 2, approve.count()
    card = (
        lead.locator('[data-testid="stVerticalBlock"]')
        .filter(has_text=f"relabel → {new_label}")
        .filter(has=approve)
        .last
    )
    assert card.get_by_role("button", name="Approve").count() == 1
    card.get_by_text(f"by {ANNOTATOR}").wait_for()
    shots.append(shot(lead, "08-verify"))
    card.get_by_role("button", name="Approve").click()
    see(lead, f"Row {first_id}: approved.")
    see(lead, "1 decision awaiting verification · 1 approved")
    wait_idle(lead)
    shots.append(shot(lead, "09-verify-after-approve"))

    _step("lead downloads the cleaned labels")
    go(lead, "Export")
    button = lead.get_by_role("button", name="Download cleaned labels (CSV)")
    with lead.expect_download(timeout=RUN_TIMEOUT) as dl:
        button.click()
    saved = tmp_path / "cleaned.csv"
    dl.value.save_as(saved)
    assert dl.value.suggested_filename == f"{DATASET}-cleaned.csv"
    shots.append(shot(lead, "10-export"))

    with open(saved, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, r)) for r in reader]
    assert header == HEADER
    assert len(rows) == n_rows
    assert [r["id"] for r in rows] == [r["id"] for r in uploaded]
    by_id = {r["id"]: r for r in rows}
    fixed = by_id[first_id]
    assert fixed["given_label"] == given[first_id]
    assert fixed["cleaned_label"] == new_label
    assert fixed["status"] == "approved"
    assert fixed["reviewer"] == ANNOTATOR
    assert fixed["verified_by"] == LEAD
    assert (fixed["proposed_label"], fixed["self_approved"]) == ("", "no")
    kept = by_id[second_id]  # decided with K, not verified yet: it proposes the label it keeps
    assert (kept["cleaned_label"], kept["proposed_label"], kept["status"], kept["reviewer"], kept["verified_by"]) == (
        given[second_id],
        given[second_id],
        "kept",
        ANNOTATOR,
        "",
    ), kept
    for r in rows:
        assert r["given_label"] == given[r["id"]], r
        if r["id"] != first_id:
            assert r["cleaned_label"] == r["given_label"], r
    print(
        f"\nexport: {len(rows)} rows, row {first_id} {given[first_id]} -> {new_label} "
        f"(reviewer {ANNOTATOR}, verified by {LEAD}); kept row {second_id}: status {by_id[second_id]['status']!r}"
    )
