"""The dataset record: its column mapping (Mapping), the row written at upload (insert_dataset, log_upload),
and reads about datasets and runs: the list on the home page, one dataset, its latest run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import sqlite_utils

from review import store, trail
from review.errors import IngestError, NotFound, ReviewError

SETTINGS_KEY = "settings"  # the dataset's settings live in its ``mapping`` JSON under this key
SETTINGS = {
    # a lead may verify their own decision (a one-person team); off: four eyes, someone else verifies
    "allow_self_approval": False,
    # blind first look: an annotator makes a call on the text and given label before the model's view is shown
    "blind_first_look": False,
}


TEXT_SEP = "\n"  # several text columns are joined with this


@dataclass
class Mapping:
    """Which columns mean what. Names are header names, or "1", "2", … without a header."""

    text: list[str] = field(default_factory=list)  # joined with text_sep when several
    label: str | None = None
    id: str | None = None
    annotator: str | None = None
    probs: list[str] = field(default_factory=list)  # one column per class
    features: list[str] = field(default_factory=list)  # tabular: feature columns, no text
    annotators: list[str] = field(default_factory=list)  # wide multi-annotator form: one column per annotator
    embedding: str | None = None  # the team's own embeddings: a column with one vector per row ...
    embedding_file: str | None = None  # ... or the name of the .npy file that held them
    loss: str | None = None  # the team's own per-row training loss
    # NER uploads: how the file was read
    format: str | None = None  # 'conll' | 'jsonl'
    scheme: str | None = None  # 'IOB1' | 'IOB2' | 'BIOES'
    n_columns: int = 0  # CoNLL columns (token first, tag last)
    prob_tags: list[str] = field(default_factory=list)  # JSONL pred_probs: their tag order
    # label value as uploaded -> the class name stored as the label (parse_class_names); the
    # original values are kept here (and so in datasets.mapping and the upload's audit-trail row)
    class_names: dict[str, str] = field(default_factory=dict)
    text_sep: str = TEXT_SEP  # how several text columns were joined

    @property
    def multi(self) -> bool:
        """Several labels per item: long form (an annotator column) or wide form (annotator columns)."""
        return bool(self.annotator or self.annotators)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, s: str) -> Mapping:
        data = json.loads(s)
        data.setdefault("text_sep", " ")  # datasets ingested before text_sep joined with a space
        return cls(**data)

    def used(self) -> list[str]:
        cols = list(self.text) + list(self.probs) + list(self.features) + list(self.annotators)
        cols += [c for c in (self.label, self.id, self.annotator, self.embedding, self.loss) if c]
        return cols


def insert_dataset(
    db: sqlite_utils.Database,
    name: str,
    task: str,
    labels: list[str],
    label_set_declared: bool,
    mapping: Mapping,
    n_items: int,
    source_name: str | None,
    source_sha256: str,
    created_by: str,
) -> int:
    """The dataset's row (text or NER), inside the caller's transaction, which then writes its items.
    Returns the new dataset id; IngestError when the name is taken (the caller's transaction rolls back)."""
    if store.scalar(db, "SELECT 1 FROM datasets WHERE name=?", [name]):
        raise IngestError(f"A dataset named {name!r} exists already: choose another name.")
    cur = db.execute(
        "INSERT INTO datasets(name, task, labels, label_set_declared, mapping, n_items, source_name, source_sha256, created_by, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?)",
        [
            name,
            task,
            json.dumps(labels, ensure_ascii=False),
            int(label_set_declared),
            mapping.to_json(),
            n_items,
            source_name,
            source_sha256,
            created_by,
            store.now_iso(),
        ],
    )
    return cur.lastrowid


def log_upload(
    db: sqlite_utils.Database, actor: str, dataset_id: int, name: str, source_name: str | None, sha256: str, **fields
) -> None:
    """The upload's audit-trail row (action ``upload``), last in the transaction that wrote the dataset:
    its name, source file and SHA-256, and what the caller adds (rows and mapping, or NER sentences and scheme)."""
    trail.log(db, actor, "upload", dataset_id, dataset=name, source=source_name, sha256=sha256, **fields)


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    task: str
    labels: list[str]
    label_set_declared: bool
    mapping: Mapping
    n_items: int
    source_name: str | None
    created_by: str
    created_at: str
    settings: dict = field(default_factory=lambda: dict(SETTINGS))  # see SETTINGS; set with set_setting


def _split_mapping(raw: str) -> tuple[Mapping, dict]:
    """The ``mapping`` column -> (the column mapping, the dataset's settings over SETTINGS)."""
    data = json.loads(raw)
    if SETTINGS_KEY not in data:
        return Mapping.from_json(raw), dict(SETTINGS)
    stored = data.pop(SETTINGS_KEY) or {}
    mapping = Mapping.from_json(json.dumps(data))
    return mapping, {**SETTINGS, **{k: v for k, v in stored.items() if k in SETTINGS}}


def _row_to_dataset(r: dict) -> Dataset:
    mapping, settings = _split_mapping(r["mapping"])
    return Dataset(
        r["id"],
        r["name"],
        r["task"],
        json.loads(r["labels"]),
        bool(r["label_set_declared"]),
        mapping,
        r["n_items"],
        r["source_name"],
        r["created_by"],
        r["created_at"],
        settings,
    )


def settings(db: sqlite_utils.Database, dataset_id: int) -> dict:
    """The dataset's settings as stored now (read inside a caller's transaction, it is the value in force)."""
    raw = store.scalar(db, "SELECT mapping FROM datasets WHERE id=?", [dataset_id])
    if raw is None:
        raise NotFound(f"There is no dataset {dataset_id}.")
    return _split_mapping(raw)[1]


def set_setting(db: sqlite_utils.Database, ds: Dataset, key: str, value, user) -> bool:
    """Change one setting of the dataset (a lead or admin), with an audit row naming the old and
    new value (action ``dataset_setting``). Returns False (and writes nothing) when it already has
    that value. Stored in the dataset row's ``mapping`` JSON under ``settings``."""
    from review.auth import require_active

    require_active(db, user, "lead", "change a dataset's settings")
    if key not in SETTINGS:
        raise ReviewError(f"Unknown setting {key!r}: the settings are {', '.join(SETTINGS)}.")
    if type(value) is not type(SETTINGS[key]):
        raise ReviewError(f"Setting {key!r} takes a {type(SETTINGS[key]).__name__}, not {value!r}.")
    if key == "blind_first_look" and value and ds.task == "ner":
        raise ReviewError(
            f"{ds.name!r} is a NER dataset: its card edits tags beside the model's, so there is no blind first look."
        )
    with store.transaction(db):
        raw = store.scalar(db, "SELECT mapping FROM datasets WHERE id=?", [ds.id])
        if raw is None:
            raise NotFound(f"There is no dataset {ds.id}.")
        data = json.loads(raw)
        stored = dict(data.get(SETTINGS_KEY) or {})
        old = stored.get(key, SETTINGS[key])
        if old == value:
            return False
        stored[key] = value
        data[SETTINGS_KEY] = stored
        db.execute("UPDATE datasets SET mapping=? WHERE id=?", [json.dumps(data), ds.id])
        trail.log(db, user.name, "dataset_setting", ds.id, setting=key, value=value, previous=old)
    return True


def get(db: sqlite_utils.Database, name_or_id: str | int) -> Dataset:
    """A dataset by name (or id). Raises NotFound naming the known datasets."""
    col = "id" if isinstance(name_or_id, int) else "name"
    rows = list(db.query(f"SELECT * FROM datasets WHERE {col} = ?", [name_or_id]))
    if not rows:
        names = [r[0] for r in db.execute("SELECT name FROM datasets ORDER BY id LIMIT 20")]
        raise NotFound(
            f"No dataset named {name_or_id!r}."
            + (f" Known datasets: {', '.join(names)}." if names else " Upload one first.")
        )
    return _row_to_dataset(rows[0])


def latest_run(db: sqlite_utils.Database, dataset_id: int, kind: str | None = None) -> dict | None:
    """The newest finished run (of ``kind`` if given), as a dict, or None."""
    sql = (
        "SELECT * FROM runs WHERE dataset_id=? AND status='done'"
        + (" AND kind=?" if kind else "")
        + " ORDER BY id DESC LIMIT 1"
    )
    rows = list(db.query(sql, [dataset_id, kind] if kind else [dataset_id]))
    if not rows:
        return None
    r = rows[0]
    r["metrics"] = json.loads(r["metrics"] or "{}")
    r["params"] = json.loads(r["params"] or "{}")
    return r


def runs(db: sqlite_utils.Database, dataset_id: int) -> list[dict]:
    """Every run of a dataset, newest first. A run still 'running' whose process on this machine
    has ended (killed, crashed) shows as 'interrupted': its partial work was never committed."""
    out = list(
        db.query(
            "SELECT id, kind, status, created_by, started_at, finished_at, metrics, error, params FROM runs"
            " WHERE dataset_id=? ORDER BY id DESC",
            [dataset_id],
        )
    )
    for r in out:
        params = json.loads(r.pop("params") or "{}")
        if r["status"] == "running" and not _alive(params):
            r["status"] = "interrupted"
    return out


def _alive(params: dict) -> bool:
    import os
    import socket

    pid, host = params.get("pid"), params.get("host")
    if not pid or host != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def overview(db: sqlite_utils.Database) -> list[dict]:
    """One dict per dataset for the home page: name, task, rows, suspects, where review stands."""
    out = []
    for r in db.query("SELECT id, name, task, n_items, created_by, created_at FROM datasets ORDER BY id DESC"):
        run = latest_run(db, r["id"])
        counts = dict(
            db.execute("SELECT state, COUNT(*) FROM states WHERE dataset_id=? GROUP BY state", [r["id"]]).fetchall()
        )
        pending = store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending'", [r["id"]])
        flagged = run["metrics"].get("flagged") if run else None
        decided = sum(v for k, v in counts.items() if k != "open")
        if run is None:
            stage = "uploaded: run the audit"
        elif run["kind"] == "integrity":
            stage = "integrity checked: run the audit"
        elif flagged and decided < flagged:
            stage = "in review"
        elif pending:
            stage = "awaiting verification"
        else:
            stage = "reviewed"
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "task": r["task"],
                "rows": r["n_items"],
                "suspects": flagged,
                "decided": decided,
                "pending verification": pending,
                "approved": counts.get("approved", 0) + counts.get("overridden", 0),
                "stage": stage,
                "created by": r["created_by"],
                "created at": r["created_at"][:16],
            }
        )
    return out
