"""Guidelines: the dataset's guideline page (Markdown, drawn safely by guidelines.render), its versions
(who, when, note; any one opened read-only), and for leads an editor with a live preview and a picker that
drafts a section from a confusion pair of the latest audit (appended to the editor, saved only by Save).

The editor's text lives in the session (kept across reruns, pages and a refused save); a save names the
version the editor started from, so a save over someone else's newer version is refused and the text kept.
Annotators see the current version beside the review card too (review.ui.views.guidelines)."""

import streamlit as st

from review import guidelines, safe_text, stats
from review.errors import ReviewError, StaleViewError
from review.ui import shell

db, user, ds = shell.page_with_dataset("Guidelines", "annotator", heading="Guidelines")
cur = guidelines.current(db, ds)
is_lead = user.can("lead")
FLASH = f"guidelines_flash_{ds.id}"
EDITOR, NOTE, PAIR, OPEN = (f"guidelines_{w}_{ds.id}" for w in ("editor", "note", "pair", "open"))


def when(at: str) -> str:
    return at[:16].replace("T", " ") + " UTC"


def head(g: guidelines.Guideline) -> None:
    st.caption(
        f"Version {g.version} · by {safe_text.md(g.edited_by)} · {when(g.edited_at)}"
        + (f" · {safe_text.md(g.note)}" if g.note else "")
    )


def draw(g: guidelines.Guideline) -> None:
    head(g)
    with st.container(border=True):
        st.markdown(guidelines.render(g.body))


tabs = st.tabs(["Guidelines", "Edit", "Versions"] if is_lead else ["Guidelines", "Versions"])

# ---------------------------------------------------------------- the current version, for everyone
with tabs[0]:
    if cur is None:
        st.info(
            "No guidelines for this dataset yet."
            + (
                " Write them in the Edit tab."
                if is_lead
                else " A lead writes them here; they show beside the review card."
            )
        )
    else:
        draw(cur)

# ---------------------------------------------------------------- the editor, for leads
if is_lead:
    # what the lead is writing, kept in the session: a widget's own state goes when the page is left
    draft = st.session_state.setdefault(
        f"guidelines_draft_{ds.id}",
        {"body": cur.body if cur else "", "base": cur.version if cur else 0, "pristine": cur.body if cur else ""},
    )
    if cur and cur.version != draft["base"] and draft["body"] == draft["pristine"]:
        draft.update(body=cur.body, base=cur.version, pristine=cur.body)  # untouched: follow the newest version
        st.session_state[EDITOR] = cur.body
    st.session_state.setdefault(EDITOR, draft["body"])

    def load(g: guidelines.Guideline | None, as_base: bool) -> None:
        """Put version ``g``'s text into the editor (as_base: it becomes the version the save builds on)."""
        body = g.body if g else ""
        st.session_state[EDITOR] = body
        draft["body"] = body
        if as_base:
            draft.update(base=g.version if g else 0, pristine=body)

    def rebase(n: int) -> None:
        draft["base"] = n  # keep the text; the next save builds on version n (its text read and merged by hand)

    def on_save() -> None:
        body = st.session_state.get(EDITOR, "")
        draft["body"] = body
        try:
            g = guidelines.save(db, ds, user, body, st.session_state.get(NOTE, ""), base_version=draft["base"])
        except StaleViewError as exc:
            st.session_state[FLASH] = ("error", str(exc))
            return
        except ReviewError as exc:
            st.session_state[FLASH] = ("error", str(exc))
            return
        draft.update(body=g.body, base=g.version, pristine=g.body)
        st.session_state[EDITOR] = g.body
        st.session_state[NOTE] = ""
        st.session_state[FLASH] = ("ok", f"Saved version {g.version} of the guidelines of {ds.name}.")

    def add_section(pair: tuple[str, str]) -> None:
        try:
            text = guidelines.draft_section(db, ds, pair[0], pair[1])
        except ReviewError as exc:
            st.session_state[FLASH] = ("error", str(exc))
            return
        now = st.session_state.get(EDITOR, "").rstrip()
        st.session_state[EDITOR] = (now + "\n\n" if now else "") + text
        draft["body"] = st.session_state[EDITOR]
        st.session_state[FLASH] = (
            "ok",
            f"Added a section {pair[0]} vs {pair[1]} at the end of the editor: write its rule, then Save "
            "(nothing is saved before).",
        )

    with tabs[1]:
        flash = st.session_state.pop(FLASH, None)  # in the tab: an element above the tabs would reset them
        if flash:  # names the dataset, the version, a user: data, not Markdown
            (st.success if flash[0] == "ok" else st.error)(safe_text.md_message(flash[1]))
        if cur and cur.version != draft["base"]:
            st.warning(
                f"Version {cur.version} was saved by {safe_text.md(cur.edited_by)} at {when(cur.edited_at)} after you "
                f"started editing {'version ' + str(draft['base']) if draft['base'] else 'the empty page'}. Your text "
                "is kept below. Read the new version (Guidelines tab), then either start again from it or keep your "
                "text and save it over it."
            )
            w = st.columns(2)
            w[0].button(
                f"Start again from version {cur.version} (drops your text)",
                key=f"guidelines_reload_{ds.id}",
                on_click=load,
                args=(cur, True),
            )
            w[1].button(
                f"Keep my text, to save over version {cur.version}",
                key=f"guidelines_rebase_{ds.id}",
                on_click=rebase,
                args=(cur.version,),
            )
        pairs = sorted(
            ((g, p, n) for g, p, n in stats.flagged_confusion(db, ds) if g != p), key=lambda t: (-t[2], t[0], t[1])
        )
        if ds.task == "text" and pairs:
            counts = {(g, p): n for g, p, n in pairs}
            c = st.columns([4, 1], vertical_alignment="bottom")
            pair = c[0].selectbox(
                "Add a section from a confusion pair",
                [(g, p) for g, p, _ in pairs],
                format_func=lambda t: f"{t[0]} vs {t[1]}",  # no count in it: the choice is matched by this text
                key=PAIR,
                help="Pairs (given label vs the model's) among the flagged rows of the latest audit, most flagged "
                "first. The section gets examples of both classes from verified decisions.",
            )
            c[1].button("Add to the editor", key=f"guidelines_add_{ds.id}", on_click=add_section, args=(pair,))
            st.caption(
                f"{shell.plural(counts[pair], 'flagged row')} given {pair[0]} that the model reads as {pair[1]}."
            )
        left, right = st.columns(2)
        with left:
            body = st.text_area(
                "Guidelines (Markdown)",
                key=EDITOR,
                height=520,
                help="Headings (###), lists, **bold**, tables, > quotes. No HTML; images show as links; links "
                "only to http, https or mailto.",
            )
            draft["body"] = body
            st.text_input("What changed (note, optional)", key=NOTE, max_chars=guidelines.MAX_NOTE)
            s = st.columns([1, 3], vertical_alignment="center")
            s[0].button("Save", key=f"guidelines_save_{ds.id}", type="primary", on_click=on_save)
            s[1].caption(
                ("Unsaved changes" if body.rstrip() != draft["pristine"].rstrip() else "No changes")
                + f" · builds on {'version ' + str(draft['base']) if draft['base'] else 'nothing yet (first version)'}"
            )
        with right:
            st.markdown("**Preview**")
            with st.container(border=True, height=600):
                if body.strip():
                    st.markdown(guidelines.render(body))
                else:
                    st.caption("(empty)")

# ---------------------------------------------------------------- the versions
with tabs[-1]:
    hist = guidelines.history(db, ds)
    if not hist:
        st.info("No version saved yet.")
    else:
        st.dataframe(
            [
                {
                    "version": h.version,
                    "edited by": h.edited_by,
                    "at": when(h.edited_at),
                    "note": h.note,
                    "characters": h.chars,
                }
                for h in hist
            ],
            hide_index=True,
            width="stretch",
        )
        versions = [h.version for h in hist]
        if st.session_state.get(OPEN) not in versions:
            st.session_state[OPEN] = versions[0]
        n = st.selectbox(
            "Open a version (read-only)",
            versions,
            key=OPEN,
            format_func=lambda v: f"version {v}" + (" (current)" if v == versions[0] else ""),
        )
        try:
            old = guidelines.version(db, ds, n)
        except ReviewError as exc:
            shell.error(exc)
        else:
            draw(old)
            with st.expander("Markdown source"):
                st.code(old.body, language="markdown")
            if is_lead and old.version != versions[0]:
                st.button(
                    f"Copy version {old.version} into the editor (replaces its text; saved only by Save)",
                    key=f"guidelines_copy_{ds.id}",
                    on_click=load,
                    args=(old, False),
                )
