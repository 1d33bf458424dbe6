"""Rows (annotator and up): search, filter and page through any dataset, and open any row in the review card.

Filters: text contains (the first search of a dataset builds its text index, with a progress bar), given /
current / predicted label, action, score band, state, reviewer, annotator (several annotators per row),
a metadata column and value, flagged. The page reads one page of rows (review.browse.page, keyset on the
row number: a stack of ``after`` values in the session, never OFFSET) and a count (capped, and bounded in
time: browse.count_within). The filter is kept in st.session_state["rows_filter"] (RowFilter.to_json(); its
dataset id in "rows_filter_dataset") for the Bulk fix page. "Open row N in the review card" puts (dataset id,
row) in st.session_state["open_row"] and switches to the Review page, which claims the row
(workflow.claim_row) or shows it read-only.
"""

import time
from pathlib import Path

import streamlit as st

from review import blind, browse, safe_text
from review.browse import RowFilter
from review.errors import ReviewError
from review.stats import BANDS
from review.ui import shell

db, user, ds = shell.page_with_dataset("Rows", "annotator", heading="Rows")

PAGE = 50  # rows drawn per page
CAP = 10_000  # rows counted before the count says "10,000+"
CELL = 140  # characters of text in a table cell
COUNT_FRESH = 30  # seconds a count serves the page clicks of the same filter (decisions change it)
BULK_PAGE = "pages/11_Bulk_fix.py"
FLAGGED = {"any": None, "yes": True, "no": False}


def any_or(v) -> str:
    return "any" if v is None else str(v)


K = {  # the widgets' keys
    name: f"rows_{name}"
    for name in (
        "text",
        "given",
        "current",
        "predicted",
        "action",
        "band",
        "state",
        "reviewer",
        "annotator",
        "meta_col",
        "meta_val",
        "flagged",
    )
}
labelled = ds.task == "text"  # a NER row's label is a whole tag sequence: no label filters
reviewers = browse.reviewers(db, ds)
annotators = browse.annotators(db, ds) if ds.mapping.multi else []
meta_cols = browse.meta_keys(db, ds)


def seed(f: RowFilter) -> None:
    """Start the widgets from the kept filter (a new visit, another page's filter, a dataset change),
    keeping only values this dataset offers; a value it does not have is named in an error."""
    try:
        browse.check(ds, f)
    except ReviewError as exc:
        shell.error(exc)
    ok = set(ds.labels)
    values = {
        "text": f.text,
        "given": [v for v in f.given if v in ok],
        "current": [v for v in f.current if v in ok],
        "predicted": [v for v in f.predicted if v in ok],
        "action": [a for a in f.action if a in browse.ACTIONS],
        "band": f.band if f.band is not None and 0 <= f.band < len(BANDS) else None,
        "state": [s for s in f.state if s in browse.STATES],
        "reviewer": f.reviewer if f.reviewer in reviewers else None,
        "annotator": f.annotator if f.annotator in annotators else None,
        "meta_col": f.meta[0][0] if f.meta and f.meta[0][0] in meta_cols else None,
        "meta_val": f.meta[0][1] if f.meta and f.meta[0][0] in meta_cols else None,
        "flagged": {None: "any", True: "yes", False: "no"}[f.flagged],
    }
    for name, key in K.items():
        st.session_state[key] = values[name]


def clear() -> None:
    seed(RowFilter())


kept_ds = st.session_state.get("rows_filter_dataset")
if kept_ds not in (None, ds.id):  # the kept filter belongs to another dataset: start over
    st.session_state["rows_filter"] = RowFilter().to_json()
if kept_ds != ds.id or any(key not in st.session_state for key in K.values()):
    try:
        seed(RowFilter.from_json(st.session_state.get("rows_filter") or "{}"))
    except (TypeError, ValueError) as exc:
        shell.error(ReviewError(f"The kept filter could not be read ({exc}): it was cleared."))
        seed(RowFilter())
st.session_state["rows_filter_dataset"] = ds.id

# ---------------------------------------------------------------- the filter
# blind first look: an annotator does not see here what the model says of a row before their first call
hide_model = blind.required(ds) and not user.can("lead")
c = st.columns([3, 2, 2, 2] if labelled else [3, 2])
c[0].text_input("Text contains", key=K["text"], placeholder="any part of the text, any case")
if labelled:
    c[1].multiselect("Given label", ds.labels, key=K["given"], placeholder="any")
    c[2].multiselect("Current label", ds.labels, key=K["current"], placeholder="any")
    if not hide_model:
        c[3].multiselect("Predicted label", ds.labels, key=K["predicted"], placeholder="any")
c = st.columns(4)
if not hide_model:
    c[0].multiselect("Action", browse.ACTIONS, key=K["action"], placeholder="any")
    c[1].selectbox(
        "Score band (flagged rows' label quality)",
        [None, *range(len(BANDS))],
        key=K["band"],
        format_func=lambda b: "any" if b is None else f"{BANDS[b][0]:.2f} – {BANDS[b][1]:.2f}",
        placeholder="any",  # None, the value "any", draws as the placeholder
    )
c[2].multiselect("State", browse.STATES, key=K["state"], placeholder="any")
if not hide_model:
    c[3].radio("Flagged", list(FLAGGED), key=K["flagged"], horizontal=True)
c = st.columns([2, 2, 2, 2, 1])
c[0].selectbox("Reviewer", [None, *reviewers], key=K["reviewer"], format_func=any_or, placeholder="any")
if annotators:
    c[1].selectbox("Annotator", [None, *annotators], key=K["annotator"], format_func=any_or, placeholder="any")
if meta_cols:
    col = c[2].selectbox(
        "Metadata column",
        [None, *meta_cols],
        key=K["meta_col"],
        format_func=any_or,
        placeholder="any",
        on_change=lambda: st.session_state.update({K["meta_val"]: None}),  # another column: pick its value
    )
    if col is not None:
        values = browse.meta_values(db, ds, col)
        if st.session_state.get(K["meta_val"]) not in (None, *values):
            values.append(st.session_state[K["meta_val"]])
        c[3].selectbox("Value", values, key=K["meta_val"], accept_new_options=True, placeholder="pick or type a value")
c[4].button("Clear filters", key="rows_clear", on_click=clear)

ss = st.session_state
meta_pair = ()
if meta_cols and ss.get(K["meta_col"]) is not None and ss.get(K["meta_val"]) not in (None, ""):
    meta_pair = ((ss[K["meta_col"]], str(ss[K["meta_val"]])),)
f = RowFilter(
    text=ss[K["text"]] or "",
    given=tuple(ss[K["given"]]) if labelled else (),
    current=tuple(ss[K["current"]]) if labelled else (),
    predicted=tuple(ss[K["predicted"]]) if labelled and not hide_model else (),
    action=() if hide_model else tuple(ss[K["action"]]),
    band=None if hide_model else ss[K["band"]],
    state=tuple(ss[K["state"]]),
    reviewer=ss[K["reviewer"]],
    annotator=ss[K["annotator"]] if annotators else None,
    meta=meta_pair,
    flagged=None if hide_model else FLAGGED[ss[K["flagged"]]],
)
ss["rows_filter"] = f.to_json()  # the Bulk fix page reads it
paging = ss.get("rows_paging")
if not paging or paging.get("filter") != (ds.id, ss["rows_filter"]):  # a new filter starts at the first page
    paging = ss["rows_paging"] = {"filter": (ds.id, ss["rows_filter"]), "stack": [-1]}
stack = paging["stack"]

# ---------------------------------------------------------------- one page of rows
try:
    if browse.needs_index(f) and not browse.is_indexed(db, ds):
        bar = st.progress(0.0, text="Indexing the text for search (once per dataset)…")
        browse.ensure_index(db, ds, shell.progress_callback(bar))
        bar.empty()
    if paging.get("count") is None or time.time() - paging["counted_at"] > COUNT_FRESH:  # not on every click
        paging.update(count=browse.count_within(db, ds, f, cap=CAP), counted_at=time.time())
    counted = paging["count"]
    pg = browse.page(db, ds, f, after=stack[-1], limit=PAGE)
except ReviewError as exc:
    shell.error(exc)
    st.stop()

n = counted.n
st.markdown(f"**{counted.text()} {'row' if n == 1 else 'rows'}** match: {safe_text.md(f.describe())}")
if counted.through is not None:  # the time for a count was up: the pages still list every match
    c = st.columns([4, 1])
    c[0].caption(f"Counted through row {counted.through:,} of {ds.n_items:,}; the pages below list every match.")
    if c[1].button("Count them all", key="rows_count_all"):
        paging.update(count=browse.Count(browse.count(db, ds, f, cap=CAP), CAP), counted_at=time.time())
        st.rerun()
if user.can("lead") and (Path(__file__).resolve().parents[1] / BULK_PAGE).exists() and n and not f.empty():
    st.page_link(BULK_PAGE, label="Bulk fix these rows")
if not pg.rows:
    st.info("No row matches this filter." if len(stack) == 1 else "No more rows: go back a page.")
else:
    first = (len(stack) - 1) * PAGE + 1
    st.dataframe(
        [
            {
                "row": r.idx,
                "id": r.key,
                "text": (r.text or "")[:CELL] + ("…" if len(r.text or "") > CELL else ""),
                "given": r.given_label,
                "current": r.current_label,
                **({} if hide_model else {"predicted": r.predicted_label, "confidence": r.confidence}),
                **({} if hide_model else {"action": r.action}),
                "state": r.state,
            }
            for r in pg.rows
        ],
        hide_index=True,
        height=min(35 * (len(pg.rows) + 1) + 3, 600),
        column_config={
            "row": st.column_config.NumberColumn("row", format="%d", width="small"),
            "text": st.column_config.TextColumn("text", width="large"),
            "confidence": st.column_config.NumberColumn("confidence", format="%.2f", width="small"),
        },
        key=f"rows_table_{ds.id}",
    )
    nav = st.columns([1, 3, 1])
    if nav[0].button("Previous page", key="rows_prev", disabled=len(stack) == 1):
        stack.pop()
        st.rerun()
    nav[1].caption(
        f"Page {len(stack)} · matches {first:,}–{first + len(pg.rows) - 1:,} · {PAGE} rows a page, in row order"
    )
    if nav[2].button("Next page", key="rows_next", disabled=pg.next_after is None):
        stack.append(pg.next_after)
        st.rerun()

    by_idx = {r.idx: r for r in pg.rows}
    if ss.get("rows_pick") not in by_idx:
        ss["rows_pick"] = pg.rows[0].idx
    o = st.columns([2, 3])
    pick = o[0].selectbox(
        "Row",
        list(by_idx),
        key="rows_pick",
        format_func=lambda i: f"row {i} · {by_idx[i].key} · {by_idx[i].state}",
    )
    if o[1].button(f"Open row {pick} in the review card", key="rows_open", type="primary"):
        ss["open_row"] = (ds.id, int(pick))
        st.switch_page("pages/3_Review.py")
