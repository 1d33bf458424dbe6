"""Out-of-sample predicted probabilities by cross-validation (never in-sample).

* :mod:`.crossval` -- folds, cross-fitting, temperature scaling, the log-likelihood that scores a model;
* :mod:`.text` -- texts vectorised once, a portfolio of fast models chosen per dataset
  from out-of-sample evidence (:func:`text_probs`);
* :mod:`.tabular` -- gradient-boosted trees on feature columns;
* :mod:`.given` -- the team's own probabilities.

Every function returns a :class:`ModelResult`.
"""

from review.text.models.base import CandidateScore, ModelResult, Progress
from review.text.models.crossval import cross_val_probs, fold_splits, mean_nll, temperature_scale
from review.text.models.given import given_probs
from review.text.models.tabular import tabular_matrix, tabular_probs
from review.text.models.text import MODEL_CHOICES, NB_ALPHA, FastNB, text_probs, vectorise_chars, vectorise_text

__all__ = [
    "CandidateScore",
    "ModelResult",
    "Progress",
    "cross_val_probs",
    "fold_splits",
    "mean_nll",
    "temperature_scale",
    "given_probs",
    "tabular_matrix",
    "tabular_probs",
    "MODEL_CHOICES",
    "NB_ALPHA",
    "FastNB",
    "text_probs",
    "vectorise_chars",
    "vectorise_text",
]
