"""Verify queue (leads): one card at a time: approve, reject with a reason (back to the queue),
or override; filters by reviewer, class pair (given → proposed) and decision (keep, relabel, unsure,
exclude from training: approved, the row leaves training with its label; ambiguous: kept, with its note); the filtered list
approved in one action (workflow.verify_many: one transaction, one audit row per decision).

Keyboard on the shown card: A approve, X reject (type the reason, Esc, then X), N next card
(Streamlit keeps R and C; K, U, S, B are the Review page's). Errors show inside the card, under
the control that caused them. The list and the card read one keyset page (LIMIT) of the
filtered queue; the filter options and counts come from one grouped query.

Four eyes: a lead's own decisions wait for another lead, unless the dataset allows
self-approval (the setting below, for a one-person team; changes go to the audit trail).
A bulk approve skips them (and unsure decisions) and says how many and why."""

import streamlit as st

from review import blind, datasets, safe_text, workflow
from review.errors import ReviewError
from review.ui import shell
from review.ui.views.ner_card import verify_ner_card

db, user, ds = shell.page_with_dataset("Verify", "lead", heading="Verify decisions")
shell.keyboard()  # before the page can stop: the focus goes back to the page after a click, Esc leaves the reason box

PAGE = (
    200  # decisions listed (and approved in bulk) at a time: a filtered set up to 200 in one click, more page by page
)
KEYS = {"approve": "A", "reject": "X", "next": "N"}
vs = st.session_state.setdefault(f"verify_{ds.id}", {"after": 0, "card": 0})  # list start (keyset), shown card id

prog = workflow.progress(db, ds)
st.caption(
    f"{shell.plural(prog.pending, 'decision')} awaiting verification · {prog.approved:,} approved · {prog.overridden:,} overridden"
)
flash = st.session_state.pop("verify_flash", None)
if flash:  # it names the row, the label, the dataset, a refusal: data, not Markdown
    (st.warning if flash[0] == "warn" else st.success)(safe_text.md_message(flash[1]))

allow_self = datasets.settings(db, ds.id)["allow_self_approval"]
with st.expander(
    "Four eyes: self-approval " + ("allowed on this dataset" if allow_self else "off"), expanded=allow_self
):
    if allow_self:
        st.warning(
            "Self-approval is allowed on this dataset: a lead may verify their own decisions. Each one is "
            "recorded as self-approved in the audit trail and marked self_approved = yes in the export."
        )
        label, value = "Require another lead again (four eyes)", False
    else:
        st.markdown(
            "A decision is verified by a lead other than its author. A one-person team can allow "
            "self-approval on this dataset: every self-approval is then recorded as such in the audit "
            "trail and the export."
        )
        label, value = "Allow self-approval on this dataset", True
    if st.button(label, key="self_approval_toggle"):
        try:
            datasets.set_setting(db, ds, "allow_self_approval", value, user)
            st.session_state["verify_flash"] = (
                "ok",
                "Self-approval is now "
                + (
                    f"allowed on {ds.name}: you can verify your own decisions, each recorded as self-approved."
                    if value
                    else f"off on {ds.name}: another lead verifies each decision."
                ),
            )  # escaped where shown
        except ReviewError as exc:
            st.session_state["verify_flash"] = ("warn", str(exc))
        st.rerun()
blind_on = blind.required(ds)  # blind first look (review.blind): a call before the model's view is shown
with st.expander("Blind first look: " + ("on for this dataset" if blind_on else "off")):
    if not blind.applies(ds):
        st.caption(
            "Blind first look applies to text datasets: on a NER dataset the card edits tags beside the model's."
        )
    else:
        st.markdown(
            "On: annotators see the text and its label and make their own call (looks right, looks wrong: label, "
            "unsure) before the model's prediction, confidence and reasons are shown; then they decide. Both calls "
            "are kept, and the Reviewers tab of the Annotators page shows how often the model's view changed "
            "their mind."
        )
        if st.button(
            "Turn blind first look off" if blind_on else "Turn blind first look on", key="blind_first_look_toggle"
        ):
            try:
                blind.set_blind_first_look(db, ds, not blind_on, user)
                st.session_state["verify_flash"] = (
                    "ok",
                    f"Blind first look is now {'off' if blind_on else 'on'} for {ds.name}.",
                )  # escaped where shown
            except ReviewError as exc:
                st.session_state["verify_flash"] = ("warn", str(exc))
            st.rerun()
mine = workflow.awaiting_verification(db, ds, user.name)
if mine and not allow_self:
    it = "it" if mine == 1 else "them"
    st.info(
        f"{shell.plural(mine, 'decision')} awaiting verification {'is' if mine == 1 else 'are'} yours: another lead "
        f"verifies {it} (four eyes). You can still revise {it} on the Review page."
    )

groups = workflow.pending_groups(db, ds, user)  # one grouped query: the filter options and every count
if not groups:
    vs.update(after=0, card=0)
    st.success("Nothing awaits verification.")
    st.stop()
card_error = vs.pop("error", None)  # (review id, action, message): shown inside that card
bulk_note = vs.pop("bulk", None)  # ("ok" | "error", message): shown beside the bulk button


def own_blocked(r: dict) -> bool:
    return r["reviewer"] == user.name and not allow_self


DECISION_TEXT = {"exclude": "exclude from training", "ambiguous": "ambiguous, kept"}


def change_of(r: dict) -> str:
    if r["decision"] == "relabel" and ds.task != "ner":
        return f"relabel → {r['new_label']}"
    return DECISION_TEXT.get(r["decision"], r["decision"])


# ---------------------------------------------------------------- filters
ANY = "*"  # the "all" option (never a user name, label pair or decision)
FK = {f: f"verify_{f}_{ds.id}" for f in ("reviewer", "pair", "decision")}
picked = {f: (None if st.session_state.get(k, ANY) == ANY else st.session_state[k]) for f, k in FK.items()}
if ds.task == "ner":
    picked["pair"] = None


def restart() -> None:
    vs.update(after=0, card=0)


def options(values, current) -> list:
    """ANY first, then the values; the one chosen stays even once nothing matches it."""
    out = list(dict.fromkeys(values))
    if current is not None and current not in out:
        out.append(current)
    return [ANY, *out]


def pair_text(p) -> str:
    given = "—" if p[0] is None else str(p[0])
    return f"{given} → {'? (unsure)' if p[1] is None else p[1]}"


def facet(col, label: str, name: str, values, text) -> object:
    """One filter. Its option texts never change between runs (no counts in them): Streamlit
    matches the chosen option by its text, so a text that changed would lose the choice."""
    v = col.selectbox(
        label,
        options(values, picked[name]),
        key=FK[name],
        on_change=restart,
        format_func=lambda v: text(None if v == ANY else v),
    )
    return None if v == ANY else v


f = st.columns(3 if ds.task != "ner" else 2)
reviewer = facet(
    f[0],
    "Reviewer",
    "reviewer",
    sorted({g["reviewer"] for g in groups}),
    lambda v: "all reviewers" if v is None else f"{v} (you)" if v == user.name else v,
)
pair = None
if ds.task != "ner":
    pair = facet(
        f[1],
        "Class pair (given → proposed)",
        "pair",
        sorted({(g["given"], g["proposed"]) for g in groups}, key=lambda p: (str(p[0]), p[1] is None, str(p[1]))),
        lambda v: "all pairs" if v is None else pair_text(v),
    )
decision = facet(
    f[-1],
    "Decision",
    "decision",
    [d for d in workflow.DECISIONS if any(g["decision"] == d for g in groups)],
    lambda v: "all decisions" if v is None else DECISION_TEXT.get(v, v),
)
filters = {"reviewer": reviewer, "pair": tuple(pair) if pair is not None else None, "decision": decision}
matched = workflow.pending_count(groups, **filters)
total = workflow.pending_count(groups)
if matched != total:
    st.caption(f"{matched:,} of the {shell.plural(total, 'decision')} awaiting verification match these filters.")

rows = workflow.pending(db, ds, user, limit=PAGE, after_id=vs["after"], **filters)
if not rows and vs["after"]:
    restart()
    st.rerun()
if not rows:
    st.info("No decision awaiting verification matches these filters: choose another reviewer, pair or decision.")
    if bulk_note:
        (st.success if bulk_note[0] == "ok" else st.error)(safe_text.md_message(bulk_note[1]))
    st.stop()


# ---------------------------------------------------------------- acting on one card
def act(r: dict, action: str, label=None, note: str = "") -> str | None:
    """Verify one decision as its card showed it (id, row version). None when done (a flash says
    what happened and the next card shows), else the error's message."""
    try:
        workflow.verify(db, r["id"], user, action, r["version"], label=label, note=note)
    except ReviewError as exc:
        return str(exc)
    done = {
        "approve": "approved",
        "reject": "rejected, back in the queue",
        "override": f"overridden to {label}" if isinstance(label, str) else "overridden with your tags",
    }[action]
    st.session_state["verify_flash"] = ("ok", f"{'Sentence' if ds.task == 'ner' else 'Row'} {r['key']}: {done}.")
    vs["card"] = r["id"]  # the next card is the first one after it
    return None


def on_card(r: dict, action: str) -> None:
    """A card button's callback: runs before the rerun, with the card as it was drawn."""
    note = st.session_state.get(f"reason_{r['id']}", "")
    label = st.session_state.get(f"ovl_{r['id']}") if action == "override" else None
    err = act(r, action, label, note)
    if err:
        vs["error"] = (r["id"], action, err)


def do(r: dict, action: str, label=None, note: str = "") -> None:
    """The NER card's actions (called while it draws): an error shows in the card, under its buttons."""
    err = act(r, action, label, note)
    if err:
        st.error(safe_text.md_message(err))
    else:
        st.rerun()


def step(ids: list[int], cur: int, full: bool, last: int) -> None:
    """N: the next card of the list; after the last, the next page, or back to the first card."""
    later = [i for i in ids if i > cur]
    if later:
        vs["card"] = later[0]
    else:
        vs.update(after=last if full else 0, card=0)


def bulk(seen: list[tuple[int, int]]) -> None:
    """Approve the list as it was drawn (ids and row versions), in one transaction."""
    try:
        res = workflow.verify_many(db, ds, user, seen)
    except ReviewError as exc:
        vs["bulk"] = ("error", str(exc))
        return
    msg = f"Approved {shell.plural(len(res['approved']), 'decision')} in one go, one audit-trail row each."
    if res["self_approved"]:
        msg += f" {len(res['self_approved']):,} of them yours, recorded as self-approved."
    msg += skipped_text(len(res["own"]), len(res["unsure"]), "Not approved")
    vs["bulk"] = ("ok", msg)


def skipped_text(own: int, unsure: int, lead: str) -> str:
    parts = ([f"{own:,} of yours (four eyes: another lead verifies {'it' if own == 1 else 'them'})"] if own else []) + (
        [f"{unsure:,} unsure (no label to approve: override or reject {'it' if unsure == 1 else 'each'} on its card)"]
        if unsure
        else []
    )
    return f" {lead}: {' and '.join(parts)}." if parts else ""


# ---------------------------------------------------------------- the shown card
actionable = [r for r in rows if not own_blocked(r)]
full = len(rows) == PAGE
if not actionable:  # only one's own decisions here: they wait for another lead
    for r in rows:
        with st.container(border=True):
            st.markdown(
                f"**{safe_text.md(r['key'])}** (row {r['idx']}) · {safe_text.md(change_of(r))} · by **you** at "
                f"{r['created_at'][:16].replace('T', ' ')}"
            )
            st.caption("Your own decision: it waits for another lead to verify it (four eyes).")
else:
    r = next((x for x in actionable if x["id"] >= vs["card"]), actionable[0])
    pos = actionable.index(r) + 1
    ids = [x["id"] for x in actionable]
    err = card_error[1:] if card_error and card_error[0] == r["id"] else None
    with st.container(border=True):
        head = st.columns([6, 1])
        keys = f"{KEYS['approve']} approve · {KEYS['reject']} reject (type the reason, Esc, then {KEYS['reject']}) · "
        head[0].caption(
            f"Card {pos} of {len(actionable)}"
            + (f" on this page ({matched:,} match)" if matched > len(rows) else "")
            + f" · keyboard: {keys}{KEYS['next']} next card"
        )
        head[1].button(
            "Next card",
            key="verify_next_card",
            shortcut=KEYS["next"],
            on_click=step,
            args=(ids, r["id"], full, rows[-1]["id"]),
            disabled=len(actionable) == 1 and not full and not vs["after"],
            help="Show the next decision; this one stays in the queue",
        )
        if r["reviewer"] == user.name:
            st.caption("Your own decision: verifying it is recorded as a self-approval.")
        if ds.task == "ner":
            verify_ner_card(ds, r, do)
        else:
            top = st.columns([4, 2])
            with top[0]:
                shell.show_text(r["text"], key=f"v{r['id']}")
            with top[1]:
                st.html(shell.badge(f"given: {r['given_label']}", "#d62728") + shell.badge(change_of(r), "#ff7f0e"))
                st.markdown(
                    f"**{safe_text.md(r['key'])}** (row {r['idx']}) · by **{safe_text.md(r['reviewer'])}** at {r['created_at'][:16].replace('T', ' ')}"
                )
                if r["predicted_label"] is not None:
                    st.markdown(
                        f"{'consensus' if ds.mapping.multi else 'model'}: **{safe_text.md(r['predicted_label'])}** ({r['confidence']:.0%}), quality {r['quality']:.3f}"
                    )
                if r["blind_decision"]:  # the reviewer's own call, made before the model's view was shown
                    first = blind.BlindCall(r["blind_decision"], r["blind_label"])
                    st.markdown(f"blind first call: {safe_text.md(first.against(r['decision'], r['new_label']))}")
                if r["note"]:
                    st.markdown(f"note: {safe_text.md(r['note'])}")
            c = st.columns([1, 3, 1, 2, 1])
            unsure = r["decision"] == "unsure"
            c[0].button(
                "Approve",
                key=f"approve_{r['id']}",
                type="primary",
                disabled=unsure,
                shortcut=KEYS["approve"],
                on_click=on_card,
                args=(r, "approve"),
                help="Unsure decisions have no label to approve: override or reject" if unsure else None,
            )
            c[1].text_input(
                "Reason to reject",
                key=f"reason_{r['id']}",
                label_visibility="collapsed",
                placeholder="Reason to reject (Esc, then X)",
            )
            c[2].button(
                "Reject", key=f"reject_{r['id']}", shortcut=KEYS["reject"], on_click=on_card, args=(r, "reject")
            )
            proposed = r["new_label"] or r["predicted_label"]
            c[3].selectbox(
                "Override label",
                ds.labels,
                key=f"ovl_{r['id']}",
                label_visibility="collapsed",
                index=ds.labels.index(proposed) if proposed in ds.labels else 0,
            )
            c[4].button("Override", key=f"override_{r['id']}", on_click=on_card, args=(r, "override"))
            if err:  # beside the control that caused it: the reason box, the override label, else under the buttons
                {"reject": c[1], "override": c[3]}.get(err[0], st).error(safe_text.md_message(err[1]))

# ---------------------------------------------------------------- the list, approved in one action
with st.container(border=True):
    n_own = sum(own_blocked(x) for x in rows)
    n_unsure = sum(x["decision"] == "unsure" and not own_blocked(x) for x in rows)
    n_ok = len(rows) - n_own - n_unsure
    more = f" of the {matched:,} that match (the next {PAGE} follow)" if matched > len(rows) else ""
    st.markdown(f"**Listed: {shell.plural(len(rows), 'decision')}**{more}")
    if bulk_note:  # the last bulk approve's outcome, beside its button
        (st.success if bulk_note[0] == "ok" else st.error)(safe_text.md_message(bulk_note[1]))
    if n_ok >= 2:
        st.button(
            f"Approve all {n_ok:,} listed",
            key="verify_bulk",
            on_click=bulk,
            args=([(x["id"], x["version"]) for x in rows],),
            help="One transaction, one audit-trail row per decision; refused whole if any of them changed meanwhile",
        )
        st.caption(
            f"Approves the {shell.plural(n_ok, 'decision')} listed below as proposed, in one transaction."
            + skipped_text(n_own, n_unsure, "Left out")
        )
    elif n_own or n_unsure:
        st.caption("Nothing to approve in bulk here." + skipped_text(n_own, n_unsure, "Left out"))
    shown = r["id"] if actionable else None
    table = [
        {
            "": "▶" if x["id"] == shown else "",
            "row": x["key"],
            **({} if ds.task == "ner" else {"given": x["given_label"], "proposed": x["proposed_label"] or "—"}),
            "decision": x["decision"],
            "reviewer": x["reviewer"]
            + (" (you: another lead verifies)" if own_blocked(x) else " (you)" if x["reviewer"] == user.name else ""),
            "decided at": x["created_at"][:16].replace("T", " "),
            "note": x["note"] or "",
        }
        for x in rows
    ]
    st.dataframe(table, hide_index=True, width="stretch")
    nav = st.columns([1, 1, 6])
    if full and nav[0].button(f"Next {PAGE}", key="verify_next"):
        vs.update(after=rows[-1]["id"], card=0)
        st.rerun()
    if vs["after"] and nav[1].button("First page", key="verify_first"):
        restart()
        st.rerun()
