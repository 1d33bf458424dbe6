"""Bulk fix by pattern (review.bulk): one correction for a whole set of rows, a random sample decided first.

1. Pick the set: the Rows page's filter (st.session_state["rows_filter"], when it was set for this dataset),
   or a confusion pair of the latest run (given A, the model says B); the label every row gets; the sample
   size. "Draw a sample" (leads) draws it.
2. The sample: each row with its text, given label and the model's prediction, and "Wrong: relabel to B" /
   "Correct as labelled" (workflow.decide for whoever is signed in: an annotator or a lead). Once rows are
   decided, the sample's precision with its 95 % interval.
3. Once every sample row is decided, a lead applies the correction to the other rows of the set in one
   action: sent to verification, or approved now (recorded as approved by this bulk action).
4. The dataset's bulk actions, each applied one with "Undo" (one action undoes it all; rows changed since
   are kept and named).
"""

import streamlit as st

from review import browse, bulk, safe_text
from review.errors import ReviewError
from review.ui import shell

db, user, ds = shell.page_with_dataset("Bulk fix", "annotator", heading="Bulk fix by pattern")
if ds.task != "text":
    st.info("A bulk fix gives rows one label: it is for text datasets. Correct NER sentences on the Review page.")
    st.stop()
lead = user.can("lead")
SK = f"bulk_{ds.id}"  # this dataset's page state: the action shown
ps = st.session_state.setdefault(SK, {"action": None})
flash = st.session_state.pop("bulk_flash", None)
if flash:  # names rows, labels, counts: data, not Markdown
    (st.warning if flash[0] == "warn" else st.success)(safe_text.md_message(flash[1]))


def say(kind: str, message: str) -> None:
    st.session_state["bulk_flash"] = (kind, message)


current = None
if ps["action"] is not None:
    try:
        current = bulk.get(db, ps["action"])
    except ReviewError:
        ps["action"] = None
    if current is not None and (current.dataset_id != ds.id or current.status != "sampling"):
        current, ps["action"] = None, None
if current is None:
    current = bulk.open_action(db, ds)

# ---------------------------------------------------------------- 1. the set
st.subheader("1. The set and its correction")
rows_json = st.session_state.get("rows_filter")
from_rows = None
if rows_json and st.session_state.get("rows_filter_dataset") == ds.id:
    try:
        from_rows = browse.RowFilter.from_json(rows_json)
    except (ValueError, TypeError):
        from_rows = None
    if from_rows is not None and from_rows.empty():
        from_rows = None
pairs = bulk.confusion_pairs(db, ds)
SOURCES = ["The Rows page's filter", "A confusion pair of the latest run"]
source = SOURCES[1]
if from_rows is not None:
    source = st.radio("Set", SOURCES if pairs else SOURCES[:1], horizontal=True, key=f"bulk_source_{ds.id}")
f, default_label = None, None
if source == SOURCES[0]:
    f = from_rows
    default_label = f.predicted[0] if len(f.predicted) == 1 else None
    st.markdown(f"Rows where {safe_text.md(from_rows.describe())}.")
elif pairs:
    pair = st.selectbox(
        "Confusion pair (given → the model says)",
        pairs,
        key=f"bulk_pair_{ds.id}",
        format_func=lambda p: f"{p[0]} → {p[1]} ({shell.plural(p[2], 'flagged row')})",
    )
    flagged_only = st.checkbox("Only the flagged rows", value=True, key=f"bulk_flagged_{ds.id}")
    f = bulk.pair_filter(pair[0], pair[1], flagged_only)
    default_label = pair[1]
else:
    st.info(
        "No confusion pair yet: run the audit first (Audit page), or pick rows by a filter on the Rows page and"
        " come back here."
    )
if f is not None:
    c1, c2 = st.columns([2, 1])
    labels = list(ds.labels)
    label = c1.selectbox(
        "Relabel every row of the set to",
        labels,
        index=labels.index(default_label) if default_label in labels else 0,
        key=f"bulk_label_{ds.id}_{default_label}",
    )
    size = c2.number_input("Sample size", 1, bulk.SAMPLE_MAX, bulk.SAMPLE_DEFAULT, key=f"bulk_size_{ds.id}")
    eligible = None
    try:
        if len(f.text.strip()) >= browse.MIN_INDEXED and not browse.is_indexed(db, ds):
            st.caption("The count shows once the text is indexed for search (the sample draws it).")
        else:
            total, eligible = bulk.eligible_count(db, ds, f, label, user)
            st.caption(
                f"{shell.plural(total, 'row')} in the set; {eligible:,} of them open and not labelled "
                f"{label} yet: the rows a bulk fix would change."
            )
    except ReviewError as exc:
        shell.error(exc)
    if not lead:
        st.caption("A lead draws the sample and applies the correction; you can decide the sample rows below.")
    elif current is not None:
        st.caption(f"Bulk action {current.id} is waiting for its sample: decide it, apply it or cancel it first.")
    elif st.button("Draw a sample", type="primary", key="bulk_draw", disabled=eligible == 0):
        try:
            bar = st.progress(0.0)
            a = bulk.start(db, ds, user, f, label, int(size), progress=shell.progress_callback(bar))
            ps["action"] = a.id
            say("ok", f"Bulk action {a.id}: drew {len(a.sample):,} sample rows out of {a.n_matched:,}. Decide them.")
            st.rerun()
        except ReviewError as exc:
            shell.error(exc)

# ---------------------------------------------------------------- 2. the sample
if current is not None:
    st.subheader(f"2. The sample of bulk action {current.id}")
    st.markdown(
        f"Rows where {safe_text.md(current.filter.describe())}, relabelled to **{safe_text.md(current.label)}**. "
        f"Started by {safe_text.md(current.created_by)}; {shell.plural(current.n_matched, 'row')} in the set then."
    )
    s = bulk.sample_status(db, current.id)
    if s.precision is None:
        st.caption(f"0 of {len(s.rows):,} sample rows decided: decide them to see how often the correction is right.")
    else:
        st.metric(
            "Sample precision (relabelled / decided)",
            f"{s.precision:.0%}",
            help="The share of decided sample rows a reviewer relabelled to the target label, with its 95 % "
            "Wilson interval: how often the bulk correction is right on this set.",
        )
        st.markdown(
            f"Precision **{s.precision:.0%}** (95 % interval {s.low:.0%}–{s.high:.0%}): "
            f"{s.relabelled:,} of {s.decided:,} decided sample rows relabelled to {safe_text.md(current.label)}; "
            f"{s.open:,} still open."
        )

    def decide(idx: int, wrong: bool, version: int) -> None:
        try:
            bulk.decide_sample(db, current.id, idx, user, wrong, version)
        except ReviewError as exc:
            say("warn", str(exc))

    for r in s.rows:
        with st.container(border=True):
            head = st.columns([3, 2])
            head[0].markdown(
                f"Row {safe_text.code(r.key)} · given **{safe_text.md(r.given_label)}** · the model says "
                f"**{safe_text.md(r.predicted_label or '—')}**"
                + (f" ({r.confidence:.0%})" if r.confidence is not None else "")
            )
            if r.decided:
                what = {
                    "relabel": f"relabelled to {r.decided_label}",
                    "keep": f"kept as {r.decided_label}",
                    "unsure": "unsure",
                }.get(r.decision, r.decision)
                color = "#2e7d32" if r.decided_label == current.label else "#757575"
                head[1].html(shell.badge(f"{what} by {r.reviewer} ({r.status})", color))
            elif r.claimed_by and r.claimed_by != user.name:
                head[1].caption(f"{safe_text.md(r.claimed_by)} is reviewing it in the Review queue.")
            shell.show_text(r.text, key=f"bulk_{current.id}_{r.idx}")
            if not r.decided:
                b = st.columns([1, 1, 3])
                b[0].button(
                    f"Wrong: relabel to {current.label}",
                    key=f"bulk_wrong_{current.id}_{r.idx}",
                    on_click=decide,
                    args=(r.idx, True, r.version),
                )
                b[1].button(
                    "Correct as labelled",
                    key=f"bulk_right_{current.id}_{r.idx}",
                    on_click=decide,
                    args=(r.idx, False, r.version),
                )

    # ------------------------------------------------------------ 3. apply
    st.subheader("3. Apply to the rest of the set")
    if not lead:
        st.caption("A lead applies the correction once the sample is decided.")
    else:
        try:
            n_rest = bulk.remaining(db, current.id, user)
        except ReviewError as exc:
            n_rest = None
            shell.error(exc)
        HOW = ["Send to verification", "Approve now (recorded as approved by this bulk action)"]
        how = st.radio(
            "The bulk decisions",
            HOW,
            key=f"bulk_how_{current.id}",
            help="Send to verification: each row becomes a decision of yours awaiting another lead on the Verify"
            " page (four eyes). Approve now: each row is approved by this bulk action, and the audit trail records"
            " it so.",
        )
        if not s.complete:
            st.caption(f"Decide the {shell.plural(s.open, 'open sample row')} first.")
        if s.precision is not None and s.complete and s.low < 0.5:
            st.warning(
                f"The sample cannot rule out that half the set is labelled right already: precision"
                f" {s.precision:.0%}, its interval down to {s.low:.0%}. A bigger sample or a narrower set tells more."
            )
        c = st.columns([2, 1, 3])
        if c[0].button(
            f"Apply to the other {n_rest:,} rows" if n_rest is not None else "Apply",
            type="primary",
            disabled=not s.complete or not n_rest,
            key=f"bulk_apply_{current.id}",
        ):
            try:
                bar = st.progress(0.0)
                res = bulk.apply(db, current.id, user, how == HOW[1], progress=shell.progress_callback(bar))
                ps["action"] = None
                say("ok", bulk.apply_message(res, current.label))
                st.rerun()
            except ReviewError as exc:
                shell.error(exc)
        if c[1].button("Cancel", key=f"bulk_cancel_{current.id}"):
            try:
                bulk.cancel(db, current.id, user)
                ps["action"] = None
                say("ok", f"Bulk action {current.id} cancelled; its sample decisions stay, as any decision.")
                st.rerun()
            except ReviewError as exc:
                shell.error(exc)

# ---------------------------------------------------------------- 4. past actions
past = bulk.actions(db, ds)
if past:
    st.subheader("Bulk actions")
    for b in past:
        with st.container(border=True):
            c = st.columns([5, 1])
            what = {
                "sampling": f"sampling ({b.n_sample:,} sample rows)",
                "applied": f"applied to {b.n_applied or 0:,} rows by {b.applied_by}, "
                + ("approved by the action" if b.approve else f"sent to verification ({b.n_pending:,} still pending)"),
                "undone": f"applied to {b.n_applied or 0:,} rows by {b.applied_by}, undone by {b.undone_by}",
                "cancelled": "cancelled",
            }.get(b.status, b.status)
            c[0].markdown(
                f"**#{b.id}** · {safe_text.md(b.filter_text)} → **{safe_text.md(b.label)}** · "
                f"{safe_text.md(what)} · started by {safe_text.md(b.created_by)} {safe_text.md(b.created_at[:16])}"
            )
            if b.status == "applied" and lead and c[1].button("Undo", key=f"bulk_undo_{b.id}"):
                try:
                    res = bulk.undo(db, b.id, user)
                    say("warn" if res.kept else "ok", bulk.undo_message(res))
                    st.rerun()
                except ReviewError as exc:
                    shell.error(exc)
