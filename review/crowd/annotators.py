"""Per-annotator and per-reviewer statistics: SQL aggregates over annotations, scores and the audit trail."""

from __future__ import annotations

import json
import statistics
from datetime import datetime

import sqlite_utils

from review.datasets import Dataset, latest_run

BREAK_SECONDS = 600  # a gap longer than this between two decisions is a break, not time spent deciding


GOLD_COLUMNS = ["gold_accuracy", "gold_labels"]  # added beside quality once the dataset has a golden set


def annotator_table(db: sqlite_utils.Database, ds: Dataset) -> list[dict]:
    """One row per annotator of the latest run: annotator, quality, agreement, worst_class, n_labels.

    With a golden set (review.crowd.gold), each row also has gold_accuracy (their labels equal to the
    gold label / their labels on gold items; None without any) and gold_labels (that count),
    right after quality: an independent check of the estimated quality."""
    from review.crowd import gold

    run = latest_run(db, ds.id, "audit")
    if not run:
        return []
    rows = list(
        db.query(
            "SELECT annotator, quality, agreement, worst_class, n_labels FROM annotator_stats WHERE run_id=? ORDER BY quality DESC",
            [run["id"]],
        )
    )
    if not gold.has_gold(db, ds):
        return rows
    acc = gold.accuracy(db, ds)
    out = []
    for r in rows:
        right, n = acc.get(r["annotator"], (0, 0))
        out.append(
            {
                "annotator": r["annotator"],
                "quality": r["quality"],
                "gold_accuracy": right / n if n else None,
                "gold_labels": n,
                **{k: r[k] for k in ("agreement", "worst_class", "n_labels")},
            }
        )
    return out


def confusion(db: sqlite_utils.Database, ds: Dataset, annotator: str) -> list[tuple[str, str, int]]:
    """(consensus label, the annotator's label, count) over the items they labelled."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return []
    return db.execute(
        "SELECT s.consensus_label, a.label, COUNT(*) FROM annotations a JOIN scores s ON s.run_id=? AND s.idx=a.idx"
        " WHERE a.dataset_id=? AND a.annotator=? AND s.consensus_label IS NOT NULL GROUP BY 1, 2",
        [run["id"], ds.id, annotator],
    ).fetchall()


def pairwise(db: sqlite_utils.Database, ds: Dataset, top: int = 25) -> list[dict]:
    """Agreement on shared items between the ``top`` annotators with most labels."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT annotator FROM annotations WHERE dataset_id=? GROUP BY annotator ORDER BY COUNT(*) DESC LIMIT ?",
            [ds.id, top],
        )
    ]
    if len(names) < 2:
        return []
    marks = ",".join("?" * len(names))
    return list(
        db.query(
            f"SELECT a.annotator AS a, b.annotator AS b, COUNT(*) AS shared, AVG(a.label = b.label) AS agreement"
            f" FROM annotations a JOIN annotations b ON b.dataset_id=a.dataset_id AND b.idx=a.idx AND b.annotator>a.annotator"
            f" WHERE a.dataset_id=? AND a.annotator IN ({marks}) AND b.annotator IN ({marks}) GROUP BY 1, 2",
            [ds.id, *names, *names],
        )
    )


def disagreements(db: sqlite_utils.Database, ds: Dataset, annotator: str) -> int:
    """How many of the annotator's labels differ from the consensus of the latest run."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return 0
    return db.execute(
        "SELECT COUNT(*) FROM annotations a JOIN scores s ON s.run_id=? AND s.idx=a.idx"
        " WHERE a.dataset_id=? AND a.annotator=? AND a.label != s.consensus_label",
        [run["id"], ds.id, annotator],
    ).fetchone()[0]


def _ts(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


def reviewer_table(db: sqlite_utils.Database, ds: Dataset) -> list[dict]:
    """From the audit trail: per reviewer, decisions made, share approved / rejected by leads,
    median seconds per decision (gaps over BREAK_SECONDS left out), share that took the suggestion.

    Four eyes: a verification by the decision's own author (self_approved in the trail, or the
    verifier named as the reviewer in older trails) counts in none of approved / rejected /
    overridden and their shares; it is counted in "self-verified", a column (after "overridden")
    present when the dataset allows self-approval or its trail has any."""
    out: dict[str, dict] = {}
    last_at: dict[str, float] = {}
    for at, actor, payload in db.execute(
        "SELECT at, actor, payload FROM audit_log WHERE dataset_id=? AND action='decision' ORDER BY id", [ds.id]
    ):
        p = json.loads(payload)
        r = out.setdefault(
            actor,
            {
                "reviewer": actor,
                "decisions": 0,
                "approved": 0,
                "rejected": 0,
                "overridden": 0,
                "took suggestion": 0,
                "_gaps": [],
            },
        )
        r["decisions"] += 1
        r["took suggestion"] += int(bool(p.get("took_suggestion")))
        t = _ts(at)
        if actor in last_at and 0 <= t - last_at[actor] <= BREAK_SECONDS:
            r["_gaps"].append(t - last_at[actor])
        last_at[actor] = t
    any_self = bool(ds.settings.get("allow_self_approval"))
    for actor, payload in db.execute(
        "SELECT actor, payload FROM audit_log WHERE dataset_id=? AND action='verify'", [ds.id]
    ):
        p = json.loads(payload)
        r = out.get(p.get("reviewer"))
        if r is not None:
            key = {"approve": "approved", "reject": "rejected", "override": "overridden"}.get(
                p.get("verify_action") or p.get("action")
            )
            if key and (p.get("self_approved") or actor == p.get("reviewer")):
                r["_self"] = r.get("_self", 0) + 1
                any_self = True
            elif key:
                r[key] += 1
    rows = []
    for r in out.values():
        gaps = r.pop("_gaps")
        own = r.pop("_self", 0)
        if any_self:
            r = {k: v for k, v in r.items() if k != "took suggestion"} | {
                "self-verified": own,
                "took suggestion": r["took suggestion"],
            }
        verified = r["approved"] + r["rejected"] + r["overridden"]
        rows.append(
            {
                **r,
                "share approved": round(r["approved"] / verified, 3) if verified else None,
                "share rejected": round(r["rejected"] / verified, 3) if verified else None,
                "median seconds per decision": round(statistics.median(gaps), 1) if gaps else None,
                "share took suggestion": round(r["took suggestion"] / r["decisions"], 3),
            }
        )
    return sorted(rows, key=lambda r: -r["decisions"])


def changed_by_corrections(db: sqlite_utils.Database, ds: Dataset) -> list[dict]:
    """Per original annotator: how many of their labels verified corrections changed, and the classes involved.
    An annotator's label is read in the current label set (review.taxonomy.label_map): a label renamed since
    the upload is not a change."""
    from review.taxonomy import label_map

    names = label_map(db, ds)
    rows = db.execute(
        "SELECT a.annotator, a.label, st.current_label, COUNT(*) FROM states st"
        " JOIN annotations a ON a.dataset_id=st.dataset_id AND a.idx=st.idx"
        " WHERE st.dataset_id=? AND st.state IN ('approved', 'overridden') AND st.current_label IS NOT NULL"
        " AND a.label != st.current_label GROUP BY 1, 2, 3",
        [ds.id],
    ).fetchall()
    out: dict[str, dict] = {}
    for ann, frm, to, n in rows:
        frm = names.get(frm, frm)
        if frm == to:  # the annotator's label under its new name
            continue
        r = out.setdefault(ann, {"annotator": ann, "labels changed": 0, "classes": {}})
        r["labels changed"] += n
        r["classes"][f"{frm} → {to}"] = r["classes"].get(f"{frm} → {to}", 0) + n
    return sorted(
        (
            {**r, "classes": ", ".join(f"{k} ({v})" for k, v in sorted(r["classes"].items(), key=lambda kv: -kv[1]))}
            for r in out.values()
        ),
        key=lambda r: -r["labels changed"],
    )
