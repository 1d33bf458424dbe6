"""The writes of the checks (review.findings): inside the caller's transaction (the audit run's), so a
run's checks land with its scores and its trail row ``audit_run`` or not at all.

- ``row_findings``: one row per flagged row and kind (outlier, near_duplicate, ambiguous)
- ``dup_sets``: each near-duplicate set, conflicting ones first (their ids are the lower)
- ``row_neighbours``: each row's ``K`` nearest rows, for every row up to ``ALL_ROWS_UP_TO`` rows; above,
  only for rows the run flagged and rows with a finding
- ``findings``: one dataset-level row per check (outliers, near_duplicates, ambiguous, class_imbalance,
  non_iid), rows most severe first (up to ``MAX_ROWS``)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import sqlite_utils

from review.datasets import Dataset
from review.findings import ChecksResult

ALL_ROWS_UP_TO = 200_000
MAX_ROWS = 1_000


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 or x == 0 else f"{100 * x:.2g}%"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _neighbour_rows(res: ChecksResult, run_id: int, only: set[int] | None) -> Iterator[tuple]:
    idx, sim = res.neighbours.idx, res.neighbours.sim
    rows = range(res.n) if only is None else sorted(only)
    for i in rows:
        ok = idx[i] >= 0
        yield (
            run_id,
            int(i),
            json.dumps([[int(j), round(float(s), 4)] for j, s in zip(idx[i][ok], sim[i][ok])]),
        )


def _finding(run_id: int, kind: str, rows: list[int], n_rows: int, message: str, detail: dict) -> tuple:
    rows = [int(r) for r in rows[:MAX_ROWS]]
    return (
        run_id,
        kind,
        min(rows) if rows else None,
        max(rows) if rows else None,
        n_rows,
        message,
        json.dumps(rows),
        json.dumps(detail),
    )


def _outlier_detail(out, i: int) -> dict:
    """What a flagged outlier row keeps: its distance, its class fit and the rules that flag it."""
    d = {"distance": round(float(out.distance[i]), 4), "rules": out.rules(i)}
    if not np.isnan(out.class_fit[i]):
        d["class_fit"] = round(float(out.class_fit[i]), 4)
    if not np.isnan(out.own_fit[i]):
        d["own_fit"] = round(float(out.own_fit[i]), 4)
    return d


def _outliers_message(out, k: int) -> str:
    iso, unp = int(out.isolated.sum()), int(out.unplaced.sum())
    parts = []
    if iso:
        parts.append(
            f"{_plural(iso, 'row')} far from every other row (average cosine distance to the {k} nearest above"
            f" {out.cutoff:.3f})"
        )
    if unp:
        parts.append(
            f"{_plural(unp, 'row')} unlike any class: they and the rows nearest them carry labels the model"
            f" predicts no better than chance (lift below {out.fit_cutoff}), as texts of another kind forced"
            " into the classes do (a row whose own label the model is sure of is left out)"
        )
    if parts:
        return "; ".join(parts) + ". Out of domain, garbled or of a kind the data barely has: exclude or relabel."
    return "No row is far from the others, and no group of rows carries labels the model cannot learn."


def write(db: sqlite_utils.Database, ds: Dataset, run_id: int, res: ChecksResult, flagged_rows=None) -> dict:
    """Write a run's checks (see the module's doc); ``flagged_rows``: the rows the run flagged as label
    errors (they keep their neighbours above ALL_ROWS_UP_TO rows). Returns res.counts()."""
    names, method = res.names, res.neighbours.method
    conn = db.conn
    out, dup, amb, imb, order = res.outliers, res.duplicates, res.ambiguous, res.imbalance, res.non_iid

    # near-duplicate sets first: their ids go on the rows
    set_ids = []
    for s in dup.sets:
        cur = conn.execute(
            "INSERT INTO dup_sets(run_id, dataset_id, n_rows, n_labels, leakage, rows, similarity) VALUES (?,?,?,?,?,?,?)",
            [run_id, ds.id, len(s.rows), s.n_labels, int(s.leakage), json.dumps(s.rows), s.similarity],
        )
        set_ids.append(cur.lastrowid)

    o_rows = np.nonzero(out.flagged)[0]
    o_rows = o_rows[np.argsort(out.score[o_rows], kind="stable")]
    a_rows = np.nonzero(amb.flagged)[0]
    a_rows = a_rows[np.argsort(amb.score[a_rows], kind="stable")]
    d_rows = sorted(dup.row_set, key=lambda i: (dup.row_set[i], -dup.row_similarity[i], i))
    rf = []
    rf += [
        (
            run_id,
            "outlier",
            int(i),
            float(out.score[i]),
            None,
            json.dumps(_outlier_detail(out, int(i))),
        )
        for i in o_rows
    ]
    rf += [
        (
            run_id,
            "near_duplicate",
            int(i),
            round(1.0 - dup.row_similarity[i], 4),
            set_ids[dup.row_set[i]],
            json.dumps({"similarity": round(dup.row_similarity[i], 4)}),
        )
        for i in d_rows
    ]
    rf += [
        (
            run_id,
            "ambiguous",
            int(i),
            round(float(amb.score[i]), 4),
            None,
            json.dumps(
                {
                    "classes": [names[amb.first[i]], names[amb.second[i]]],
                    "probs": [round(float(amb.p1[i]), 4), round(float(amb.p2[i]), 4)],
                }
            ),
        )
        for i in a_rows
    ]
    conn.executemany("INSERT INTO row_findings(run_id, kind, idx, score, set_id, detail) VALUES (?,?,?,?,?,?)", rf)

    if res.n <= ALL_ROWS_UP_TO:
        only = None
    else:
        only = {int(i) for i in o_rows} | set(dup.row_set) | {int(i) for i in a_rows}
        if flagged_rows is not None:
            only |= {int(i) for i in np.nonzero(np.asarray(flagged_rows, dtype=bool))[0]}
    conn.executemany(
        "INSERT INTO row_neighbours(run_id, idx, neighbours) VALUES (?,?,?)", _neighbour_rows(res, run_id, only)
    )

    n_conf = sum(1 for s in dup.sets if s.n_labels > 1)
    n_leak = sum(1 for s in dup.sets if s.leakage)
    dup_share = len(dup.row_set) / max(res.n, 1)
    findings = [
        _finding(
            run_id,
            "outliers",
            o_rows.tolist(),
            len(o_rows),
            _outliers_message(out, res.neighbours.idx.shape[1]),
            {
                "score": round(out.dataset_score, 4),
                "threshold": out.threshold,
                "cutoff": round(out.cutoff, 4),
                "isolated": int(out.isolated.sum()),
                "unlike_any_class": int(out.unplaced.sum()),
                "class_fit_cutoff": out.fit_cutoff,
                "own_label_sure": out.own_sure,
                "method": method,
                "features": res.source,
            },
        ),
        _finding(
            run_id,
            "near_duplicates",
            d_rows,
            len(d_rows),
            (
                f"{_plural(len(d_rows), 'row')} in {_plural(len(dup.sets), 'set')} of near duplicates (cosine >= "
                f"{dup.threshold}); {_plural(n_conf, 'set')} with conflicting labels"
                + (f", {_plural(n_leak, 'set')} spanning splits ({res.split_column})" if n_leak else "")
                + "."
            )
            if dup.sets
            else "No near duplicates.",
            {
                "score": round(1.0 - dup_share, 4),
                "threshold": dup.threshold,
                "sets": len(dup.sets),
                "conflicting_sets": n_conf,
                "leakage_sets": n_leak,
                "split_column": res.split_column,
                "method": method,
            },
        ),
        _finding(
            run_id,
            "ambiguous",
            a_rows.tolist(),
            len(a_rows),
            f"{_plural(len(a_rows), 'row')} the model finds two classes both likely for (each >= {amb.min_prob:.0%}, "
            f"at most {amb.max_gap:.0%} apart): unclear rows or overlapping classes."
            if len(a_rows)
            else "No row sits between two classes.",
            {
                "score": round(1.0 - len(a_rows) / max(res.n, 1), 4),
                "threshold": {"min_prob": amb.min_prob, "max_gap": amb.max_gap},
                "method": "exact",
            },
        ),
        _finding(
            run_id,
            "class_imbalance",
            [],
            0,
            (
                "; ".join(f"class {c} is {_pct(imb.shares[c])} of rows" for c in imb.minority)
                + f" (below {_pct(imb.cutoff)}): a rare class, not noise; its rows are no more suspect for it."
            )
            if imb.minority
            else f"Classes are balanced enough: class {imb.rarest} is {_pct(imb.score)} of rows, the rarest.",
            {
                "score": round(imb.score, 4),
                "threshold": imb.threshold,
                "cutoff": round(imb.cutoff, 4),
                "minority": imb.minority,
                "shares": {k: round(v, 4) for k, v in imb.shares.items()},
                "method": "exact",
            },
        ),
        _finding(
            run_id,
            "non_iid",
            list(range(order.worst_block[0], order.worst_block[1] + 1)) if order.flagged and order.worst_block else [],
            0,
            (
                "The rows are not in random order: "
                + (f"nearby rows are alike (p = {order.features_p:.3g})" if order.features_drift else "")
                + ("; " if order.features_drift and order.labels_drift else "")
                + (
                    f"labels drift with row order (p = {order.labels_p:.3g}; rows {order.worst_block[0]}-"
                    f"{order.worst_block[1]} differ most)"
                    if order.labels_drift and order.worst_block
                    else ""
                )
                + ". Shuffle before splitting, and check how the data was collected."
            )
            if order.flagged
            else "Features and labels do not drift with row order.",
            {
                "score": round(order.score, 4),
                "threshold": order.significance,
                "cutoff_each": order.cutoff,
                "features_p": round(order.features_p, 4),
                "labels_p": round(order.labels_p, 4),
                "ks": round(order.ks, 4),
                "method": method,
            },
        ),
    ]
    conn.executemany(
        "INSERT INTO findings(run_id, kind, first_row, last_row, n_rows, message, rows, detail) VALUES (?,?,?,?,?,?,?,?)",
        findings,
    )
    return res.counts()
