"""Review and verify state machine, with role checks where the action happens.

    open --annotator--> kept | relabelled | unsure | excluded | ambiguous --lead--> approved | rejected (back to open)
                                                                          \\-----> overridden (lead's own label)

An approved exclude sets ``states.excluded`` (the row leaves training; its label stays), an approved
ambiguous ``states.ambiguous`` (kept, with the note its decision needs).

Four eyes: a decision is verified by a lead other than its author, unless the dataset's
setting ``allow_self_approval`` (datasets.set_setting) allows it for a one-person team; a
verification by the author is then recorded with ``self_approved`` in the audit trail.

Every item carries a version in ``states``; a decision names the version it was made
on and is refused (StaleViewError) if the item changed since. An annotator claims the
suspect they look at for CLAIM_SECONDS, so two annotators never get the same one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import sqlite_utils

from review import blind as blind_look
from review import store, trail
from review.auth import User, require_active
from review.datasets import Dataset, latest_run
from review.datasets import settings as dataset_settings
from review.errors import NotFound, ReviewError, StaleViewError

CLAIM_SECONDS = 15 * 60
DECISIONS = ("keep", "relabel", "unsure", "exclude", "ambiguous")
# exclude: the row leaves training (states.excluded once approved; label unchanged); ambiguous: kept, with a note
DECISION_STATE = {
    "keep": "kept",
    "relabel": "relabelled",
    "unsure": "unsure",
    "exclude": "excluded",
    "ambiguous": "ambiguous",
}
PENDING_STATES = tuple(DECISION_STATE.values())  # a decision awaits verification
VERIFY_ACTIONS = ("approve", "reject", "override")


@dataclass
class Suspect:
    """One row as the review page draws it. probs: (K,) model probabilities, in label order."""

    dataset_id: int
    idx: int
    key: str
    text: str | None
    given_label: str | None
    current_label: str | None
    run_id: int | None
    rank: int | None
    quality: float | None
    predicted_label: str | None
    confidence: float | None
    suggested_label: str | None
    action: str | None
    reason: str | None
    probs: list[float] | None
    state: str
    version: int
    claimed_by: str | None
    meta: dict = field(default_factory=dict)
    latest_review: dict | None = None
    annotations: list[tuple[str, str]] = field(default_factory=list)  # (annotator, label), multi-annotator data
    tokens: list[str] | None = None  # NER: the sentence's tokens (labels are then JSON lists of tags)
    judge: dict | None = None  # the LLM judge's verdict, label, reason and the fused action
    spot_check: bool = False  # an unflagged row drawn for a spot check
    findings: list[RowFinding] = field(default_factory=list)  # the checks beyond label errors (row_findings)


@dataclass(frozen=True)
class RowFinding:
    """One finding of the checks beyond label errors on a row in a run (row_findings); a near duplicate also
    carries its set: the other rows (set_rows, this one left out), whether their labels conflict, leakage."""

    kind: str  # outlier | near_duplicate | ambiguous | non_iid
    score: float
    detail: dict
    set_id: int | None = None
    set_rows: tuple[int, ...] = ()
    conflicting: bool = False
    leakage: bool = False
    set_status: str | None = None


class _ItemState(NamedTuple):
    """An item's row of ``states``; an item without one is open at version 0."""

    state: str = "open"
    version: int = 0
    current_label: str | None = None
    claimed_by: str | None = None
    claimed_until: float | None = None


def _state(db, ds_id: int, idx: int) -> _ItemState:
    row = store.fetch_one(
        db,
        "SELECT state, version, current_label, claimed_by, claimed_until FROM states WHERE dataset_id=? AND idx=?",
        [ds_id, idx],
    )
    return _ItemState(**{f: row[f] for f in _ItemState._fields}) if row else _ItemState()


# the model's view of a row in a run, as Suspect names it (and the scores table)
_SCORE_FIELDS = ("rank", "quality", "predicted_label", "confidence", "suggested_label", "action", "reason")


def get_suspect(db: sqlite_utils.Database, ds: Dataset, idx: int, run_id: int | None = None) -> Suspect:
    """Everything about one row: the item, its scores in the run, its state and latest review."""
    item = store.fetch_one(
        db, "SELECT key, text, given_label, meta, tokens FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]
    )
    if item is None:
        raise NotFound(f"Dataset {ds.name!r} has no row {idx}.")
    if run_id is None:
        run = latest_run(db, ds.id)
        run_id = run["id"] if run else None
    sc = None  # one read of the row's scores: the model's view, the judge's, and whether it is a spot check
    if run_id is not None:
        sc = store.fetch_one(
            db,
            f"SELECT {', '.join(_SCORE_FIELDS)}, probs,"
            " judge_verdict, judge_label, judge_reason, fused_action, fused_trust,"
            " is_issue = 0 AND EXISTS (SELECT 1 FROM spot_checks c WHERE c.run_id=scores.run_id AND c.idx=scores.idx)"
            " AS spot_check FROM scores WHERE run_id=? AND idx=?",
            [run_id, idx],
        )
    st = _state(db, ds.id, idx)
    claimed_by = st.claimed_by
    if st.claimed_until is not None and st.claimed_until < time.time():
        claimed_by = None
    rev = list(db.query("SELECT * FROM reviews WHERE dataset_id=? AND idx=? ORDER BY id DESC LIMIT 1", [ds.id, idx]))
    judge = (
        {
            "verdict": sc["judge_verdict"],
            "label": sc["judge_label"],
            "reason": sc["judge_reason"],
            "action": sc["fused_action"],
            "trust": sc["fused_trust"],
        }
        if sc and sc["judge_verdict"]
        else None
    )
    labels_by = (
        store.rows(
            db, "SELECT annotator, label FROM annotations WHERE dataset_id=? AND idx=? ORDER BY annotator", [ds.id, idx]
        )
        if ds.mapping.multi
        else []
    )
    from review import taxonomy  # the names of a run from before a change of the label set, as they are now

    model = {f: sc[f] if sc else None for f in _SCORE_FIELDS}
    probs = json.loads(sc["probs"]) if sc and sc["probs"] else None
    names = taxonomy.run_labels(db, ds, run_id) if sc else None
    if names:
        model["predicted_label"] = names.label(model["predicted_label"])
        model["suggested_label"] = names.label(model["suggested_label"])
        probs = names.probs(probs)
        if judge:
            judge["label"] = names.label(judge["label"])
    if labels_by and ds.task == "text":  # annotations keep the uploaded names
        now = taxonomy.label_map(db, ds)
        labels_by = [{"annotator": r["annotator"], "label": now.get(r["label"], r["label"])} for r in labels_by]
    found = (  # one indexed read (row_findings_row), the near-duplicate set joined
        store.rows(
            db,
            "SELECT f.kind, f.score, f.detail, f.set_id, d.rows AS set_rows, d.n_labels, d.leakage, d.status"
            " FROM row_findings f LEFT JOIN dup_sets d ON d.id=f.set_id WHERE f.run_id=? AND f.idx=? ORDER BY f.kind",
            [run_id, idx],
        )
        if run_id is not None
        else []
    )
    return Suspect(
        dataset_id=ds.id,
        idx=idx,
        key=item["key"],
        text=item["text"],
        given_label=item["given_label"],
        current_label=st.current_label or item["given_label"],
        run_id=run_id,
        **model,
        probs=probs,
        state=st.state,
        version=st.version,
        claimed_by=claimed_by,
        meta=json.loads(item["meta"]) if item["meta"] else {},
        latest_review=rev[0] if rev else None,
        annotations=[(r["annotator"], r["label"]) for r in labels_by],
        tokens=json.loads(item["tokens"]) if item["tokens"] else None,
        judge=judge,
        spot_check=bool(sc and sc["spot_check"]),
        findings=[
            RowFinding(
                kind=f["kind"],
                score=f["score"],
                detail=json.loads(f["detail"]) if f["detail"] else {},
                set_id=f["set_id"],
                set_rows=tuple(int(i) for i in json.loads(f["set_rows"] or "[]") if int(i) != idx),
                conflicting=bool(f["n_labels"] and f["n_labels"] > 1),
                leakage=bool(f["leakage"]),
                set_status=f["status"],
            )
            for f in found
        ],
    )


# The queue's conditions on scores ``s`` of run ``run``. The run id is written in as a literal (an integer from
# the runs table): a subquery naming s.run_id is correlated, evaluated again for every row of the run, which at
# 1M rows with 20,000 findings did not finish in minutes; with the literal each list is built once.
def _spot_only(run: int) -> str:
    return f" AND s.idx IN (SELECT c.idx FROM spot_checks c WHERE c.run_id={int(run)})"


def _flagged_or_spot(run: int) -> str:
    return f" AND (s.is_issue=1 OR s.idx IN (SELECT c.idx FROM spot_checks c WHERE c.run_id={int(run)}))"


def _finding_rows(run: int) -> str:
    """Rows the checks beyond label errors send to the queue: an outlier, an ambiguous row, a row of a
    conflicting near-duplicate set (row_findings of the run); they follow the label suspects and spot checks."""
    r = int(run)
    return (
        f" AND s.idx IN (SELECT f.idx FROM row_findings f WHERE f.run_id={r} AND (f.kind IN ('outlier', 'ambiguous')"
        f" OR (f.kind='near_duplicate' AND f.set_id IN (SELECT d.id FROM dup_sets d WHERE d.run_id={r}"
        " AND d.n_labels>1))))"
    )


def _one_finding(run: int) -> str:
    return f" AND s.idx IN (SELECT f.idx FROM row_findings f WHERE f.run_id={int(run)} AND f.kind=?)"


# finding="leakage": the rows with a near copy in another upload, by the newest check against each other dataset
# (review.findings.leakage; a check is asked for, not part of the run)
LEAKED = (
    " AND s.idx IN (SELECT p.idx FROM leakage_pairs p WHERE p.check_id IN"
    " (SELECT MAX(c.id) FROM leakage_checks c WHERE c.dataset_id=? GROUP BY c.other_id))"
)


def _finding_cond(ds: Dataset, run: int, finding: str) -> tuple[str, list]:
    """The condition on scores ``s`` for claim_next's and progress's ``finding``, with its parameters."""
    return (LEAKED, [ds.id]) if finding == "leakage" else (_one_finding(run), [finding])


# the queue "by action"; store.SCHEMA's index scores_action_rank holds the same expression (keep them in step:
# tests/db/test_findings_pages.py checks the query uses it)
ACTION_ORDER = (
    "CASE COALESCE(s.fused_action, s.action) WHEN 'relabel' THEN 0 WHEN 'needs review' THEN 1"
    " WHEN 'keep but ambiguous' THEN 2 ELSE 3 END"
)


def _check_ner_tags(db, ds: Dataset, idx: int, tags) -> str:
    """A NER correction (a list of tags, or its JSON) -> canonical JSON; ReviewError naming the bad token."""
    from review.ner import store as ner_store

    if isinstance(tags, str):
        try:
            tags = json.loads(tags)
        except ValueError:
            raise ReviewError("A sentence correction is a list of tags, one per token.") from None
    if not isinstance(tags, (list, tuple)):
        raise ReviewError("A sentence correction is a list of tags, one per token.")
    n = len(json.loads(store.scalar(db, "SELECT tokens FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]) or "[]"))
    return ner_store.check_tags(ds, n, tags)


def claim_next(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    exclude: Sequence[int] = (),
    action: str | None = None,
    disagrees: str | None = None,
    swap: tuple[str, str] | None = None,
    spot: bool = False,
    order: str = "rank",
    finding: str | None = None,
) -> Suspect | None:
    """The next open suspect for ``user``, most suspect first, claimed for CLAIM_SECONDS.

    Returns the suspect the user already holds if any (a rerun shows the same row).
    ``exclude``: rows the user skipped this session. ``action``: only rows with that
    recommended action. ``disagrees``: only rows where that annotator's label differs from
    the consensus, flagged or not. ``swap``: NER, only sentences with a flagged token
    given swap[0] and predicted swap[1]. ``spot``: only the spot-check rows (unflagged rows
    drawn at random to measure what the flags miss; otherwise they follow the flagged ones).
    ``action`` and ``order='action'`` use the fused action when the judge has run.
    ``finding``: only rows with that kind of finding in the latest run (row_findings: outlier, near_duplicate,
    ambiguous, non_iid), or "leakage" (a near copy in another upload: LEAKED), flagged by the label check or
    not. Without it, rows with an outlier or ambiguous finding or in a conflicting near-duplicate set follow the
    label suspects and spot checks (a second query, once no label suspect is open).
    None when the queue is empty.
    """
    require_active(db, user, "annotator", "review suspects")
    run = latest_run(db, ds.id)
    if run is None:
        return None
    now = time.time()
    excl = sorted({int(i) for i in exclude})
    with store.transaction(db):
        held = store.scalar(  # the row this user holds, if any
            db,
            "SELECT idx FROM states WHERE dataset_id=? AND state='open' AND claimed_by=? AND claimed_until>? ORDER BY idx LIMIT 1",
            [ds.id, user.name, now],
        )
        narrowed = action or disagrees or swap or spot or finding
        if held is not None and held not in excl and not narrowed:
            idx = held
        else:
            db.execute(
                "UPDATE states SET claimed_by=NULL, claimed_until=NULL WHERE dataset_id=? AND claimed_by=? AND state='open'",
                [ds.id, user.name],
            )
            rid = run["id"]
            sql = (
                "SELECT s.idx FROM scores s LEFT JOIN states st ON st.dataset_id=? AND st.idx=s.idx WHERE s.run_id=?"
                " AND (st.state IS NULL OR (st.state='open' AND (st.claimed_by IS NULL OR st.claimed_by=? OR st.claimed_until<?)))"
            )
            params: list = [ds.id, rid, user.name, now]
            if finding:
                cond, extra = _finding_cond(ds, rid, finding)
                sql += cond
                params += extra
            if excl:
                sql += f" AND s.idx NOT IN ({','.join('?' * len(excl))})"
                params += excl
            if action:
                sql += " AND COALESCE(s.fused_action, s.action)=?"
                params.append(action)
            if disagrees:
                sql += " AND s.idx IN (SELECT a.idx FROM annotations a WHERE a.dataset_id=? AND a.annotator=? AND a.label != s.consensus_label)"
                params += [ds.id, disagrees]
            if swap:
                sql += f" AND s.idx IN (SELECT t.idx FROM token_issues t WHERE t.run_id={int(rid)} AND t.given_tag=? AND t.predicted_tag=?)"
                params += list(swap)
            # by rank: the label suspects walk the rank index and stop at the first open row; a row list (a
            # finding, spot checks, leaked rows) is read by its rows and sorted (+s.rank: not the index's order)
            by = ACTION_ORDER + ", s.rank" if order == "action" else "s.rank"
            listed = ACTION_ORDER + ", s.rank" if order == "action" else "+s.rank"
            if disagrees or finding:
                phases = [("", listed)]
            elif spot:
                phases = [(_spot_only(rid), listed)]
            else:  # the label suspects and spot checks first, then the rows the checks beyond label errors send
                phases = [(_flagged_or_spot(rid), by), (_finding_rows(rid), listed)]
            idx = None
            for cond, order_by in phases:
                idx = store.scalar(db, sql + cond + f" ORDER BY {order_by} LIMIT 1", params)
                if idx is not None:
                    break
            if idx is None:
                return None
        db.execute(
            "INSERT INTO states(dataset_id, idx, state, version, claimed_by, claimed_until, updated_at) VALUES (?,?,'open',0,?,?,?)"
            " ON CONFLICT(dataset_id, idx) DO UPDATE SET claimed_by=excluded.claimed_by, claimed_until=excluded.claimed_until",
            [ds.id, idx, user.name, now + CLAIM_SECONDS, store.now_iso()],
        )
    return get_suspect(db, ds, idx, run["id"])


def release(db: sqlite_utils.Database, ds: Dataset, idx: int, user: User) -> None:
    """Give back a claimed row (skip)."""
    with store.transaction(db):
        db.execute(
            "UPDATE states SET claimed_by=NULL, claimed_until=NULL WHERE dataset_id=? AND idx=? AND claimed_by=?",
            [ds.id, idx, user.name],
        )


def claim_row(db: sqlite_utils.Database, ds: Dataset, user: User, idx: int) -> Suspect:
    """Row ``idx`` for the review card (the Rows page's "Open row N"), flagged or not: claimed for ``user``
    for CLAIM_SECONDS when it is open and nobody else holds it (the user's other open claim is released,
    so claim_next then shows this one), else returned unclaimed (``state`` and ``claimed_by`` say why:
    decided, verified, or held by someone else) for the card to show read-only. NotFound: no such row."""
    require_active(db, user, "annotator", "open a row in the review card")
    now = time.time()
    with store.transaction(db):
        if store.scalar(db, "SELECT 1 FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx]) is None:
            raise NotFound(f"Dataset {ds.name!r} has no row {idx}: pick a row the Rows page lists.")
        st = _state(db, ds.id, idx)
        free = st.claimed_by in (None, user.name) or (st.claimed_until or 0) < now
        if st.state == "open" and free:
            db.execute(
                "UPDATE states SET claimed_by=NULL, claimed_until=NULL"
                " WHERE dataset_id=? AND claimed_by=? AND state='open' AND idx != ?",
                [ds.id, user.name, idx],
            )
            db.execute(
                "INSERT INTO states(dataset_id, idx, state, version, claimed_by, claimed_until, updated_at)"
                " VALUES (?,?,'open',0,?,?,?) ON CONFLICT(dataset_id, idx) DO UPDATE SET"
                " claimed_by=excluded.claimed_by, claimed_until=excluded.claimed_until",
                [ds.id, idx, user.name, now + CLAIM_SECONDS, store.now_iso()],
            )
    return get_suspect(db, ds, idx)


def _check_flag_decision(ds: Dataset, idx: int, decision: str, note: str) -> None:
    """exclude / ambiguous: text datasets only; ambiguous needs its note (why the row is ambiguous)."""
    if decision not in ("exclude", "ambiguous"):
        return
    if ds.task == "ner":
        raise ReviewError(
            f"Sentence {idx} of {ds.name!r}: a NER sentence is kept, relabelled or marked unsure; "
            f"{decision!r} applies to text datasets. Nothing was saved."
        )
    if decision == "ambiguous" and not note:
        raise ReviewError(
            f"Say why row {idx} is ambiguous: an ambiguous row is kept with a note (which labels it could be, "
            "and why). Nothing was saved."
        )


def decide(
    db: sqlite_utils.Database,
    ds: Dataset,
    idx: int,
    user: User,
    decision: str,
    seen_version: int,
    new_label: str | None = None,
    note: str = "",
    blind: blind_look.BlindCall | None = None,
    trail_extra: dict | None = None,
) -> int:
    """Record an annotator's decision (keep / relabel / unsure / exclude from training / ambiguous, which
    needs a ``note``) made on ``seen_version``.

    An annotator may revise their own decision while it awaits verification.
    Returns the review id. Raises StaleViewError if the row changed since it was shown.
    ``blind``: the first call made before the model's view was shown (review.blind); required while the
    dataset's ``blind_first_look`` is on, except for a revision of one's own pending decision (it keeps the
    first call it revises); a caller that shows no card passes ``BlindCall.not_applicable(why)``.
    ``trail_extra``: more fields for the ``decision`` trail row (find similar: ``similar_to``).
    """
    require_active(db, user, "annotator", "review suspects")
    if decision not in DECISIONS:
        raise ReviewError(f"Unknown decision {decision!r}: choose one of {', '.join(DECISIONS)}.")
    note = (note or "").strip()
    if len(note) > 5000:
        raise ReviewError("The note is too long: keep it under 5,000 characters.")
    _check_flag_decision(ds, idx, decision, note)
    with store.transaction(db):
        item = store.fetch_one(db, "SELECT given_label FROM items WHERE dataset_id=? AND idx=?", [ds.id, idx])
        if item is None:
            raise NotFound(f"Dataset {ds.name!r} has no row {idx}.")
        st = _state(db, ds.id, idx)
        label_now = st.current_label or item["given_label"]
        if decision == "relabel" and ds.task == "ner":
            new_label = _check_ner_tags(db, ds, idx, new_label)
            if new_label == label_now:
                raise ReviewError(f"Sentence {idx} already has these tags: choose keep, or change a tag.")
        elif decision == "relabel":
            if new_label not in ds.labels:
                raise ReviewError(f"{new_label!r} is not a label of {ds.name!r}: choose one of {', '.join(ds.labels)}.")
            if new_label == label_now:
                raise ReviewError(f"Row {idx} is already labelled {new_label!r}: choose keep, or another label.")
        else:
            new_label = None
        if st.version != seen_version:
            who = store.scalar(
                db, "SELECT actor FROM audit_log WHERE dataset_id=? AND idx=? ORDER BY id DESC LIMIT 1", [ds.id, idx]
            )
            raise StaleViewError(
                f"Row {idx} was changed by {who or 'someone else'} while you looked at it: your decision was not saved. Reload it to see what changed."
            )
        if st.claimed_by and st.claimed_by != user.name and (st.claimed_until or 0) > time.time():
            raise StaleViewError(
                f"Row {idx} is now being reviewed by {st.claimed_by}: your claim on it expired. Your decision was not saved; take the next suspect."
            )
        revising = None
        if st.state != "open":
            last = store.fetch_one(
                db,
                "SELECT id, reviewer, status FROM reviews WHERE dataset_id=? AND idx=? ORDER BY id DESC LIMIT 1",
                [ds.id, idx],
            )
            if last and last["reviewer"] == user.name and last["status"] == "pending":
                revising = last["id"]
            else:
                raise StaleViewError(f"Row {idx} is already {st.state}: it is not open for review.")
        first = blind_look.resolve(db, ds, idx, blind, label_now, revising)  # refused: no first call when due
        run = latest_run(db, ds.id)
        sugg = (
            store.scalar(db, "SELECT suggested_label FROM scores WHERE run_id=? AND idx=?", [run["id"], idx])
            if run
            else None
        )
        if sugg is not None:
            from review import taxonomy  # a run from before a rename suggests the old name

            names = taxonomy.run_labels(db, ds, run["id"])
            sugg = names.label(sugg) if names else sugg
        took = int(
            sugg is not None
            and ((decision == "relabel" and new_label == sugg) or (decision == "keep" and sugg == label_now))
        )
        if revising:
            db.execute("UPDATE reviews SET status='superseded' WHERE id=?", [revising])
        cur = db.execute(
            "INSERT INTO reviews(dataset_id, idx, run_id, decision, new_label, note, reviewer, created_at, took_suggestion, status, version,"
            " blind_decision, blind_label) VALUES (?,?,?,?,?,?,?,?,?,'pending',?,?,?)",
            [
                ds.id,
                idx,
                run["id"] if run else None,
                decision,
                new_label,
                note,
                user.name,
                store.now_iso(),
                took,
                st.version + 1,
                *blind_look.columns(first),
            ],
        )
        db.execute(
            "INSERT INTO states(dataset_id, idx, state, version, updated_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT(dataset_id, idx) DO UPDATE SET state=excluded.state, version=excluded.version,"
            " claimed_by=NULL, claimed_until=NULL, updated_at=excluded.updated_at",
            [ds.id, idx, DECISION_STATE[decision], st.version + 1, store.now_iso()],
        )
        trail.log(
            db,
            user.name,
            "decision",
            ds.id,
            idx,
            review=cur.lastrowid,
            decision=decision,
            new_label=new_label,
            previous_label=label_now,
            note=note,
            revises=revising,
            took_suggestion=bool(took),
            **blind_look.trail_fields(first, decision, new_label),
            **(trail_extra or {}),
        )
        return cur.lastrowid


def verify(
    db: sqlite_utils.Database,
    review_id: int,
    user: User,
    action: str,
    seen_version: int,
    label: str | None = None,
    note: str = "",
) -> None:
    """A lead approves, rejects (with a reason; the row goes back to the queue) or
    overrides (with the lead's own label) a pending decision. Approving an exclude sets
    ``states.excluded`` (an ambiguous: ``states.ambiguous``), the label unchanged; a reject or an
    override clears both.

    Refused (ReviewError) on the lead's own decision unless the dataset allows self-approval."""
    require_active(db, user, "lead", "verify decisions")
    if action not in VERIFY_ACTIONS:
        raise ReviewError(f"Unknown action {action!r}: choose one of {', '.join(VERIFY_ACTIONS)}.")
    note = (note or "").strip()
    with store.transaction(db):
        _verify_one(db, review_id, user, action, seen_version, label, note)


def _verify_one(
    db: sqlite_utils.Database,
    review_id: int,
    user: User,
    action: str,
    seen_version: int,
    label,
    note: str,
    **audit_extra,
) -> None:
    """verify()'s checks and writes, inside the caller's transaction (verify, verify_many)."""
    rev = store.fetch_one(
        db, "SELECT dataset_id, idx, decision, new_label, status, reviewer FROM reviews WHERE id=?", [review_id]
    )
    if rev is None:
        raise NotFound(f"There is no decision {review_id}.")
    ds_id, idx, decision, reviewer = rev["dataset_id"], rev["idx"], rev["decision"], rev["reviewer"]
    if rev["status"] != "pending":
        raise StaleViewError(f"Decision {review_id} on row {idx} is already {rev['status']}: nothing was changed.")
    self_approved = reviewer == user.name
    if self_approved and not dataset_settings(db, ds_id)["allow_self_approval"]:
        raise ReviewError(
            f"You ({reviewer}) made this decision on row {idx}: a decision is verified by someone other than"
            " its author (four eyes), so another lead has to verify it. Nothing was changed. A one-person team"
            " can allow self-approval for this dataset on the Verify page."
        )
    st = _state(db, ds_id, idx)
    if st.version != seen_version:
        raise StaleViewError(f"Row {idx} changed while you looked at it: nothing was changed. Reload the verify queue.")
    given = store.scalar(db, "SELECT given_label FROM items WHERE dataset_id=? AND idx=?", [ds_id, idx])
    labels = json.loads(store.scalar(db, "SELECT labels FROM datasets WHERE id=?", [ds_id]))
    if action == "approve":
        if decision == "unsure":
            raise ReviewError(
                f"{reviewer} was unsure about row {idx}, so there is no label to approve: override with a label, or reject it back to the queue."
            )
        final = rev["new_label"] if decision == "relabel" else (st.current_label or given)
        new_state, new_status, new_current = "approved", "approved", final
    elif action == "reject":
        if not note:
            raise ReviewError("Say why you reject the decision: the note goes back to the annotator.")
        final, new_state, new_status, new_current = None, "open", "rejected", st.current_label
    else:
        ds_task = store.scalar(db, "SELECT task FROM datasets WHERE id=?", [ds_id])
        if ds_task == "ner":
            from review.datasets import get as get_dataset

            label = _check_ner_tags(db, get_dataset(db, ds_id), idx, label)
        elif label not in labels:
            raise ReviewError(f"{label!r} is not a label of this dataset: choose one of {', '.join(labels)}.")
        final, new_state, new_status, new_current = label, "overridden", "overridden", label
    now = store.now_iso()
    # the flags of an approved exclude / ambiguous (the label stays); a reject or an override clears them
    excluded = 1 if action == "approve" and decision == "exclude" else None
    ambiguous = 1 if action == "approve" and decision == "ambiguous" else None
    db.execute(
        "UPDATE reviews SET status=?, verified_by=?, verified_at=?, verify_note=?, final_label=? WHERE id=?",
        [new_status, user.name, now, note, final, review_id],
    )
    db.execute(
        "UPDATE states SET state=?, version=?, current_label=?, excluded=?, ambiguous=?, claimed_by=NULL,"
        " claimed_until=NULL, updated_at=? WHERE dataset_id=? AND idx=?",
        [new_state, st.version + 1, None if new_current == given else new_current, excluded, ambiguous, now]
        + [ds_id, idx],
    )
    extra = {"self_approved": True} if self_approved else {}
    trail.log(
        db,
        user.name,
        "verify",
        ds_id,
        idx,
        review=review_id,
        action=action,
        final_label=final,
        decision=decision,
        reviewer=reviewer,
        note=note,
        **extra,
        **audit_extra,
    )


# the label a pending decision proposes: a relabel's new label, a keep's kept label (an exclude and an ambiguous
# keep the label too), nothing for unsure
PROPOSED = (
    "CASE WHEN r.decision='relabel' THEN r.new_label WHEN r.decision IN ('keep', 'exclude', 'ambiguous')"
    " THEN COALESCE(st.current_label, i.given_label) END"
)
BULK_MAX = 500  # decisions verify_many approves in one transaction (the page passes the 20 it lists)


def _pending_where(ds: Dataset, reviewer: str | None, pair: tuple | None, decision: str | None) -> tuple[str, list]:
    """The SQL (after ``r.status='pending'``) and parameters of the Verify page's filters."""
    sql, params = "", []
    if reviewer is not None:
        sql += " AND r.reviewer=?"
        params.append(reviewer)
    if decision is not None:
        if decision not in DECISIONS:
            raise ReviewError(f"Unknown decision {decision!r}: choose one of {', '.join(DECISIONS)}.")
        sql += " AND r.decision=?"
        params.append(decision)
    if pair is not None:
        if ds.task == "ner":
            raise ReviewError("A sentence's decision has no class pair: filter NER decisions by reviewer or decision.")
        given, proposed = pair
        sql += f" AND i.given_label IS ? AND ({PROPOSED}) IS ?"  # IS: a pair may hold NULL (unsure: no proposal)
        params += [given, proposed]
    return sql, params


def pending(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    limit: int = 20,
    after_id: int = 0,
    *,
    reviewer: str | None = None,
    pair: tuple[str | None, str | None] | None = None,
    decision: str | None = None,
) -> list[dict]:
    """One page of decisions awaiting verification (keyset on review id), with the item (and its
    tokens for NER), its current label, the label it proposes, the model's view and the row's
    state version. Filters (None: any): ``reviewer`` (the decision's author), ``pair`` (given
    label, proposed label; proposed None is an unsure decision; not for NER), ``decision``
    (one of DECISIONS). Each row carries the reviewer's blind first call (blind_decision, blind_label; None
    without one, review.blind). SQLite reads only the page (LIMIT), never the whole queue."""
    require_active(db, user, "lead", "verify decisions")
    run = latest_run(db, ds.id)
    where, params = _pending_where(ds, reviewer, pair, decision)
    return list(
        db.query(
            "SELECT r.id, r.idx, i.key, i.text, i.given_label, r.decision, r.new_label, r.note, r.reviewer, r.created_at,"
            " r.blind_decision, r.blind_label, st.version, sc.predicted_label, sc.confidence, sc.quality, sc.reason,"
            f" i.tokens, COALESCE(st.current_label, i.given_label) AS current_label, {PROPOSED} AS proposed_label"
            " FROM reviews r JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
            " JOIN states st ON st.dataset_id=r.dataset_id AND st.idx=r.idx"
            " LEFT JOIN scores sc ON sc.run_id=? AND sc.idx=r.idx"
            f" WHERE r.dataset_id=? AND r.status='pending' AND r.id>?{where} ORDER BY r.id LIMIT ?",
            [run["id"] if run else -1, ds.id, after_id, *params, limit],
        )
    )


def pending_groups(db: sqlite_utils.Database, ds: Dataset, user: User) -> list[dict]:
    """The Verify page's filter options, from one grouped query: one dict per (reviewer, given
    label, proposed label, decision) with ``n``, the decisions awaiting verification in it
    (given / proposed are None for NER, whose labels are tag lists). See pending_count."""
    require_active(db, user, "lead", "verify decisions")
    labels = (
        "NULL AS given, NULL AS proposed" if ds.task == "ner" else f"i.given_label AS given, {PROPOSED} AS proposed"
    )
    return list(
        db.query(
            f"SELECT r.reviewer AS reviewer, {labels}, r.decision AS decision, COUNT(*) AS n FROM reviews r"
            " JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
            " JOIN states st ON st.dataset_id=r.dataset_id AND st.idx=r.idx"
            " WHERE r.dataset_id=? AND r.status='pending' GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
            [ds.id],
        )
    )


def pending_count(
    groups: Sequence[dict], reviewer: str | None = None, pair: tuple | None = None, decision: str | None = None
) -> int:
    """How many decisions of pending_groups() match the filters (None: any)."""
    return sum(
        g["n"]
        for g in groups
        if (reviewer is None or g["reviewer"] == reviewer)
        and (decision is None or g["decision"] == decision)
        and (pair is None or (g["given"], g["proposed"]) == tuple(pair))
    )


def verify_many(db: sqlite_utils.Database, ds: Dataset, user: User, seen: Sequence[tuple[int, int]]) -> dict:
    """Approve, in one transaction, the pending decisions ``seen`` lists as (review id, row version
    the lead saw): one ``verify`` audit row per approved decision (with ``bulk``, the number
    approved together), the same writes as verify(..., "approve").

    All or nothing on change: if any listed decision is no longer pending or its row changed
    since it was shown, StaleViewError names them and nothing is approved. Skipped (returned,
    not approved): the lead's own decisions unless the dataset allows self-approval (four eyes;
    allowed, they are approved and recorded as self-approved), and unsure decisions (no label
    to approve). Returns {"approved", "own", "unsure", "self_approved"}: lists of review ids."""
    require_active(db, user, "lead", "verify decisions")
    ids = list(dict.fromkeys(int(rid) for rid, _ in seen))
    versions = {int(rid): int(v) for rid, v in seen}
    if not ids:
        raise ReviewError("No decision to approve: the list is empty.")
    if len(ids) > BULK_MAX:
        raise ReviewError(f"Approve at most {BULK_MAX:,} decisions at once, not {len(ids):,}.")
    out: dict[str, list[int]] = {"approved": [], "own": [], "unsure": [], "self_approved": []}
    with store.transaction(db):
        rows = {
            r["id"]: r
            for r in store.rows(
                db,
                "SELECT r.id AS id, r.dataset_id AS dataset_id, r.status AS status, r.decision AS decision,"
                " r.reviewer AS reviewer, i.key AS key, st.version AS version FROM reviews r"
                " JOIN items i ON i.dataset_id=r.dataset_id AND i.idx=r.idx"
                " JOIN states st ON st.dataset_id=r.dataset_id AND st.idx=r.idx"
                f" WHERE r.id IN ({','.join('?' * len(ids))})",
                ids,
            )
        }
        missing = [rid for rid in ids if rid not in rows or rows[rid]["dataset_id"] != ds.id]
        if missing:
            raise NotFound(f"{ds.name!r} has no decision {', '.join(map(str, missing[:5]))}: nothing was approved.")
        changed = [
            rows[rid]["key"] for rid in ids if rows[rid]["status"] != "pending" or rows[rid]["version"] != versions[rid]
        ]
        if changed:
            more = f" and {len(changed) - 5:,} more" if len(changed) > 5 else ""
            raise StaleViewError(
                f"{len(changed):,} of the {len(ids):,} listed decisions changed since the page was drawn (row "
                f"{', '.join(map(str, changed[:5]))}{more}): nothing was approved. Check the list again, then approve."
            )
        allow_self = dataset_settings(db, ds.id)["allow_self_approval"]
        todo = []
        for rid in ids:
            if rows[rid]["reviewer"] == user.name and not allow_self:
                out["own"].append(rid)
            elif rows[rid]["decision"] == "unsure":
                out["unsure"].append(rid)
            else:
                todo.append(rid)
        for rid in todo:
            _verify_one(db, rid, user, "approve", versions[rid], None, "", bulk=len(todo))
            out["approved"].append(rid)
            if rows[rid]["reviewer"] == user.name:
                out["self_approved"].append(rid)
    return out


def awaiting_verification(db: sqlite_utils.Database, ds: Dataset, author: str | None = None) -> int:
    """How many decisions on the dataset await verification (every row, flagged or spot check);
    with ``author``, only theirs."""
    if author is None:
        return store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending'", [ds.id])
    return store.scalar(
        db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending' AND reviewer=?", [ds.id, author]
    )


@dataclass(frozen=True)
class QueueProgress:
    """Where the review queue stands: suspects in the latest run, decided or not, awaiting verification,
    approved, overridden, and the count per state (``states``)."""

    flagged: int
    open: int
    decided: int
    pending: int
    approved: int
    overridden: int
    states: dict[str, int]


def progress(
    db: sqlite_utils.Database, ds: Dataset, action: str | None = None, finding: str | None = None
) -> QueueProgress:
    """Where the queue stands: suspects in the latest run and counts per state (aggregates only);
    with ``action``, only the suspects with that recommended action (what a filter shows); with ``finding``,
    the rows with that kind of finding of the checks beyond label errors, flagged or not (claim_next's
    ``finding``)."""
    run = latest_run(db, ds.id)
    if finding:
        cond, extra = _finding_cond(ds, run["id"] if run else -1, finding)
    elif action:
        cond, extra = " AND s.is_issue=1 AND s.action=?", [action]
    else:
        cond, extra = " AND s.is_issue=1", []
    flagged = (
        store.scalar(db, f"SELECT COUNT(*) FROM scores s WHERE s.run_id=?{cond}", [run["id"], *extra]) if run else 0
    )
    states = dict(
        db.execute(
            f"SELECT st.state, COUNT(*) FROM states st JOIN scores s ON s.run_id=? AND s.idx=st.idx{cond}"
            " WHERE st.dataset_id=? GROUP BY st.state",
            [run["id"] if run else -1, *extra, ds.id],
        ).fetchall()
    )
    decided = sum(v for k, v in states.items() if k != "open")
    return QueueProgress(
        flagged=flagged,
        open=flagged - decided,
        decided=decided,
        pending=sum(states.get(s, 0) for s in PENDING_STATES),
        approved=states.get("approved", 0),
        overridden=states.get("overridden", 0),
        states=states,
    )


def my_recent(db: sqlite_utils.Database, ds: Dataset, user: User, limit: int = 20) -> list[dict]:
    """The user's latest decisions on this dataset, newest first (for 'back')."""
    return list(
        db.query(
            "SELECT id, idx, decision, new_label, status, created_at FROM reviews WHERE dataset_id=? AND reviewer=?"
            " ORDER BY id DESC LIMIT ?",
            [ds.id, user.name, limit],
        )
    )
