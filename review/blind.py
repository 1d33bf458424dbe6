"""Blind first look: on a dataset with the setting ``blind_first_look`` on, an annotator makes a call on the
text and the label in force (looks right / looks wrong: label ... / unsure) before the model's view
(prediction, confidence, reasons, probabilities, the judge, the other annotators' labels) is shown; then
decides as usual. Both calls are kept: ``reviews.blind_decision`` / ``blind_label`` and the ``decision``
trail row (``blind_decision``, ``blind_label``, ``changed_mind``).

Who must bring a blind call: ``workflow.decide`` reads the setting itself, inside its transaction (it does
not trust the page to have hidden the model's view). ``blind=None`` means "a reviewer's card without a
first call" and is refused while the setting is on -- except a revision of one's own pending decision,
which keeps the first call of the decision it revises. Callers that never show a card (a bulk action,
the CLI, a script) say so explicitly: ``BlindCall.not_applicable("bulk action")``; the trail row then
records ``blind_exempt`` with that reason.

Blind first look applies to text datasets, with one label per row or several annotators (the consensus
is then the view kept hidden). NER datasets refuse the setting (``set_blind_first_look``): the NER card
edits tags token by token next to the model's tags, with no step to make a call before them.

``changed_mind_stats``: per reviewer, how often the model's view changed their mind (one GROUP BY).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from review import datasets, store
from review.datasets import Dataset
from review.errors import ReviewError
from review.precision import wilson

SETTING = "blind_first_look"
CALLS = ("keep", "relabel", "unsure")  # the decisions a first call can be (workflow.DECISIONS)


@dataclass(frozen=True)
class BlindCall:
    """The first call on a row, made before the model's view was shown: ``decision`` keep (looks right),
    relabel (looks wrong: ``label`` is the right one) or unsure. ``exempt``: not a first call at all but
    the reason a caller that shows no card (bulk action, CLI) does not bring one (see not_applicable)."""

    decision: str | None
    label: str | None = None
    exempt: str | None = None

    @classmethod
    def looks_right(cls) -> BlindCall:
        return cls("keep")

    @classmethod
    def looks_wrong(cls, label: str) -> BlindCall:
        return cls("relabel", label)

    @classmethod
    def unsure(cls) -> BlindCall:
        return cls("unsure")

    @classmethod
    def not_applicable(cls, why: str) -> BlindCall:
        """For a caller that never showed the model's view on a card (``why``: "bulk action", "cli", ...)."""
        return cls(None, None, why)

    @property
    def applicable(self) -> bool:
        return self.exempt is None

    def describe(self) -> str:
        """'looks right' / 'looks wrong: label X' / 'unsure' (plain text: escape it where drawn)."""
        if not self.applicable:
            return f"no first call ({self.exempt})"
        return {"keep": "looks right", "unsure": "unsure"}.get(self.decision or "", f"looks wrong: label {self.label}")

    def differs_from(self, decision: str, new_label: str | None) -> bool:
        """Whether the final decision (decision, new_label) is another call than this one."""
        return self.decision != decision or (decision == "relabel" and self.label != new_label)

    def against(self, decision: str, new_label: str | None) -> str:
        """The first call beside the final decision, for the lead verifying it (plain text: escape it where
        drawn): 'looks right · changed after seeing the model's view'."""
        kept = "changed after seeing" if self.differs_from(decision, new_label) else "kept after"
        return f"{self.describe()} · {kept} the model's view"

    def as_state(self) -> dict:
        """What the Review card keeps in its session state (see from_state)."""
        return {"decision": self.decision, "label": self.label}

    @classmethod
    def from_state(cls, data: dict | None) -> BlindCall | None:
        return cls(data["decision"], data.get("label")) if data else None


def applies(ds: Dataset) -> bool:
    """Blind first look is offered on text datasets (one label or several annotators), not NER."""
    return ds.task == "text"


def required(ds: Dataset) -> bool:
    """Whether the card must ask for a first call on ``ds`` (the setting as ``ds`` was read)."""
    return applies(ds) and bool(ds.settings.get(SETTING))


def required_now(db: sqlite_utils.Database, ds: Dataset) -> bool:
    """The setting as stored now (inside a caller's transaction: the value in force)."""
    return applies(ds) and bool(datasets.settings(db, ds.id).get(SETTING))


def set_blind_first_look(db: sqlite_utils.Database, ds: Dataset, on: bool, user) -> bool:
    """Turn the setting on or off (a lead or admin; datasets.set_setting writes the ``dataset_setting``
    trail row). Refused for a NER dataset. Returns False when it already had that value."""
    if on and not applies(ds):
        raise ReviewError(
            f"Dataset {ds.name!r} is a NER dataset: blind first look applies to text datasets only "
            "(the NER card edits tags beside the model's tags). Nothing was changed."
        )
    return datasets.set_setting(db, ds, SETTING, bool(on), user)


def resolve(
    db: sqlite_utils.Database,
    ds: Dataset,
    idx: int,
    blind: BlindCall | None,
    label_now: str | None,
    revising: int | None,
) -> BlindCall | None:
    """The first call to store with a decision on row ``idx`` (called by workflow.decide inside its
    transaction). Checks a given call; without one, a revision keeps the first call of the decision it
    revises (review id ``revising``); otherwise refused (ReviewError) while the dataset asks for a blind
    first look. Returns None when there is no first call and none is needed."""
    if blind is not None and not blind.applicable:
        if not str(blind.exempt).strip():
            raise ReviewError("BlindCall.not_applicable needs a reason (e.g. 'bulk action', 'cli').")
        return blind
    if blind is not None:
        if not applies(ds):
            raise ReviewError(
                f"Dataset {ds.name!r} is a NER dataset: it takes no first call (blind first look is for text "
                f"datasets). Decide sentence {idx} without one."
            )
        if blind.decision not in CALLS:
            raise ReviewError(
                f"Unknown first call {blind.decision!r} on row {idx}: it is looks right (keep), looks wrong "
                "(relabel, with the label) or unsure."
            )
        if blind.decision == "relabel":
            if blind.label not in ds.labels:
                raise ReviewError(
                    f"First call on row {idx}: {blind.label!r} is not a label of {ds.name!r}; "
                    f"choose one of {', '.join(ds.labels)}."
                )
            if blind.label == label_now:
                raise ReviewError(
                    f"First call on row {idx}: it is already labelled {blind.label!r}. Say 'looks right', or "
                    "pick the label it should have."
                )
        elif blind.label is not None:
            return BlindCall(blind.decision)  # keep / unsure carry no label
        return blind
    if revising is not None:
        before = store.fetch_one(db, "SELECT blind_decision, blind_label FROM reviews WHERE id=?", [revising])
        if before and before["blind_decision"]:
            return BlindCall(before["blind_decision"], before["blind_label"])
        return None
    if required_now(db, ds):
        raise ReviewError(
            f"Dataset {ds.name!r} asks for a blind first look: make your own call on row {idx} (looks right, "
            "looks wrong, or unsure) before the model's view is shown, then decide. Your decision was not "
            "saved; reload the row to make the first call."
        )
    return None


def columns(call: BlindCall | None) -> tuple[str | None, str | None]:
    """(blind_decision, blind_label) for the reviews row: NULL, NULL when there is no first call."""
    if call is None or not call.applicable:
        return None, None
    return call.decision, call.label


def trail_fields(call: BlindCall | None, decision: str, new_label: str | None) -> dict:
    """What the ``decision`` trail row adds: the first call and whether the final one differs, or the
    reason a caller brought none (``blind_exempt``); nothing when there is no first call."""
    if call is None:
        return {}
    if not call.applicable:
        return {"blind_exempt": call.exempt}
    return {
        "blind_decision": call.decision,
        "blind_label": call.label,
        "changed_mind": call.differs_from(decision, new_label),
    }


@dataclass(frozen=True)
class ReviewerBlindStats:
    """One reviewer's first calls on a dataset (their decisions in force or verified, revisions counted
    once): ``blind_calls`` made, ``changed`` (the final decision differs from the first call), of those
    ``toward_model`` (the final label is the run's suggested label), ``away_from_model`` (another label)
    and ``to_unsure`` (the final call is unsure: no label); ``rate`` = changed / blind_calls with its
    95 % Wilson interval (``low``, ``high``)."""

    reviewer: str
    blind_calls: int
    changed: int
    toward_model: int
    away_from_model: int
    to_unsure: int
    rate: float | None
    low: float
    high: float

    def table_row(self) -> dict:
        """The Reviewers tab's row (column names as shown)."""
        return {
            "reviewer": self.reviewer,
            "first calls": self.blind_calls,
            "changed their mind": self.changed,
            "rate": self.rate,
            "95% interval": f"{self.low:.0%} – {self.high:.0%}",
            "toward the model": self.toward_model,
            "away from the model": self.away_from_model,
            "to unsure": self.to_unsure,
        }


# a decision differs from its first call: another decision, or another label for a relabel
_CHANGED = "(r.decision != r.blind_decision OR (r.decision = 'relabel' AND r.new_label IS NOT r.blind_label))"


def changed_mind_stats(db: sqlite_utils.Database, ds: Dataset) -> list[ReviewerBlindStats]:
    """Per reviewer (by name), from ``reviews`` in one GROUP BY: the first calls and how often the model's
    view changed them. A superseded decision (revised by its author) is not counted: its revision carries
    the same first call. Toward the model: the final label equals the run's suggested label
    (``took_suggestion``, set by workflow.decide against the run the decision was made on)."""
    rows = store.rows(
        db,
        f"""SELECT r.reviewer,
                   COUNT(*) AS calls,
                   COALESCE(SUM({_CHANGED}), 0) AS changed,
                   COALESCE(SUM({_CHANGED} AND r.decision != 'unsure' AND r.took_suggestion = 1), 0) AS toward,
                   COALESCE(SUM({_CHANGED} AND r.decision != 'unsure' AND COALESCE(r.took_suggestion, 0) = 0), 0)
                       AS away,
                   COALESCE(SUM({_CHANGED} AND r.decision = 'unsure'), 0) AS to_unsure
            FROM reviews r
            WHERE r.dataset_id = ? AND r.blind_decision IS NOT NULL AND r.status != 'superseded'
            GROUP BY r.reviewer ORDER BY r.reviewer""",
        [ds.id],
    )
    out = []
    for r in rows:
        rate, low, high = wilson(int(r["changed"]), int(r["calls"]))
        out.append(
            ReviewerBlindStats(
                r["reviewer"],
                int(r["calls"]),
                int(r["changed"]),
                int(r["toward"]),
                int(r["away"]),
                int(r["to_unsure"]),
                rate,
                low,
                high,
            )
        )
    return out
