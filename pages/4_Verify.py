"""Verify queue (leads): approve, reject with a reason (back to the queue), or override."""
import streamlit as st

from review import ui, workflow
from review.errors import ReviewError

db, user, ds = ui.page_with_dataset("Verify", "lead", heading="Verify decisions")

prog = workflow.progress(db, ds)
st.caption(f"{ui.plural(prog['pending'], 'decision')} awaiting verification · {prog['approved']:,} approved · {prog['overridden']:,} overridden")
flash = st.session_state.pop("verify_flash", None)
if flash:
    (st.warning if flash[0] == "warn" else st.success)(flash[1])

after = st.session_state.get("verify_after", 0)
page = workflow.pending(db, ds, user, limit=20, after_id=after)
if not page:
    if after:
        st.session_state["verify_after"] = 0
        st.rerun()
    st.success("Nothing awaits verification.")
    st.stop()


def do(review: dict, action: str, label: str | None = None, note: str = "") -> None:
    try:
        workflow.verify(db, review["id"], user, action, review["version"], label=label, note=note)
        done = {"approve": "approved", "reject": "rejected, back in the queue",
                "override": f"overridden to {label}" if isinstance(label, str) else "overridden with your tags"}[action]
        st.session_state["verify_flash"] = ("ok", f"{'Sentence' if ds.task == 'ner' else 'Row'} {review['key']}: {done}.")
    except ReviewError as exc:
        st.session_state["verify_flash"] = ("warn", str(exc))
    st.rerun()


for r in page:
    with st.container(border=True):
        if ds.task == "ner":
            ui.verify_ner_card(ds, r, do)
            continue
        top = st.columns([4, 2])
        with top[0]:
            ui.show_text(r["text"], key=f"v{r['id']}")
        with top[1]:
            change = f"relabel → {r['new_label']}" if r["decision"] == "relabel" else r["decision"]
            st.html(ui.badge(f"given: {r['given_label']}", "#d62728") + ui.badge(change, "#ff7f0e"))
            st.markdown(f"**{ui.escape_md(r['key'])}** (row {r['idx']}) · by **{ui.escape_md(r['reviewer'])}** at {r['created_at'][:16].replace('T', ' ')}")
            if r["predicted_label"] is not None:
                st.markdown(f"{'consensus' if ds.mapping.multi else 'model'}: **{ui.escape_md(r['predicted_label'])}** ({r['confidence']:.0%}), quality {r['quality']:.3f}")
            if r["note"]:
                st.markdown(f"note: {ui.escape_md(r['note'])}")
        c = st.columns([1, 3, 1, 2, 1])
        if c[0].button("Approve", key=f"approve_{r['id']}", type="primary", disabled=r["decision"] == "unsure",
                       help="Unsure decisions have no label to approve: override or reject" if r["decision"] == "unsure" else None):
            do(r, "approve")
        reason = c[1].text_input("Reason to reject", key=f"reason_{r['id']}", label_visibility="collapsed", placeholder="Reason to reject")
        if c[2].button("Reject", key=f"reject_{r['id']}"):
            do(r, "reject", note=reason)
        proposed = r["new_label"] or r["predicted_label"]
        label = c[3].selectbox("Override label", ds.labels, key=f"ovl_{r['id']}", label_visibility="collapsed",
                               index=ds.labels.index(proposed) if proposed in ds.labels else 0)
        if c[4].button("Override", key=f"override_{r['id']}"):
            do(r, "override", label=label, note=reason)

if len(page) == 20 and st.button("Next 20", key="verify_next"):
    st.session_state["verify_after"] = page[-1]["id"]
    st.rerun()
