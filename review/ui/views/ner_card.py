"""The NER cards: the sentence drawn with its tags, the Review page's token-by-token card, the Verify page's card."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell
from review.ui.views.notes import suspect_notes


def ner_sentence(
    tokens: list[str],
    tags: list[str],
    scheme: str,
    entity_types: list[str] | None = None,
    flagged=(),
    predicted=None,
    confidence=None,
    selected: int | None = None,
    clickable: bool = False,
) -> None:
    """A sentence with its entities coloured by type (with a legend above when ``entity_types``
    is given), suspect tokens outlined with the model's tag and confidence beside them; with
    ``clickable`` its tokens can be clicked (see review.ui.shell.keyboard()), ``selected`` stands out. Every
    token is escaped (review.ner)."""
    from review import ner

    if entity_types is not None:
        st.html(ner.legend_html(entity_types))
    st.html(
        '<div style="font-size:1.1rem;padding:0.6rem 1rem;border-radius:0.5rem;background:#f5f7fa;'
        'border:1px solid #dde3ea">'
        + ner.token_view_html(
            tokens, tags, scheme, flagged, predicted, confidence, selected=selected, clickable=clickable
        )
        + "</div>"
    )


def review_ner_sentence(
    db, ds: Dataset, user: auth.User, s, state: dict, revising: bool, navigation, picked: int | None = None
) -> None:
    """The review of one NER sentence: coloured view with suspects, change any token's tag,
    accept the model's tags for a suspect span, keep, unsure. Decisions go through review.workflow.

    Keyboard (review.ui.shortcuts): a token is selected by a click in the sentence (``picked``, from
    review.ui.shell.keyboard()), the Token list, N / P (next / previous suspect); its tag's key or button sets it,
    A takes the model's tag for it, Enter saves the changes."""
    import json

    from review import ner, workflow
    from review.ner import store as ner_store
    from review.ui import shortcuts

    tags_now = json.loads(s.current_label)
    view = s.probs or {}
    flagged, predicted, conf = view.get("flagged", []), view.get("predicted"), view.get("confidence")
    note_key = f"note_{ds.id}_{s.idx}"

    def act(decision: str, tags=None, what: str = "") -> None:
        try:
            workflow.decide(
                db, ds, s.idx, user, decision, s.version, new_label=tags, note=st.session_state.get(note_key, "")
            )
            what = what or {"keep": "kept as it is", "unsure": "marked unsure"}[decision]
            st.session_state["review_flash"] = ("ok", f"Sentence {s.key}: {what}.")
        except ReviewError as exc:  # StaleViewError included
            st.session_state["review_flash"] = ("warn", str(exc))
        state["back"] = None
        st.rerun()

    head = f"**Sentence {safe_text.md(s.key)}** · rank {s.rank if s.rank is not None else '–'} · {shell.plural(len(s.tokens), 'token')}"
    st.markdown(head + (" · going back to a sentence you decided" if revising else ""))
    if revising and not (
        s.latest_review and s.latest_review["reviewer"] == user.name and s.latest_review["status"] == "pending"
    ):
        ner_sentence(s.tokens, tags_now, ds.mapping.scheme, ner_store.entity_types(ds), flagged, predicted, conf)
        suspect_notes(s)
        st.info(f"This sentence is {s.state}: it can no longer be changed here.")
        if st.button("Back to the queue", key="leave_back"):
            state["back"] = None
            st.rerun()
        return

    n = len(s.tokens)
    ek = f"ner_edit_{ds.id}_{s.idx}_{s.version}"  # the annotator's changes, not saved yet
    edited = st.session_state.setdefault(ek, list(tags_now))
    tk = f"tok_{ek}"  # the selected token (the Token list's value)
    if st.session_state.get(tk) not in range(n):
        st.session_state[tk] = flagged[0] if flagged else 0
    if picked is not None and 0 <= picked < n:  # a click on a token of the sentence
        st.session_state[tk] = picked
    tok = st.session_state[tk]
    options = ner_store.tag_options(ds)
    keys = shortcuts.tag_keys(options)

    def put(tags: list[str]) -> None:  # callbacks: before the run, so the view is fresh
        st.session_state[ek] = list(tags)
        for k in [k for k in st.session_state if str(k).startswith(f"tag_{ek}_")]:
            del st.session_state[k]  # the New tag list re-reads the token's tag

    def set_tag(tag: str) -> None:
        tags = list(st.session_state[ek])
        tags[st.session_state[tk]] = tag
        put(tags)

    def step(direction: int) -> None:
        nxt = shortcuts.suspect_step(flagged, st.session_state[tk], direction)
        if nxt is not None:
            st.session_state[tk] = nxt

    def accept() -> None:  # the model's tag, the entity repaired around it
        j = st.session_state[tk]
        put(ner_store.accept_span(st.session_state[ek], predicted, j, j + 1, ds.mapping.scheme))

    ner_sentence(
        s.tokens,
        edited,
        ds.mapping.scheme,
        ner_store.entity_types(ds),
        flagged,
        predicted,
        conf,
        selected=tok,
        clickable=True,
    )
    suspect_notes(s)
    model = ""
    if predicted:
        model = f" · model: {safe_text.md(predicted[tok])}" + (f" ({float(conf[tok]):.0%})" if conf else "")
    st.markdown(
        f"**Selected:** token {tok} **{safe_text.md(s.tokens[tok])}** · tag {safe_text.md(edited[tok])}{model}"
        + (" · ⚠ suspect" if tok in flagged else "")
    )
    st.markdown(
        f"**Change a token's tag**: click the token in the sentence (or {shortcuts.NER_KEYS['next']} next suspect, "
        f"{shortcuts.NER_KEYS['previous']} previous), then press its tag's key or click the tag; "
        f"{shortcuts.NER_KEYS['accept']} takes the model's tag; {shortcuts.NER_KEYS['save']} saves."
    )
    row = st.container(horizontal=True, gap="small")
    for i, (tag, key) in enumerate(zip(options, keys)):
        if key is not None:
            row.button(
                safe_text.md(tag),
                key=f"tagkey_{i}",
                shortcut=key,
                on_click=set_tag,
                args=(tag,),
                disabled=edited[tok] == tag,
                help=f"Set the selected token's tag to {safe_text.md(tag)}",
            )
    nav = st.container(horizontal=True, gap="small")
    nav.button(
        "Previous suspect",
        key="prev_suspect",
        shortcut=shortcuts.NER_KEYS["previous"],
        on_click=step,
        args=(-1,),
        disabled=not flagged,
        help="Select the suspect token before this one",
    )
    nav.button(
        "Next suspect",
        key="next_suspect",
        shortcut=shortcuts.NER_KEYS["next"],
        on_click=step,
        args=(1,),
        disabled=not flagged,
        help="Select the suspect token after this one",
    )
    if predicted:
        nav.button(
            f"Model's tag: {safe_text.md(predicted[tok])}",
            key="accept_token",
            shortcut=shortcuts.NER_KEYS["accept"],
            on_click=accept,
            disabled=ner_store.accept_span(edited, predicted, tok, tok + 1, ds.mapping.scheme) == edited,
            help="Give the selected token the model's tag (the entity around it stays valid)",
        )
    c = st.columns([3, 2, 2], vertical_alignment="bottom")  # the same from lists (every tag, keyed or not)
    tok = c[0].selectbox(
        "Token",
        range(n),
        key=tk,  # labels fixed per sentence: Streamlit matches the choice by its label
        format_func=lambda j: f"{j}: {s.tokens[j]}  (given {tags_now[j]})" + ("  ⚠ suspect" if j in flagged else ""),
    )
    new_tag = c[1].selectbox(
        "New tag", options, index=options.index(edited[tok]) if edited[tok] in options else 0, key=f"tag_{ek}_{tok}"
    )
    if c[2].button("Set this tag", key="set_tag"):
        edited[tok] = new_tag
        st.rerun()
    changed = [j for j in range(len(edited)) if edited[j] != tags_now[j]]
    if changed:
        st.markdown(
            "**Your changes:** "
            + safe_text.md(", ".join(f"{j} {s.tokens[j]}: {tags_now[j]} → {edited[j]}" for j in changed[:8]))
        )
        problems = sorted(ner.scheme_violations(edited, ds.mapping.scheme), key=lambda p: p[0] != tok)  # selected first
        if problems:
            st.error(
                f"Not a valid {ds.mapping.scheme} sequence yet: "
                + "; ".join(
                    f"token {j} {safe_text.md(repr(s.tokens[j]))}: {safe_text.md(why)}" for j, why in problems[:3]
                )
                + ". Change that tag too."
            )
        st.caption("As given")
        ner_sentence(s.tokens, tags_now, ds.mapping.scheme, flagged=changed)
    st.text_input("Note (optional)", key=note_key)
    st.markdown("**Decide** (keyboard: K keep, U unsure, S skip, B back; Esc leaves the note)")
    b = st.columns(4)
    if b[0].button(
        "Save my changes", key="save_tags", type="primary", disabled=not changed, shortcut=shortcuts.NER_KEYS["save"]
    ):
        act("relabel", edited, what=f"{shell.plural(len(changed), 'tag')} changed")
    if b[1].button("Keep as it is", key="keep", shortcut="K", help="The given tags are right"):
        act("keep")
    if b[2].button("Unsure", key="unsure", shortcut="U", help="Leave it to a lead"):
        act("unsure")
    if changed and b[3].button("Discard my changes", key="discard"):
        st.session_state.pop(ek, None)
        st.rerun()
    spans = ner_store.flagged_spans(flagged) if predicted else []
    if spans:
        st.markdown("**Accept the model's tags** for a suspect span (one click saves the sentence)")
        cols = st.columns(min(len(spans), 4))
        for k, (a, z) in enumerate(spans[:8]):
            words = " ".join(s.tokens[a:z])
            proposal = ner_store.accept_span(edited, predicted, a, z, ds.mapping.scheme)
            if cols[k % len(cols)].button(
                f"{safe_text.md(words[:30])} → {safe_text.md(' '.join(predicted[a:z])[:30])}",
                key=f"accept_{k}",
                disabled=proposal == tags_now,
            ):
                act("relabel", proposal, what=f"the model's tags accepted for {words!r}")
    navigation()


def verify_ner_card(ds: Dataset, r: dict, do) -> None:
    """A pending NER decision: the sentence before and after, the changed tokens; approve,
    reject with a reason, or override with the lead's own tags (space-separated)."""
    import json

    tokens, before = json.loads(r["tokens"]), json.loads(r["current_label"])
    after = json.loads(r["new_label"]) if r["new_label"] else before
    what = {"relabel": "tags changed", "keep": "kept as it is", "unsure": "unsure"}[r["decision"]]
    st.markdown(
        f"**Sentence {safe_text.md(r['key'])}** · {what} by **{safe_text.md(r['reviewer'])}** at "
        f"{r['created_at'][:16].replace('T', ' ')}"
    )
    changed = [j for j in range(len(tokens)) if before[j] != after[j]]
    st.caption("Before")
    ner_sentence(tokens, before, ds.mapping.scheme, flagged=changed)
    if changed:
        st.caption(
            "After: " + safe_text.md(", ".join(f"{j} {tokens[j]}: {before[j]} → {after[j]}" for j in changed[:10]))
        )
        ner_sentence(tokens, after, ds.mapping.scheme, flagged=changed)
    if r["note"]:
        st.markdown(f"note: {safe_text.md(r['note'])}")
    c = st.columns([1, 3, 1, 3, 1])
    if c[0].button(
        "Approve", key=f"approve_{r['id']}", type="primary", disabled=r["decision"] == "unsure", shortcut="A"
    ):
        do(r, "approve")
    reason = c[1].text_input(
        "Reason to reject",
        key=f"reason_{r['id']}",
        label_visibility="collapsed",
        placeholder="Reason to reject (Esc, then X)",
    )
    if c[2].button("Reject", key=f"reject_{r['id']}", shortcut="X"):
        do(r, "reject", note=reason)
    own = c[3].text_input(
        "Your tags, space-separated", value=" ".join(after), key=f"ovl_{r['id']}", label_visibility="collapsed"
    )
    if c[4].button("Override", key=f"override_{r['id']}"):
        do(r, "override", label=own.split(), note=reason)
