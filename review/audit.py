"""One audit run: integrity checks, out-of-sample model, shift detector, cleanlab; kept in SQLite.

A run never overwrites an earlier run or any review: scores belong to their run.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlite_utils

from review import stats, store, trail
from review.auth import User, require_active
from review.crowd import consensus as crowd
from review.datasets import Dataset, get
from review.errors import ReviewError
from review.text import (
    ingest,
    integrity,
    issues,
    signals,  # models (sklearn) loads in run_audit
)

if TYPE_CHECKING:  # review.text.models loads sklearn; run_audit imports it when it runs
    from review import ner
    from review.text import models

Progress = Callable[[float, str], None]


def _noop(fraction: float, message: str) -> None:
    pass


def library_versions() -> dict:
    """The versions a run depends on, read from the installed packages' metadata (importing sklearn
    and cleanlab to ask would cost an integrity run, and so `review ingest`, seconds)."""
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": version("scikit-learn"),
        "cleanlab": version("cleanlab"),
    }


def _model_source(ds: Dataset) -> str:
    if ds.task == "ner":
        return "a NER dataset"
    if ds.mapping.multi:
        return "labelled by several annotators"
    return "audited with its own probabilities" if ds.mapping.probs else "tabular"


def load_items(db: sqlite_utils.Database, ds: Dataset) -> dict[str, list]:
    """Every item of a dataset, in row order: {'text': [...], 'given_label': [...], 'features': [...], 'probs': [...]}."""
    cols = {"text": [], "given_label": [], "features": [], "probs": []}
    for text, label, feats, probs in db.execute(
        "SELECT text, given_label, features, probs FROM items WHERE dataset_id=? ORDER BY idx", [ds.id]
    ):
        cols["text"].append(text)
        cols["given_label"].append(label)
        cols["features"].append(feats)
        cols["probs"].append(probs)
    return cols


def _start_run(db, ds: Dataset, kind: str, user: User, params: dict) -> int:
    import os
    import socket

    params = {**params, "pid": os.getpid(), "host": socket.gethostname()}  # to tell a run whose process died
    with store.transaction(db):
        cur = db.execute(
            "INSERT INTO runs(dataset_id, kind, status, params, versions, created_by, started_at) VALUES (?,?,?,?,?,?,?)",
            [ds.id, kind, "running", json.dumps(params), json.dumps(library_versions()), user.name, store.now_iso()],
        )
        return cur.lastrowid


def _fail_run(db, run_id: int, exc: BaseException) -> None:
    with store.transaction(db):
        db.execute(
            "UPDATE runs SET status='failed', finished_at=?, error=? WHERE id=?",
            [store.now_iso(), f"{type(exc).__name__}: {exc}", run_id],
        )


def _finish_run(
    db,
    ds: Dataset,
    run_id: int,
    user: User,
    action: str,
    metrics: dict,
    params: dict | None = None,
    t0: float | None = None,
    **logged,
) -> None:
    """Inside the caller's transaction, after its findings and scores: the run's aggregates, then
    ``metrics`` (with the run's ``seconds`` since ``t0`` when given) and ``params`` (when given) on
    the run, marked done, and the trail row ``action`` with ``logged``."""
    stats.compute_aggregates(db, ds, run_id)
    if t0 is not None:
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
    if params is None:
        db.execute(
            "UPDATE runs SET status='done', finished_at=?, metrics=? WHERE id=?",
            [store.now_iso(), json.dumps(metrics), run_id],
        )
    else:
        db.execute(
            "UPDATE runs SET status='done', finished_at=?, metrics=?, params=? WHERE id=?",
            [store.now_iso(), json.dumps(metrics), json.dumps(params), run_id],
        )
    trail.log(db, user.name, action, ds.id, run=run_id, **logged)


def _write_findings(db, run_id: int, findings: list) -> None:
    db.conn.executemany(
        "INSERT INTO findings(run_id, kind, first_row, last_row, n_rows, message, rows, detail) VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                run_id,
                f.kind,
                min(f.rows) if f.rows else None,
                max(f.rows) if f.rows else None,
                len(f.rows),
                f.message,
                json.dumps([int(r) for r in f.rows]),
                json.dumps(f.detail, default=str),
            )
            for f in findings
        ],
    )


def _reasons(findings: list) -> tuple[dict[int, list[str]], dict[int, str]]:
    reasons: dict[int, list[str]] = {}
    suggestions: dict[int, str] = {}
    for f in findings:
        for r in f.rows:
            reasons.setdefault(int(r), []).append(f.reason_for(int(r)))
        for r, lab in (f.detail.get("suggested") or {}).items():
            suggestions[int(r)] = lab
    return reasons, suggestions


def load_annotations(db: sqlite_utils.Database, ds: Dataset) -> tuple[np.ndarray, list[str]]:
    """Every (item, annotator, label) of a multi-annotator dataset -> (L (n_items, M), annotators (M,)).

    L[i, m] is the class index annotator m gave item i, -1 where they did not label it. Annotations keep
    the names they were given with: each is read through review.taxonomy.label_map (its name now)."""
    from review import taxonomy

    rows = db.execute(
        "SELECT idx, annotator, label FROM annotations WHERE dataset_id=? ORDER BY idx", [ds.id]
    ).fetchall()
    names = taxonomy.label_map(db, ds)
    index = {c: i for i, c in enumerate(ds.labels)}
    rows = [(i, a, names.get(lab, lab)) for i, a, lab in rows]
    rows = [r for r in rows if r[2] in index]
    annotators = sorted({r[1] for r in rows})
    col = {a: j for j, a in enumerate(annotators)}
    L = np.full((ds.n_items, len(annotators)), -1, dtype=np.int64)
    for i, a, lab in rows:
        L[i, col[a]] = index[lab]
    return L, annotators


def _crowd_scores(db, ds: Dataset, texts, given: np.ndarray, progress: Progress):
    """Consensus of the annotators (crowd.consensus, default method) -> (scores frame, CrowdResult).

    The frame's ``activelab`` column orders the label queue (review.crowd.labeling: cleanlab ActiveLab on
    the labels and the consensus model's out-of-sample probabilities, else its posteriors); where
    ActiveLab cannot score the data the column is empty and the run's params say why ('label queue error')."""
    from review.crowd import labeling

    L, annotators = load_annotations(db, ds)
    res = crowd.consensus(
        L, ds.labels, texts, method="default", annotators=annotators, progress=lambda f, m: progress(0.1 + 0.75 * f, m)
    )
    votes = np.zeros((len(L), len(ds.labels)))
    for c in range(len(ds.labels)):
        votes[:, c] = (L == c).sum(axis=1)
    scored = issues.score_consensus(
        given, res.consensus, res.quality, res.agreement, res.n_annotators, res.posteriors, votes, ds.labels
    )
    progress(0.87, "Scoring which items need another label (ActiveLab)")
    P, source = labeling.model_probs(res)
    queue = {"label queue": f"cleanlab ActiveLab on the annotators' labels and {source}"}
    try:
        scored["activelab"] = np.round(labeling.activelab_scores(L, P), 6)
    except (ValueError, FloatingPointError, ZeroDivisionError) as exc:  # the consensus stands; the queue says why
        scored["activelab"] = None
        queue["label queue error"] = str(exc)
    res.details["model"] = {**(res.details.get("model") or {}), **queue}  # lands in the run's params
    return scored, res


def _ner_findings(corpus, consistency=None) -> list:
    """Sentences whose tags break the dataset's scheme -> one finding (rows = sentences); with a
    TagConsistency, one tag_inconsistency finding per string tagged differently across the corpus
    (rows = the sentences of its odd occurrences), most lopsided first."""
    from review import ner

    found = []
    bad = {}
    for i, s in enumerate(corpus.sentences):
        v = ner.scheme_violations(s.tags, corpus.scheme)
        if v:
            bad[i] = "; ".join(f"token {j} {s.tokens[j]!r}: {why}" for j, why in v[:3])
    if bad:
        first = min(bad)
        found.append(
            integrity.Finding(
                "scheme_violation",
                sorted(bad),
                f"{len(bad):,} sentence(s) have tags that break {corpus.scheme} (first: sentence {first}: {bad[first]}). "
                "Review them: the corrected tags must be valid.",
                {"reasons": {str(k): v for k, v in bad.items()}, "scheme": corpus.scheme},
            )
        )
    if consistency is not None:
        found += ner.inconsistency_findings(consistency)
    return found


def run_integrity(db: sqlite_utils.Database, name_or_id, user: User) -> int:
    """The free checks alone (no model): a run of kind 'integrity'; its rows become suspects.
    For NER: tags that break the scheme. Returns the run id."""
    return _integrity(db, name_or_id, user)[0]


def _integrity(db: sqlite_utils.Database, name_or_id, user: User) -> tuple[int, int]:
    """run_integrity -> (run id, number of findings)."""
    require_active(db, user, "lead", "run audits")
    ds = get(db, name_or_id)
    run_id = _start_run(db, ds, "integrity", user, {})
    try:
        if ds.task == "ner":
            from review.ner import store as ner_store

            findings = _ner_findings(ner_store.load_given(db, ds))
        else:
            items = load_items(db, ds)
            findings = integrity.check_items(
                items["text"], items["given_label"], ds.labels if ds.label_set_declared else None
            )
        reasons, _ = _reasons(findings)
        rows = sorted(reasons)
        with store.transaction(db):
            _write_findings(db, run_id, findings)
            db.conn.executemany(
                "INSERT INTO scores(run_id, idx, is_issue, rank, action, reason, trust) VALUES (?,?,1,?, 'needs review', ?, 0)",
                [(run_id, r, k + 1, "; ".join(reasons[r])) for k, r in enumerate(rows)],
            )
            metrics = {"rows": ds.n_items, "flagged": len(rows), "findings": {f.kind: len(f.rows) for f in findings}}
            _finish_run(db, ds, run_id, user, "integrity_run", metrics, **metrics)
    except BaseException as exc:
        _fail_run(db, run_id, exc)
        raise
    return run_id, len(findings)


@dataclass(frozen=True)
class Ingested:
    """An upload written and checked: its dataset, its integrity run and how many findings that run has."""

    dataset_id: int
    integrity_run_id: int
    findings: int


def ingest_checked(
    db: sqlite_utils.Database,
    upload: ingest.Prepared | ner.Corpus,
    name: str,
    user: User,
    progress: Progress | None = None,
    source: bytes | None = None,
    checking: str | None = None,
) -> Ingested:
    """Write an upload as the dataset ``name``, then run the integrity checks on it (run_integrity).

    ``upload``: a prepared table (ingest.prepare, written by ingest.write_dataset) or a read NER corpus
    (ner_store.read_corpus, written with the uploaded bytes ``source`` by ner_store.write_ner_dataset).
    ``progress(fraction, message)`` follows the write; with ``checking``, it is then called as
    ``progress(1.0, checking)`` before the checks run. A refusal of the write raises before any check."""
    if isinstance(upload, ingest.Prepared):
        ds_id = ingest.write_dataset(db, upload, name, user, progress)
    else:
        from review.ner import store as ner_store

        ds_id = ner_store.write_ner_dataset(db, upload, source, name, user, progress)
    if progress is not None and checking:
        progress(1.0, checking)
    run_id, n_findings = _integrity(db, ds_id, user)
    return Ingested(ds_id, run_id, n_findings)


@dataclass(frozen=True)
class TrainingLabels:
    """The labels a single-label audit trains and scores on: each row's current label (the latest
    verified one, else the given label), the rows whose current label differs from the given one
    ({row: label}), and the rows left out of training (their latest decision, still pending, says the
    label is wrong or unsure: the model never learns from a label a reviewer doubts; they are still
    scored out of sample, on their current label)."""

    labels: list
    corrected: dict[int, str]
    left_out: np.ndarray
    renamed: int = 0  # of the corrected rows, those whose label differs only by a taxonomy change (a rename, a merge)
    excluded: int = 0  # of the rows left out, those excluded from training (approved, or an exclude pending)

    def record(self, previous_run: int | None) -> dict:
        """What the run trained on, for its params (``corrected_rows``: corrections by a reviewer, not the rows
        a rename or merge of the label set gave a new name: those are ``renamed_rows``)."""
        from review import rundiff

        return {
            "labels": "current",
            "corrected_rows": len(self.corrected) - self.renamed,
            "renamed_rows": self.renamed,
            "left_out_rows": int(self.left_out.sum()),
            "excluded_rows": self.excluded,
            "previous_run": previous_run,
            "corrections": rundiff.encode_labels(self.corrected),
        }


def current_labels(db: sqlite_utils.Database, ds: Dataset, given: list) -> TrainingLabels:
    """given labels (n,) in row order (load_items) -> TrainingLabels, from the rows' states (one indexed
    read of the rows that have a corrected label, a pending doubt or an exclusion, few). Left out of training
    (still scored): a pending relabel or unsure, and rows excluded from training (states.excluded, or an
    exclude pending)."""
    labels = list(given)
    corrected: dict[int, str] = {}
    left_out = np.zeros(len(labels), dtype=bool)
    excluded = 0
    for r in store.rows(
        db,
        "SELECT idx, state, current_label, excluded FROM states WHERE dataset_id=?"
        " AND (current_label IS NOT NULL OR state IN ('relabelled', 'unsure', 'excluded') OR excluded=1)",
        [ds.id],
    ):
        i = r["idx"]
        if not 0 <= i < len(labels):
            continue
        if r["current_label"] is not None and r["current_label"] != labels[i]:
            labels[i] = corrected[i] = r["current_label"]
        if r["state"] in ("relabelled", "unsure", "excluded") or r["excluded"] == 1:
            left_out[i] = True
            excluded += r["state"] == "excluded" or r["excluded"] == 1
    renamed = 0
    if corrected and store.scalar(db, "SELECT 1 FROM taxonomy_events WHERE dataset_id=? LIMIT 1", [ds.id]):
        from review import taxonomy  # the label set changed: a row renamed with its class is not a correction

        names = taxonomy.label_map(db, ds)
        renamed = sum(1 for i, lab in corrected.items() if names.get(given[i], given[i]) == lab)
    return TrainingLabels(labels, corrected, left_out, renamed, int(excluded))


def previous_audit(db: sqlite_utils.Database, ds: Dataset, before: int) -> int | None:
    """The newest finished audit run of ``ds`` older than run ``before``, or None."""
    return store.scalar(
        db,
        "SELECT MAX(id) FROM runs WHERE dataset_id=? AND kind='audit' AND status='done' AND id<?",
        [ds.id, before],
    )


def label_codes(ds: Dataset, given: list) -> np.ndarray:
    """given labels (n,) as stored -> (n,) class indices into ds.labels, -1 for none or unknown."""
    index = {c: i for i, c in enumerate(ds.labels)}
    return np.array([index.get(g, -1) if g is not None else -1 for g in given], dtype=np.int64)


@dataclass
class SingleLabelScores:
    """One label per row, scored: cleanlab's frame (issues.score_rows), the integrity and shift
    findings, the model that gave the probabilities, and the per-class balance of the queue."""

    scored: pd.DataFrame
    findings: list
    model: models.ModelResult
    balance: issues.ClassBalance


def score_single_label(
    ds: Dataset,
    items: dict[str, list],
    model: str = "auto",
    n_folds: int = 5,
    progress: Progress = _noop,
    embeddings: np.ndarray | None = None,
    loss: np.ndarray | None = None,
    second_pass: bool = False,
    exclude: np.ndarray | None = None,
) -> SingleLabelScores:
    """Integrity checks + out-of-sample probabilities (the upload's own, trees on feature columns, or
    the text portfolio, with the team's embeddings as one more view) + shift detector + cleanlab (the
    team's training loss fused into the trust), on items as load_items returns them. second_pass (text
    only; off by default, as the panel found no gain) trains again without the first pass's suspects.
    exclude (n,) bool (text only): rows never trained on, still scored out of sample (a re-audit leaves
    out the rows reviewers doubt). Writes nothing: the audit stores the result, the self-check measures it on injected labels."""
    from review.text import models

    texts, given = items["text"], items["given_label"]
    progress(0.05, "Integrity checks")
    findings = integrity.check_items(texts, given, ds.labels if ds.label_set_declared else None)
    labels = label_codes(ds, given)
    k = len(ds.labels)
    fold_progress = lambda f, m: progress(0.1 + 0.75 * f, m)
    if ds.mapping.probs:
        progress(0.1, "Using the probabilities from the upload")
        res = models.ModelResult(models.given_probs(items["probs"], k), {"model": "given probabilities"}, 0.0)
    elif ds.mapping.features:
        res = models.tabular_probs([json.loads(f) for f in items["features"]], labels, k, n_folds, fold_progress)
    else:
        if second_pass:  # the first pass takes the first half of the bar
            fold_progress = lambda f, m: progress(0.1 + 0.4 * f, m)
        res = models.text_probs(
            texts, labels, k, n_folds, fold_progress, model=model, embeddings=embeddings, exclude=exclude
        )
        if second_pass:  # train again without the rows the first pass flagged, re-predict every row
            progress(0.5, "Second pass: training without the first pass's suspects")
            first = issues.score_rows(labels, res.pred_probs, ds.labels)["is_issue"].to_numpy(dtype=bool)
            res = models.text_probs(
                texts,
                labels,
                k,
                n_folds,
                lambda f, m: progress(0.5 + 0.35 * f, m),
                model=model,
                embeddings=embeddings,
                exclude=(first & (labels >= 0)) | (exclude if exclude is not None else False),
            )
            res.params["second pass"] = f"trained without the {int(first.sum()):,} rows the first pass flagged"
    P = res.pred_probs
    progress(0.86, "Looking for shifted blocks")
    findings += integrity.detect_shifted_blocks(labels, P, ds.labels)
    progress(0.9, "Ranking suspects with cleanlab")
    reasons, suggestions = _reasons(findings)
    scored = issues.score_rows(labels, P, ds.labels, reasons, suggestions, loss=loss)
    balance = issues.class_balance(
        labels, P, scored["is_issue"].to_numpy(dtype=bool), scored["rank"].to_numpy(), ds.labels
    )
    return SingleLabelScores(scored, findings, res, balance)


def run_audit(
    db: sqlite_utils.Database,
    name_or_id,
    user: User,
    progress: Progress = _noop,
    n_folds: int = 5,
    model: str = "auto",
    second_pass: bool = False,
) -> int:
    """Integrity + out-of-sample probabilities + shift detector + cleanlab -> a new run id.

    ``progress(fraction, message)`` is called per step and per fold. ``model``: "auto"
    (the text portfolio chooses from the data) or one of models.MODEL_CHOICES (text only).
    """
    from review.text import models

    require_active(db, user, "lead", "run audits")
    ds = get(db, name_or_id)
    if model not in models.MODEL_CHOICES:
        raise ReviewError(f"Unknown model {model!r}: choose one of {', '.join(models.MODEL_CHOICES)}.")
    if model != "auto" and (ds.task != "text" or ds.mapping.multi or ds.mapping.probs or ds.mapping.features):
        raise ReviewError(
            f"Dataset {ds.name!r} does not use the text models (it is {_model_source(ds)}): "
            "run the audit without --model."
        )
    if ds.task == "ner":
        return run_ner_audit(db, ds, user, progress, n_folds)
    t0 = time.perf_counter()
    run_id = _start_run(db, ds, "audit", user, {"folds": n_folds, "selection": model, "second pass": second_pass})
    try:
        progress(0.0, "Loading rows")
        items = load_items(db, ds)
        texts, given = items["text"], items["given_label"]
        labels = label_codes(ds, given)
        crowd_res, balance, trained, embeddings = None, None, None, None
        if ds.mapping.multi:
            findings = integrity.check_items(texts, given, ds.labels if ds.label_set_declared else None)
            scored, crowd_res = _crowd_scores(db, ds, texts, labels, progress)
            P = crowd_res.posteriors
            sel = crowd_res.details.get("selection")
            res = models.ModelResult(
                P,
                {
                    "model": "consensus of annotators",
                    "method": crowd_res.method,
                    **(crowd_res.details.get("model") or {}),
                    **(
                        {"why": sel.reason, "held-out log-likelihood": {k: round(v, 4) for k, v in sel.loglik.items()}}
                        if sel
                        else {}
                    ),
                },
                0.0,
            )
        else:
            embeddings, loss = signals.load(db, ds.id, ds.n_items)
            # the current labels (verified corrections in); rows a pending decision doubts are left out of
            # training (the text models; the tabular model trains on every row) but scored like the rest
            trained = current_labels(db, ds, given)
            given, items = trained.labels, {**items, "given_label": trained.labels}
            labels = label_codes(ds, given)
            text_model = not ds.mapping.probs and not ds.mapping.features
            if not text_model:
                trained = TrainingLabels(trained.labels, trained.corrected, np.zeros(len(given), dtype=bool))
            one = score_single_label(
                ds,
                items,
                model,
                n_folds,
                progress,
                embeddings=embeddings,
                loss=loss,
                second_pass=second_pass,
                exclude=trained.left_out if trained.left_out.any() else None,
            )
            scored, findings, res, balance = one.scored, one.findings, one.model, one.balance
            P = res.pred_probs
            previous = previous_audit(db, ds, run_id)
        checks = None
        if ds.task == "text":  # the checks beyond label errors (review.findings), on the current labels
            from review import findings as checks_

            cur = crowd_res.consensus if crowd_res is not None else labels
            checks = checks_.run_checks(
                db,
                ds,
                run_id,
                texts,
                cur,
                P,
                embeddings,
                lambda f, m: progress(0.9 + 0.049 * f, m),
                words=res.words,
            )
        res.words = None  # the word matrix is not needed past the checks
        progress(0.95, "Saving the run")
        lab = labels >= 0
        metrics = {
            "rows": ds.n_items,
            "flagged": int(scored["is_issue"].sum()),
            "relabel": int((scored["action"] == "relabel").sum()),
            "needs review": int((scored["action"] == "needs review").sum()),
            "model agreement with given labels": round(float((P.argmax(1)[lab] == labels[lab]).mean()), 4)
            if lab.any()
            else None,
            "findings": {f.kind: len(f.rows) for f in findings},
            "model seconds": round(res.seconds, 2),
        }
        if trained is not None:  # what it trained on; the upload's own probabilities train nothing: metrics
            (metrics if ds.mapping.probs else res.params).update(trained.record(previous))
        if balance is not None:
            metrics["classes"] = [c.as_dict() for c in balance.classes]
            metrics["queue warning"] = balance.warning
        with store.transaction(db):
            _write_findings(db, run_id, findings)
            if checks is not None:
                from review.findings import store as checks_store

                metrics["checks"] = checks_store.write(db, ds, run_id, checks, scored["is_issue"].to_numpy(dtype=bool))
            elif ds.task == "text":  # too few rows, or more than the checks fit in the audit's budget yet
                from review import findings as checks_

                metrics["checks skipped"] = checks_.skipped_reason(ds.n_items)
            names = [
                "idx",
                "quality",
                "predicted_label",
                "confidence",
                "suggested_label",
                "is_issue",
                "rank",
                "trust",
                "action",
                "reason",
                "consensus_label",
                "agreement",
                "n_annotators",
                "activelab",
            ]
            for c in names[-4:]:
                if c not in scored:
                    scored[c] = None
            cols = [scored[c].tolist() for c in names]
            probs = [json.dumps([round(float(x), 4) for x in row]) for row in P]
            db.conn.executemany(
                f"INSERT INTO scores(run_id, {', '.join(names)}, probs) VALUES ({', '.join('?' * (len(names) + 2))})",
                ((run_id, *(c[i] for c in cols), probs[i]) for i in range(len(probs))),
            )
            if crowd_res is not None:
                st = crowd_res.annotator_stats
                db.conn.executemany(
                    "INSERT INTO annotator_stats(run_id, annotator, quality, agreement, worst_class, n_labels) VALUES (?,?,?,?,?,?)",
                    [
                        (run_id, str(a), None if q != q else float(q), None if g != g else float(g), w, int(k))
                        for a, q, g, w, k in st[
                            ["annotator", "quality", "agreement", "worst_class", "n_labels"]
                        ].itertuples(index=False, name=None)
                    ],
                )
                metrics["annotators"] = len(st)
                metrics["consensus differs from majority vote"] = int(
                    ((crowd_res.consensus >= 0) & (labels >= 0) & (crowd_res.consensus != labels)).sum()
                )
            if trained is not None and previous is not None:  # what changed against the previous run, kept
                from review import rundiff

                metrics["since previous run"] = rundiff.changes(db, ds, previous, run_id, trained.corrected)
            _finish_run(
                db, ds, run_id, user, "audit_run", metrics, res.params, t0, flagged=metrics["flagged"], rows=ds.n_items
            )
        progress(1.0, f"Done: {metrics['flagged']:,} suspects among {ds.n_items:,} rows")
    except BaseException as exc:
        _fail_run(db, run_id, exc)
        raise
    return run_id


def run_ner_audit(
    db: sqlite_utils.Database, ds: Dataset, user: User, progress: Progress = _noop, n_folds: int = 5
) -> int:
    """NER: scheme check + out-of-sample per-token probabilities (cross-validated by document;
    or the upload's own) + cleanlab token classification -> a new run id."""
    from review import ner
    from review.ner import store as ner_store

    t0 = time.perf_counter()
    run_id = _start_run(db, ds, "audit", user, {"folds": n_folds})
    try:
        progress(0.0, "Loading sentences")
        corpus = ner_store.load_given(db, ds)
        consistency = ner.tag_inconsistency(corpus)
        findings = _ner_findings(corpus, consistency)
        if corpus.prob_tag_names:
            progress(0.1, "Using the probabilities from the upload")
            probs, names = ner_store.given_probs_iob2(corpus)
            params = {"model": "given per-token probabilities"}
        else:
            fitted = ner.token_model(corpus, lambda f, m: progress(0.05 + 0.8 * f, m), n_folds=n_folds)
            probs, names, params = fitted.probs, fitted.tag_names, fitted.params
        scored = ner_store.score_run(
            run_id, corpus, probs, names, lambda f, m: progress(0.86 + 0.1 * f, m), consistency=consistency
        )
        metrics = {**scored.metrics, "findings": {f.kind: len(f.rows) for f in findings}}
        progress(0.96, "Saving the run")
        with store.transaction(db):  # findings, scores and the run's status together, as for text
            _write_findings(db, run_id, findings)
            scored.write(db)
            _finish_run(
                db,
                ds,
                run_id,
                user,
                "audit_run",
                metrics,
                params,
                t0,
                flagged=metrics["flagged"],
                rows=ds.n_items,
                flagged_tokens=metrics["flagged tokens"],
            )
        progress(
            1.0,
            f"Done: {metrics['flagged']:,} suspect sentences ({metrics['flagged tokens']:,} tokens) among {ds.n_items:,}",
        )
    except BaseException as exc:
        _fail_run(db, run_id, exc)
        raise
    return run_id
