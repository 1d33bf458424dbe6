"""The reads of the checks (review.findings) for the pages and the other modules: per-kind summaries of a
run, a page of a kind's rows (keyset on the row number), the near-duplicate sets (conflicting first) and
one set with its rows. Every read is one indexed query (or two), whatever the size of the dataset."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import sqlite_utils

from review import store
from review.errors import NotFound

SNIPPET = 300
TITLES = {
    "outliers": "Outliers",
    "near_duplicates": "Near duplicates",
    "ambiguous": "Ambiguous rows",
    "class_imbalance": "Class imbalance",
    "non_iid": "Row order (non-IID)",
}
ORDER = list(TITLES)
ROW_KIND = {"outliers": "outlier", "near_duplicates": "near_duplicate", "ambiguous": "ambiguous", "non_iid": "non_iid"}
ROW_KINDS = ("outlier", "near_duplicate", "ambiguous", "non_iid")
DATASET_LEVEL = ("class_imbalance", "non_iid")  # checks that warn about the whole dataset and flag no row


@dataclass(frozen=True)
class KindSummary:
    """One check of a run: kind (findings.kind), title, count (rows it found; 0 for class imbalance and
    non-IID, which flag no row: see ``warns`` and ``figure``), score (the dataset score in [0, 1], lower
    worse), message, method."""

    kind: str
    title: str
    count: int
    score: float | None
    message: str
    method: str | None
    detail: dict = field(default_factory=dict)

    @property
    def warns(self) -> bool:
        """Whether the check found something: rows for a row-level check; for class imbalance a minority class
        named, for the row order a score below its threshold (its two tests, adjusted)."""
        if self.kind == "class_imbalance":
            return bool(self.detail.get("minority"))
        if self.kind == "non_iid":
            cut = self.detail.get("threshold")
            return self.score is not None and cut is not None and self.score < cut
        return self.count > 0

    @property
    def found(self) -> int:
        """The count the summaries and the manifest report: rows found; minority classes named (class
        imbalance); 1 when the row order drifts, else 0 (non-IID)."""
        if self.kind == "class_imbalance":
            return len(self.detail.get("minority") or [])
        if self.kind == "non_iid":
            return int(self.warns)
        return self.count

    @property
    def figure(self) -> str:
        """The count as a page shows it: rows found, or for a dataset-level check "warning" / "no warning"."""
        if self.kind in DATASET_LEVEL:
            return "warning" if self.warns else "no warning"
        return f"{self.count:,}"


@dataclass(frozen=True)
class FindingRow:
    """A flagged row of one kind: its number and key, the first SNIPPET characters of its text, given and
    current label, state, the check's score, its near-duplicate set (or None) and the kind's detail."""

    idx: int
    key: str | None
    snippet: str
    given_label: str | None
    current_label: str | None
    state: str
    score: float
    set_id: int | None
    detail: dict


@dataclass(frozen=True)
class DupRow:
    idx: int
    key: str | None
    text: str
    given_label: str | None
    current_label: str | None
    state: str
    similarity: float | None  # the row's highest similarity inside the set


@dataclass(frozen=True)
class DupSet:
    """A near-duplicate set: n_labels > 1 is conflicting; leakage: it spans two uploaded splits; rows:
    its row numbers; members: the rows with text, labels and state (in row order)."""

    id: int
    run_id: int
    dataset_id: int
    n_rows: int
    n_labels: int
    leakage: bool
    similarity: float | None
    status: str
    resolution: dict | None
    rows: list[int]
    members: list[DupRow]

    @property
    def conflicting(self) -> bool:
        return self.n_labels > 1


def snippet(text: str | None, n: int = SNIPPET) -> str:
    s = re.sub(r"\s+", " ", text or "").strip()
    return s if len(s) <= n else s[: n - 1] + "…"


def summary(db: sqlite_utils.Database, run_id: int) -> list[KindSummary]:
    """The checks of a run, in the order of TITLES; [] for a run from before the checks (or NER)."""
    got = {}
    for r in store.rows(
        db,
        f"SELECT kind, n_rows, message, detail FROM findings WHERE run_id=? AND kind IN ({','.join('?' * len(ORDER))})",
        [run_id, *ORDER],
    ):
        d = json.loads(r["detail"] or "{}")
        got[r["kind"]] = KindSummary(
            r["kind"], TITLES[r["kind"]], r["n_rows"], d.get("score"), r["message"], d.get("method"), d
        )
    return [got[k] for k in ORDER if k in got]


def skipped(db: sqlite_utils.Database, run_id: int) -> str | None:
    """Why the run has no checks beyond label errors, as it recorded it (None: not recorded)."""
    raw = store.scalar(db, "SELECT metrics FROM runs WHERE id=?", [run_id])
    try:
        return (json.loads(raw) or {}).get("checks skipped") if raw else None
    except ValueError:
        return None


def _dataset_of(db, run_id: int) -> int:
    ds = store.scalar(db, "SELECT dataset_id FROM runs WHERE id=?", [run_id])
    if ds is None:
        raise NotFound(f"There is no audit run {run_id}: pick a run from the Audit page.")
    return ds


def rows(db: sqlite_utils.Database, run_id: int, kind: str, after: int = -1, limit: int = 50) -> list[FindingRow]:
    """A page of one kind's rows (row kind or findings kind: "outlier" or "outliers"), by row number after
    ``after``."""
    kind = ROW_KIND.get(kind, kind)
    if kind not in ROW_KINDS:
        raise NotFound(f"Unknown kind of finding {kind!r}: choose one of {', '.join(ROW_KINDS)}.")
    ds = _dataset_of(db, run_id)
    out = []
    for r in store.rows(
        db,
        "SELECT f.idx, f.score, f.set_id, f.detail, i.key, i.text, i.given_label,"
        " COALESCE(st.current_label, i.given_label) AS current_label, COALESCE(st.state, 'open') AS state"
        " FROM row_findings f JOIN items i ON i.dataset_id=? AND i.idx=f.idx"
        " LEFT JOIN states st ON st.dataset_id=? AND st.idx=f.idx"
        " WHERE f.run_id=? AND f.kind=? AND f.idx>? ORDER BY f.idx LIMIT ?",
        [ds, ds, run_id, kind, after, limit],
    ):
        out.append(
            FindingRow(
                r["idx"],
                r["key"],
                snippet(r["text"]),
                r["given_label"],
                r["current_label"],
                r["state"],
                r["score"],
                r["set_id"],
                json.loads(r["detail"] or "{}"),
            )
        )
    return out


def _members(db, ds: int, run_id: int, set_id: int, idxs: list[int]) -> list[DupRow]:
    if not idxs:
        return []
    marks = ",".join("?" * len(idxs))
    sims = {
        r["idx"]: json.loads(r["detail"] or "{}").get("similarity")
        for r in store.rows(
            db,
            f"SELECT idx, detail FROM row_findings WHERE run_id=? AND kind='near_duplicate' AND idx IN ({marks})",
            [run_id, *idxs],
        )
    }
    return [
        DupRow(
            r["idx"],
            r["key"],
            r["text"] or "",
            r["given_label"],
            r["current_label"],
            r["state"],
            sims.get(r["idx"]),
        )
        for r in store.rows(
            db,
            "SELECT i.idx, i.key, i.text, i.given_label, COALESCE(st.current_label, i.given_label) AS current_label,"
            " COALESCE(st.state, 'open') AS state FROM items i LEFT JOIN states st ON st.dataset_id=i.dataset_id"
            f" AND st.idx=i.idx WHERE i.dataset_id=? AND i.idx IN ({marks}) ORDER BY i.idx",
            [ds, *idxs],
        )
    ]


def _dup_set(db, r) -> DupSet:
    idxs = json.loads(r["rows"])
    return DupSet(
        r["id"],
        r["run_id"],
        r["dataset_id"],
        r["n_rows"],
        r["n_labels"],
        bool(r["leakage"]),
        r["similarity"],
        r["status"],
        json.loads(r["resolution"]) if r["resolution"] else None,
        idxs,
        _members(db, r["dataset_id"], r["run_id"], r["id"], idxs),
    )


_SET_COLS = "id, run_id, dataset_id, n_rows, n_labels, leakage, rows, similarity, status, resolution"


def dup_sets(db: sqlite_utils.Database, run_id: int, after_id: int = 0, limit: int = 20) -> list[DupSet]:
    """A page of a run's near-duplicate sets, conflicting first, then by id (conflicting sets have the lower
    ids, so keyset on id pages through both in that order)."""
    return [
        _dup_set(db, r)
        for r in store.rows(
            db,
            f"SELECT {_SET_COLS} FROM dup_sets WHERE run_id=? AND id>? ORDER BY n_labels>1 DESC, id LIMIT ?",
            [run_id, after_id, limit],
        )
    ]


def dup_set(db: sqlite_utils.Database, set_id: int) -> DupSet:
    r = store.fetch_one(db, f"SELECT {_SET_COLS} FROM dup_sets WHERE id=?", [set_id])
    if r is None:
        raise NotFound(f"There is no near-duplicate set {set_id}: it may belong to another run; open the Audit page.")
    return _dup_set(db, r)
