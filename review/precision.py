"""How good are the flags? Measured from reviewers' decisions: the share of flagged rows that
were really wrong, by score band; the errors likely left in the unreviewed part of the
queue (with an interval); and spot checks, random unflagged rows put in front of reviewers,
for what the flags miss. Aggregates in SQL; nothing here loads a whole dataset."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import sqlite_utils

from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.errors import ReviewError
from review.stats import BANDS, aggregates, band_case


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float, float]:
    """Share k/n with its 95 % Wilson interval -> (p, low, high); (None, 0, 1) when n == 0."""
    if n == 0:
        return None, 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return p, max(0.0, c - h), min(1.0, c + h)


@dataclass(frozen=True)
class BandPrecision:
    """One score band of the flagged rows: rows flagged, decided, found wrong, the precision
    (share wrong among decided; None when none decided) with its 95 % interval, rows still open."""

    band: str
    flagged: int
    decided: int
    wrong: int
    precision: float | None
    low: float
    high: float
    open: int


@dataclass(frozen=True)
class ErrorsLeft:
    """Errors likely left among the open flagged rows: point estimate with its interval, and how many are open."""

    estimate: float
    low: float
    high: float
    open: int


@dataclass(frozen=True)
class FlagPrecision:
    """Flag precision per band, pooled over the decided flagged rows (precision None, interval
    0-1 when none decided), and the errors left (None until a flagged row is decided)."""

    bands: list[BandPrecision] = field(default_factory=list)
    decided: int = 0
    wrong: int = 0
    precision: float | None = None
    low: float = 0.0
    high: float = 1.0
    remaining: ErrorsLeft | None = None


@dataclass(frozen=True)
class SpotResults:
    """Spot checks of a run: rows added, decided, found wrong, the miss rate (None when none
    decided) with its interval, the unflagged rows, and the errors implied among them (point, low, high)."""

    added: int
    decided: int
    wrong: int
    miss_rate: float | None
    low: float
    high: float
    unflagged: int
    missed_estimate: tuple[float, float, float] | None


_DECIDED = (
    # the rows of the run someone decided: wrong 1 when the label was found wrong, 0 when right; judged 0 for
    # exclude / ambiguous (a problem of another kind: the label neither confirmed nor corrected, so neither right
    # nor wrong, and wrong is 0 for them; the row is reviewed all the same), unless a lead overrode the decision
    # with a label. Unsure rows are left out (still to be looked at).
    # Starts from reviews (the decided rows, few), so it costs the same at a thousand rows or a million.
    "SELECT r.idx, s.quality, s.is_issue,"
    " CASE WHEN r.status='overridden' THEN (COALESCE(r.final_label, '') != COALESCE(i.given_label, ''))"
    "      WHEN r.decision='relabel' THEN 1 ELSE 0 END AS wrong,"
    " CASE WHEN r.decision IN ('exclude', 'ambiguous') AND r.status!='overridden' THEN 0 ELSE 1 END AS judged"
    " FROM reviews r JOIN scores s ON s.run_id=? AND s.idx=r.idx JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
    " WHERE r.dataset_id=? AND r.id IN (SELECT MAX(x.id) FROM reviews x WHERE x.dataset_id=?"
    "                                   AND x.status NOT IN ('superseded', 'rejected') GROUP BY x.idx)"
    " AND NOT (r.decision='unsure' AND r.status!='overridden')"
)


def flagged_decided(db: sqlite_utils.Database, ds: Dataset, run_id: int) -> tuple[int, int]:
    """Among run ``run_id``'s flagged rows: (decided with the label judged, found wrong), as flag_precision
    counts them (the export manifest's flags)."""
    r = db.execute(
        f"SELECT COALESCE(SUM(d.judged), 0), COALESCE(SUM(d.wrong), 0) FROM ({_DECIDED}) d WHERE d.is_issue=1",
        [run_id, ds.id, ds.id],
    ).fetchone()
    return int(r[0]), int(r[1])


def flag_precision(db: sqlite_utils.Database, ds: Dataset) -> FlagPrecision:
    """Per score band of the flagged rows: flagged, decided, wrong, precision with its interval,
    still open; and the estimate of errors left among the open flagged rows (point, low, high)."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return FlagPrecision()
    flagged_by_band = {int(k): v for k, v in aggregates(db, ds, run)["bands"].items()}
    decided, reviewed = {}, {}
    for b, n, w, seen in db.execute(
        f"SELECT {band_case('d.quality')}, COALESCE(SUM(d.judged), 0), COALESCE(SUM(d.wrong), 0),"
        f" COUNT(*) FROM ({_DECIDED}) d WHERE d.is_issue=1 GROUP BY 1",
        [run["id"], ds.id, ds.id],
    ).fetchall():
        decided[b], reviewed[b] = (n, w), seen
    total_dec = sum(n for n, _ in decided.values())
    total_wrong = sum(w for _, w in decided.values())
    pooled = wilson(total_wrong, total_dec)
    bands, est, lo_sum, hi_sum = [], 0.0, 0.0, 0.0
    for band, flagged in sorted(flagged_by_band.items()):
        a, b = BANDS[band]
        n_dec, wrong = decided.get(band, (0, 0))
        p, lo, hi = wilson(wrong, n_dec)
        open_ = flagged - reviewed.get(band, 0)
        use = (p, lo, hi) if n_dec >= 5 or pooled[0] is None else pooled
        if use[0] is not None:
            est += open_ * use[0]
        lo_sum += open_ * use[1]
        hi_sum += open_ * use[2]
        bands.append(
            BandPrecision(
                band=f"{a:.2f}–{b:.2f}",
                flagged=flagged,
                decided=n_dec,
                wrong=wrong,
                precision=p,
                low=lo,
                high=hi,
                open=open_,
            )
        )
    remaining = (
        None
        if pooled[0] is None
        else ErrorsLeft(estimate=est, low=lo_sum, high=hi_sum, open=sum(b.open for b in bands))
    )
    return FlagPrecision(
        bands=bands,
        decided=total_dec,
        wrong=total_wrong,
        precision=pooled[0],
        low=pooled[1],
        high=pooled[2],
        remaining=remaining,
    )


def add_spot_checks(db: sqlite_utils.Database, ds: Dataset, user: User, n: int, seed: int | None = None) -> int:
    """Put ``n`` random unflagged, undecided rows of the latest run in the review queue. Returns how many."""
    require_active(db, user, "lead", "start spot checks")
    run = latest_run(db, ds.id, "audit")
    if not run:
        raise ReviewError(f"Run the audit of {ds.name!r} first.")
    if n < 1:
        raise ReviewError("Ask for at least one row to spot-check.")
    pool = [
        r[0]
        for r in db.execute(
            "SELECT s.idx FROM scores s LEFT JOIN states st ON st.dataset_id=? AND st.idx=s.idx"
            " WHERE s.run_id=? AND s.is_issue=0 AND (st.state IS NULL OR st.state='open')"
            " AND s.idx NOT IN (SELECT idx FROM spot_checks WHERE run_id=?)",
            [ds.id, run["id"], run["id"]],
        )
    ]
    if not pool:
        raise ReviewError("Every unflagged row is already decided or in a spot check.")
    picked = random.Random(seed).sample(pool, min(n, len(pool)))
    now = store.now_iso()
    with store.transaction(db):
        db.conn.executemany(
            "INSERT INTO spot_checks(dataset_id, run_id, idx, added_by, added_at) VALUES (?,?,?,?,?)",
            [(ds.id, run["id"], i, user.name, now) for i in picked],
        )
        trail.log(db, user.name, "spot_check", ds.id, run=run["id"], rows=len(picked))
    return len(picked)


def spot_results(db: sqlite_utils.Database, ds: Dataset) -> SpotResults | None:
    """Spot checks of the latest run: rows added, decided, found wrong, the miss rate with its
    interval, and the errors it implies among all unflagged rows (point, low, high). None without a run."""
    run = latest_run(db, ds.id, "audit")
    if not run:
        return None

    added = store.scalar(db, "SELECT COUNT(*) FROM spot_checks WHERE run_id=?", [run["id"]])
    decided, wrong = db.execute(
        f"SELECT COALESCE(SUM(d.judged), 0), COALESCE(SUM(d.wrong), 0) FROM ({_DECIDED}) d"
        " WHERE d.idx IN (SELECT idx FROM spot_checks WHERE run_id=?)",
        [run["id"], ds.id, ds.id, run["id"]],
    ).fetchone()
    unflagged = aggregates(db, ds, run)["unflagged"]
    p, lo, hi = wilson(wrong, decided)
    return SpotResults(
        added=added,
        decided=decided,
        wrong=wrong,
        miss_rate=p,
        low=lo,
        high=hi,
        unflagged=unflagged,
        missed_estimate=None if p is None else (p * unflagged, lo * unflagged, hi * unflagged),
    )
