"""Review queue: one suspect at a time, most suspect first; keep / relabel / unsure with a note.

Keyboard: K keep, U unsure, 1–9 relabel to that label, S skip, B back; Esc leaves the note. NER:
click a token (or N / P, the next / previous suspect), then its tag's key; A the model's tag; Enter saves.
After any widget change (dataset, filter, order, a button) the focus returns to the page (shell.keyboard).
"""

import streamlit as st

from review import auth, blind, safe_text, workflow
from review.datasets import latest_run
from review.errors import ReviewError
from review.ui import shell
from review.ui.views.findings import queue_filters
from review.ui.views.guidelines import guidelines_panel
from review.ui.views.ner_card import review_ner_sentence
from review.ui.views.text_card import review_text_card

db, user, ds = shell.page_with_dataset("Review", "annotator", heading="Review suspects")
picked = shell.keyboard()  # first, before the page can stop: the focus hand-back, Esc, NER token clicks
guidelines_panel(db, ds)  # the dataset's guidelines in the sidebar, beside the card (before any stop)

sk = f"review_{ds.id}"  # this dataset's queue state in the session
kept = auth.load_queue_state(db, user, ds.id)  # ... and in the database, per user: a reload or a new tab keeps it
state = st.session_state.setdefault(sk, {"skipped": list(kept.get("skipped", [])), "back": kept.get("back")})
opened = st.session_state.pop("open_row", None)  # (dataset id, row) from the Rows page's "Open row N"
if opened is not None and int(opened[0]) == ds.id:
    try:
        o = workflow.claim_row(db, ds, user, int(opened[1]))
    except ReviewError as exc:
        shell.error(exc)
        st.stop()
    mine = o.state == "open" and o.claimed_by == user.name  # claimed: claim_next shows the row the user holds
    state["back"] = None if mine else o.idx  # else read-only, as a row gone back to (own pending: revisable)
    state["skipped"] = [i for i in state["skipped"] if i != o.idx]
    st.session_state["action_filter"] = "All suspects"  # a narrowed queue would pass over the held row
    for k in ("review_disagrees", "review_swap"):
        st.session_state.pop(k, None)
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
if prog.flagged == 0:
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
if ds.task == "text":  # the checks beyond label errors the latest run found rows of (review.findings)
    run_now = latest_run(db, ds.id)
    actions.update({k: f"finding:{v}" for k, v in queue_filters(db, run_now and run_now["id"], ds.id).items()})
orders = ORDERS
if blind.required(ds):  # blind first look: no filter or order that tells what the model recommends
    actions = {k: v for k, v in actions.items() if v in (None, "spot")}
    orders = ORDERS[:1]
disagrees = st.session_state.get("review_disagrees")  # set by the Annotators page
swap = st.session_state.get("review_swap") if ds.task == "ner" else None  # set by the Audit page (NER swaps)
if swap or disagrees:  # a narrowed queue opened from another page, with the way back
    key = "review_swap" if swap else "review_disagrees"
    c1, c2 = st.columns([4, 1])
    c1.info(
        f"Showing the sentences with a suspect token tagged {safe_text.md(swap[0])} that the model tags "
        f"{safe_text.md(swap[1])}."
        if swap
        else f"Showing the items where annotator {safe_text.md(disagrees)} disagrees with the consensus, flagged or not."
    )
    if c2.button("Show all suspects", key="clear_swap" if swap else "clear_disagrees"):
        st.session_state.pop(key, None)
        st.rerun()
    choice, order = "All suspects", "most suspect first"
else:
    if st.session_state.get("action_filter") not in (None, *actions):  # a filter the dataset no longer offers
        st.session_state.pop("action_filter")
    if st.session_state.get("queue_order") not in (None, *orders):
        st.session_state.pop("queue_order")
    if "action_filter" not in st.session_state and kept.get("filter") in actions:  # a new tab: the kept filter
        st.session_state["action_filter"] = kept["filter"]
    if "queue_order" not in st.session_state and kept.get("order") in orders:
        st.session_state["queue_order"] = kept["order"]
    f1, f2 = st.columns([4, 1])
    choice = f1.radio("Show", list(actions), horizontal=True, key="action_filter", label_visibility="collapsed")
    order = f2.selectbox("Order", orders, key="queue_order", label_visibility="collapsed")
remember()
finding = actions[choice][8:] if (actions[choice] or "").startswith("finding:") and not (swap or disagrees) else None
shown_action = actions[choice] if actions[choice] not in (None, "spot") and not (swap or disagrees or finding) else None
if shown_action or finding:
    prog = workflow.progress(db, ds, action=shown_action, finding=finding)
bar.progress(
    prog.decided / prog.flagged if prog.flagged else 1.0,
    text=(f"{choice}: " if shown_action or finding else "")
    + f"{prog.decided:,} of {prog.flagged:,} {'rows' if finding else 'suspects'} decided · "
    f"{prog.open:,} open · {prog.pending:,} awaiting verification",
)

flash = st.session_state.pop("review_flash", None)
if flash:  # it names the row, the label, a refusal: data, not Markdown
    (st.warning if flash[0] == "warn" else st.success)(safe_text.md_message(flash[1]))

if state["back"] is not None:
    s = workflow.get_suspect(db, ds, state["back"])
    revising = True
    if s.state == "open" and s.claimed_by and s.claimed_by != user.name:  # opened from the Rows page
        st.info(f"{safe_text.md(s.claimed_by)} is reviewing row {safe_text.md(s.key)} now: it is shown read-only.")
else:
    s = workflow.claim_next(
        db,
        ds,
        user,
        exclude=state["skipped"],
        action=None if actions[choice] == "spot" or finding else actions[choice],
        finding=finding,
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
    review_ner_sentence(db, ds, user, s, state, revising, navigation, picked=picked)
    st.stop()

review_text_card(db, ds, user, s, state, revising, navigation)
