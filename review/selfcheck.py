"""Self-check: how much of a known kind of error the audit finds on the team's own data.

Known errors of three kinds are injected into a copy of the given labels (random flips
to another class; swaps between the two classes the model confuses most; a block of
rows whose labels are shifted by one row, as an off-by-one export makes), the same audit
runs on the copy (integrity, the model portfolio, shift detector, cleanlab), and the
share of each kind it flags is kept: "on your data, the audit finds about X% of errors
like these". Nothing about the dataset, its runs or its reviews changes; the result is a
row of ``self_checks`` and a line in the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import sqlite_utils

from review import stats, store, trail
from review.auth import User, require_active
from review.datasets import Dataset, get, latest_run
from review.errors import ReviewError
from review.text import signals

Progress = Callable[[float, str], None]
KINDS = ("flips", "swaps", "shifted block")
RATE = 0.03  # share of the rows each kind corrupts (as in benchmarks/ag_news_audit.py)
MIN_ROWS = 100  # fewer rows leave too few injected errors to measure a recall


@dataclass
class KindRecall:
    kind: str
    injected: int  # rows of this kind whose label really changed
    found: int  # of those, flagged by the audit on the copy
    recall: float


@dataclass
class SelfCheck:
    id: int
    dataset_id: int
    created_by: str
    created_at: str
    seed: int
    rate: float
    pair: list[str]  # the two classes swapped
    kinds: list[KindRecall]
    flagged: int  # rows the audit flagged on the copy
    injected_share_of_flagged: float  # of the flagged rows, the share that were injected
    model: str
    seconds: float

    @property
    def recall(self) -> float:
        """Recall over every injected error."""
        n = sum(k.injected for k in self.kinds)
        return sum(k.found for k in self.kinds) / n if n else float("nan")

    def summary(self) -> str:
        parts = ", ".join(f"{k.recall:.0%} of {k.kind} ({k.found:,} of {k.injected:,})" for k in self.kinds)
        return f"On your data, the audit finds about {self.recall:.0%} of errors like these: {parts}."


def _noop(fraction: float, message: str) -> None:
    pass


def confused_pair(labels: np.ndarray, confusion: list, class_names: list[str]) -> tuple[int, int]:
    """The two classes the model mixes up most among the latest run's suspects (confusion: rows of
    (given, predicted, count), both directions added); with no confusion, the two largest classes."""
    index = {c: i for i, c in enumerate(class_names)}
    counts = np.bincount(labels[labels >= 0], minlength=len(class_names))
    pairs: dict[tuple[int, int], int] = {}
    for given, pred, n in confusion or []:
        a, b = index.get(given), index.get(pred)
        if a is None or b is None or a == b or counts[a] < 2 or counts[b] < 2:
            continue
        key = (min(a, b), max(a, b))
        pairs[key] = pairs.get(key, 0) + int(n)
    if pairs:
        return max(sorted(pairs), key=lambda k: pairs[k])
    a, b = np.argsort(-counts, kind="stable")[:2]
    return int(min(a, b)), int(max(a, b))


def inject(
    labels: np.ndarray, n_classes: int, pair: tuple[int, int], seed: int = 0, rate: float = RATE
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """labels (n,) ints (-1 none) -> (noisy copy, {kind: rows}) with three kinds on disjoint labelled rows.

    The block comes first (rows start..start+m-1 each get the label of the row above); swaps
    exchange the pair's classes on rows drawn from those two classes; flips give a random
    other class. m = rate * labelled rows for each kind (fewer swaps if the pair is small)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    lab = labels >= 0
    m = int(round(rate * lab.sum()))
    if m < 1 or n < 4 * m + 2:
        raise ReviewError(
            f"{int(lab.sum()):,} labelled rows are too few for a self-check: it needs at least {MIN_ROWS}."
        )
    noisy = labels.copy()
    start = int(rng.integers(1, n - m + 1))
    block = np.arange(start, start + m)
    block = block[lab[block] & lab[block - 1]]
    noisy[block] = labels[block - 1]
    free = lab.copy()
    free[start - 1 : start + m] = False
    a, b = pair
    cand = np.flatnonzero(free & np.isin(labels, [a, b]))
    swaps = np.sort(rng.choice(cand, size=min(m, len(cand) // 2), replace=False))
    noisy[swaps] = np.where(labels[swaps] == a, b, a)
    free[swaps] = False
    flips = np.sort(rng.choice(np.flatnonzero(free), size=min(m, int(free.sum())), replace=False))
    noisy[flips] = (labels[flips] + rng.integers(1, n_classes, size=len(flips))) % n_classes
    return noisy, {"flips": flips, "swaps": swaps, "shifted block": block}


def run_selfcheck(
    db: sqlite_utils.Database, name_or_id, user: User, seed: int = 0, rate: float = RATE, progress: Progress = _noop
) -> SelfCheck:
    """Inject the three kinds into a copy of the labels, audit the copy, keep recall per kind."""
    from review import audit

    require_active(db, user, "lead", "run a self-check")
    ds = get(db, name_or_id)
    if ds.task != "text" or ds.mapping.multi:
        raise ReviewError(
            f"Dataset {ds.name!r}: the self-check works on one label per row (text or tabular); "
            f"this dataset is {'NER' if ds.task == 'ner' else 'labelled by several annotators'}."
        )
    if ds.mapping.probs:
        raise ReviewError(
            f"Dataset {ds.name!r} is audited with its own probabilities, which were computed on the "
            "given labels: a self-check needs a model trained on the injected ones. Upload it without "
            "the probability columns to self-check the app's model."
        )
    if not 0 < rate <= 0.1:
        raise ReviewError(f"--rate {rate}: give a share between 0 and 0.1 (0.03 injects 3% of rows of each kind).")
    if len(ds.labels) < 2:
        raise ReviewError(f"Dataset {ds.name!r} has one class: there is no other label to inject.")
    t0 = time.perf_counter()
    progress(0.0, "Loading rows")
    items = audit.load_items(db, ds)
    labels = audit.label_codes(ds, items["given_label"])
    if (labels >= 0).sum() < MIN_ROWS:
        raise ReviewError(
            f"Dataset {ds.name!r} has {int((labels >= 0).sum()):,} labelled rows: a self-check needs "
            f"at least {MIN_ROWS}."
        )
    last = latest_run(db, ds.id, kind="audit")
    agg = stats.aggregates(db, ds, last) if last else None
    pair = confused_pair(labels, (agg or {}).get("confusion"), list(ds.labels))
    noisy, parts = inject(labels, len(ds.labels), pair, seed, rate)
    names = list(ds.labels)
    copy = {**items, "given_label": [names[c] if c >= 0 else g for c, g in zip(noisy, items["given_label"])]}
    embeddings, loss = signals.load(db, ds.id, ds.n_items)
    one = audit.score_single_label(
        ds, copy, progress=lambda f, m: progress(0.05 + 0.9 * f, m), embeddings=embeddings, loss=loss
    )
    flagged = one.scored["is_issue"].to_numpy(dtype=bool)
    wrong = noisy != labels
    kinds = []
    for kind in KINDS:
        rows = parts[kind][wrong[parts[kind]]]
        kinds.append(
            KindRecall(
                kind,
                int(len(rows)),
                int(flagged[rows].sum()),
                float(flagged[rows].mean()) if len(rows) else float("nan"),
            )
        )
    injected_share = float(wrong[flagged].mean()) if flagged.any() else 0.0
    result = SelfCheck(
        0,
        ds.id,
        user.name,
        store.now_iso(),
        int(seed),
        float(rate),
        [names[pair[0]], names[pair[1]]],
        kinds,
        int(flagged.sum()),
        injected_share,
        one.model.params.get("model", ""),
        round(time.perf_counter() - t0, 2),
    )
    progress(0.97, "Saving the self-check")
    with store.transaction(db):
        cur = db.execute(
            "INSERT INTO self_checks(dataset_id, created_by, created_at, seed, rate, result) VALUES (?,?,?,?,?,?)",
            [ds.id, user.name, result.created_at, result.seed, result.rate, json.dumps(_as_json(result))],
        )
        result.id = cur.lastrowid
        trail.log(
            db,
            user.name,
            "self_check",
            ds.id,
            self_check=result.id,
            seed=result.seed,
            rate=result.rate,
            recall={k.kind: round(k.recall, 4) for k in kinds},
        )
    progress(1.0, result.summary())
    return result


def _as_json(r: SelfCheck) -> dict:
    d = asdict(r)
    d.pop("id")
    return d


def self_checks(db: sqlite_utils.Database, ds: Dataset, limit: int = 20) -> list[SelfCheck]:
    """The dataset's self-checks, newest first."""
    out = []
    for id_, result in db.execute(
        "SELECT id, result FROM self_checks WHERE dataset_id=? ORDER BY id DESC LIMIT ?", [ds.id, limit]
    ):
        d = json.loads(result)
        d["kinds"] = [KindRecall(**k) for k in d["kinds"]]
        out.append(SelfCheck(id=id_, **d))
    return out
