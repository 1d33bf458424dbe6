"""End to end, Markdown from other people's text: no remote image, no live link.

A tiny HTTP "beacon" server on 127.0.0.1 records every request it gets. The data's labels,
texts, the reject reasons, the judge's reasons (written straight into SQLite: scores.judge_reason),
the annotator names of a crowd dataset and both dataset names hold
``![b](http://127.0.0.1:PORT/img.png)``, ``<img src=http://127.0.0.1:PORT/x>`` and
``[Sign in again here](http://127.0.0.1:PORT/phish)``. The admin visits Home, Audit (every tab,
every finding opened), Review, Verify, Audit trail, Annotators (and its way into the Review
queue narrowed to one annotator), Label and Users in headless Chromium, hovering the buttons so
their tooltips draw. The test fails on any request to the beacon, on any element whose href or
src points at it, and on Markdown that turned into an image, LaTeX, coloured text or an icon.
Screenshots go to artifacts/.
"""

from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager

import pandas as pd
import pytest

from review import audit, auth, datasets, store, workflow
from review.text import ingest
from tests.e2e.helpers import choose, shot, shot_on_failure, sign_in, wait_idle

pytestmark = pytest.mark.e2e
PASSWORD = "e2e password 123"
TARGETS = ["Home", "Audit", "Review", "Verify", "Audit trail", "Annotators", "Label"]


class Beacon:
    """An HTTP server on 127.0.0.1 that answers 404 to everything and remembers every request."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _hit(self):
                hits.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_OPTIONS = do_PUT = _hit

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextmanager
    def running(self):
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def payloads(port: int) -> dict[str, str]:
    base = f"http://127.0.0.1:{port}"
    img, html_img, link = f"![b]({base}/img.png)", f"<img src={base}/x>", f"[Sign in again here]({base}/phish)"
    return {"img": img, "html": html_img, "link": link, "all": f"{img} {html_img} {link}"}


def seed(db, p: dict[str, str]) -> tuple[str, str]:
    """Users; a text dataset and a crowd dataset full of payloads, audited; judge answers, a
    rejected decision and a pending one. Returns the two dataset names."""
    admin = auth.create_user(db, "ada", "admin", PASSWORD, None)
    leo = auth.create_user(db, "leo", "lead", PASSWORD, admin)
    lea = auth.create_user(db, "lea", "lead", PASSWORD, admin)
    ann = auth.create_user(db, "ann", "annotator", PASSWORD, admin)
    text_name, crowd_name = f"tickets {p['all']}", f"crowd {p['all']}"
    good, bad = f"good {p['img']}", f"bad {p['link']} {p['html']}"
    rows = []
    for k, (lab, vocab) in enumerate(((good, "great lovely superb fine"), (bad, "awful broken horrid bad"))):
        for i in range(24):
            w = vocab.split()
            rows.append(
                {"id": f"r{k}{i}", "text": f"{p['all']} item {i} is {w[i % 4]} really {w[(i + 1) % 4]}", "label": lab}
            )
    for i in (3, 5, 7):
        rows[i]["label"] = bad
    rows[0]["text"] = rows[30]["text"] = f"dup {p['all']}"  # a conflicting duplicate: a finding quoting it
    rows[0]["label"], rows[30]["label"] = good, bad
    prep = ingest.prepare(
        pd.DataFrame(rows), ingest.Mapping(text=["text"], label="label", id="id"), "tickets.csv", None
    )
    ds_id = ingest.write_dataset(db, prep, text_name, leo)
    audit.run_audit(db, ds_id, leo)
    run = datasets.latest_run(db, ds_id)
    last = store.scalar(db, "SELECT MAX(rank) FROM scores WHERE run_id=?", [run["id"]])
    db.execute(
        "UPDATE scores SET judge_verdict='UNKNOWN', judge_reason=? WHERE run_id=?", [f"judge: {p['all']}", run["id"]]
    )
    db.execute(
        "UPDATE scores SET judge_verdict=CASE rank WHEN ? THEN 'YES' ELSE 'NO' END, judge_label=? "
        "WHERE run_id=? AND rank >= ?",
        [last, good, run["id"], last - 1],
    )
    ds = datasets.get(db, ds_id)
    s = workflow.claim_next(db, ds, ann)  # rank 1: relabelled, then rejected with a hostile reason
    rid = workflow.decide(
        db,
        ds,
        s.idx,
        ann,
        "relabel",
        s.version,
        new_label=next(l for l in ds.labels if l != s.current_label),
        note=f"note {p['all']}",
    )
    version = store.scalar(db, "SELECT version FROM reviews WHERE id=?", [rid])
    workflow.verify(db, rid, lea, "reject", version, note=f"rejected: {p['all']}")
    s = workflow.claim_next(db, ds, ann, exclude=[s.idx])  # another one waits for verification
    workflow.decide(
        db,
        ds,
        s.idx,
        ann,
        "relabel",
        s.version,
        new_label=next(l for l in ds.labels if l != s.current_label),
        note=f"pending {p['all']}",
    )
    workers = [f"w0 {p['img']}", f"w1 {p['link']}", f"w2 {p['html']}"]
    yes, no = f"yes {p['img']}", f"no {p['link']}"
    crowd = []
    for i in range(40):
        for k, w in enumerate(workers):
            wrong = (k == 2 and i % 3 == 0) or (k == 1 and i % 7 == 0) or (k == 0 and i % 10 == 0)
            crowd.append(
                {
                    "item_id": f"i{i}",
                    "text": f"{p['all']} crowd item {i} {'nice warm' if i % 2 == 0 else 'nasty cold'}",
                    "annotator": w,
                    "label": [yes, no][(i + wrong) % 2],
                }
            )
    prep = ingest.prepare(
        pd.DataFrame(crowd),
        ingest.Mapping(text=["text"], label="label", id="item_id", annotator="annotator"),
        "crowd.csv",
        None,
    )
    crowd_id = ingest.write_dataset(db, prep, crowd_name, leo)
    audit.run_audit(db, crowd_id, leo)
    return text_name, crowd_name


# everything a viewer's browser would fetch from or link to the beacon, and Markdown gone live
FIND = """(port) => {
  const at = `127.0.0.1:${port}`, out = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of ['href', 'src', 'srcset', 'poster', 'data', 'action', 'formaction', 'background', 'xlink:href']) {
      const v = el.getAttribute(a);
      if (v && v.includes(at)) out.push(`${el.tagName.toLowerCase()}[${a}=${v}]`);
    }
    const bg = el.style && el.style.backgroundImage;
    if (bg && bg.includes(at)) out.push(`${el.tagName.toLowerCase()} background ${bg}`);
  }
  const md = '[data-testid="stMarkdownContainer"]';
  for (const [sel, what] of [[`${md} img`, 'image in Markdown'], ['.katex', 'LaTeX'],
        ['.stMarkdownColoredText, .stMarkdownColoredBackground, .stMarkdownBadge', 'coloured text'],
        [`${md} span[role="img"]`, 'icon in Markdown'], [`${md} h1, ${md} h2, ${md} h3, ${md} blockquote, ${md} table`, 'block']]) {
    for (const el of document.querySelectorAll(sel)) {
      if (what === 'block' && el.closest('[data-testid="stHeading"]')) continue;   // st.title, st.subheader: ours
      out.push(`${what}: ${el.outerHTML.slice(0, 160)}`);
    }
  }
  return out;
}"""
OUTSIDE = """() => [...document.querySelectorAll('[data-testid="stMarkdownContainer"] a[href]')]
  .map(a => a.href).filter(h => !h.startsWith(location.origin))"""


def test_no_remote_image_and_no_live_link_from_data(app, pages, tmp_path):
    with Beacon().running() as beacon:
        db = store.connect(app.db_path)
        try:
            names = seed(db, payloads(beacon.port))
        finally:
            db.conn.close()
        current = {}
        with shot_on_failure(app, current, "beacon"):
            _visit(app, pages, beacon, names, current)


def _visit(app, pages, beacon, names, current):
    page = pages("admin")
    current.update(page=page, name="sign-in")
    sign_in(page, app.url, "ada", PASSWORD)
    main = page.locator('[data-testid="stMain"]')
    outside, checked = set(), []

    def check(where: str) -> None:
        wait_idle(page)
        page.wait_for_timeout(400)  # images and tooltips fetch after drawing
        found = page.evaluate(FIND, beacon.port)
        assert not found and not beacon.hits, (where, found, beacon.hits)
        outside.update(page.evaluate(OUTSIDE))
        checked.append(where)

    def hover_buttons() -> None:  # a tooltip (help=) is drawn on hover, in Markdown
        for b in main.locator('[data-testid="stButton"] button:visible').all()[:25]:
            try:
                b.hover(timeout=1000)
                page.wait_for_timeout(60)
            except Exception:  # a button a rerun took away meanwhile
                pass

    def open_page(target: str, name: str) -> None:
        current["name"] = f"{names.index(name)}-{target}"
        page.locator('[data-testid="stSidebar"]').get_by_role("link", name=target, exact=True).click()
        page.wait_for_timeout(200)
        wait_idle(page)
        picker = main.get_by_role("combobox", name="Dataset")
        if picker.count() and picker.input_value() != name:
            choose(page, main, "Dataset", name)
            wait_idle(page)
        settle()

    def settle() -> None:
        """Wait until the page stops changing: a rerun a click started may begin after wait_idle
        returned, and until it ends the page still shows the previous dataset's tabs."""
        seen = None
        for _ in range(50):
            page.wait_for_timeout(300)
            wait_idle(page)
            now = main.get_by_role("tab").all_inner_texts()
            if now == seen:
                return
            seen = now

    for name in names:
        for target in TARGETS:
            open_page(target, name)
            tabs = main.get_by_role("tab").all()
            for tab in tabs or [None]:
                if tab is not None:
                    tab.click()
                    page.wait_for_timeout(150)
                for summary in main.locator('[data-testid="stExpander"] summary:visible').all():
                    summary.click()  # the findings' titles quote the data; opening draws their rows
                    page.wait_for_timeout(50)
                hover_buttons()
                check(f"{current['name']}{'/' + tab.inner_text() if tab is not None else ''}")
            if tabs and target == "Audit":
                tabs[0].click()  # the findings, opened, for the picture
                page.wait_for_timeout(300)
            if target in ("Home", "Audit", "Review", "Verify", "Annotators") and name == names[0]:
                shot(page, f"beacon-{current['name'].lower().replace(' ', '-')}")
            if target == "Annotators" and name == names[1]:
                main.get_by_role("tab", name="Annotators").click()
                button = main.get_by_role("button", name="Review the items where")
                if button.count():
                    button.first.click()
                    wait_idle(page)
                    current["name"] = "1-review-one-annotator"
                    check(current["name"])
                    shot(page, "beacon-1-review-one-annotator")
    page.locator('[data-testid="stSidebar"]').get_by_role("link", name="Users", exact=True).click()
    wait_idle(page)
    check("users")
    page.wait_for_timeout(1000)
    assert beacon.hits == [], beacon.hits
    assert len(checked) >= 2 * len(TARGETS), checked
    print(f"checked {len(checked)} page views; Markdown links outside the app (ours, not from data): {sorted(outside)}")
