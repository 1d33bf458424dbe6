"""Dense features for the checks beyond label errors: the audit's word TF-IDF (review.text.models.text
vectorise_text) reduced by TruncatedSVD to ``DIMS`` dimensions and L2-normalised, or the team's own
embeddings when the dataset maps them (review.text.signals). Rows then compare by a dot product (cosine).

The sparse TF-IDF rows (L2-normalised) are kept beside the dense ones: the near-duplicate check confirms
each candidate pair found in the dense space by the cosine of the words themselves (the SVD merges texts
of one topic; the words tell a copy from a neighbour)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DIMS = 100  # dimensions kept by the SVD
SVD_SAMPLE = 100_000  # rows the SVD is fitted on (all rows are projected)
SVD_COLUMNS = 50_000  # the most frequent hashed words and word pairs the SVD sees


@dataclass
class Features:
    """X (n, d) float32, rows of unit length (a zero row stays zero); sparse: the TF-IDF rows of unit
    length (None for the team's embeddings); source: how X was made (for the run's record)."""

    X: np.ndarray
    sparse: object | None
    source: str


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, in place where X is float32 (zero rows stay zero)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1)
    norms[norms == 0] = 1.0
    X /= norms[:, None]
    return X


def _unit_rows(S):
    import scipy.sparse as sp

    S = sp.csr_matrix(S, dtype=np.float32)
    norms = np.sqrt(np.asarray(S.multiply(S).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags((1.0 / norms).astype(np.float32)) @ S


def dense_features(
    texts: Sequence[str | None],
    embeddings: np.ndarray | None = None,
    dims: int = DIMS,
    seed: int = 0,
    words=None,
) -> Features:
    """texts (n,) -> Features. With ``embeddings`` (n, d) those, normalised; else TF-IDF -> SVD. ``words``:
    the audit's own word TF-IDF matrix of these texts (ModelResult.words), used instead of vectorising
    them again (about 40 s at 1M rows)."""
    from sklearn.decomposition import TruncatedSVD

    from review.text.models.text import vectorise_text

    if words is None or words.shape[0] != len(texts):
        words, _ = vectorise_text(texts)
    S = _unit_rows(words)
    if embeddings is not None:
        return Features(
            normalise(np.array(embeddings, dtype=np.float32)), S, f"the team's embeddings ({embeddings.shape[1]} dims)"
        )
    n = S.shape[0]
    df = np.bincount(S.indices, minlength=S.shape[1])
    cols = np.sort(np.argsort(-df, kind="stable")[: min(SVD_COLUMNS, int((df > 0).sum()) or 1)])
    R = _unit_rows(S[:, cols])  # the most frequent columns: the SVD's random matrix stays small
    if len(cols) < 3 or n < 3:  # next to no words (texts of punctuation alone) or rows: the columns as they are
        return Features(normalise(R.toarray()), S, f"word TF-IDF, {R.shape[1]} column(s), too few for an SVD")
    k = max(1, min(dims, n - 1, len(cols) - 1))
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=4, random_state=seed)
    if n > SVD_SAMPLE:
        rng = np.random.default_rng(seed)
        svd.fit(R[np.sort(rng.choice(n, SVD_SAMPLE, replace=False))])
    else:
        svd.fit(R)
    X = np.empty((n, k), dtype=np.float32)
    for a in range(0, n, 50_000):  # projected in blocks: memory stays at the dense result
        X[a : a + 50_000] = svd.transform(R[a : a + 50_000])
    return Features(normalise(X), S, f"word TF-IDF, TruncatedSVD to {k} dims")


PAIRS_BLOCK = 100_000  # pairs compared at a time: memory stays at two blocks of sparse rows


def sparse_cosine(S, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of rows a[i] and b[i] of S (rows of unit length), for each pair, PAIRS_BLOCK pairs at a
    time (at 1M rows the candidate pairs run to millions: all at once took 2.5 GB)."""
    out = np.zeros(len(a), dtype=np.float32)
    for i in range(0, len(a), PAIRS_BLOCK):
        aa, bb = a[i : i + PAIRS_BLOCK], b[i : i + PAIRS_BLOCK]
        out[i : i + len(aa)] = np.asarray(S[aa].multiply(S[bb]).sum(axis=1), dtype=np.float32).ravel()
    return out
