"""The Review page's text card: the row, the given label, the model's (or the consensus') view, the judge's,
why it is flagged, every annotator's label; keep / unsure / relabel with a note, on buttons and keys.

Blind first look (review.blind; the dataset setting ``blind_first_look``): step 1 shows the text and the label
in force only, with Looks right (K) / Unsure (U) / Looks wrong: <label> (the label's key); the model's view
(prediction, confidence, suggestion, the judge, the reason, the probabilities, the annotators' labels, the
rank, a spot check's note) is not drawn. The first call is kept in session_state under
``blind_<dataset>_<row>_<version>`` (a rerun keeps it, another row or a changed row does not inherit it);
step 2 is the usual card with "Your first call: ..." and the decision is saved with it. Going back to a
decision of one's own skips step 1 (the model's view was seen; the revision keeps the first call)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from review import auth, charts, safe_text, workflow
from review.blind import BlindCall, required
from review.datasets import Dataset
from review.errors import ReviewError, StaleViewError
from review.ui import shell, shortcuts
from review.ui.views.findings import finding_reasons
from review.ui.views.leakage import copy_reasons
from review.ui.views.notes import flag_reason, rejection_note
from review.ui.views.similar import similar_panel


def review_text_card(
    db, ds: Dataset, user: auth.User, s: workflow.Suspect, state: dict, revising: bool, navigation: Callable[[], None]
) -> None:
    """Draw one suspect of a text dataset and act on the decision. ``state`` is the page's queue state
    (``back``: the row gone back to), ``revising`` whether this is a row the user decided before, and
    ``navigation`` draws Skip / Back / Return to the queue under the buttons."""
    bk = first_call_key(ds, s)
    first = BlindCall.from_state(st.session_state.get(bk))
    if first is None and not revising and required(ds):
        first_look(ds, s, bk, navigation)
        return
    mine = s.latest_review if revising and s.latest_review and s.latest_review["reviewer"] == user.name else None
    if first is None and mine and mine.get("blind_decision"):  # going back: the first call of that decision
        first = BlindCall(mine["blind_decision"], mine["blind_label"])
    left, right = st.columns([3, 2])
    with left:
        head = f"**{safe_text.md(s.key)}** · row {s.idx} of the upload · rank {s.rank if s.rank is not None else '–'}"
        if revising:
            head += " · going back to a row you decided"
        st.markdown(head)
        if mine:  # what you decided before, so going back shows it
            said = {
                "keep": f"kept {s.current_label}",
                "unsure": "marked unsure",
                "exclude": "excluded from training",
                "ambiguous": "marked ambiguous",
            }.get(mine["decision"], f"relabelled to {mine['new_label']}")
            st.info(
                f"Your earlier decision: **{safe_text.md(said)}**"
                + (f" (note: {safe_text.md(mine['note'])})" if mine.get("note") else "")
                + f", {mine['status']}. Decide again to change it."
            )
        shell.show_text(s.text, key=f"{ds.id}_{s.idx}")
        given_name = "majority vote" if ds.mapping.multi and s.current_label == s.given_label else "given"
        pills = shell.badge(f"{given_name}: {s.current_label}", "#d62728")
        if s.predicted_label is not None:
            source = "consensus" if ds.mapping.multi else "model"
            pills += shell.badge(f"{source}: {s.predicted_label} ({s.confidence:.0%})", "#2ca02c")
        if s.suggested_label and s.suggested_label != s.predicted_label:
            pills += shell.badge(f"suggested: {s.suggested_label}", "#1f77b4")
        if s.judge:
            j = s.judge
            pills += shell.badge(
                {"NO": f"judge: {j['label']}", "YES": "judge: label is right"}.get(j["verdict"], "judge: unknown"),
                "#9467bd",
            )
        if s.action or (s.judge and s.judge.get("action")):
            pills += shell.badge(f"recommended: {(s.judge or {}).get('action') or s.action}", "#7f7f7f")
        st.html(pills)
        if s.spot_check:
            st.info(
                "Spot check: a random row the audit did not flag. Decide it as any other: it measures what the flags miss."
            )
        else:
            flag_reason(s)
        finding_reasons(s)  # the checks beyond label errors: part of the model's view (step 2 of a blind look)
        copy_reasons(db, ds, s.idx)  # a near copy in another upload (review.findings.leakage)
        if s.judge and s.judge["verdict"] == "UNKNOWN":
            st.caption(f"The judge gave no usable answer: {safe_text.md(s.judge['reason'])}")
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
        rejection_note(s)
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

    if first is not None:
        st.info(
            f"Your first call: **{safe_text.md(first.describe())}**, made before the model's view was shown. "
            "Now decide with it in view: both calls are kept."
        )
    note = st.text_input("Note (optional)", key=f"note_{ds.id}_{s.idx}")

    def act(decision: str, label: str | None = None) -> None:
        try:
            workflow.decide(db, ds, s.idx, user, decision, s.version, new_label=label, note=note, blind=first)
            what = {
                "keep": "kept",
                "unsure": "marked unsure",
                "exclude": "excluded from training",
                "ambiguous": "marked ambiguous",
            }.get(decision, f"relabelled to {label}")
            if first is not None and first.differs_from(decision, label):
                what += f" (your first call: {first.describe()})"
            st.session_state["review_flash"] = ("ok", f"Row {s.key}: {what}.")
            st.session_state.pop(bk, None)  # saved with the decision
        except StaleViewError as exc:
            st.session_state["review_flash"] = ("warn", str(exc))
        except ReviewError as exc:
            st.session_state["review_flash"] = ("warn", str(exc))
        state["back"] = None
        st.rerun()

    keys = shortcuts.label_keys(
        ds.labels[:9]
    )  # the key on each label's button: never a digit that reads as another label
    ex_key, amb_key = flag_keys(keys)  # exclude / ambiguous: X and A unless a label's button carries them
    st.markdown(
        f"**Decide** (keyboard: K keep, U unsure, {ex_key} exclude from training, {amb_key} ambiguous (type the "
        f"note first), {shortcuts.describe(keys)} relabel to the label showing that key, S skip, B back; Esc leaves "
        "the note)"
    )
    b = st.columns([1, 1, 2, 1.4, 4.6])  # keep, unsure, the two flags; the labels' buttons on the row below
    if b[0].button("Keep", key="keep", shortcut="K", type="primary", help="The given label is right"):
        act("keep")
    if b[1].button("Unsure", key="unsure", shortcut="U", help="Leave it to a lead"):
        act("unsure")
    if b[2].button(
        "Exclude from training",
        key="exclude",
        shortcut=ex_key,
        help="Keep the label but leave the row out of the model's training (an outlier, junk); a lead verifies it",
    ):
        act("exclude")
    if b[3].button(
        "Ambiguous",
        key="ambiguous",
        shortcut=amb_key,
        help="More than one label fits: kept as it is, with a note saying why (type the note first)",
    ):
        act("ambiguous")
    b = st.columns(max(8, min(len(ds.labels), 9)))
    for i, label in enumerate(ds.labels[:9]):
        if b[i].button(
            safe_text.md(label),
            key=f"relabel_{i}",
            shortcut=keys[i],  # labels and help are Markdown
            disabled=label == s.current_label,
            help=f"Relabel to {safe_text.md(label)}",
        ):
            act("relabel", label)
    if len(ds.labels) > 9:
        more = st.selectbox("Relabel to", [l for l in ds.labels[9:] if l != s.current_label], key="relabel_more")
        if st.button("Relabel", key="relabel_more_btn"):
            act("relabel", more)

    navigation()
    similar_panel(db, ds, user, s)  # "Rows like this one" (review.similar), read only when turned on


def flag_keys(label_keys: list) -> tuple[str, str]:
    """The keys of Exclude from training and Ambiguous: X and A, unless a label's button carries one (labels
    keyed by letters), then the first letters no label, K / U / S / B nor C / R (Streamlit's) carry."""
    free = [c for c in "XAZYWQJVGH" + "".join(shortcuts.LETTERS) if c not in set(label_keys)]
    ex = "X" if "X" in free else free[0]
    amb = "A" if "A" in free and ex != "A" else next(c for c in free if c != ex)
    return ex, amb


def first_call_key(ds: Dataset, s: workflow.Suspect) -> str:
    """The session_state key of the first call on this row as shown (dataset, row, version)."""
    return f"blind_{ds.id}_{s.idx}_{s.version}"


def first_look(ds: Dataset, s: workflow.Suspect, key: str, navigation: Callable[[], None]) -> None:
    """Step 1 of a blind first look: the text and the label in force, and the first call; nothing of the
    model's view. A call is kept under ``key`` and the page reruns into step 2."""
    st.markdown(
        f"**{safe_text.md(s.key)}** · row {s.idx} of the upload · blind first look: your own call first, "
        "then the model's view"
    )
    shell.show_text(s.text, key=f"{ds.id}_{s.idx}")
    given_name = "majority vote" if ds.mapping.multi and s.current_label == s.given_label else "given"
    st.html(shell.badge(f"{given_name}: {s.current_label}", "#d62728"))
    if s.meta:
        with st.expander("Other columns"):
            st.json(s.meta)

    def call(c: BlindCall) -> None:
        st.session_state[key] = c.as_state()
        st.rerun()

    keys = shortcuts.label_keys(ds.labels[:9])  # the same key per label as the decision buttons of step 2
    st.markdown(
        f"**Your first call: is the label right?** (keyboard: K looks right, U unsure, {shortcuts.describe(keys)} "
        "looks wrong: the label showing that key, S skip, B back). The model's view is shown after it."
    )
    n = max(2, min(len(ds.labels), 9))  # the first call's buttons in the columns of the labels' below
    b = st.columns(n)
    if b[0].button("Looks right", key="blind_keep", shortcut="K", type="primary", help="The label is right"):
        call(BlindCall.looks_right())
    if b[1].button("Unsure", key="blind_unsure", shortcut="U", help="You cannot tell from the text"):
        call(BlindCall.unsure())
    w = st.columns(n)
    for i, label in enumerate(ds.labels[:9]):
        if w[i].button(
            "Looks wrong: " + safe_text.md(label),
            key=f"blind_relabel_{i}",
            shortcut=keys[i],
            disabled=label == s.current_label,
            help=f"It should be {safe_text.md(label)}",
        ):
            call(BlindCall.looks_wrong(label))
    if len(ds.labels) > 9:
        more = st.selectbox(
            "Looks wrong: it should be", [l for l in ds.labels[9:] if l != s.current_label], key="blind_more"
        )
        if st.button("Looks wrong", key="blind_more_btn"):
            call(BlindCall.looks_wrong(more))
    navigation()
