"""Two audit runs of a dataset compared: flag counts, new suspects, cleared, per class, predictions
and the labels each run trained on, the precision of each run's flags where reviewers decided, and
the rows of each group a page at a time (keyset on the row number).

A run that trained on the current labels (review.audit.current_labels) keeps in its params the rows
whose label differed from the given one (``corrections``, encode_labels); an older run, or a first
audit, scored the given labels. Counts are one GROUP BY over the two runs' scores joined on idx (the
corrected rows, few, then move to the class they were scored as), so they stay set-based at 1M rows;
an audit stores the comparison with its previous run in its metrics (``since previous run``, changes)
and the Audit page reads that, not the scores."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass, field

import sqlite_utils

from review import store
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError
from review.precision import wilson

# group -> what the Audit page calls it; diff_rows pages through one
GROUPS = {
    "new": "new suspects (flagged now, not before)",
    "cleared": "cleared (flagged before, not now)",
    "kept": "still flagged",
    "relabelled": "labels changed between the runs",
    "predicted": "prediction changed",
}
_CHUNK = 900  # rows per IN (...) list


def encode_labels(labels: dict[int, str]) -> str:
    """{row: label} -> a short ASCII string for a run's params (zlib of {label: [rows]}, base64)."""
    by_label: dict[str, list[int]] = {}
    for i, lab in sorted(labels.items()):
        by_label.setdefault(lab, []).append(int(i))
    return base64.b64encode(zlib.compress(json.dumps(by_label, separators=(",", ":")).encode("utf-8"))).decode()


def decode_labels(blob: str | None) -> dict[int, str]:
    """encode_labels' string -> {row: label}; {} for None or empty."""
    if not blob:
        return {}
    by_label = json.loads(zlib.decompress(base64.b64decode(blob)).decode("utf-8"))
    return {int(i): lab for lab, rows in by_label.items() for i in rows}


def _record(run: dict) -> dict:
    """What a run trained on, from its params (its metrics for a run on the upload's own probabilities)."""
    for part in ("params", "metrics"):
        got = run.get(part) or {}
        if isinstance(got, str):
            got = json.loads(got)
        if got.get("labels") == "current":
            return got
    return {}


def scored_labels(run: dict) -> dict[int, str]:
    """The rows a run scored with a label other than the given one: {row: label} ({} for a run on the
    given labels). ``run``: a runs row with its params and metrics (dicts or the stored JSON)."""
    return decode_labels(_record(run).get("corrections"))


@dataclass(frozen=True)
class ClassDiff:
    """One class: flagged in run a (rows a scored as this class), flagged in run b (rows b scored as it),
    new suspects (flagged in b only, by b's label), cleared (flagged in a only, by a's label)."""

    label: str
    flagged_a: int
    flagged_b: int
    new: int
    cleared: int


@dataclass(frozen=True)
class RunPrecision:
    """A run's flags where reviewers decided (the decision in force now, unsure left out): decided,
    found wrong (the decided label is not the one the run scored), the share with its 95 % Wilson
    interval (precision None, interval 0-1 when none decided)."""

    run: int
    decided: int
    wrong: int
    precision: float | None
    low: float
    high: float


@dataclass(frozen=True)
class RunDiff:
    """Run a (before) against run b (after): rows scored by both, flag counts, new / cleared / still
    flagged, predictions changed, labels changed between the runs (rows corrected between them), what
    each trained on (corrected rows, rows left out), per class, and the precision of each run's flags."""

    dataset_id: int
    run_a: int
    run_b: int
    rows: int
    flagged_a: int
    flagged_b: int
    new: int
    cleared: int
    kept: int
    predictions_changed: int
    labels_changed: int
    corrected_a: int = 0
    corrected_b: int = 0
    left_out_a: int = 0
    left_out_b: int = 0
    classes: list[ClassDiff] = field(default_factory=list)
    precision_a: RunPrecision | None = None
    precision_b: RunPrecision | None = None

    def count(self, group: str) -> int:
        """How many rows diff_rows pages through for ``group``."""
        return {
            "new": self.new,
            "cleared": self.cleared,
            "kept": self.kept,
            "relabelled": self.labels_changed,
            "predicted": self.predictions_changed,
        }[group]


@dataclass(frozen=True)
class DiffRow:
    """One row of a group: row number, id, text (its first 300 characters), the label each run scored,
    flagged and predicted in each, quality in each, and the row's review state now."""

    idx: int
    key: str | None
    text: str | None
    label_a: str | None
    label_b: str | None
    flagged_a: bool
    flagged_b: bool
    predicted_a: str | None
    predicted_b: str | None
    quality_a: float | None
    quality_b: float | None
    state: str


@dataclass(frozen=True)
class ReauditPlan:
    """Is a re-audit due? The newest audit run (None: none yet), the decisions verified (approved or
    overridden) since it started, the rows whose current label differs from the given one (what a
    re-audit trains on) and the rows left out of training (a pending relabel, unsure or exclude, and the rows
    excluded from training)."""

    last_run: int | None
    verified_since: int
    corrections: int
    left_out: int

    @property
    def due(self) -> bool:
        return self.last_run is not None and self.verified_since > 0


def _run(db: sqlite_utils.Database, ds: Dataset, run_id) -> dict:
    row = store.fetch_one(db, "SELECT id, dataset_id, kind, status, params, metrics FROM runs WHERE id=?", [run_id])
    if row is None or row["dataset_id"] != ds.id:
        raise NotFound(f"Dataset {ds.name!r} has no run {run_id}: pick one of its runs (the Audit page's Runs tab).")
    if row["kind"] != "audit" or row["status"] != "done":
        raise ReviewError(
            f"Run {run_id} of {ds.name!r} is {'an integrity check' if row['kind'] != 'audit' else row['status']}:"
            " compare two finished audit runs."
        )
    return {"id": row["id"], "params": json.loads(row["params"] or "{}"), "metrics": json.loads(row["metrics"] or "{}")}


def _chunks(rows: list[int]):
    for k in range(0, len(rows), _CHUNK):
        yield rows[k : k + _CHUNK]


def _counts(db, ds: Dataset, a: int, corr_a: dict, b: int, corr_b: dict) -> dict:
    """The comparison's counts, as stored in a run's metrics: the flags by class (one GROUP BY over the
    rows flagged in either run, by given label; the corrected rows, few, then move to the class each run
    scored them as), the rows scored by both, and the predictions that changed (the one pass over every
    row: a join of the two runs' scores on their primary key)."""
    text = ds.task == "text"
    flagged = (
        "(SELECT idx FROM scores WHERE run_id=? AND is_issue=1"
        " UNION SELECT idx FROM scores WHERE run_id=? AND is_issue=1)"
    )
    grouped = db.execute(
        "SELECT " + ("i.given_label" if text else "NULL") + ", COALESCE(SUM(a.is_issue), 0),"
        " COALESCE(SUM(b.is_issue), 0), COALESCE(SUM(b.is_issue AND NOT a.is_issue), 0),"
        " COALESCE(SUM(a.is_issue AND NOT b.is_issue), 0), COALESCE(SUM(a.is_issue AND b.is_issue), 0)"
        f" FROM {flagged} f JOIN scores a ON a.run_id=? AND a.idx=f.idx JOIN scores b ON b.run_id=? AND b.idx=f.idx"
        + (" JOIN items i ON i.dataset_id=? AND i.idx=f.idx GROUP BY i.given_label" if text else ""),
        [a, b, a, b, ds.id] if text else [a, b, a, b],
    ).fetchall()
    both, predictions = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(a.predicted_label IS NOT b.predicted_label), 0)"
        " FROM scores b JOIN scores a ON a.run_id=? AND a.idx=b.idx WHERE b.run_id=?",
        [a, b],
    ).fetchone()
    per: dict[str, list[int]] = {lab: [0, 0, 0, 0] for lab in ds.labels} if text else {}
    tot = [both or 0, 0, 0, 0, 0, 0, predictions or 0]
    for lab, *n in grouped:
        tot[1:6] = [x + y for x, y in zip(tot[1:6], n)]
        if text and lab is not None:
            per.setdefault(lab, [0, 0, 0, 0])
            per[lab] = [per[lab][k] + n[k] for k in range(4)]
    changed = 0
    moved = sorted(set(corr_a) | set(corr_b))
    for part in _chunks(moved):
        for r in store.rows(
            db,
            "SELECT i.idx, i.given_label, a.is_issue AS fa, b.is_issue AS fb FROM items i"
            " JOIN scores a ON a.run_id=? AND a.idx=i.idx JOIN scores b ON b.run_id=? AND b.idx=i.idx"
            f" WHERE i.dataset_id=? AND i.idx IN ({','.join('?' * len(part))})",
            [a, b, ds.id, *part],
        ):
            given, la, lb = (
                r["given_label"],
                corr_a.get(r["idx"], r["given_label"]),
                corr_b.get(r["idx"], r["given_label"]),
            )
            changed += la != lb
            if not text or given is None:
                continue
            fa, fb = int(r["fa"]), int(r["fb"])
            for lab, sign in ((given, -1), (la, 1)):  # run a's counts: from the given label to a's
                per.setdefault(lab, [0, 0, 0, 0])
                per[lab][0] += sign * fa
                per[lab][3] += sign * (fa and not fb)
            for lab, sign in ((given, -1), (lb, 1)):  # run b's: to b's
                per.setdefault(lab, [0, 0, 0, 0])
                per[lab][1] += sign * fb
                per[lab][2] += sign * (fb and not fa)
    return {
        "run": a,
        "rows": tot[0],
        "flagged before": tot[1],
        "flagged": tot[2],
        "new": tot[3],
        "cleared": tot[4],
        "kept": tot[5],
        "predictions changed": tot[6],
        "labels changed": changed,
        "classes": [[lab, *n] for lab, n in per.items()],
    }


def changes(db: sqlite_utils.Database, ds: Dataset, run_a: int, run_b: int, corrected_b: dict[int, str]) -> dict:
    """For the audit writing run ``run_b`` (not finished yet; it scored ``corrected_b``): its comparison
    with the finished run ``run_a``, as the run's metrics keep it (``since previous run``)."""
    return _counts(db, ds, run_a, scored_labels(_run(db, ds, run_a)), run_b, corrected_b)


def precision_of(
    db: sqlite_utils.Database, ds: Dataset, run_id: int, scored: dict[int, str] | None = None
) -> RunPrecision:
    """The run's flagged rows that have a decision in force (pending, approved or overridden; unsure
    left out): wrong when the decided label (a relabel's or override's, an approved keep's kept label)
    is not the label the run scored. Starts from reviews (the decided rows, few)."""
    if scored is None:
        scored = scored_labels(_run(db, ds, run_id))
    decided = wrong = 0
    for r in store.rows(
        db,
        "SELECT r.idx, r.decision, r.status, r.new_label, r.final_label, i.given_label FROM reviews r"
        " JOIN scores s ON s.run_id=? AND s.idx=r.idx JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
        " WHERE r.dataset_id=? AND s.is_issue=1 AND r.id IN (SELECT MAX(x.id) FROM reviews x WHERE x.dataset_id=?"
        " AND x.status NOT IN ('superseded', 'rejected') GROUP BY x.idx)"
        " AND NOT (r.decision='unsure' AND r.status!='overridden')",
        [run_id, ds.id, ds.id],
    ):
        said = r["final_label"] if r["final_label"] is not None else r["new_label"]  # a pending keep: None
        decided += 1
        wrong += said is not None and said != scored.get(r["idx"], r["given_label"])
    p, lo, hi = wilson(wrong, decided)
    return RunPrecision(run_id, decided, wrong, p, lo, hi)


def _diff(db, ds: Dataset, ra: dict, rb: dict, counts: dict, with_precision: bool = True) -> RunDiff:
    pa, pb = _record(ra), _record(rb)
    return RunDiff(
        dataset_id=ds.id,
        run_a=ra["id"],
        run_b=rb["id"],
        rows=counts["rows"],
        flagged_a=counts["flagged before"],
        flagged_b=counts["flagged"],
        new=counts["new"],
        cleared=counts["cleared"],
        kept=counts["kept"],
        predictions_changed=counts["predictions changed"],
        labels_changed=counts["labels changed"],
        corrected_a=int(pa.get("corrected_rows") or 0),
        corrected_b=int(pb.get("corrected_rows") or 0),
        left_out_a=int(pa.get("left_out_rows") or 0),
        left_out_b=int(pb.get("left_out_rows") or 0),
        classes=[ClassDiff(*c) for c in counts["classes"]],
        precision_a=precision_of(db, ds, ra["id"], scored_labels(ra)) if with_precision else None,
        precision_b=precision_of(db, ds, rb["id"], scored_labels(rb)) if with_precision else None,
    )


def compare_runs(db: sqlite_utils.Database, ds: Dataset, run_a: int, run_b: int) -> RunDiff:
    """Run ``run_a`` (before) against ``run_b`` (after), two finished audit runs of ``ds``: one GROUP BY
    over their scores, plus the few corrected rows; the precision of each run's flags from the reviews."""
    ra, rb = _run(db, ds, run_a), _run(db, ds, run_b)
    return _diff(db, ds, ra, rb, _counts(db, ds, ra["id"], scored_labels(ra), rb["id"], scored_labels(rb)))


def since_previous(db: sqlite_utils.Database, ds: Dataset, run: dict | None = None) -> RunDiff | None:
    """The newest audit run (or ``run``, a runs row as datasets.latest_run returns it) against the run
    before it, from the comparison its metrics keep (no pass over the scores; precision read live).
    None when the run has no previous run to compare with."""
    run = run if run is not None else latest_run(db, ds.id, "audit")
    if not run or run.get("kind") != "audit":
        return None
    kept = (run.get("metrics") or {}).get("since previous run")
    if not kept:
        return None
    try:
        ra = _run(db, ds, kept["run"])
    except ReviewError:  # the earlier run is gone (never deleted today): nothing to compare
        return None
    return _diff(
        db, ds, ra, {"id": run["id"], "params": run.get("params") or {}, "metrics": run.get("metrics") or {}}, kept
    )


_ROW = (
    "SELECT {d}.idx AS idx, i.key AS key, substr(i.text, 1, 300) AS text, i.given_label AS given_label,"
    " a.is_issue AS fa, b.is_issue AS fb, a.predicted_label AS pa, b.predicted_label AS pb,"
    " a.quality AS qa, b.quality AS qb, COALESCE(st.state, 'open') AS state"
    " FROM scores {d} JOIN scores {o} ON {o}.run_id=? AND {o}.idx={d}.idx"
    " JOIN items i ON i.dataset_id=? AND i.idx={d}.idx LEFT JOIN states st ON st.dataset_id=i.dataset_id AND st.idx=i.idx"
)
_WHERE = {
    "new": ("b", "b.is_issue=1 AND a.is_issue=0"),
    "cleared": ("a", "a.is_issue=1 AND b.is_issue=0"),
    "kept": ("b", "b.is_issue=1 AND a.is_issue=1"),
    "predicted": ("b", "a.predicted_label IS NOT b.predicted_label"),
}


def diff_rows(
    db: sqlite_utils.Database, ds: Dataset, run_a: int, run_b: int, group: str, after: int = -1, limit: int = 50
) -> list[DiffRow]:
    """One page of the rows of ``group`` (one of GROUPS) in row order, rows after row ``after``: pass the
    last row's idx for the next page. An indexed read of the page, not of the group."""
    if group not in GROUPS:
        raise ReviewError(f"Unknown group {group!r}: choose one of {', '.join(GROUPS)}.")
    ra, rb = _run(db, ds, run_a), _run(db, ds, run_b)
    corr_a, corr_b = scored_labels(ra), scored_labels(rb)
    limit = max(1, min(int(limit), 1000))
    if group == "relabelled":  # the corrected rows of either run, few: chosen here, read by idx
        idx = sorted(i for i in set(corr_a) | set(corr_b) if i > after)
        rows: list = []
        for part in _chunks(idx):
            got = store.rows(
                db,
                _ROW.format(d="b", o="a")
                + f" WHERE b.run_id=? AND b.idx IN ({','.join('?' * len(part))}) ORDER BY b.idx",
                [ra["id"], ds.id, rb["id"], *part],
            )
            rows += [r for r in got if corr_a.get(r["idx"], r["given_label"]) != corr_b.get(r["idx"], r["given_label"])]
            if len(rows) >= limit:
                break
        rows = rows[:limit]
    else:
        d, cond = _WHERE[group]
        o = "a" if d == "b" else "b"
        rows = store.rows(
            db,
            _ROW.format(d=d, o=o) + f" WHERE {d}.run_id=? AND {d}.idx>? AND {cond} ORDER BY {d}.idx LIMIT ?",
            [ra["id"] if o == "a" else rb["id"], ds.id, ra["id"] if d == "a" else rb["id"], int(after), limit],
        )
    return [
        DiffRow(
            idx=r["idx"],
            key=r["key"],
            text=r["text"],
            label_a=corr_a.get(r["idx"], r["given_label"]),
            label_b=corr_b.get(r["idx"], r["given_label"]),
            flagged_a=bool(r["fa"]),
            flagged_b=bool(r["fb"]),
            predicted_a=r["pa"],
            predicted_b=r["pb"],
            quality_a=r["qa"],
            quality_b=r["qb"],
            state=r["state"],
        )
        for r in rows
    ]


def reaudit_plan(db: sqlite_utils.Database, ds: Dataset) -> ReauditPlan:
    """What a re-audit of ``ds`` would train on now, and whether one is due (decisions were verified
    since the newest audit run started). Three indexed counts."""
    run = latest_run(db, ds.id, "audit")
    since = (
        store.scalar(
            db,
            "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status IN ('approved', 'overridden') AND verified_at>?",
            [ds.id, run["started_at"]],
        )
        if run
        else 0
    )
    corrections = store.scalar(
        db, "SELECT COUNT(*) FROM states WHERE dataset_id=? AND current_label IS NOT NULL", [ds.id]
    )
    left_out = store.scalar(
        db,
        "SELECT COUNT(*) FROM states WHERE dataset_id=? AND (state IN ('relabelled', 'unsure', 'excluded')"
        " OR excluded=1)",
        [ds.id],
    )
    return ReauditPlan(run["id"] if run else None, int(since or 0), int(corrections or 0), int(left_out or 0))


def precision_text(p: RunPrecision | None) -> str:
    if p is None or p.precision is None:
        return "no flagged row decided"
    return f"{p.wrong:,}/{p.decided:,} = {p.precision:.0%} ({p.low:.0%}-{p.high:.0%})"


def format_run_diff(diff: RunDiff) -> list[str]:
    """The comparison as plain lines (for a terminal): totals, what each run trained on, precision, per class."""
    a, b = diff.run_a, diff.run_b
    lines = [
        f"run {a} -> run {b}: flagged {diff.flagged_a:,} -> {diff.flagged_b:,}; {diff.new:,} new, "
        f"{diff.cleared:,} cleared, {diff.kept:,} still flagged (of {diff.rows:,} rows)",
        f"  trained on: run {a} {diff.corrected_a:,} corrected labels, {diff.left_out_a:,} rows left out; "
        f"run {b} {diff.corrected_b:,} corrected labels, {diff.left_out_b:,} rows left out",
        f"  labels changed between them: {diff.labels_changed:,}; predictions changed: {diff.predictions_changed:,}",
        f"  precision where reviewers decided: run {a} {precision_text(diff.precision_a)}; run {b} {precision_text(diff.precision_b)}",
    ]
    moved = [c for c in diff.classes if c.flagged_a or c.flagged_b]
    if moved:
        lines.append("  per class (flagged before -> now, new, cleared):")
        width = max(len(c.label) for c in moved)
        lines += [
            f"    {c.label:<{width}}  {c.flagged_a:,} -> {c.flagged_b:,}, {c.new:,} new, {c.cleared:,} cleared"
            for c in moved
        ]
    return lines
