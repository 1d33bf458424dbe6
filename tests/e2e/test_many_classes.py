"""End to end, 1,000 classes: the Audit page, every one of its tabs and the Review page draw their
charts in headless Chromium within a bound (each a few seconds, not minutes: before the charts were
bounded, the 1,000 x 1,000 confusion heatmap was a 3.9 MB figure Chromium had not drawn after 8
minutes). Some class names are markup (<a href="http://127.0.0.1:9/x">, <b>) and one is very long:
the charts show them as text, cut with …, and no link from the data exists in any chart.
Screenshots go to artifacts/.
"""

from __future__ import annotations

import csv
import io
import random
import time

import pytest

from review import audit, auth, store
from review.text import ingest
from tests.e2e.helpers import go, see, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e

PASSWORD = "e2e password 123"
N_CLASSES, PER_CLASS = 1_000, 6
LINK = '<a href="http://127.0.0.1:9/x">click</a>'
LONG = "a very long class name that goes on and on " * 4
NAMES = [LINK, "<b>bold</b>", "Tom & Jerry", "%{x}", LONG] + [f"topic {i:04d}" for i in range(N_CLASSES - 5)]
BOUND_S = 30  # seconds for a page or a tab to draw its charts
MAX_TICKS = 31  # category tick labels on one axis of one chart (30 classes + other)


def seed(db) -> str:
    """A text dataset of 6,000 rows in 1,000 classes (one in 37 labels wrong), audited (Naive Bayes, the
    fastest of the text models: about 10 s)."""
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    lead = auth.create_user(db, "leo", "lead", PASSWORD, admin)
    rnd = random.Random(0)
    rows = []
    for i, name in enumerate(NAMES):
        for j in range(PER_CLASS):
            words = [f"w{i}a", f"w{i}b", f"w{i}c"] + [f"v{rnd.randint(0, 3000)}" for _ in range(4)]
            rows.append({"id": f"r{i}-{j}", "text": " ".join(words), "label": name})
    for r in rows[::37]:
        r["label"] = rnd.choice(NAMES)
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["id", "text", "label"])
    w.writeheader()
    w.writerows(rows)
    ds_id = ingest.ingest_bytes(db, buf.getvalue().encode(), "many.csv", "many classes", lead)
    audit.run_audit(db, ds_id, lead, model="nb")
    return "many classes"


def plots_drawn(page, n: int, timeout_s: float = BOUND_S) -> float:
    """Wait until at least ``n`` plotly charts of the main area have drawn their SVG; -> seconds taken."""
    t = time.perf_counter()
    page.wait_for_function(
        """n => [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')]
                 .filter(p => p.offsetParent !== null && p.querySelector('svg.main-svg g.cartesianlayer, svg.main-svg g.heatmaplayer')).length >= n""",
        arg=n,
        timeout=timeout_s * 1000,
    )
    return time.perf_counter() - t


def chart_facts(page) -> dict:
    """Per visible chart: its tick labels; and whether any link or markup from the data is live."""
    return page.evaluate("""() => {
        const plots = [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')].filter(p => p.offsetParent !== null);
        return {
            ticks: plots.map(p => ({x: p.querySelectorAll('g.xtick text').length, y: p.querySelectorAll('g.ytick text').length})),
            text: plots.map(p => p.textContent).join('\\n'),
            links: document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot a').length,
            bold: [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot tspan')]
                    .filter(t => !t.closest('.gtitle') && (t.getAttribute('style') || '').includes('font-weight:bold'))
                    .map(t => t.textContent),   // (titles are bold in Streamlit's theme)
        };
    }""")


def assert_bounded_and_inert(facts: dict) -> None:
    assert facts["links"] == 0, "a class name became a link in a chart"
    assert facts["bold"] == [], f"markup in a name was rendered: {facts['bold']}"
    for t in facts["ticks"]:
        assert t["x"] <= MAX_TICKS and t["y"] <= MAX_TICKS, facts["ticks"]


def test_audit_and_review_pages_draw_bounded_charts_at_1000_classes(app, pages):
    db = store.connect(app.db_path)
    current: dict = {}
    try:
        name = seed(db)
        with shot_on_failure(app, current, "many-classes"):
            _walk(app, pages, current, name)
    finally:
        db.conn.close()


def _walk(app, pages, current, name):
    page = pages("leo")
    current.update(page=page, name="sign-in")
    timings = {}
    sign_in(page, app.url, "leo", PASSWORD)

    # ---------------------------------------------------------------- Audit: the Charts tab
    current["name"] = "audit"
    t = time.perf_counter()
    go(page, "Audit")
    see(page, "Run 1 (audit)")
    timings["Audit page"] = time.perf_counter() - t
    main = page.locator('[data-testid="stMain"]')
    main.get_by_role("tab", name="Charts", exact=True).click()
    timings["Charts tab"] = plots_drawn(page, 4)  # given vs cleaned, progress, quality histogram, confusion
    wait_idle(page)
    facts = chart_facts(page)
    assert_bounded_and_inert(facts)
    assert "of 1,000 classes" in facts["text"]  # the titles say what is drawn
    assert "other (" in facts["text"]
    assert '<a href="http' in facts["text"]  # the name shown as typed, as text
    assert LONG not in facts["text"]  # cut with … on the axis
    shot(page, "many-classes-01-audit-charts")

    # ---------------------------------------------------------------- every other tab of the Audit page
    for tab in main.get_by_role("tab").all():
        label = tab.inner_text().strip()
        if label == "Charts":
            continue
        t = time.perf_counter()
        tab.click()
        wait_idle(page, timeout=BOUND_S * 1000)
        page.wait_for_timeout(200)
        timings[f"{label} tab"] = time.perf_counter() - t
        assert_bounded_and_inert(chart_facts(page))
    main.get_by_role("tab", name="Model", exact=True).click()
    wait_idle(page)
    shot(page, "many-classes-02-audit-model")

    # ---------------------------------------------------------------- Review: the probabilities chart
    current["name"] = "review"
    t = time.perf_counter()
    go(page, "Review")
    timings["Review page"] = time.perf_counter() - t + plots_drawn(page, 1)
    wait_idle(page)
    facts = chart_facts(page)
    assert_bounded_and_inert(facts)
    assert "of 1,000 classes" in facts["text"] and "other (" in facts["text"]
    shot(page, "many-classes-03-review")

    print("\nseconds to draw, 1,000 classes:")
    for k, v in timings.items():
        print(f"  {k:<22} {v:6.2f}")
    slow = {k: v for k, v in timings.items() if v > BOUND_S}
    assert not slow, slow
