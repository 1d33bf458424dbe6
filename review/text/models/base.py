"""What every model function returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

Progress = Callable[[float, str], None]


def noop(fraction: float, message: str) -> None:
    pass


@dataclass
class CandidateScore:
    """One candidate model of the portfolio and the out-of-sample evidence on it.

    fold1_nll: mean negative log-likelihood of the given labels on the first held-out fold
    (temperature-scaled); nll: the same over every row once the candidate finished all
    folds (None if it was not a finalist); weight: its share in the chosen mixture (0 if
    left out)."""

    name: str
    view: str
    family: str
    alpha: float
    fold1_nll: float | None = None
    nll: float | None = None
    weight: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("fold1_nll", "nll", "seconds"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 4)
        return d


@dataclass
class ModelResult:
    """pred_probs: (n, K) out-of-sample probabilities, rows sum to 1; params: what was fitted and
    why (JSON-serialisable, kept with the run); candidates: the portfolio's evidence, if any; words: the
    sparse word TF-IDF matrix (n, V) the text models trained on, kept for the checks beyond label errors
    (review.findings.features) so the texts are not vectorised twice (None for other models; never stored)."""

    pred_probs: np.ndarray
    params: dict
    seconds: float
    candidates: list[CandidateScore] = field(default_factory=list)
    words: object | None = field(default=None, repr=False)
