"""Signals the team brings besides labels: embeddings from its own encoder, a per-row training loss.

* Embeddings: a column holding one vector per row (a JSON list ``[0.1, -0.2, ...]`` or
  numbers separated by spaces or commas), or a ``.npy`` file of shape (rows, dims) in
  upload order. They become one more candidate view of the text model portfolio
  (logistic regression on the standardised vectors), chosen only where they predict the
  given labels better out of sample.
* Training loss: a numeric column, one value per row (high = the team's own model found
  the row hard). It is fused into the trust score, so that rows both cleanlab and the
  team's model doubt come first.

Each is checked at the door: a wrong shape, a missing or non-numeric value is refused
naming the file, row and column. Stored in ``row_signals`` (one row per item), never in
``items``, so pages that draw items never read them.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import sqlite_utils

from review.errors import IngestError

MAX_DIMS = 4096
LOSS_WEIGHT = 0.5  # the loss's share in the fused trust (geometric mean with cleanlab's quality)
_SPLIT = re.compile(r"[\s,;]+")


def _vector(v) -> list[float] | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [float(x) for x in v]
    s = str(v).strip()
    if not s:
        return None
    if s.startswith("["):
        out = json.loads(s)
        if not isinstance(out, list):
            raise ValueError("not a list")
        return [float(x) for x in out]
    return [float(x) for x in _SPLIT.split(s) if x]


def parse_embedding_column(values, filename: str, column: str) -> np.ndarray:
    """values (n,) cells -> (n, d) float32; refuses a missing, non-numeric or wrongly sized vector naming the row."""
    rows, dims = [], None
    for r, v in enumerate(values):
        where = f"{filename}: data row {r + 1}, column {column!r}"
        try:
            vec = _vector(v)
        except RecursionError:  # lists inside lists, thousands deep: Python's json gives up
            raise IngestError(
                f"{where}: the vector is lists nested inside each other far too deep. Write it as one "
                "flat list of numbers, [0.1, -0.2, …], or as numbers separated by spaces."
            ) from None
        except (ValueError, TypeError, json.JSONDecodeError):
            raise IngestError(
                f"{where}: {str(v)[:60]!r} is not a vector of numbers. Write it as [0.1, -0.2, …] "
                "or as numbers separated by spaces."
            ) from None
        if not vec:
            raise IngestError(f"{where} is empty: every row needs its embedding (or map no embedding column).")
        if dims is None:
            dims = len(vec)
            if dims > MAX_DIMS:
                raise IngestError(
                    f"{where}: {dims:,} numbers; embeddings of at most {MAX_DIMS:,} dimensions are taken."
                )
        elif len(vec) != dims:
            raise IngestError(
                f"{where}: {len(vec)} numbers where row 1 has {dims}: every embedding must have the same length."
            )
        rows.append(vec)
    return check_embeddings(np.asarray(rows, dtype=np.float32), len(rows), filename, column)


def read_npy(data: bytes, filename: str, n_rows: int) -> np.ndarray:
    """A .npy file's bytes -> (n_rows, d) float32; refuses anything else naming the shape."""
    if not data.startswith(b"\x93NUMPY"):
        raise IngestError(f"{filename}: not a NumPy .npy file. Save the embeddings with numpy.save(path, array).")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IngestError(f"{filename}: not a NumPy .npy file ({exc}). Save it with numpy.save(path, array).") from None
    if arr.dtype.kind not in "fiu":
        raise IngestError(f"{filename}: holds {arr.dtype} values; embeddings must be numbers.")
    if arr.ndim != 2:
        raise IngestError(f"{filename}: shape {arr.shape}; embeddings must be a 2-D array (rows, dimensions).")
    if arr.shape[0] != n_rows:
        raise IngestError(
            f"{filename}: {arr.shape[0]:,} rows of embeddings for an upload of {n_rows:,} rows: "
            "give one embedding per row, in the upload's order."
        )
    if arr.shape[1] > MAX_DIMS:
        raise IngestError(f"{filename}: {arr.shape[1]:,} dimensions; at most {MAX_DIMS:,} are taken.")
    return check_embeddings(arr.astype(np.float32), n_rows, filename, None)


def check_embeddings(E: np.ndarray, n_rows: int, filename: str, column: str | None) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(E).all(axis=1))
    if bad.size:
        where = f"column {column!r}" if column else "the embeddings"
        raise IngestError(f"{filename}: data row {int(bad[0]) + 1}, {where}: a value is NaN or infinite. Fix that row.")
    if E.shape[0] != n_rows:
        raise IngestError(f"{filename}: {E.shape[0]:,} embeddings for {n_rows:,} rows.")
    return E


def parse_loss_column(values, filename: str, column: str) -> np.ndarray:
    """values (n,) cells -> (n,) float64 losses; refuses a missing or non-numeric value naming the row."""
    out = np.empty(len(values))
    for r, v in enumerate(values):
        try:
            x = float(str(v).strip()) if v is not None and str(v).strip() else float("nan")
        except ValueError:
            x = float("nan")
        if not np.isfinite(x):
            raise IngestError(
                f"{filename}: data row {r + 1}, column {column!r}: {v!r} is not a number. Each row "
                "needs its training loss (a finite number), or map no loss column."
            )
        out[r] = x
    return out


def fuse_loss(quality: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """quality (n,) in [0, 1] (higher = label more trusted), loss (n,) (higher = harder) -> (n,) trust:
    the weighted geometric mean of quality and the loss's rank from the top (1 for the lowest loss,
    near 0 for the highest), so a row both doubt comes first and the loss's scale does not matter."""
    order = np.argsort(np.argsort(loss, kind="stable"), kind="stable")
    ease = 1.0 - order / max(1, len(loss))  # 1 = lowest loss, 1/n = highest
    return np.power(np.clip(quality, 1e-12, 1), 1 - LOSS_WEIGHT) * np.power(ease, LOSS_WEIGHT)


def write(db: sqlite_utils.Database, dataset_id: int, embeddings: np.ndarray | None, loss: np.ndarray | None) -> None:
    """Store the signals of a dataset (inside the caller's transaction)."""
    if embeddings is None and loss is None:
        return
    n = len(embeddings) if embeddings is not None else len(loss)
    db.conn.executemany(
        "INSERT INTO row_signals(dataset_id, idx, embedding, loss) VALUES (?,?,?,?)",
        (
            (
                dataset_id,
                i,
                None if embeddings is None else embeddings[i].astype("<f4").tobytes(),
                None if loss is None else float(loss[i]),
            )
            for i in range(n)
        ),
    )


def load(db: sqlite_utils.Database, dataset_id: int, n_items: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """-> (embeddings (n, d) float32 or None, loss (n,) or None) of a dataset."""
    rows = db.execute(
        "SELECT idx, embedding, loss FROM row_signals WHERE dataset_id=? ORDER BY idx", [dataset_id]
    ).fetchall()
    if len(rows) != n_items:
        return None, None
    E = np.stack([np.frombuffer(e, dtype="<f4") for _, e, _ in rows]) if rows[0][1] is not None else None
    L = np.array([l for _, _, l in rows], dtype=np.float64) if rows[0][2] is not None else None
    return E, L
