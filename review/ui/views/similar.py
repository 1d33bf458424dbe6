"""The review card's "Rows like this one" panel (review.similar), under the text card.

Read on demand: a toggle "Show rows like this one" (kept per dataset in the session, so it stays on from row
to row once turned on); while it is off nothing is read. On, an expander "Rows like this one (N)" lists the
nearest rows of the latest audit run (at most 10): key, row, cosine similarity, a text snippet, the given /
current / model label and the state. The flow: choose the correction (relabel to a label, keep, unsure, ...:
workflow.DECISIONS), tick rows (a checkbox only where the row can take it: open, not held by someone else,
not labelled so already), press "Apply this correction to the N ticked rows" (review.similar
.apply_to_similar: each row a pending decision, as any other). The row on the card itself is decided with
the card's own buttons, as always. Under a blind first look the card calls this only in step 2 (after the
first call), since the panel shows the model's labels."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text, similar, workflow
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell

_NAMES = {
    "keep": "Keep (their label is right)",
    "unsure": "Unsure",
    "exclude": "Exclude from training",
    "ambiguous": "Ambiguous (say why in the note)",
}


def _options(ds: Dataset) -> list[tuple[str, str | None]]:
    """Every correction the panel offers: a relabel to each label first, then the other decisions."""
    out: list[tuple[str, str | None]] = []
    if "relabel" in workflow.DECISIONS:
        out += [("relabel", label) for label in ds.labels]
    return out + [(d, None) for d in workflow.DECISIONS if d != "relabel"]


def _describe(option: tuple[str, str | None]) -> str:
    decision, label = option
    return f"Relabel to {label}" if decision == "relabel" else _NAMES.get(decision, decision.capitalize())


def _default(options: list[tuple[str, str | None]], s: workflow.Suspect) -> int:
    """The model's suggestion for the card's row when it is another label, else keep."""
    for label in (s.suggested_label, s.predicted_label):
        if label and label != s.current_label and ("relabel", label) in options:
            return options.index(("relabel", label))
    return options.index(("keep", None)) if ("keep", None) in options else 0


def similar_panel(db, ds: Dataset, user: auth.User, s: workflow.Suspect, k: int = similar.K) -> None:
    """The "Rows like this one" panel for the card's row ``s`` (text datasets; nothing for NER)."""
    if ds.task != "text":
        return
    if not st.toggle(
        "Show rows like this one",
        key=f"similar_show_{ds.id}",
        help="The nearest rows in the audit's features, to apply the same correction to the ones you tick",
    ):
        return
    try:
        got = similar.similar(db, ds, s.idx, k=k)
    except ReviewError as exc:
        shell.error(exc)
        return
    with st.expander(f"Rows like this one ({len(got.rows)})", expanded=True):
        if not got.available:
            st.info(safe_text.md_message(got.reason))
            return
        if not got.rows:
            st.info(f"Audit run {got.run_id} found no rows like row {s.idx}.")
            return
        options = _options(ds)
        c1, c2 = st.columns([2, 3])
        choice = c1.selectbox(
            "Correction for the ticked rows",
            options,
            index=_default(options, s),
            format_func=_describe,  # plain text: options are not Markdown
            key=f"similar_what_{ds.id}_{s.idx}",
        )
        note = c2.text_input("Note for the ticked rows (optional)", key=f"similar_note_{ds.id}_{s.idx}")
        decision, label = choice
        rk = f"similar_round_{ds.id}_{s.idx}"  # a new round of checkboxes after an apply: none ticked
        ticked, tick = [], f"similar_tick_{ds.id}_{s.idx}_{st.session_state.get(rk, 0)}"
        for r in got.rows:
            why = r.why_not(user.name, decision, label)
            key = f"{tick}_{r.idx}"
            a, b, c = st.columns([0.5, 7, 3], vertical_alignment="center")
            if a.checkbox(f"Tick row {r.idx}", key=key, disabled=why is not None, label_visibility="collapsed"):
                if why is None:
                    ticked.append((r.idx, r.version))
            b.markdown(
                f"**{safe_text.md(r.key)}** · row {r.idx} · similarity {r.similarity:.2f}  \n{safe_text.md(r.snippet)}"
            )
            said = f"given: {safe_text.md(r.given_label)}"
            if r.current_label != r.given_label:
                said += f" · now: {safe_text.md(r.current_label)}"
            if r.predicted_label is not None:
                said += f" · model: {safe_text.md(r.predicted_label)}"
            state = r.state + (f", held by {r.claimed_by}" if r.claimed_by and r.claimed_by != user.name else "")
            said += f"  \n{safe_text.md(state)}"
            if why is not None:
                said += f" · *{safe_text.md(similar.SKIP_REASONS[why])}*"
            c.markdown(said)
        n = len(ticked)
        if st.button(
            f"Apply this correction to the {shell.plural(n, 'ticked row')}",
            key=f"similar_apply_{ds.id}_{s.idx}",
            disabled=n == 0,
            help=f"{safe_text.md(_describe(choice))}: each ticked row gets a decision awaiting verification, as on its own card",
        ):
            try:
                res = similar.apply_to_similar(db, ds, user, s.idx, ticked, decision, label, note)
                st.session_state["review_flash"] = ("warn" if res.refused else "ok", res.describe())
            except ReviewError as exc:
                st.session_state["review_flash"] = ("warn", str(exc))
            st.session_state[rk] = st.session_state.get(rk, 0) + 1
            st.rerun()
