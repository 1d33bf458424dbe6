"""Uploaded files -> normalised items; column mapping; refusals that name the row.

Flow: :func:`read_table` (bytes -> DataFrame of strings) -> :func:`guess_mapping`
(or a user's :class:`Mapping`) -> :func:`prepare` (validate, normalise) ->
:func:`write_dataset` (one transaction; nothing half-written on a refusal).

Headerless files (AG News: ``label,title,description`` with no header line):
:func:`sniff_header` tells whether the first line looks like data, :func:`guess_mapping`
proposes label = the short low-cardinality column and text = the long columns, and
:func:`parse_class_names` turns ``1=World, 2=Sports`` or a ``classes.txt`` into
``Mapping.class_names`` (original value -> the name stored as the label).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlite_utils

from review import store
from review.auth import User, require_active
from review.datasets import Mapping, insert_dataset, log_upload
from review.errors import IngestError
from review.text import signals

MIN_PER_CLASS = 5  # 5-fold cross-validation needs 5 rows of every class
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TEXT_NAMES = ("text", "sentence", "content", "review", "body", "document", "comment", "message", "utterance", "title")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "y", "tag", "intent", "sentiment", "topic")
ID_NAMES = ("id", "item_id", "uid", "row_id", "example_id", "doc_id", "key")
ANNOTATOR_NAMES = ("annotator", "annotator_id", "worker", "worker_id", "rater", "labeler", "labeller")
PROB_PREFIX = re.compile(r"^(pred_probs?|probs?|proba|probability|p)[_:. -]+", re.I)
MAX_COLUMNS = 2000
# Caps on what one upload may decode to, for every format (CSV/TSV, JSONL, Parquet, CoNLL): a
# small compressed file (a Parquet dictionary of one long string over millions of rows, zstd)
# must not become gigabytes in memory and in the database. Generous: the 1M-row benchmark
# (benchmarks/scale.py: 3 columns, ~60 MB) is 3M cells, far below both.
MAX_DECODED_BYTES = 2 * 1024**3  # 2 GB of decoded text / cell bytes
MAX_CELLS = 50_000_000  # rows x columns (tokens x columns for NER)
BATCH = 20_000
# Several text columns are joined with a newline: each part stays verbatim (no invented
# punctuation such as "?. " after a title that ends in "?"), the Review page draws it as a
# line break (white-space: pre-wrap), and the models read it as whitespace.
# How an error tells the user to choose a column: the command's flags, or the Upload page's boxes
CLI_HINTS = {"text": "--text-col", "label": "--label-col", "id": "--id-col", "annotator": "--annotator-col"}
PAGE_HINTS = {
    "text": "the 'Text column(s)' box",
    "label": "the 'Label column' box",
    "id": "the 'Id column' box",
    "annotator": "the 'Annotator column' box",
}
# first-row cells that name a column (sniff_header): the role names above and a few more
HEADER_WORDS = frozenset(
    TEXT_NAMES
    + LABEL_NAMES
    + ID_NAMES
    + ANNOTATOR_NAMES
    + (
        "description",
        "headline",
        "summary",
        "abstract",
        "question",
        "answer",
        "name",
        "score",
        "date",
        "source",
        "embedding",
        "embeddings",
        "loss",
        "split",
        "language",
        "lang",
        "url",
        "index",
        "idx",
    )
)
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


@dataclass
class Prepared:
    """A validated upload, ready to write. ``items`` has one row per item in upload order:
    columns key, text, given_label, meta (JSON), features (JSON|None), probs (JSON|None), annotator."""

    items: pd.DataFrame
    labels: list[str]
    label_set_declared: bool
    mapping: Mapping
    source_name: str
    source_sha256: str
    annotations: list[tuple[int, str, str]] | None = None  # multi-annotator: (item row, annotator, label)
    embeddings: np.ndarray | None = None  # (n, d) the team's own embeddings (review.text.signals)
    loss: np.ndarray | None = None  # (n,) the team's own training loss per row


def _fmt(filename: str) -> str:
    name = filename.lower()
    for ext, kind in FORMATS.items():
        if name.endswith(ext):
            return kind
    raise IngestError(f"{filename}: unknown file type. Upload a .csv, .tsv, .jsonl or .parquet file.")


def _gb(n: int) -> str:
    return f"{n / 1024**3:,.1f} GB" if n >= 1024**3 else f"{n / 1024**2:,.1f} MB"


def too_many_bytes(filename: str, size: int | None = None) -> IngestError:
    """The refusal for an upload that decodes to more than MAX_DECODED_BYTES."""
    got = f" ({_gb(size)} so far)" if size else ""
    return IngestError(
        f"{filename} decodes to more than {_gb(MAX_DECODED_BYTES)} of data{got}, the limit for one upload. "
        "Split the file into smaller files and upload them one by one, or keep only the columns you need."
    )


def too_many_cells(filename: str, cells: int) -> IngestError:
    """The refusal for an upload of more than MAX_CELLS cells (rows x columns)."""
    return IngestError(
        f"{filename} holds about {cells:,} cells (rows x columns), more than the limit of {MAX_CELLS:,} "
        "for one upload. Split the file into smaller files, or keep only the text, label and id columns."
    )


def decode_upload(data: bytes, filename: str, keep_bom: bool = False) -> str:
    """Uploaded bytes -> text; IngestError naming the file (and line) for archives, Parquet,
    bytes that are not UTF-8, NUL bytes, more than MAX_DECODED_BYTES. ``keep_bom``: leave a
    UTF-8 BOM in the text (files written back byte for byte)."""
    if len(data) > MAX_DECODED_BYTES:
        raise too_many_bytes(filename, len(data))
    if data[:4] == b"PK\x03\x04":
        raise IngestError(f"{filename} is a ZIP archive, not a text file: unzip it and upload the file inside.")
    if data[:2] == b"\x1f\x8b":
        raise IngestError(f"{filename} is gzip-compressed: decompress it and upload the plain file.")
    if data[:4] == b"PAR1":
        raise IngestError(f"{filename} is a Parquet file: rename it to .parquet and upload again.")
    try:
        text = data.decode("utf-8" if keep_bom else "utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(
            f"{filename}: the bytes at line {line} (byte {exc.start}, {data[exc.start : exc.start + 4]!r}) are not UTF-8. "
            "Save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise IngestError(
            f"{filename}: line {line} contains a NUL byte, so this is not a text file. "
            "Upload a CSV, TSV, JSONL, Parquet or CoNLL file."
        )
    return text


def _sniff_sep(text: str, default: str) -> str:
    first = text.split("\n", 1)[0]
    if default in first:
        return default
    counts = {sep: first.count(sep) for sep in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else default


def _as_str(v) -> str | None:
    """Cell -> str, None for blanks. 3.0 -> '3' so numeric labels compare as text."""
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (np.floating,)):
        return _as_str(float(v))
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    s = str(v)
    return s if s.strip() else None


def read_table(data: bytes, filename: str, no_header: bool = False) -> pd.DataFrame:
    """Bytes of an upload -> DataFrame of str|None cells (object dtype), in upload order.

    Headerless files get columns "1", "2", … (1-based, as ``--text-col 2,3`` names them).
    Raises IngestError naming the file, line and what to do.
    """
    if not data or not data.strip():
        raise IngestError(f"{filename} is empty: upload a file with a header row and at least one data row.")
    kind = _fmt(filename)
    if kind == "parquet":
        df = _read_parquet(data, filename)
    elif kind == "jsonl":
        df = _read_jsonl(decode_upload(data, filename), filename)
    else:
        df = _read_delimited(decode_upload(data, filename), filename, "\t" if kind == "tsv" else ",", no_header)
    if no_header and kind in ("parquet", "jsonl"):
        df.columns = [str(i + 1) for i in range(df.shape[1])]
    if df.shape[0] == 0:
        raise IngestError(f"{filename} has a header but no data rows: add rows and upload again.")
    if df.shape[1] > MAX_COLUMNS:
        raise IngestError(
            f"{filename} has {df.shape[1]:,} columns; at most {MAX_COLUMNS:,} are supported. Keep the text, label and id columns and upload again."
        )
    df.columns = [str(c) for c in df.columns]
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise IngestError(f"{filename}: the header names column {dup[0]!r} more than once: rename one of them.")
    return df


def _read_delimited(
    text: str, filename: str, default_sep: str, no_header: bool, nrows: int | None = None
) -> pd.DataFrame:
    sep = _sniff_sep(text, default_sep)
    # cells before parsing: pandas pads short rows to the first line's width, so 1 M lines of "x"
    # under a 2,000-column header are 2 G cells from 2 MB; rows <= line ends + 1
    lines = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    cells = min(lines, nrows + 1 if nrows is not None else lines) * (text.split("\n", 1)[0].count(sep) + 1)
    if cells > MAX_CELLS:
        raise too_many_cells(filename, cells)
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None if no_header else 0,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=True,
            engine="c",
            nrows=nrows,
        )
    except pd.errors.ParserError as exc:
        msg = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        raise IngestError(
            f"{filename}: the table could not be read ({msg}). Check quotes and the number of fields on that line."
        ) from None
    except pd.errors.EmptyDataError:
        raise IngestError(f"{filename} is empty: upload a file with a header row and at least one data row.") from None
    if no_header:
        df.columns = [str(i + 1) for i in range(df.shape[1])]
    else:
        unnamed = [c for c in df.columns if str(c).startswith("Unnamed: ")]
        if unnamed and len(unnamed) == df.shape[1]:
            raise IngestError(
                f"{filename}: the header row is empty. Add column names, or tick 'The first line is data' "
                "(review ingest: --no-header)."
            )
    return df.astype(object).where(df.notna(), None)


MAX_JSON_DEPTH = 200  # lists and objects inside each other on one JSON line (a record is 1, a vector 2)
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(line: str) -> int:
    """How deep lists and objects nest on one line of JSON, counted without parsing it (so without
    recursion: Python's json stops with RecursionError near 1,000 levels). Brackets inside strings do
    not count. Returns 0 for a line that cannot reach ``MAX_JSON_DEPTH`` (fewer opening brackets)."""
    if line.count("[") + line.count("{") <= MAX_JSON_DEPTH:
        return 0
    marks = _NOT_BRACKET.sub("", _JSON_STRING.sub("", line))
    if not marks:
        return 0
    steps = np.frombuffer(marks.encode("ascii"), dtype=np.uint8)
    return int(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)).max())


def too_deep(filename: str, lineno: int) -> IngestError:
    return IngestError(
        f"line {lineno} of {filename} is nested deeper than {MAX_JSON_DEPTH} levels (lists or objects "
        "inside each other): flatten it, so that each value is text, a number or a list of them, "
        "and upload again."
    )


def check_json_depth(line: str, filename: str, lineno: int) -> None:
    """Refuse a JSON line nested deeper than ``MAX_JSON_DEPTH``, naming the file and the line."""
    if json_depth(line) > MAX_JSON_DEPTH:
        raise too_deep(filename, lineno)


def load_json_line(line: str, filename: str, lineno: int):
    """One JSONL line -> its value; IngestError naming the file and line if it is broken or nested too deep."""
    check_json_depth(line, filename, lineno)
    try:
        return json.loads(line)
    except RecursionError:  # nested less than MAX_JSON_DEPTH, but the stack was deep already
        raise too_deep(filename, lineno) from None
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{filename}: line {lineno} is not valid JSON ({exc.msg} at column {exc.colno}). Fix or remove that line."
        ) from None


def _read_jsonl(text: str, filename: str) -> pd.DataFrame:
    records = []
    keys: dict = {}
    size = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = load_json_line(line, filename, lineno)
        if not isinstance(obj, dict):
            raise IngestError(
                f'{filename}: line {lineno} is a JSON {type(obj).__name__}, not an object. Each line must be one object such as {{"text": "…", "label": "…"}}.'
            )
        records.append({k: _as_str(v) for k, v in obj.items()})
        keys.update(obj)
        size += len(line)
        # every row gets a cell for every key seen on any line: 1 M lines of {} after a line of
        # 2,000 keys are 2 G cells from 3 MB
        if len(keys) > MAX_COLUMNS:
            raise IngestError(
                f"{filename}: line {lineno} brings the number of keys to {len(keys):,}; at most "
                f"{MAX_COLUMNS:,} columns are supported. Keep the text, label and id keys and upload again."
            )
        if len(records) * len(keys) > MAX_CELLS:
            raise too_many_cells(filename, len(records) * len(keys))
        if size > MAX_DECODED_BYTES:
            raise too_many_bytes(filename, size)
    if not records:
        raise IngestError(f"{filename} has no JSON lines: upload one JSON object per line.")
    df = pd.DataFrame.from_records(records).astype(object)
    return df.where(df.notna(), None)  # a key missing on some lines is a blank, not NaN


def _arrow_bytes(arr) -> int:
    """Bytes ``arr`` decodes to, counted without decoding it: a dictionary column of one long
    string over millions of rows is a few kB in the file and in this batch, gigabytes decoded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        return sum(_arrow_bytes(c) for c in arr.chunks)
    t = arr.type
    if pa.types.is_dictionary(t):
        vt = t.value_type
        if (
            pa.types.is_string(vt)
            or pa.types.is_binary(vt)
            or pa.types.is_large_string(vt)
            or pa.types.is_large_binary(vt)
        ):
            lengths = pc.cast(pc.binary_length(arr.dictionary), pa.int64())
            total = pc.sum(pc.take(lengths, arr.indices)).as_py() or 0
            return total + 8 * len(arr)
        return max(8, vt.bit_width // 8 if hasattr(vt, "bit_width") else 8) * len(arr)
    if pa.types.is_map(t):
        return _arrow_bytes(arr.keys) + _arrow_bytes(arr.items) + 8 * len(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _arrow_bytes(arr.flatten()) + 8 * len(arr)
    if pa.types.is_struct(t):
        return sum(_arrow_bytes(f) for f in arr.flatten()) + 8 * len(arr)
    return arr.nbytes


def _parquet_batches(data: bytes, filename: str, dictionary: list[str], ncols: int) -> list:
    """Row group by row group, BATCH rows at a time, refused as soon as the running cells or
    decoded bytes pass the caps."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(data), read_dictionary=dictionary)
    batches, rows, size = [], 0, 0
    for g in range(pf.num_row_groups):
        for batch in pf.iter_batches(batch_size=BATCH, row_groups=[g]):
            rows += batch.num_rows
            size += sum(_arrow_bytes(c) for c in batch.columns)
            if rows * max(ncols, 1) > MAX_CELLS:
                raise too_many_cells(filename, rows * max(ncols, 1))
            if size > MAX_DECODED_BYTES:
                raise too_many_bytes(filename, size)
            batches.append(batch)
    return batches


def _parquet_frame(data: bytes, filename: str) -> pd.DataFrame:
    """Parquet bytes -> DataFrame (as pd.read_parquet), refused before the data is decoded when
    the metadata says it is over MAX_CELLS / MAX_DECODED_BYTES, and batch by batch while reading
    (dictionary-encoded values expand beyond the metadata's uncompressed sizes, and metadata can lie)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(io.BytesIO(data))
    md, target = pf.metadata, pf.schema_arrow
    if len(target.names) > MAX_COLUMNS:
        raise IngestError(
            f"{filename} has {len(target.names):,} columns; at most {MAX_COLUMNS:,} are supported. "
            "Keep the text, label and id columns and upload again."
        )
    cells = md.num_rows * max(md.num_columns, 1)
    uncompressed = leaf_values = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        for j in range(rg.num_columns):
            col = rg.column(j)
            uncompressed += max(col.total_uncompressed_size, 0)
            leaf_values += max(col.num_values, 0)
    if max(cells, leaf_values) > MAX_CELLS:
        raise too_many_cells(filename, max(cells, leaf_values))
    if uncompressed > MAX_DECODED_BYTES:
        raise too_many_bytes(filename, uncompressed)
    # every BYTE_ARRAY leaf read as a dictionary: a batch then holds the distinct values and
    # indices, not the values repeated, and its decoded size is counted before decoding
    schema = pf.schema
    binary = [schema.column(i).path for i in range(len(schema)) if schema.column(i).physical_type == "BYTE_ARRAY"]
    try:
        batches = _parquet_batches(data, filename, binary, len(target.names))
    except pa.ArrowNotImplementedError:  # a nested column arrow cannot keep as a dictionary: top-level ones only
        batches = _parquet_batches(data, filename, [p for p in binary if p in target.names], len(target.names))
    if not batches:
        return target.empty_table().to_pandas()
    table = pa.Table.from_batches(batches).cast(target)
    return table.to_pandas()


def _read_parquet(data: bytes, filename: str) -> pd.DataFrame:
    if data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise IngestError(
            f"{filename} is not a Parquet file (it lacks the PAR1 markers). Upload a real .parquet file, or rename it to its true type."
        )
    try:
        df = _parquet_frame(data, filename)
    except IngestError:
        raise
    except Exception as exc:  # pyarrow raises many types
        raise IngestError(f"{filename}: the Parquet file could not be read ({type(exc).__name__}: {exc}).") from None
    out = pd.DataFrame({str(c): [_as_str(v) for v in df[c].tolist()] for c in df.columns}, dtype=object)
    return out


# ----------------------------------------------------------------------------- headerless files

SNIFF_ROWS = 500  # sniff_header compares the first line with the next 499
PROFILE_ROWS = 20_000  # _profile looks at this many rows of a column


@dataclass(frozen=True)
class HeaderGuess:
    """sniff_header's answer: is the first line data, and why (words for the page; "" when unsure)."""

    headerless: bool
    reason: str = ""


def _words(s: str) -> int:
    return len(s.split())


def _values_preview(values: list[str], k: int = 10) -> str:
    shown = ", ".join(values[:k])
    return shown + (f", … ({len(values):,} in all)" if len(values) > k else "")


def sniff_header(data: bytes, filename: str) -> HeaderGuess:
    """Does the first line of a CSV/TSV upload look like data rather than a header?

    The first ``SNIFF_ROWS`` lines are read without a header and the first row is compared,
    column by column, with the rows under it ("the rest"). Each column votes:

    * **header, decisively**: the first cell is a column name (``HEADER_WORDS``: text, label, id,
      title, description, …) that does not occur again in the column;
    * **header**: the rest are numbers (at least 90 %) and the first cell is not; or the rest are
      texts of several words (median at least 4) and the first cell has at most 2 words, as a
      column name has;
    * **data**: the column is label-like (median cell at most 30 characters, at most
      max(2, min(50, rest/3)) distinct values) and the first cell is one of its values; or the rest
      are numbers and so is the first cell; or the rest are texts of several words and so is the
      first cell (at least 4 words);
    * no vote otherwise (a blank first cell, an id such as ``r0`` over ``r1, r2``, a 3-word cell).

    Two equal cells in the first row count as one more data vote (a header names each column
    once). The first line is data when no cell is a column name and the data votes outnumber
    the header votes. Otherwise it is a header, the default and the reading of every file with a
    header row; so are JSONL and Parquet files (their columns are named) and files of fewer
    than 3 lines (nothing to compare). Never raises: a file that cannot be read says so when
    :func:`read_table` reads it.
    """
    try:
        kind = _fmt(filename)
        if kind in ("jsonl", "parquet"):
            return HeaderGuess(False)
        raw = _read_delimited(
            decode_upload(data, filename), filename, "\t" if kind == "tsv" else ",", True, nrows=SNIFF_ROWS
        )
    except (IngestError, ValueError, pd.errors.ParserError):
        return HeaderGuess(False)
    if raw.shape[0] < 3:
        return HeaderGuess(False)
    first = [v.strip() if isinstance(v, str) and v.strip() else None for v in raw.iloc[0].tolist()]
    data_votes, header_votes, why = 0, 0, []
    for j, col in enumerate(raw.columns):
        cell = first[j]
        below = [v.strip() for v in raw[col].iloc[1:].tolist() if isinstance(v, str) and v.strip()]
        if cell is None or len(below) < 2:
            continue
        distinct = set(below)
        if cell.lower() in HEADER_WORDS and cell not in distinct:
            return HeaderGuess(False, f"column {j + 1}'s first cell {cell!r} is a column name")
        numeric = sum(bool(_NUMBER.match(v)) for v in below) >= 0.9 * len(below)
        label_like = float(np.median([len(v) for v in below])) <= 30 and len(distinct) <= max(
            2, min(50, len(below) // 3)
        )
        texts = float(np.median([_words(v) for v in below])) >= 4
        words = _words(cell)
        if label_like and cell in distinct:
            data_votes += 1
            why.append(
                f"column {j + 1}: {cell!r} is one of its values "
                f"({_values_preview(sorted(distinct, key=_natural_key), 6)})"
            )
        elif numeric:
            if _NUMBER.match(cell):
                data_votes += 1
                why.append(f"column {j + 1}: {cell!r} is a number like the cells under it")
            else:
                header_votes += 1
        elif texts and words >= 4:
            data_votes += 1
            why.append(f"column {j + 1}: a text of {words} words like the cells under it")
        elif texts and words <= 2:
            header_votes += 1
    cells = [c for c in first if c is not None]
    if len(set(cells)) < len(cells):
        twice = next(c for c in cells if cells.count(c) > 1)
        data_votes += 1
        why.append(f"{twice!r} appears twice in it, which a header never does")
    if data_votes > header_votes:
        return HeaderGuess(True, "; ".join(why))
    return HeaderGuess(False)


def _profile(s: pd.Series) -> dict:
    """What a headerless column holds: non-blank cells, distinct values, median length and words,
    numbers (90 %), integers, whitespace inside a cell (on the first PROFILE_ROWS rows)."""
    head = s.iloc[:PROFILE_ROWS]
    vals = [v.strip() for v in head.tolist() if isinstance(v, str) and v.strip()]
    if not vals:
        return {"n": 0, "distinct": 0, "length": 0.0, "words": 0.0, "numeric": False, "integer": False, "spaces": False}
    return {
        "n": len(vals),
        "distinct": len(set(vals)),
        "length": float(np.median([len(v) for v in vals])),
        "words": float(np.median([_words(v) for v in vals])),
        "numeric": sum(bool(_NUMBER.match(v)) for v in vals) >= 0.9 * len(vals),
        "integer": all(re.fullmatch(r"[-+]?\d+", v) for v in vals),
        "spaces": any(any(ch.isspace() for ch in v) for v in vals),
    }


def _headerless_roles(df: pd.DataFrame) -> tuple[str | None, list[str], str | None]:
    """(label, text, id) for a file without a header, from what the columns hold.

    label: the short low-cardinality column (median cell at most 30 characters, 2 to
    max(2, min(100, rows/3)) distinct values; the fewest distinct values wins, then the shorter,
    then the leftmost). text: the long columns, in file order (not numbers; median at least 2 words
    or 15 characters), else the longest remaining column that is not numbers. id: a remaining
    column of unique, complete, one-word cells (integers or tokens such as ``a17``, not decimals).
    The other columns go to the items' meta, as unmapped columns do.
    """
    cols = list(df.columns)
    prof = {c: _profile(df[c]) for c in cols}
    cands = [
        c for c in cols if 2 <= prof[c]["distinct"] <= max(2, min(100, prof[c]["n"] // 3)) and prof[c]["length"] <= 30
    ]
    label = min(cands, key=lambda c: (prof[c]["distinct"], prof[c]["length"], cols.index(c))) if cands else None
    rest = [c for c in cols if c != label]
    text = [
        c
        for c in rest
        if prof[c]["n"] and not prof[c]["numeric"] and (prof[c]["words"] >= 2 or prof[c]["length"] >= 15)
    ]
    if not text:
        others = [c for c in rest if prof[c]["n"] and not prof[c]["numeric"]]
        text = [max(others, key=lambda c: (prof[c]["length"], -cols.index(c)))] if others else []
    n = len(df)
    ident = next(
        (
            c
            for c in rest
            if c not in text
            and not prof[c]["spaces"]
            and prof[c]["length"] <= 40
            and (prof[c]["integer"] or not prof[c]["numeric"])
            and int(df[c].notna().sum()) == n
            and df[c].nunique() == n
        ),
        None,
    )
    return label, text, ident


def _pick(columns: list[str], names: tuple[str, ...], what: str, flag: str, required: bool) -> str | None:
    """The column named like ``names``; IngestError naming ``flag`` (how to choose) when several are."""
    lower = {c.lower().strip(): c for c in columns}
    hits = [lower[n] for n in names if n in lower]
    if len(hits) > 1 and required:
        raise IngestError(
            f"Ambiguous columns: {', '.join(repr(h) for h in hits)} could each be the {what} column. "
            f"Say which one ({flag})."
        )
    return hits[0] if hits else None


def guess_text_column(df: pd.DataFrame) -> str | None:
    """The column named like a text column, if exactly one is."""
    try:
        return _pick(list(df.columns), TEXT_NAMES, "text", "--text-col", True)
    except IngestError:
        return None


def guess_id_column(df: pd.DataFrame) -> str | None:
    return _pick(list(df.columns), ID_NAMES, "id", "--id-col", False)


def _headerless(df: pd.DataFrame) -> bool:
    """Columns named 1, 2, 3, … as read_table names them without a header."""
    return all(c.isdigit() for c in df.columns)


def guess_partial(df: pd.DataFrame, hints: dict[str, str] = CLI_HINTS) -> tuple[Mapping, str | None]:
    """guess_mapping, or when it cannot tell, what can be told (text, id, annotator columns)
    and why the rest could not. ``hints``: CLI_HINTS or PAGE_HINTS (how the message says to choose)."""
    try:
        return guess_mapping(df, hints), None
    except IngestError as exc:
        cols = list(df.columns)
        if _headerless(df):
            label, text, ident = _headerless_roles(df)
            return Mapping(text=text, label=label, id=ident), str(exc)
        text = guess_text_column(df)
        return Mapping(
            text=[text] if text else [],
            id=guess_id_column(df),
            annotator=_pick(cols, ANNOTATOR_NAMES, "annotator", hints["annotator"], False),
        ), str(exc)


def guess_mapping(df: pd.DataFrame, hints: dict[str, str] = CLI_HINTS) -> Mapping:
    """Propose a mapping from header names (without a header: from what the columns hold, see
    _headerless_roles). Raises IngestError when it cannot tell, saying how to choose (``hints``)."""
    cols = list(df.columns)
    if _headerless(df):  # no header (AG News: label, title, description)
        if len(cols) < 2:
            raise IngestError("The file has a single column: it needs a text column and a label column.")
        label, text, ident = _headerless_roles(df)
        if label is None:
            raise IngestError(
                "No column looks like a label column (short values, a few distinct ones, repeated): "
                f"say which column holds the label ({hints['label']})."
            )
        if not text:
            raise IngestError(
                f"No column besides the label holds text: say which column holds the text ({hints['text']})."
            )
        return Mapping(text=text, label=label, id=ident)
    text = _pick(cols, TEXT_NAMES, "text", hints["text"], True)
    label = _pick(cols, LABEL_NAMES, "label", hints["label"], True)
    ident = _pick(cols, ID_NAMES, "id", hints["id"], False)
    annot = _pick(cols, ANNOTATOR_NAMES, "annotator", hints["annotator"], False)
    probs = [c for c in cols if PROB_PREFIX.match(c)]
    if text is None:
        rest = [c for c in cols if c not in (label, ident, annot) and c not in probs]
        if len(rest) == 1:
            text = rest[0]
    if text is None and label is not None:
        features = [c for c in cols if c not in (label, ident, annot) and c not in probs]
        if features:
            return Mapping(text=[], label=label, id=ident, annotator=annot, probs=probs, features=features)
    if text is None:
        raise IngestError(
            f"No text column found among {', '.join(map(repr, cols[:20]))}: say which column holds the text ({hints['text']})."
        )
    if label is None:
        raise IngestError(
            f"No label column found among {', '.join(map(repr, cols[:20]))}: say which column holds the label ({hints['label']})."
        )
    return Mapping(text=[text], label=label, id=ident, annotator=annot, probs=probs)


def resolve_columns(df: pd.DataFrame, spec: str | None) -> list[str]:
    """``"2,3"`` or ``"title,description"`` -> column names of ``df`` (1-based positions allowed)."""
    if not spec:
        return []
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part in df.columns:
            out.append(part)
        elif part.isdigit() and 1 <= int(part) <= df.shape[1]:
            out.append(df.columns[int(part) - 1])
        else:
            raise IngestError(
                f"Column {part!r} is not in the file. Its columns are: {', '.join(map(repr, list(df.columns)[:30]))}"
                + (" (or 1-based positions)." if True else ".")
            )
    return out


Choice = str | Sequence[str] | None  # a column spec as resolve_columns reads it ("2,3", "title"), or column names


def mapping_from_choices(
    df: pd.DataFrame,
    *,
    text: Choice = None,
    label: Choice = None,
    id: Choice = None,
    annotator: Choice = None,
    annotators: Choice = None,
    probs: Choice = None,
    features: Choice = None,
    embedding: Choice = None,
    loss: Choice = None,
    embedding_file: str | None = None,
    class_names: dict[str, str] | None = None,
    guess: bool = False,
    filename: str = "",
    hint: str = "",
) -> Mapping:
    """The Mapping the user's choices make. Each choice is a spec (a string: names or 1-based
    positions, comma-separated, as the command's flags take them) or a list of column names (the
    Upload page's boxes); empty or None: not chosen. ``annotator``: one column is the long form, several
    the wide form, as ``annotators`` (one column per annotator; the label column is then not used).

    With ``guess`` (the command), what is not chosen is guessed (guess_partial): text and features
    not when the other is chosen, the id not when text or label is chosen (except in the long form),
    and never the embedding or loss columns as text or features. When the guess cannot tell and
    nothing is chosen, IngestError: why, with ``filename`` in front and ``hint`` after it."""
    cols = lambda choice: resolve_columns(df, choice) if choice is None or isinstance(choice, str) else list(choice)
    empty = Mapping()
    guessed, why = guess_partial(df) if guess else (empty, None)
    if why and not any([text, label, id, annotator, annotators, probs, features]):
        why = f"{why} {hint}" if hint else why
        raise IngestError(f"{filename}: {why}" if filename else why)
    ann = cols(annotator)
    wide = cols(annotators) or (ann if len(ann) > 1 else [])
    m = Mapping(
        text=cols(text) or ([] if features else guessed.text),
        label=None if wide else (cols(label) or [guessed.label])[0],
        id=(cols(id) or [None if (text or label) and len(ann) != 1 else guessed.id])[0],
        annotator=None if wide else (ann or [guessed.annotator])[0],
        annotators=wide,
        probs=cols(probs) or guessed.probs,
        features=cols(features) or ([] if text else guessed.features),
        embedding=(cols(embedding) or [None])[0],
        loss=(cols(loss) or [None])[0],
        embedding_file=embedding_file,
        class_names=dict(class_names or {}),
    )
    signal_cols = {m.embedding, m.loss} - {None}  # a guess must not take the signal columns as text or features
    if not text:
        m.text = [c for c in m.text if c not in signal_cols]
    if not features:
        m.features = [c for c in m.features if c not in signal_cols]
    return m


def _natural_key(s: str):
    return (0, float(s), s) if re.fullmatch(r"-?\d+(\.\d+)?", s) else (1, 0.0, s.lower())


def class_from_prob_column(col: str) -> str:
    return PROB_PREFIX.sub("", col)


# ----------------------------------------------------------------------------- class names


def label_values(df: pd.DataFrame, mapping: Mapping) -> list[str]:
    """The distinct label values ``mapping`` reads (the label column, or the annotator columns of
    the wide form), stripped, in natural order ("2" before "10"): the order in which line k of a
    ``classes.txt`` names class k."""
    cols = list(mapping.annotators) or ([mapping.label] if mapping.label else [])
    vals: set[str] = set()
    for c in cols:
        if c in df.columns:
            vals.update(v.strip() for v in df[c].dropna().tolist() if isinstance(v, str) and v.strip())
    return sorted(vals, key=_natural_key)


def parse_class_names(text: str | None, values: list[str], source: str = "The class names") -> dict[str, str]:
    """Names for the label values -> {value as uploaded: name}. Blank text -> {} (the values stay).

    Two forms:

    * pairs, ``1=World, 2=Sports, 3=Business, 4=Sci/Tech``: one per line, or several on a line
      separated by commas (a line with a single ``=`` is one pair, so a name may hold a comma);
    * names only, one per line, as AG News ships ``classes.txt`` (or one line ``World, Sports, …``):
      the k-th name names the k-th of ``values`` in sorted order (:func:`label_values`).

    Refused with an IngestError naming it (nothing is written): a value without a name, a name
    given to two values, a value named twice, a pair or line for a value that does not occur.
    """
    lines = [(k, ln.strip()) for k, ln in enumerate((text or "").lstrip("\ufeff").splitlines(), start=1) if ln.strip()]
    if not lines:
        return {}
    shown = _values_preview(values)
    out: dict[str, str] = {}
    if any("=" in ln for _, ln in lines):  # pairs value=name
        items = [it.strip() for _, ln in lines for it in (ln.split(",") if ln.count("=") > 1 else [ln]) if it.strip()]
        for it in items:
            if "=" not in it:
                raise IngestError(
                    f"{source}: {it!r} is not of the form value=name. Write 1=World, 2=Sports, … or one name per line."
                )
            key, name = (x.strip() for x in it.split("=", 1))
            if key not in values:
                raise IngestError(
                    f"{source}: {it!r} names the label value {key!r}, which does not occur in the label "
                    f"column (its values: {shown}). Remove it, or choose the right label column."
                )
            if not name:
                raise IngestError(f"{source}: the label value {key!r} has no name after '='.")
            if key in out:
                raise IngestError(
                    f"{source}: the label value {key!r} is named twice ({out[key]!r} and {name!r}). Give it one name."
                )
            out[key] = name
    else:  # names only: the k-th name for the k-th value
        if len(lines) == 1 and "," in lines[0][1]:
            where = [(f"name {k}", n.strip()) for k, n in enumerate(lines[0][1].split(","), start=1) if n.strip()]
        else:
            where = [(f"line {k}", ln) for k, ln in lines]
        if len(where) > len(values):
            at, name = where[len(values)]
            raise IngestError(
                f"{source}: {at} ({name!r}) names no class: the label column has {len(values)} "
                f"value(s) ({shown}), so at most {len(values)} names (the k-th names the k-th value in sorted order)."
            )
        if len(where) < len(values):
            raise IngestError(
                f"{source}: the label value {values[len(where)]!r} has no name: {len(where)} name(s) for "
                f"{len(values)} label values ({shown}); the k-th name names the k-th value in sorted order."
            )
        out = {v: name for v, (_, name) in zip(values, where)}
    missing = [v for v in values if v not in out]
    if missing:
        raise IngestError(f"{source}: the label value {missing[0]!r} has no name. Name every value ({shown}) or none.")
    _check_names_unique(out, source)
    return out


def _check_names_unique(names: dict[str, str], source: str) -> None:
    seen: dict[str, str] = {}
    for value, name in names.items():
        if name in seen:
            raise IngestError(
                f"{source}: the name {name!r} is given to both {seen[name]!r} and {value!r}: "
                "each class needs its own name."
            )
        seen[name] = value


def _apply_class_names(labels: pd.Series, names: dict[str, str], filename: str, where: str) -> pd.Series:
    """Label values -> their class names (prepare's own check of Mapping.class_names)."""
    if not names:
        return labels
    seen = sorted(set(labels.dropna().tolist()), key=_natural_key)
    missing = [v for v in seen if v not in names]
    if missing:
        raise IngestError(
            f"{filename}: the label value {missing[0]!r} in {where} has no class name. Name every value, or none."
        )
    unused = [k for k in names if k not in set(seen)]
    if unused:
        raise IngestError(
            f"{filename}: the class name {names[unused[0]]!r} is given for the label value {unused[0]!r}, "
            f"which does not occur in {where}."
        )
    _check_names_unique(names, filename)
    return labels.map(lambda v: names[v] if isinstance(v, str) else None)


def prepare(
    df: pd.DataFrame,
    mapping: Mapping,
    filename: str,
    data: bytes | None = None,
    label_set: list[str] | None = None,
    embeddings: np.ndarray | None = None,
) -> Prepared:
    """Validate ``df`` against ``mapping`` and build the items frame. Raises IngestError.

    embeddings: (rows, d) from a .npy file (signals.read_npy), in upload order.
    ``mapping.class_names``: the label values become these names (a declared label set may use
    either); several text columns are joined with ``mapping.text_sep``."""
    missing = [c for c in mapping.used() if c not in df.columns]
    if missing:
        raise IngestError(
            f"{filename}: column {missing[0]!r} is not in the file. Its columns are: {', '.join(map(repr, list(df.columns)[:30]))}."
        )
    if mapping.multi:
        if mapping.embedding or mapping.loss or embeddings is not None:
            raise IngestError(
                f"{filename}: embeddings and a training-loss column go with one label per row; "
                "with several annotators per item, map neither."
            )
        return _prepare_multi(df, mapping, filename, data, label_set)
    if label_set and mapping.class_names:
        label_set = [mapping.class_names.get(s.strip(), s) for s in label_set if s]
    if embeddings is not None and mapping.embedding:
        raise IngestError(
            f"{filename}: embeddings come from column {mapping.embedding!r} and from a .npy file: choose one."
        )
    if not mapping.label:
        raise IngestError("Choose the label column.")
    if not mapping.text and not mapping.features:
        raise IngestError("Choose the text column (or, for tabular data, the feature columns).")
    used = set(mapping.used())
    if len(mapping.used()) != len(used):
        raise IngestError("A column is mapped twice: each column can have one role only.")
    n = len(df)

    if mapping.text:
        parts = [df[c] for c in mapping.text]
        if len(parts) == 1:
            text = parts[0]
        else:
            text = pd.Series(
                [mapping.text_sep.join(p for p in row if p) or None for row in zip(*[p.tolist() for p in parts])],
                index=df.index,
                dtype=object,
            )
    else:  # tabular: a readable line of the features for the reviewer
        feats = df[mapping.features]
        text = pd.Series(
            [
                "; ".join(f"{c}={v}" for c, v in zip(mapping.features, row) if v is not None)
                for row in feats.itertuples(index=False, name=None)
            ],
            index=df.index,
            dtype=object,
        )
    labels = df[mapping.label].map(lambda v: v.strip() if isinstance(v, str) and v.strip() else None)
    labels = _apply_class_names(labels, mapping.class_names, filename, f"column {mapping.label!r}")

    if mapping.id:
        keys = df[mapping.id]
        blank = keys.isna()
        if blank.any():
            r = int(np.flatnonzero(blank.to_numpy())[0])
            raise IngestError(
                f"{filename}: data row {r + 1} has no value in the id column {mapping.id!r}. Give every row an id, or map no id column."
            )
        dup = keys.duplicated(keep=False)
        if dup.any():
            first = keys[dup].iloc[0]
            rows = np.flatnonzero((keys == first).to_numpy())
            raise IngestError(
                f"{filename}: the id {first!r} in column {mapping.id!r} appears on data rows {', '.join(str(r + 1) for r in rows[:5])}"
                f" ({int(dup.sum())} rows share an id). Ids must be unique: fix them, or map no id column."
            )
        keys = keys.astype(str)
    else:
        keys = pd.Series([str(i) for i in range(n)], index=df.index, dtype=object)

    classes = _check_classes(
        filename,
        f"column {mapping.label!r}",
        labels.dropna(),
        label_set,
        need_folds=not mapping.probs,
        order=_named_order(mapping.class_names),
    )
    probs_json = None
    if mapping.probs:
        prob_classes = [mapping.class_names.get(k, k) for k in map(class_from_prob_column, mapping.probs)]
        unknown = [(c, k) for c, k in zip(mapping.probs, prob_classes) if k not in classes]
        if unknown:
            raise IngestError(
                f"{filename}: probability column {unknown[0][0]!r} names class {unknown[0][1]!r}, which is not a label "
                f"({', '.join(map(repr, classes[:20]))}). Name each column after its class, e.g. 'prob_{classes[0]}'."
            )
        if sorted(prob_classes) != sorted(classes):
            lacking = [c for c in classes if c not in prob_classes]
            raise IngestError(
                f"{filename}: there is no probability column for class(es) {', '.join(map(repr, lacking))}: map one column per class."
            )
        mat = np.empty((n, len(classes)))
        for col, cls in zip(mapping.probs, prob_classes):
            vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(vals) | (vals < 0))
            if bad.size:
                r = int(bad[0])
                raise IngestError(
                    f"{filename}: data row {r + 1}, column {col!r}: {df[col].iloc[r]!r} is not a probability (a number ≥ 0). Fix that cell."
                )
            mat[:, classes.index(cls)] = vals
        sums = mat.sum(axis=1)
        zero = np.flatnonzero(sums <= 0)
        if zero.size:
            raise IngestError(
                f"{filename}: data row {int(zero[0]) + 1}: the probability columns are all 0. Each row needs probabilities that sum to 1."
            )
        mat = mat / sums[:, None]
        probs_json = [json.dumps([round(float(x), 6) for x in row]) for row in mat]

    if mapping.embedding:
        embeddings = signals.parse_embedding_column(df[mapping.embedding].tolist(), filename, mapping.embedding)
    elif embeddings is not None:
        embeddings = signals.check_embeddings(embeddings, n, mapping.embedding_file or "the .npy file", None)
    loss = signals.parse_loss_column(df[mapping.loss].tolist(), filename, mapping.loss) if mapping.loss else None
    items = _items_frame(df, mapping, used, keys, text, labels, probs_json)
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    return Prepared(items, classes, bool(label_set), mapping, filename, sha, embeddings=embeddings, loss=loss)


def _named_order(names: dict[str, str]) -> list[str] | None:
    """The class names in the order of their values (1=World, 2=Sports, …: World, Sports, …)."""
    return [names[v] for v in sorted(names, key=_natural_key)] if names else None


def _check_classes(
    filename: str,
    where: str,
    labelled: pd.Series,
    label_set: list[str] | None,
    need_folds: bool = True,
    noun: str = "row",
    order: list[str] | None = None,
) -> list[str]:
    """The label set (declared, else the labels seen, in ``order`` when given, else sorted);
    refuse one class or a class too small."""
    if labelled.empty:
        raise IngestError(f"{filename}: no row has a label in {where}. Map the column that holds the labels.")
    if label_set:
        classes = list(dict.fromkeys(s.strip() for s in label_set if s and s.strip()))
    elif order:
        seen = set(labelled.unique().tolist())
        classes = [c for c in order if c in seen]
    else:
        classes = sorted(labelled.unique().tolist(), key=_natural_key)
    counts = labelled[labelled.isin(classes)].value_counts()
    present = [c for c in classes if counts.get(c, 0) > 0]
    if len(present) < 2:
        only = present[0] if present else None
        raise IngestError(
            f"{filename}: only one class ({only!r}) in {where}. "
            "Label-error detection needs at least two classes: check that the right column is mapped."
        )
    if need_folds:
        small = [(c, int(counts.get(c, 0))) for c in present if counts.get(c, 0) < MIN_PER_CLASS]
        if small:
            c, k = small[0]
            raise IngestError(
                f"{filename}: class {c!r} has only {k} labelled {noun}(s); cross-validation needs at least {MIN_PER_CLASS} of every class. "
                "Add examples of it, merge it into another class, or remove its rows."
                + (f" ({len(small) - 1} more class(es) are as small.)" if len(small) > 1 else "")
            )
    return classes


def _prepare_multi(
    df: pd.DataFrame, mapping: Mapping, filename: str, data: bytes | None, label_set: list[str] | None
) -> Prepared:
    """Several labels per item -> one item per id with the majority vote as its given label,
    plus every (item, annotator, label) for the consensus.

    Long form: id, text, annotator, label columns, one row per label. Wide form: one row per
    item, one column per annotator (blank where they did not label).
    """
    from review.crowd.consensus import majority_vote, to_matrix

    if not mapping.text:
        raise IngestError("Choose the text column.")
    if label_set and mapping.class_names:
        label_set = [mapping.class_names.get(s.strip(), s) for s in label_set if s]
    text_all = (
        df[mapping.text[0]]
        if len(mapping.text) == 1
        else pd.Series(
            [
                mapping.text_sep.join(p for p in row if p) or None
                for row in df[mapping.text].itertuples(index=False, name=None)
            ],
            index=df.index,
            dtype=object,
        )
    )
    clean = lambda v: v.strip() if isinstance(v, str) and v.strip() else None
    if mapping.annotator:  # long form
        if not mapping.label:
            raise IngestError("Choose the label column.")
        if not mapping.id:
            raise IngestError(
                f"{filename}: with an annotator column, map the item id column too: the rows of one item share its id."
            )
        ids = df[mapping.id]
        blank = np.flatnonzero(ids.isna().to_numpy())
        if blank.size:
            raise IngestError(
                f"{filename}: data row {int(blank[0]) + 1} has no item id in column {mapping.id!r}. Give every row its item's id."
            )
        ann = df[mapping.annotator]
        blank = np.flatnonzero(ann.isna().to_numpy())
        if blank.size:
            raise IngestError(
                f"{filename}: data row {int(blank[0]) + 1} has no annotator in column {mapping.annotator!r}. Fill it in or remove the row."
            )
        long = pd.DataFrame(
            {
                "id": ids.astype(str).to_numpy(),
                "annotator": ann.astype(str).to_numpy(),
                "label": df[mapping.label].map(clean).to_numpy(),
                "text": text_all.to_numpy(),
                "row": np.arange(len(df)),
            }
        )
        twice = long.duplicated(["id", "annotator"], keep=False) & long["label"].notna()
        if twice.any():
            first = long[twice].iloc[0]
            rows = long[(long["id"] == first["id"]) & (long["annotator"] == first["annotator"])]["row"].tolist()
            raise IngestError(
                f"{filename}: annotator {first['annotator']!r} labelled item {first['id']!r} more than once "
                f"(data rows {', '.join(str(r + 1) for r in rows[:5])}). Keep one label per annotator and item."
            )
        where = f"column {mapping.label!r}"
        first_rows = long.drop_duplicates("id")
        item_keys = first_rows["id"].tolist()
        texts = long.dropna(subset=["text"]).drop_duplicates("id").set_index("id")["text"].reindex(item_keys).tolist()
        other = [c for c in df.columns if c not in set(mapping.used())]
        meta_src = df.iloc[first_rows["row"].to_numpy()]
    else:  # wide form
        if mapping.id:
            keys = df[mapping.id]
            dup = keys.duplicated(keep=False) & keys.notna()
            if dup.any():
                v = keys[dup].iloc[0]
                raise IngestError(
                    f"{filename}: the id {v!r} appears on more than one row; in the wide form each row is one item. Make ids unique."
                )
        item_keys = (df[mapping.id].astype(str) if mapping.id else pd.Series([str(i) for i in range(len(df))])).tolist()
        parts = []
        for c in mapping.annotators:
            lab = df[c].map(clean)
            parts.append(
                pd.DataFrame({"id": item_keys, "annotator": c, "label": lab.to_numpy(), "row": np.arange(len(df))})
            )
        long = pd.concat(parts, ignore_index=True)
        texts = text_all.tolist()
        where = f"the annotator columns ({', '.join(map(repr, mapping.annotators[:5]))})"
        other = [c for c in df.columns if c not in set(mapping.used())]
        meta_src = df
    long["label"] = _apply_class_names(long["label"], mapping.class_names, filename, where)
    labelled = long.dropna(subset=["label"])
    classes = _check_classes(
        filename, where, labelled["label"], label_set, need_folds=False, order=_named_order(mapping.class_names)
    )
    known = labelled[labelled["label"].isin(classes)]
    L, item_order, annotators = to_matrix(
        known["id"].tolist(), known["annotator"].tolist(), known["label"].tolist(), classes
    )
    vote, _ = majority_vote(L, len(classes), seed=0)
    pos = {k: i for i, k in enumerate(item_order)}
    given = [classes[vote[pos[k]]] if k in pos else None for k in item_keys]
    _check_classes(
        filename,
        "the majority-vote labels",
        pd.Series([g for g in given if g is not None], dtype=object),
        classes,
        noun="item",
    )
    idx_of = {k: i for i, k in enumerate(item_keys)}
    annotations = [
        (idx_of[i], a, l) for i, a, l in labelled[["id", "annotator", "label"]].itertuples(index=False, name=None)
    ]
    meta = [
        json.dumps({c: v for c, v in zip(other, row) if v is not None}, ensure_ascii=False) if other else None
        for row in (meta_src[other].itertuples(index=False, name=None) if other else [()] * len(item_keys))
    ]
    n = len(item_keys)
    items = pd.DataFrame(
        {
            "key": item_keys,
            "text": texts,
            "given_label": given,
            "meta": meta,
            "features": [None] * n,
            "probs": [None] * n,
            "annotator": [None] * n,
        }
    )
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    return Prepared(items, classes, bool(label_set), mapping, filename, sha, annotations)


def _items_frame(df, mapping, used, keys, text, labels, probs_json) -> pd.DataFrame:
    n = len(df)
    other = [c for c in df.columns if c not in used]
    meta = [
        json.dumps({c: v for c, v in zip(other, row) if v is not None}, ensure_ascii=False) if other else None
        for row in (df[other].itertuples(index=False, name=None) if other else [()] * n)
    ]
    features = None
    if mapping.features:
        features = [
            json.dumps(dict(zip(mapping.features, row)), ensure_ascii=False)
            for row in df[mapping.features].itertuples(index=False, name=None)
        ]
    items = pd.DataFrame(
        {
            "key": keys.to_numpy(dtype=object),
            "text": text.to_numpy(dtype=object),
            "given_label": labels.to_numpy(dtype=object),
            "meta": meta,
            "features": features if features is not None else [None] * n,
            "probs": probs_json if probs_json is not None else [None] * n,
            "annotator": [None] * n,
        }
    )
    return items


def check_name(name: str | None) -> str:
    """A dataset name, stripped; IngestError when empty or too long."""
    name = (name or "").strip()
    if not name:
        raise IngestError("Give the dataset a name.")
    if len(name) > 200:
        raise IngestError("The dataset name is too long: use at most 200 characters.")
    return name


def write_dataset(db: sqlite_utils.Database, prep: Prepared, name: str, user: User, progress=None) -> int:
    """Write dataset + items + audit row in one transaction. Returns the dataset id.

    ``progress(fraction, message)`` is called between batches.
    """
    require_active(db, user, "lead", "upload datasets")
    name = check_name(name)
    items = prep.items
    n = len(items)
    with store.transaction(db):
        ds = insert_dataset(
            db,
            name,
            "text",
            prep.labels,
            prep.label_set_declared,
            prep.mapping,
            n,
            prep.source_name,
            prep.source_sha256,
            user.name,
        )
        cols = [items[c].tolist() for c in ("key", "text", "given_label", "meta", "features", "probs")]
        for start in range(0, n, BATCH):
            stop = min(n, start + BATCH)
            db.conn.executemany(
                "INSERT INTO items(dataset_id, idx, key, text, given_label, meta, features, probs) VALUES (?,?,?,?,?,?,?,?)",
                ((ds, i, *(c[i] for c in cols)) for i in range(start, stop)),
            )
            if progress:
                progress(stop / n, f"Stored {stop:,} of {n:,} rows")
        if prep.annotations:
            db.conn.executemany(
                "INSERT INTO annotations(dataset_id, idx, annotator, label) VALUES (?,?,?,?)",
                ((ds, i, a, l) for i, a, l in prep.annotations),
            )
        signals.write(db, ds, prep.embeddings, prep.loss)
        log_upload(
            db,
            user.name,
            ds,
            name,
            prep.source_name,
            prep.source_sha256,
            rows=n,
            labels=prep.labels,
            mapping=json.loads(prep.mapping.to_json()),
        )
    return ds


def ingest_bytes(
    db: sqlite_utils.Database,
    data: bytes,
    filename: str,
    name: str,
    user: User,
    mapping: Mapping | None = None,
    no_header: bool = False,
    label_set: list[str] | None = None,
    progress=None,
) -> int:
    """read_table -> guess_mapping (unless given) -> prepare -> write_dataset."""
    df = read_table(data, filename, no_header=no_header)
    mapping = mapping or guess_mapping(df)
    prep = prepare(df, mapping, filename, data, label_set)
    return write_dataset(db, prep, name, user, progress)
