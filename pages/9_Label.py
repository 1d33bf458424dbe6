"""Label: the items that most need another label (cleanlab ActiveLab), one at a time.

Keyboard: the key on each label button (review.ui.shortcuts), S skip, B back to the item you labelled before. Only the text is shown:
no other annotator's label, no consensus. Logic and SQL in review.crowd.labeling.
"""

import streamlit as st

from review import safe_text
from review.crowd import labeling
from review.errors import ReviewError
from review.ui import shell, shortcuts

db, user, ds = shell.page_with_dataset("Label", "annotator", heading="Needs another label")
shell.keyboard()  # the focus goes back to the page after every click, so the next key is a shortcut

if not ds.mapping.multi or ds.task != "text":
    st.info(
        f"Dataset {safe_text.md(repr(ds.name))} has one label per item: the label queue is for text datasets labelled by several "
        "annotators. Correct its labels on the Review page."
    )
    st.page_link("pages/3_Review.py", label="Go to the Review page")
    st.stop()

status = labeling.queue_status(db, ds, user)
if not status.scored:
    if user.can("lead"):
        st.info(safe_text.md_message(status.reason))  # it can quote the audit's error
        st.page_link("pages/2_Audit.py", label="Run the audit on the Audit page")
    else:
        st.info(f"{safe_text.md_message(status.reason)} Ask a lead to run it.")
    st.stop()

sk = f"label_{ds.id}_{status.run_id}"  # this queue's state in the session: skipped rows, rows labelled, going back
state = st.session_state.setdefault(sk, {"skipped": [], "history": [], "back": None})
st.caption(
    "The items whose label the annotators and the model are least sure about come first (cleanlab ActiveLab). "
    "Label each from its text alone. Your label joins the other annotators' labels: "
    "**the consensus updates on the next audit run.**"
)
st.progress(
    min(1.0, status.mine / status.total) if status.total else 0.0,
    text=f"You have labelled {status.mine:,} of {status.total:,} items",
)

flash = st.session_state.pop("label_flash", None)
if flash:  # it names the row and the label: data, not Markdown
    (st.warning if flash[0] == "warn" else st.success)(safe_text.md_message(flash[1]))

revising = state["back"] is not None
item = (
    labeling.get_item(db, ds, state["back"], user)
    if revising
    else labeling.next_item(db, ds, user, exclude=state["skipped"])
)


def back_button(col, key: str = "back") -> None:
    """Back to the item labelled before the one shown (or before the queue's next item)."""
    hist = state["history"]
    pos = hist.index(state["back"]) if revising and state["back"] in hist else len(hist)
    if pos > 0 and col.button("Back", key=key, shortcut="B", help="Change the label you gave the item before"):
        state["back"] = hist[pos - 1]
        st.rerun()


if item is None:
    st.success(
        "Nothing left for you in this queue: you have labelled every item"
        + (f" except the {shell.plural(len(state['skipped']), 'item')} you skipped." if state["skipped"] else ".")
        + " The consensus updates on the next audit run."
    )
    c1, c2 = st.columns([1, 4])
    if state["skipped"] and c1.button("Show the ones I skipped", key="unskip"):
        state["skipped"] = []
        st.rerun()
    back_button(c2)
    st.stop()

head = f"**{safe_text.md(item.key)}** · row {item.idx} of the upload"
if revising:
    head += " · changing the label you gave"
st.markdown(head)
shell.show_text(item.text, key=f"label_{ds.id}_{item.idx}")
if revising and item.my_label is not None:
    st.markdown(f"Your label: **{safe_text.md(item.my_label)}**")


def give(label: str) -> None:
    try:
        outcome = labeling.add_label(db, ds, item.idx, user, label, run_id=item.run_id)
        what = {
            "added": f"labelled {label}",
            "replaced": f"your label is now {label}",
            "unchanged": f"already labelled {label} by you",
        }[outcome]
        st.session_state["label_flash"] = (
            "ok",
            f"Row {item.key}: {what}. The consensus updates on the next audit run.",
        )
        if item.idx not in state["history"]:
            state["history"].append(item.idx)
    except ReviewError as exc:
        st.session_state["label_flash"] = ("warn", str(exc))
    state["back"] = None
    st.rerun()


keys = shortcuts.label_keys(ds.labels[:9])  # the key on each label's button: never a digit that reads as another label
st.markdown(f"**Your label** (keyboard: {shortcuts.describe(keys)} the label showing that key, S skip, B back)")
b = st.columns(max(min(len(ds.labels), 9), 6))  # at least 6 columns: a few labels sit side by side
for i, label in enumerate(ds.labels[:9]):
    if b[i].button(
        safe_text.md(label),
        key=f"label_{i}",
        shortcut=keys[i],
        disabled=revising and label == item.my_label,
        type="primary" if revising and label == item.my_label else "secondary",
    ):
        give(label)
if len(ds.labels) > 9:
    more = st.selectbox("Other labels", ds.labels[9:], key="label_more")
    if st.button("Give this label", key="label_more_btn"):
        give(more)

nav = st.columns(6)
if not revising and nav[0].button("Skip", key="skip", shortcut="S", help="Leave this item for now"):
    state["skipped"].append(item.idx)
    st.rerun()
back_button(nav[1])
if revising and nav[2].button("Return to the queue", key="forward"):
    state["back"] = None
    st.rerun()
