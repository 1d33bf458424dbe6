"""The checks beyond label errors (review.findings), drawn: the Audit page's "Beyond label errors" tab (per kind
its count, dataset-level score and message; the rows of a kind a page at a time, keyset on the row number;
the near-duplicate sets, conflicting ones first, each opened with its rows and the resolve actions), the count
line of the Audit page's run summary, and the review card's reasons (a line per finding of the row).

Reads go through review.findings.summary (summary, rows, dup_sets, dup_set); a set is resolved by
review.findings.resolve.resolve_dup_set, a refusal shown with shell.error. Every string from the data (texts,
labels, split values, messages) is escaped before it is drawn as Markdown."""

from __future__ import annotations

import streamlit as st

from review import auth, safe_text, workflow
from review.datasets import Dataset
from review.errors import ReviewError
from review.ui import shell

PAGE = 50  # rows of a kind per page
SETS_PAGE = 20  # near-duplicate sets per page
KINDS = {"outlier": "Outliers", "near_duplicate": "Near duplicates", "ambiguous": "Ambiguous"}
# the dataset-level kinds of summary() and the row-level kind each drills down into
CHECKS = ("outliers", "near_duplicates", "ambiguous", "class_imbalance", "non_iid")
ROW_KIND = {"outliers": "outlier", "near_duplicates": "near_duplicate", "ambiguous": "ambiguous", "non_iid": "non_iid"}


def _summary(db, run_id: int) -> list:
    from review.findings import summary as fs

    return fs.summary(db, run_id)


def queue_filters(db, run_id: int | None, dataset_id: int | None = None) -> dict[str, str]:
    """The Review page's extra filters: {"Outliers": "outlier", ...}, only the kinds the run found rows of; and
    "Leakage" when a leakage check of ``dataset_id`` found copies in another upload (review.findings.leakage)."""
    if run_id is None:
        return {}
    try:
        from review.findings import leakage

        have = {ROW_KIND.get(k.kind, k.kind) for k in _summary(db, run_id) if k.count}
    except ImportError:  # the checks are not installed: no filter
        return {}
    out = {title: kind for kind, title in KINDS.items() if kind in have}
    if dataset_id is not None and leakage.has_copies(db, dataset_id):
        out["Leakage"] = "leakage"
    return out


def _score(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def summary_line(db, run_id: int) -> None:
    """One caption in the run summary: the count of every kind of finding of the run (nothing if none ran)."""
    try:
        kinds = _summary(db, run_id)
    except ImportError:
        return
    if kinds:
        st.caption(
            "Beyond label errors: " + " · ".join(f"{safe_text.md(k.title)} {k.figure}" for k in kinds),
            help="Outliers, near duplicates, ambiguous rows, class imbalance and a non-IID warning: the tab "
            "Beyond label errors",
        )


def findings_tab(db, ds: Dataset, user: auth.User, run_id: int) -> None:
    """The Audit page's "Beyond label errors" tab for run ``run_id``, then leakage against another upload
    (review.ui.views.leakage: asked for, not part of the run)."""
    from review.ui.views.leakage import leakage_section

    _run_checks(db, ds, user, run_id)
    leakage_section(db, ds, user)


def _run_checks(db, ds: Dataset, user: auth.User, run_id: int) -> None:
    kinds = _summary(db, run_id)
    if not kinds:
        from review.findings import summary as fs

        why = fs.skipped(db, run_id)
        st.info(
            f"This run has no check beyond label errors: {safe_text.md(why)}"
            if why
            else "This run has no check beyond label errors: run the audit again to compute them."
        )
        return
    for k in kinds:  # one line each: count, dataset-level score, message
        st.markdown(
            f"**{safe_text.md(k.title)}**: {k.figure} · score {_score(k.score)} · {safe_text.md(k.message or '')}",
            help=f"Method: {k.method}. Scores are in [0, 1], lower is more of an issue." if k.method else None,
        )
    drill = [ROW_KIND[k.kind] for k in kinds if k.kind in ROW_KIND and k.count and ROW_KIND[k.kind] != "near_duplicate"]
    if any(k.kind == "near_duplicates" and k.count for k in kinds):
        st.markdown("#### Near-duplicate sets")
        dup_sets_section(db, ds, user, run_id)
    if drill:
        st.markdown("#### Rows by kind")
        kind = st.selectbox(
            "Kind", drill, key=f"findings_kind_{run_id}", format_func=lambda x: KINDS.get(x, x.replace("_", " "))
        )
        rows_section(db, ds, run_id, kind)


def rows_section(db, ds: Dataset, run_id: int, kind: str) -> None:
    """The rows of one kind, PAGE at a time (keyset on the row number, a stack of page starts)."""
    from review.findings import summary as fs

    pages = st.session_state.setdefault(f"findings_pages_{run_id}_{kind}", [-1])
    got = fs.rows(db, run_id, kind, after=pages[-1], limit=PAGE)
    st.dataframe(
        [
            {
                "row": r.idx,
                "text": r.snippet,
                "current label": r.current_label,
                "state": r.state,
                "score": r.score,
                "why": reason(kind, r.score, r.detail or {}),
            }
            for r in got
        ],
        hide_index=True,
        width="stretch",
        key=f"findings_rows_{run_id}_{kind}",
        column_config={
            "text": st.column_config.TextColumn(width="large"),
            "score": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(f"Page {len(pages)}: rows {got[0].idx}–{got[-1].idx}" if got else "No rows on this page.")
    b1, b2 = st.columns(2)
    if len(pages) > 1 and b1.button("First page", key=f"findings_first_{kind}"):
        pages[:] = [-1]
        st.rerun()
    if len(got) == PAGE and b2.button(f"Next {PAGE}", key=f"findings_next_{kind}"):
        pages.append(got[-1].idx)
        st.rerun()


def _set_title(d) -> str:
    rows = list(d.rows)
    head = ", ".join(str(r) for r in rows[:6]) + (" …" if len(rows) > 6 else "")
    what = "leakage" if d.leakage else "conflicting labels" if d.n_labels > 1 else "same label"
    done = " · resolved" if d.status == "resolved" else ""
    return f"Set {d.id}: {d.n_rows} rows ({head}) · {what}{done}"


def dup_sets_section(db, ds: Dataset, user: auth.User, run_id: int) -> None:
    """The near-duplicate sets, conflicting first, SETS_PAGE at a time; one opened at a time."""
    from review.findings import summary as fs

    pages = st.session_state.setdefault(f"dupsets_pages_{run_id}", [0])
    got = fs.dup_sets(db, run_id, after_id=pages[-1], limit=SETS_PAGE)
    if not got:
        st.caption("No near-duplicate set on this page.")
        return
    titles = {d.id: _set_title(d) for d in got}
    pick = st.radio(
        "Near-duplicate sets",
        [None, *titles],
        format_func=lambda i: "none opened" if i is None else titles[i],
        key=f"dupset_pick_{run_id}_{pages[-1]}",
        label_visibility="collapsed",
    )
    b1, b2 = st.columns(2)
    if len(pages) > 1 and b1.button("First sets", key="dupsets_first"):
        pages[:] = [0]
        st.rerun()
    if len(got) == SETS_PAGE and b2.button(f"Next {SETS_PAGE} sets", key="dupsets_next"):
        pages.append(got[-1].id)
        st.rerun()
    if pick is not None:
        dup_set_panel(db, ds, user, pick)


def dup_set_panel(db, ds: Dataset, user: auth.User, set_id: int) -> None:
    """One set opened: its rows (text, current label, state), leakage with the split values, the actions."""
    from review.findings import summary as fs

    d = fs.dup_set(db, set_id)
    with st.container(border=True, key=f"dupset_{set_id}"):
        st.markdown(f"**{safe_text.md(_set_title(d))}**")
        splits = _splits(db, ds, d) if d.leakage else {}
        if d.leakage:
            st.warning(
                "Leakage: these rows come from different uploaded splits"
                + (f" ({', '.join(safe_text.md(s) for s in sorted(set(splits.values())))})" if splits else "")
                + ": a copy in the training split tells the model the answer for the other."
            )
        flash = st.session_state.pop(f"dupset_flash_{set_id}", None)
        if flash:
            st.success(safe_text.md_message(flash))
        resolved = d.status == "resolved"
        if resolved:
            st.info(
                "Resolved"
                + (f": {safe_text.md(_resolution_text(d))}" if _resolution_text(d) else "")
                + ". The rows' decisions wait for verification on the Verify page."
            )
        for r in d.members:
            c1, c2 = st.columns([5, 2], vertical_alignment="center")
            c1.markdown(
                f"**row {r.idx}** · {safe_text.md(r.current_label or '–')} · {safe_text.md(r.state or 'open')}"
                + (f" · split {safe_text.md(splits[r.idx])}" if r.idx in splits else "")
                + f"  \n{safe_text.md(_snippet(r.text))}"
            )
            if not resolved and c2.button("Keep this one, exclude the rest", key=f"dup_keep_{set_id}_{r.idx}"):
                _resolve(db, ds, user, set_id, "keep_one", keep=r.idx)
        if not resolved:
            c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
            label = c1.selectbox("Give all one label", ds.labels, key=f"dup_label_{set_id}")
            if c2.button(f"Give all one label: {label}", key=f"dup_one_{set_id}"):
                _resolve(db, ds, user, set_id, "one_label", label=label)


def _resolve(db, ds: Dataset, user: auth.User, set_id: int, how: str, **kw) -> None:
    from review.findings.resolve import resolve_dup_set

    try:
        res = resolve_dup_set(db, ds, user, set_id, how, **kw)
    except ReviewError as exc:
        shell.error(exc)
        return
    st.session_state[f"dupset_flash_{set_id}"] = _result_text(set_id, res)
    st.rerun()


def _result_text(set_id: int, res) -> str:
    """What the resolution did, in words (DupSetResolution.message)."""
    return res.message() if hasattr(res, "message") else f"Near-duplicate set {set_id} resolved."


def _resolution_text(d) -> str:
    r = getattr(d, "resolution", None)
    if not isinstance(r, dict):
        return ""
    if r.get("how") == "keep_one":
        return f"kept row {r.get('keep')}, excluded the rest"
    if r.get("how") == "one_label":
        return f"all rows labelled {r.get('label')}"
    return ""


SPLIT_COLUMNS = ("split", "fold", "subset")


def _splits(db, ds: Dataset, d, limit: int = 20) -> dict[int, str]:
    """{row: its split value} for the first ``limit`` rows of a leakage set (the metadata column named split,
    fold or subset, any case), read row by row (a set is small)."""
    out = {}
    for i in list(d.rows)[:limit]:
        meta = workflow.get_suspect(db, ds, i, d.run_id).meta
        for k, v in meta.items():
            if str(k).strip().lower() in SPLIT_COLUMNS and v not in (None, ""):
                out[i] = str(v)
                break
    return out


def _snippet(text: str | None, n: int = 300) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[:n].rsplit(" ", 1)[0] + " …"


def reason(kind: str, score: float | None, detail: dict, rows: tuple[int, ...] = (), conflicting: bool = False) -> str:
    """One line for a finding (pure): "outlier: far from every other row (score 0.03)", "near duplicate of rows 12, 40
    with other labels", "two classes both likely: billing 48%, shipping 45%"."""
    if kind == "outlier":
        rules = detail.get("rules") or ["isolated"]  # runs before the class rule had only isolated rows
        fit = detail.get("class_fit")
        words = {
            "isolated": "far from every other row",
            "unlike any class": "unlike any class"
            + (f" (the labels around it {max(fit, 0):.0%} of the way from chance to sure)" if fit is not None else ""),
        }
        return f"outlier: {', '.join(words.get(r, r) for r in rules)} (score {_score2(score)})"
    if kind == "near_duplicate":
        listed = ", ".join(str(i) for i in rows[:8]) + (" …" if len(rows) > 8 else "")
        of = f" of row{'s' if len(rows) != 1 else ''} {listed}" if rows else ""
        return f"near duplicate{of}" + (" with other labels" if conflicting else "")
    if kind == "ambiguous":
        classes, probs = detail.get("classes") or [], detail.get("probs") or []
        both = ", ".join(f"{c} {p:.0%}" for c, p in zip(classes, probs, strict=False))
        return "two classes both likely" + (f": {both}" if both else "")
    if kind == "non_iid":
        return f"unlike the rows around it in upload order (non-IID score {_score2(score)})"
    return f"{kind.replace('_', ' ')} (score {_score2(score)})"


def _score2(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def reasons_lines(s: workflow.Suspect) -> list[str]:
    """The reasons a row's findings give, one line each (pure)."""
    return [reason(f.kind, f.score, f.detail, f.set_rows, f.conflicting) for f in s.findings]


def finding_reasons(s: workflow.Suspect) -> None:
    """The review card's reasons from the checks beyond label errors (nothing when the row has none)."""
    lines = reasons_lines(s)
    if lines:
        st.markdown(
            "**Also found:**\n" + "\n".join(f"- {safe_text.md(line)}" for line in lines),
            help="The audit's checks beyond label errors (the Audit page's tab Beyond label errors)",
        )
