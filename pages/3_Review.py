"""Review queue: one suspect at a time, most suspect first; keep / relabel / unsure with a note.

Keyboard: K keep, U unsure, 1–9 relabel to that label, S skip, B back; Esc leaves the note. NER:
click a token (or N / P, the next / previous suspect), then its tag's key; A the model's tag; Enter saves.
After any widget change (dataset, filter, order, a button) the focus returns to the page (ui.keyboard).
"""

import streamlit as st

from review import auth, charts, shortcuts, ui, workflow
from review.errors import ReviewError, StaleViewError

db, user, ds = ui.page_with_dataset("Review", "annotator", heading="Review suspects")
picked = ui.keyboard()  # first, before the page can stop: the focus hand-back, Esc, NER token clicks

sk = f"review_{ds.id}"  # this dataset's queue state in the session
kept = auth.load_queue_state(db, user, ds.id)  # ... and in the database, per user: a reload or a new tab keeps it
state = st.session_state.setdefault(sk, {"skipped": list(kept.get("skipped", [])), "back": kept.get("back")})
ORDERS = ["most suspect first", "by action"]


def remember() -> None:
    """Keep the skipped rows, the row gone back to, the filter and the order for this user (when changed)."""
    now = {
        "skipped": list(state["skipped"]),
        "back": state["back"],
        "filter": st.session_state.get("action_filter", kept.get("filter")),
        "order": st.session_state.get("queue_order", kept.get("order")),
    }
    if now != {k: kept.get(k) for k in now}:
        auth.save_queue_state(db, user, ds.id, now)
        kept.update(now)


prog = workflow.progress(db, ds)
if prog["flagged"] == 0:
    st.info(
        "No suspects yet: a lead runs the audit first."
        if not user.can("lead")
        else "No suspects yet: run the audit on the Audit page."
    )
    st.stop()
bar = st.empty()  # drawn once the filter is known: the bar counts the suspects the filter shows

actions = {"All suspects": None, "Relabel": "relabel", "Needs review": "needs review"}
if ds.task == "text" and not ds.mapping.multi:
    actions.update({"Keep but ambiguous": "keep but ambiguous", "Spot checks": "spot"})
disagrees = st.session_state.get("review_disagrees")  # set by the Annotators page
swap = st.session_state.get("review_swap") if ds.task == "ner" else None  # set by the Audit page (NER swaps)
if swap or disagrees:  # a narrowed queue opened from another page, with the way back
    key = "review_swap" if swap else "review_disagrees"
    c1, c2 = st.columns([4, 1])
    c1.info(
        f"Showing the sentences with a suspect token tagged {ui.escape_md(swap[0])} that the model tags "
        f"{ui.escape_md(swap[1])}."
        if swap
        else f"Showing the items where annotator {ui.escape_md(disagrees)} disagrees with the consensus, flagged or not."
    )
    if c2.button("Show all suspects", key="clear_swap" if swap else "clear_disagrees"):
        st.session_state.pop(key, None)
        st.rerun()
    choice, order = "All suspects", "most suspect first"
else:
    if "action_filter" not in st.session_state and kept.get("filter") in actions:  # a new tab: the kept filter
        st.session_state["action_filter"] = kept["filter"]
    if "queue_order" not in st.session_state and kept.get("order") in ORDERS:
        st.session_state["queue_order"] = kept["order"]
    f1, f2 = st.columns([4, 1])
    choice = f1.radio("Show", list(actions), horizontal=True, key="action_filter", label_visibility="collapsed")
    order = f2.selectbox("Order", ORDERS, key="queue_order", label_visibility="collapsed")
remember()
shown_action = actions[choice] if actions[choice] not in (None, "spot") and not (swap or disagrees) else None
if shown_action:
    prog = workflow.progress(db, ds, action=shown_action)
bar.progress(
    prog["decided"] / prog["flagged"] if prog["flagged"] else 1.0,
    text=(f"{choice}: " if shown_action else "") + f"{prog['decided']:,} of {prog['flagged']:,} suspects decided · "
    f"{prog['open']:,} open · {prog['pending']:,} awaiting verification",
)

flash = st.session_state.pop("review_flash", None)
if flash:  # it names the row, the label, a refusal: data, not Markdown
    (st.warning if flash[0] == "warn" else st.success)(ui.escape_message(flash[1]))

if state["back"] is not None:
    s = workflow.get_suspect(db, ds, state["back"])
    revising = True
else:
    s = workflow.claim_next(
        db,
        ds,
        user,
        exclude=state["skipped"],
        action=None if actions[choice] == "spot" else actions[choice],
        spot=actions[choice] == "spot",
        disagrees=disagrees,
        swap=tuple(swap) if swap else None,
        order="action" if order == "by action" else "rank",
    )
    revising = False
if s is None:
    st.success(
        "The queue is empty: every suspect is decided or held by someone else."
        + (f" You skipped {len(state['skipped'])}." if state["skipped"] else "")
    )
    if state["skipped"] and st.button("Show the ones I skipped", key="unskip"):
        state["skipped"] = []
        st.rerun()
    st.stop()


def navigation() -> None:
    """Skip, Back, Return to the queue."""
    nav = st.columns(6)
    if not revising and nav[0].button("Skip", key="skip", shortcut="S"):
        workflow.release(db, ds, s.idx, user)
        state["skipped"].append(s.idx)
        remember()
        st.rerun()
    history = list(dict.fromkeys(r["idx"] for r in workflow.my_recent(db, ds, user, limit=50)))  # newest first
    pos = history.index(s.idx) if revising and s.idx in history else -1
    older = history[pos + 1 :]
    if older and nav[1].button("Back", key="back", shortcut="B"):
        if not revising:
            workflow.release(db, ds, s.idx, user)
        state["back"] = older[0]
        st.rerun()
    if revising and nav[2].button("Return to the queue", key="forward"):
        state["back"] = None
        st.rerun()


if ds.task == "ner":
    ui.review_ner_sentence(db, ds, user, s, state, revising, navigation, picked=picked)
    st.stop()

left, right = st.columns([3, 2])
with left:
    head = f"**{ui.escape_md(s.key)}** · row {s.idx} of the upload · rank {s.rank if s.rank is not None else '–'}"
    if revising:
        head += " · going back to a row you decided"
    st.markdown(head)
    mine = s.latest_review if revising and s.latest_review and s.latest_review["reviewer"] == user.name else None
    if mine:  # what you decided before, so going back shows it
        said = {"keep": f"kept {s.current_label}", "unsure": "marked unsure"}.get(
            mine["decision"], f"relabelled to {mine['new_label']}"
        )
        st.info(
            f"Your earlier decision: **{ui.escape_md(said)}**"
            + (f" (note: {ui.escape_md(mine['note'])})" if mine.get("note") else "")
            + f", {mine['status']}. Decide again to change it."
        )
    ui.show_text(s.text, key=f"{ds.id}_{s.idx}")
    given_name = "majority vote" if ds.mapping.multi and s.current_label == s.given_label else "given"
    pills = ui.badge(f"{given_name}: {s.current_label}", "#d62728")
    if s.predicted_label is not None:
        source = "consensus" if ds.mapping.multi else "model"
        pills += ui.badge(f"{source}: {s.predicted_label} ({s.confidence:.0%})", "#2ca02c")
    if s.suggested_label and s.suggested_label != s.predicted_label:
        pills += ui.badge(f"suggested: {s.suggested_label}", "#1f77b4")
    if s.judge:
        j = s.judge
        pills += ui.badge(
            {"NO": f"judge: {j['label']}", "YES": "judge: label is right"}.get(j["verdict"], "judge: unknown"),
            "#9467bd",
        )
    if s.action or (s.judge and s.judge.get("action")):
        pills += ui.badge(f"recommended: {(s.judge or {}).get('action') or s.action}", "#7f7f7f")
    st.html(pills)
    if s.spot_check:
        st.info(
            "Spot check: a random row the audit did not flag. Decide it as any other: it measures what the flags miss."
        )
    elif s.reason:
        st.markdown(f"**Why it is flagged:** {ui.escape_md(s.reason)}")
    if s.judge and s.judge["verdict"] == "UNKNOWN":
        st.caption(f"The judge gave no usable answer: {ui.escape_md(s.judge['reason'])}")
    if s.annotations:
        st.markdown("**Every annotator's label**")
        st.dataframe(
            [{"annotator": a, "label": l} for a, l in s.annotations],
            hide_index=True,
            height=min(36 * (len(s.annotations) + 1) + 2, 300),
        )
    if s.meta:
        with st.expander("Other columns"):
            st.json(s.meta)
    if s.latest_review and s.latest_review["status"] == "rejected":
        st.warning(
            f"A lead rejected an earlier decision ({s.latest_review['decision']} by "
            f"{ui.escape_md(s.latest_review['reviewer'])}): {ui.escape_md(s.latest_review['verify_note'])}"
        )
with right:
    if s.probs:
        st.plotly_chart(
            charts.class_probabilities(
                ds.labels, s.probs, s.current_label, s.predicted_label, "Consensus" if ds.mapping.multi else "Model"
            ),
            key="probs",
        )

if revising and not (
    s.latest_review and s.latest_review["reviewer"] == user.name and s.latest_review["status"] == "pending"
):
    st.info(
        f"This row is {s.state}"
        + (f" ({s.latest_review['status']})" if s.latest_review else "")
        + ": it can no longer be changed here."
    )
    if st.button("Back to the queue", key="leave_back"):
        state["back"] = None
        st.rerun()
    st.stop()

note = st.text_input("Note (optional)", key=f"note_{ds.id}_{s.idx}")


def act(decision: str, label: str | None = None) -> None:
    try:
        workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=label, note=note)
        what = {"keep": "kept", "unsure": "marked unsure"}.get(decision, f"relabelled to {label}")
        st.session_state["review_flash"] = ("ok", f"Row {s.key}: {what}.")
    except StaleViewError as exc:
        st.session_state["review_flash"] = ("warn", str(exc))
    except ReviewError as exc:
        st.session_state["review_flash"] = ("warn", str(exc))
    state["back"] = None
    st.rerun()


keys = shortcuts.label_keys(ds.labels[:9])  # the key on each label's button: never a digit that reads as another label
st.markdown(
    f"**Decide** (keyboard: K keep, U unsure, {shortcuts.describe(keys)} relabel to the label "
    "showing that key, S skip, B back; Esc leaves the note)"
)
b = st.columns(2 + min(len(ds.labels), 9))
if b[0].button("Keep", key="keep", shortcut="K", type="primary", help="The given label is right"):
    act("keep")
if b[1].button("Unsure", key="unsure", shortcut="U", help="Leave it to a lead"):
    act("unsure")
for i, label in enumerate(ds.labels[:9]):
    if b[2 + i].button(
        ui.escape_md(label),
        key=f"relabel_{i}",
        shortcut=keys[i],  # labels and help are Markdown
        disabled=label == s.current_label,
        help=f"Relabel to {ui.escape_md(label)}",
    ):
        act("relabel", label)
if len(ds.labels) > 9:
    more = st.selectbox("Relabel to", [l for l in ds.labels[9:] if l != s.current_label], key="relabel_more")
    if st.button("Relabel", key="relabel_more_btn"):
        act("relabel", more)


navigation()
