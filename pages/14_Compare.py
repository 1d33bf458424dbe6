"""Compare (leads): two versions of a dataset (every export is one, see the Export page) or two runs.

Two versions: the labels changed, the classes moved (from -> to), the counts per class side by side,
the flag counts and precision of the runs each carried, and the changed rows a page at a time (keyset
on the row number). Versions never change once recorded, so a comparison is computed once per pair and
page (cached on the database file, the dataset, the two versions and when they were recorded).
Two runs: review.rundiff's comparison (flags, precision, labels the model sees differently)."""

import streamlit as st

from review import datasets, rundiff, safe_text, store, versions
from review.errors import ReviewError
from review.ui import shell

db, user, ds = shell.page_with_dataset("Compare", "lead", heading="Compare versions and runs")

PAGE = 50


@st.cache_data(max_entries=32, show_spinner="Comparing the two versions…")
def _diff(path: str, ds_id: int, a: int, b: int, stamps: tuple, after: int) -> versions.VersionDiff:
    conn = store.connect(path)
    try:
        return versions.compare_versions(conn, datasets.get(conn, ds_id), a, b, after=after, limit=PAGE)
    finally:
        conn.conn.close()


def _label(v) -> str:
    return versions.changed_label_text(v)


mode = st.radio("Compare", ["Two versions", "Two runs"], horizontal=True, key="compare_mode")

if mode == "Two runs":
    runs = [r for r in datasets.runs(db, ds.id) if r["status"] == "done" and r["kind"] == "audit"]
    if len(runs) < 2:
        st.info(
            f"{safe_text.md(ds.name)} has {shell.plural(len(runs), 'finished audit run')}: run the audit again "
            "(Audit page) to compare two runs."
        )
        st.stop()
    names = {r["id"]: f"run {r['id']} · {(r['finished_at'] or '')[:16].replace('T', ' ')}" for r in runs}
    ids = list(names)  # newest first
    c1, c2 = st.columns(2)
    run_a = c1.selectbox("Run A (before)", ids, index=1, format_func=names.get, key="compare_run_a")
    run_b = c2.selectbox("Run B (after)", ids, index=0, format_func=names.get, key="compare_run_b")
    if run_a == run_b:
        st.info("Pick two different runs.")
        st.stop()
    try:
        rd = rundiff.compare_runs(db, ds, run_a, run_b)
    except ReviewError as exc:
        shell.error(exc)
        st.stop()
    st.subheader(f"{shell.plural(rd.labels_changed, 'label')} changed between the runs")
    m = st.columns(4)
    m[0].metric(f"Flagged, run {run_a}", f"{rd.flagged_a:,}")
    m[1].metric(f"Flagged, run {run_b}", f"{rd.flagged_b:,}", delta=f"{rd.flagged_b - rd.flagged_a:+,}")
    for col, run, p in ((m[2], run_a, rd.precision_a), (m[3], run_b, rd.precision_b)):
        col.metric(
            f"Precision, run {run}",
            "–" if p is None or p.precision is None else f"{p.precision:.0%}",
            help=None if p is None else f"{p.wrong} of {p.decided} decided flagged rows were wrong labels",
        )
    st.markdown("\n".join(f"- {safe_text.md(line.strip())}" for line in rundiff.format_run_diff(rd)))
    st.stop()

listed = versions.versions(db, ds)
if len(listed) < 2:
    st.info(
        f"{safe_text.md(ds.name)} has {shell.plural(len(listed), 'version')}: every download of the cleaned "
        "labels on the Export page records one. Export twice (say, before and after a round of corrections) "
        "to compare them."
    )
    st.stop()

by_number = {v.number: v for v in listed}
numbers = list(by_number)  # newest first


def _name(n: int) -> str:
    v = by_number[n]
    return f"version {n} · {v.kind} · {shell.plural(v.n_rows, 'row')} · {v.created_by} · {v.created_at[:16].replace('T', ' ')}"


c1, c2 = st.columns(2)
a = c1.selectbox("Version A (before)", numbers, index=1, format_func=_name, key="compare_a")
b = c2.selectbox("Version B (after)", numbers, index=0, format_func=_name, key="compare_b")
if a == b:
    st.info("Pick two different versions.")
    st.stop()

paging = st.session_state.get("compare_paging")
if not paging or paging.get("pair") != (ds.id, a, b):  # a new pair starts at the first page
    paging = st.session_state["compare_paging"] = {"pair": (ds.id, a, b), "stack": [-1]}
after = paging["stack"][-1]

try:
    diff = _diff(
        store.db_path(),
        ds.id,
        a,
        b,
        (by_number[a].created_at, by_number[b].created_at, by_number[a].sha256, by_number[b].sha256),
        after,
    )
except ReviewError as exc:
    shell.error(exc)
    st.stop()

unit = "sentence" if "ner" in (diff.kind_a, diff.kind_b) else "label"
st.subheader(f"{shell.plural(diff.changed, unit)} changed")
st.caption(
    f"Version {a}: {shell.plural(diff.n_rows_a, 'row')} (run {diff.run_a}); version {b}: "
    f"{shell.plural(diff.n_rows_b, 'row')} (run {diff.run_b})."
    + (
        f" Rows only in version {a}: {diff.only_a:,}; only in version {b}: {diff.only_b:,} (a subset holds fewer rows)."
        if diff.only_a or diff.only_b
        else ""
    )
)

m1, m2 = st.columns(2)
for col, n, f in ((m1, a, diff.flags_a), (m2, b, diff.flags_b)):
    with col:
        st.markdown(f"**Flags, version {n}**")
        if not f:
            st.caption("No audit run when it was exported.")
            continue
        x, y = st.columns(2)
        x.metric(f"Flagged (run {f['run_id']})", f"{f['flagged']:,}")
        p = f.get("precision")
        y.metric(
            "Precision",
            "–" if p is None else f"{p:.0%}",
            help=f"{f['wrong']} of {f['decided']} decided flagged rows were wrong labels",
        )
if diff.run_lines:
    with st.expander(f"Runs {diff.run_a} → {diff.run_b}", expanded=False):
        st.markdown("\n".join(f"- {safe_text.md(line)}" for line in diff.run_lines))

t1, t2 = st.columns(2)
with t1:
    st.markdown("**Classes moved**" if unit == "label" else "**Tags moved (tokens)**")
    if diff.moved:
        st.dataframe(
            [{"from": p, "to": q, "rows" if unit == "label" else "tokens": k} for p, q, k in diff.moved[:200]],
            hide_index=True,
        )
    else:
        st.caption("None.")
with t2:
    st.markdown("**Counts per class**")
    st.dataframe(
        [{"class": c, f"version {a}": x, f"version {b}": y, "change": y - x} for c, x, y in diff.counts],
        hide_index=True,
    )

st.markdown(f"**Rows changed** (page {len(paging['stack'])})")
if diff.rows:
    st.dataframe(
        [
            {
                "row": r.idx,
                "id": r.key,
                f"version {a}": _label(r.label_a),
                f"version {b}": _label(r.label_b),
                "text": r.text,
            }
            for r in diff.rows
        ],
        hide_index=True,
    )
else:
    st.caption("No row changed between these versions.")
p1, p2, _ = st.columns([1, 1, 4])
if p1.button("Previous page", disabled=len(paging["stack"]) == 1, key="compare_prev"):
    paging["stack"].pop()
    st.rerun()
if p2.button("Next page", disabled=diff.next_after is None, key="compare_next"):
    paging["stack"].append(diff.next_after)
    st.rerun()
