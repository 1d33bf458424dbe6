"""Versions: every export is a numbered version of a dataset's labels, with a manifest, and two
versions can be compared.

An export streams: :class:`VersionedExport` reads the cleaned rows a page at a time, keeps each row's
label (the version's label list) as the rows pass, hashes the file's bytes (SHA-256) as each chunk
leaves, and records the version (:func:`record_version`: the ``versions`` row and its
``export_version`` trail row, in one transaction) when the last chunk has been taken. The CSV is never
held in memory by it. The manifest (:class:`Manifest`, :func:`build_manifest`) says what the export
was made from: the upload and its hash, the runs, the model and its parameters, the library versions,
the counts by state, who approved what, the subset's filter; it is stored with the version and written
next to the file (``<file>.manifest.json`` by the `review` command).

:func:`compare_versions` reads two versions' label lists: the rows whose label changed (a page of them
at a time, keyset on the row number), the classes moved (from -> to counts), the counts per class in
each, and the flag counts and precision of the runs each carried (with review.rundiff's comparison
when the audit runs differ).
"""

from __future__ import annotations

import hashlib
import json
import platform
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, is_dataclass

import sqlite_utils

from review import export, rundiff, store, taxonomy, trail
from review.auth import User, require_active
from review.browse import RowFilter, check, matching
from review.datasets import Dataset, latest_run
from review.errors import NotFound, ReviewError

MANIFEST_FORMAT = "review-version-manifest/1"
KINDS = ("cleaned", "verified", "subset", "ner")
VERIFIED_STATES = ("approved", "overridden")
DECIDED_STATES = ("kept", "relabelled", "unsure", "excluded", "ambiguous", "approved", "overridden")
CSV_STATES = ("unreviewed", *DECIDED_STATES)  # the cleaned CSV's status column
PAGE_MAX = 500
SNIPPET = 200


# ----------------------------------------------------------------------------- the manifest


@dataclass
class Manifest:
    """What an export was made from (written as JSON next to the file and stored with the version).

    ``rows``: {"upload": rows uploaded, "export": rows in the file}; ``run``: the run whose scores the
    export carries (id, kind, status, when, by); ``runs``: every run of the dataset (id, kind, status,
    started_at, finished_at); ``model``: the latest audit run's id, model and params; ``libraries``:
    {"run": the versions the run recorded, "exporter": this machine's}; ``states``: rows per state
    (open, kept, relabelled, unsure, approved, overridden); ``reviews``: decisions per status;
    ``approvals``: {"leads": {lead: {approved, overridden, rejected, self_approved}}, "annotators":
    {annotator: {decisions, keep, relabel, unsure}}} (superseded decisions left out); ``flags``: the
    audit run's flagged rows, those decided, found wrong, precision (wrong / decided); ``subset``: the
    filter (describe, JSON) and states of a subset export, else None; ``taxonomy``: the label set's
    version (0: as uploaded) and its events (review.taxonomy)."""

    dataset: dict
    source: dict
    rows: dict
    run: dict | None
    runs: list[dict]
    model: dict | None
    libraries: dict
    states: dict
    reviews: dict
    approvals: dict
    flags: dict | None
    kind: str
    only_verified: bool = False
    subset: dict | None = None
    taxonomy: dict | None = None
    checks: dict | None = None  # {kind: count} of the checks beyond label errors in the run it carries
    leakage: list[dict] | None = None  # the newest leakage check against each other dataset (review.findings.leakage)
    sha256: str | None = None
    version: int | None = None
    created_by: str = ""
    created_at: str = ""
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return manifest_json(self.to_dict())


def manifest_json(data: dict) -> str:
    """The manifest as its file holds it (indented, keys in order, UTF-8)."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Subset:
    """The rows of a subset export: those the filter matches (None: every row) whose status (the
    cleaned CSV's: unreviewed, kept, relabelled, unsure, approved, overridden) is one of ``states``
    (empty: any)."""

    filter: RowFilter | None = None
    states: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [] if self.filter is None or self.filter.empty() else [self.filter.describe()]
        if self.states:
            parts.append("status " + " or ".join(self.states))
        return ", ".join(parts) or "all rows"

    def to_dict(self) -> dict:
        f = self.filter or RowFilter()
        return {"describe": self.describe(), "filter": json.loads(f.to_json()), "states": list(self.states)}


def _state_counts(db, ds: Dataset) -> dict:
    got = {
        r["state"]: r["n"]
        for r in store.rows(db, "SELECT state, COUNT(*) AS n FROM states WHERE dataset_id=? GROUP BY state", [ds.id])
    }
    n_items = store.scalar(db, "SELECT COUNT(*) FROM items WHERE dataset_id=?", [ds.id]) or 0
    got["open"] = n_items - sum(n for s, n in got.items() if s != "open")
    return dict(sorted(got.items()))


def _review_counts(db, ds: Dataset) -> dict:
    return {
        r["status"]: r["n"]
        for r in store.rows(
            db,
            "SELECT status, COUNT(*) AS n FROM reviews WHERE dataset_id=? GROUP BY status ORDER BY status",
            [ds.id],
        )
    }


def _approvals(db, ds: Dataset) -> dict:
    leads: dict[str, dict] = {}
    for r in store.rows(
        db,
        "SELECT verified_by AS lead, status, SUM(verified_by=reviewer) AS own, COUNT(*) AS n FROM reviews"
        " WHERE dataset_id=? AND verified_by IS NOT NULL AND status IN ('approved', 'overridden', 'rejected')"
        " GROUP BY verified_by, status ORDER BY verified_by",
        [ds.id],
    ):
        d = leads.setdefault(r["lead"], {"approved": 0, "overridden": 0, "rejected": 0, "self_approved": 0})
        d[r["status"]] += r["n"]
        if r["status"] != "rejected":
            d["self_approved"] += r["own"] or 0
    annotators: dict[str, dict] = {}
    for r in store.rows(
        db,
        "SELECT reviewer, decision, COUNT(*) AS n FROM reviews WHERE dataset_id=? AND status != 'superseded'"
        " GROUP BY reviewer, decision ORDER BY reviewer",
        [ds.id],
    ):
        d = annotators.setdefault(r["reviewer"], {"decisions": 0, "keep": 0, "relabel": 0, "unsure": 0})
        d["decisions"] += r["n"]
        d[r["decision"]] = d.get(r["decision"], 0) + r["n"]
    return {"leads": leads, "annotators": annotators}


CHECK_KINDS = ("outliers", "near_duplicates", "ambiguous", "class_imbalance", "non_iid")


def _checks(db, run_id: int | None) -> dict | None:
    """{kind: count} of the run's checks beyond label errors (review.findings.summary's KindSummary.found: rows
    found; minority classes for class_imbalance; 1 when the row order drifts for non_iid), every kind named
    (0 when none found); None when the run has none (an older run, NER)."""
    from review.findings import summary

    if run_id is None:
        return None
    got = {k.kind: k.found for k in summary.summary(db, run_id)}
    return {k: int(got.get(k) or 0) for k in CHECK_KINDS} if got else None


def _leakage(db, ds: Dataset) -> list[dict] | None:
    """The newest leakage check of the dataset against each other dataset: whom, when, rows here with a near
    copy there, pairs, pairs with different labels; None when none was run."""
    from review.findings import leakage

    got = [
        {
            "against": c.other_name,
            "checked_at": c.created_at,
            "rows": c.rows,
            "other_rows": c.other_rows,
            "pairs": c.pairs,
            "conflicting": c.conflicting,
        }
        for c in leakage.latest(db, ds)
    ]
    return got or None


def _flags(db, ds: Dataset, run_id: int | None) -> dict | None:
    """The run's flagged rows and, among them, those decided (unsure, exclude and ambiguous left out: the label
    not judged) and found wrong (the latest decision in force: a relabel, or an override to another label than
    the given one); counted by review.precision, as the Audit page's precision."""
    if run_id is None:
        return None
    flagged = store.scalar(db, "SELECT COUNT(*) FROM scores WHERE run_id=? AND is_issue=1", [run_id]) or 0
    from review.precision import flagged_decided

    decided, wrong = flagged_decided(db, ds, run_id)
    return {
        "run_id": run_id,
        "flagged": flagged,
        "decided": decided,
        "wrong": wrong,
        "precision": round(wrong / decided, 6) if decided else None,
    }


def _jsonable(value):
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _taxonomy(db, ds: Dataset) -> dict:
    """The label set's version (0: as uploaded) and its events, oldest first (review.taxonomy)."""
    return {"version": taxonomy.version(db, ds), "events": [_jsonable(e) for e in taxonomy.events(db, ds)]}


def build_manifest(
    db: sqlite_utils.Database,
    ds: Dataset,
    run_id: int | None,
    kind: str,
    rows_info: dict,
    *,
    user: User | None = None,
    subset: Subset | None = None,
    only_verified: bool = False,
) -> Manifest:
    """The manifest of an export of ``ds`` carrying run ``run_id`` (None: no run). ``rows_info``:
    at least {"export": rows in the file}; "sha256" and "version" when known (they are filled in by
    record_version otherwise)."""
    from review.audit import library_versions  # numpy, pandas: loaded on use

    if kind not in KINDS:
        raise ReviewError(f"Unknown version kind {kind!r}: the kinds are {', '.join(KINDS)}.")
    src = store.fetch_one(db, "SELECT source_name, source_sha256, n_items FROM datasets WHERE id=?", [ds.id])
    if src is None:
        raise NotFound(f"There is no dataset {ds.id}.")
    all_runs = [
        dict(r)
        for r in store.rows(
            db,
            "SELECT id, kind, status, created_by, started_at, finished_at FROM runs WHERE dataset_id=? ORDER BY id",
            [ds.id],
        )
    ]
    run = None
    run_versions: dict = {}
    if run_id is not None:
        r = store.fetch_one(
            db,
            "SELECT id, kind, status, created_by, started_at, finished_at, versions FROM runs WHERE id=?",
            [run_id],
        )
        if r is None:
            raise NotFound(f"There is no run {run_id} of {ds.name!r}.")
        run = {k: r[k] for k in ("id", "kind", "status", "created_by", "started_at", "finished_at")}
        run_versions = json.loads(r["versions"] or "{}")
    audit_run = latest_run(db, ds.id, "audit")
    model = None
    if audit_run:
        params = audit_run["params"] or {}
        model = {"run_id": audit_run["id"], "model": params.get("model"), "params": params}
        run_versions = run_versions or json.loads(audit_run.get("versions") or "{}")
    exporter = {**library_versions(), "platform": platform.platform()}
    return Manifest(
        dataset={"id": ds.id, "name": ds.name, "task": ds.task, "labels": list(ds.labels)},
        source={"name": src["source_name"], "sha256": src["source_sha256"]},
        rows={"upload": src["n_items"], "export": rows_info.get("export")},
        run=run,
        runs=all_runs,
        model=model,
        libraries={"run": run_versions, "exporter": exporter},
        states=_state_counts(db, ds),
        reviews=_review_counts(db, ds),
        approvals=_approvals(db, ds),
        flags=_flags(db, ds, audit_run["id"] if audit_run else None),
        kind=kind,
        only_verified=only_verified,
        subset=subset.to_dict() if subset else None,
        taxonomy=_taxonomy(db, ds),
        checks=_checks(db, (run or {}).get("id") or (audit_run["id"] if audit_run else None)),
        leakage=_leakage(db, ds),
        sha256=rows_info.get("sha256"),
        version=rows_info.get("version"),
        created_by=user.name if user else "",
        created_at=store.now_iso(),
    )


# ----------------------------------------------------------------------------- recording a version


@dataclass(frozen=True)
class Version:
    """A recorded version: its number per dataset, kind, the file's SHA-256, rows, and manifest."""

    id: int
    dataset_id: int
    number: int
    kind: str
    created_by: str
    created_at: str
    run_id: int | None
    sha256: str | None
    n_rows: int
    manifest: dict = field(default_factory=dict)

    def manifest_json(self) -> str:
        return manifest_json(self.manifest)


@dataclass(frozen=True)
class VersionSummary:
    """One line of the versions list (no manifest, no labels)."""

    number: int
    kind: str
    created_by: str
    created_at: str
    run_id: int | None
    sha256: str | None
    n_rows: int


def _pack(labels: list) -> bytes:
    return zlib.compress(json.dumps(labels, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 6)


def _unpack(blob: bytes) -> list:
    return json.loads(zlib.decompress(bytes(blob)).decode("utf-8"))


def record_version(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    kind: str,
    labels: list,
    sha256: str | None,
    manifest: Manifest | dict,
) -> Version:
    """Record the next version of ``ds`` (number = the last one + 1, taken inside the transaction):
    ``labels`` has one entry per row of the dataset (None: the row is not in this export). The
    manifest gets the number, the SHA-256, the rows and who recorded it; trail row ``export_version``
    (number, kind, sha256, n_rows). Leads only."""
    require_active(db, user, "lead", "record an export's version")
    if kind not in KINDS:
        raise ReviewError(f"Unknown version kind {kind!r}: the kinds are {', '.join(KINDS)}.")
    data = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    n_rows = sum(1 for v in labels if v is not None)
    with store.transaction(db):
        number = (store.scalar(db, "SELECT MAX(number) FROM versions WHERE dataset_id=?", [ds.id]) or 0) + 1
        at = store.now_iso()
        data.update(version=number, sha256=sha256, kind=kind, created_by=user.name)
        data.setdefault("created_at", at)
        data["rows"] = {**(data.get("rows") or {}), "export": n_rows}
        run_id = (data.get("run") or {}).get("id")
        cur = db.execute(
            "INSERT INTO versions(dataset_id, number, created_by, created_at, run_id, kind, manifest, labels, sha256,"
            " n_rows) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [ds.id, number, user.name, at, run_id, kind, manifest_json(data), _pack(labels), sha256, n_rows],
        )
        trail.log(db, user.name, "export_version", ds.id, number=number, kind=kind, sha256=sha256, n_rows=n_rows)
    return Version(cur.lastrowid, ds.id, number, kind, user.name, at, run_id, sha256, n_rows, data)


class VersionedExport:
    """An export that records its version as it streams: iterate it for the file's text chunks. Each row
    passing through :meth:`tap` leaves its label in the version's list; each chunk is hashed as it
    leaves; after the last chunk the version is recorded (``.version``). Nothing is recorded for an
    export that is not read to its end."""

    def __init__(self, db, ds: Dataset, user: User, kind: str, manifest: Manifest, n_items: int):
        self.db, self.ds, self.user, self.kind, self.manifest = db, ds, user, kind, manifest
        self.labels: list = [None] * n_items
        self.version: Version | None = None
        self._hash = hashlib.sha256()
        self._chunks: Iterable[str] = ()

    def tap(self, rows: Iterable[tuple[int, object, list]]) -> Iterator[list]:
        """(row number, label, row) -> row, keeping the label."""
        labels = self.labels
        for idx, label, row in rows:
            labels[idx] = label
            yield row

    def feed(self, chunks: Iterable[str]) -> VersionedExport:
        self._chunks = chunks
        return self

    def __iter__(self) -> Iterator[str]:
        h = self._hash
        for chunk in self._chunks:
            h.update(chunk.encode("utf-8"))
            yield chunk
        self.version = record_version(self.db, self.ds, self.user, self.kind, self.labels, h.hexdigest(), self.manifest)

    def manifest_json(self) -> str:
        """The recorded manifest (after the export was read to its end)."""
        if self.version is None:
            raise ReviewError(f"The export of {self.ds.name!r} was not read to its end: no version was recorded.")
        return self.version.manifest_json()


def _subset_keep(db, ds: Dataset, subset: Subset | None):
    """A predicate on (row number, CSV row) for rows arriving in row order."""
    if subset is None:
        return None
    bad = [s for s in subset.states if s not in CSV_STATES]
    if bad:
        raise ReviewError(f"Unknown status {', '.join(map(repr, bad))}: choose among {', '.join(CSV_STATES)}.")
    states = set(subset.states)
    f = subset.filter
    matched = None
    if f is not None and not f.empty():
        check(ds, f)
        matched = matching(db, ds, f)
    pending = [next(matched, None)] if matched is not None else None

    def keep(idx: int, row: list) -> bool:
        if states and row[5] not in states:
            return False
        if pending is None:
            return True
        while pending[0] is not None and pending[0] < idx:
            pending[0] = next(matched, None)
        return pending[0] == idx

    return keep


def export_csv(
    db: sqlite_utils.Database,
    ds: Dataset,
    user: User,
    only_verified: bool = False,
    *,
    subset: Subset | None = None,
    spreadsheet_safe: bool = False,
) -> VersionedExport:
    """The cleaned CSV (export.cleaned_columns; a subset: only its rows) as a versioned export: iterate
    it for the chunks; the version (kind cleaned, verified or subset) is recorded after the last one.
    Logged (``export``, then ``export_version``). Leads only."""
    require_active(db, user, "lead", "export")
    kind = "subset" if subset else "verified" if only_verified else "cleaned"
    keep = _subset_keep(db, ds, subset)
    run = latest_run(db, ds.id)
    waiting = store.scalar(db, "SELECT COUNT(*) FROM reviews WHERE dataset_id=? AND status='pending'", [ds.id])
    manifest = build_manifest(
        db, ds, run["id"] if run else None, kind, {}, user=user, subset=subset, only_verified=only_verified
    )
    trail.log(
        db,
        user.name,
        "export",
        ds.id,
        what="cleaned labels" if subset is None else "reviewed subset",
        only_verified=only_verified,
        awaiting_verification=waiting,
        spreadsheet_safe=spreadsheet_safe,
        **({"subset": subset.describe()} if subset else {}),
    )
    out = VersionedExport(db, ds, user, kind, manifest, ds.n_items)
    rows = (
        (idx, row[3], row)
        for idx, row in export.cleaned_rows_indexed(db, ds, only_verified)
        if keep is None or keep(idx, row)
    )
    return out.feed(export.csv_chunks(export.cleaned_columns(ds), out.tap(rows), spreadsheet_safe))


def export_ner(db: sqlite_utils.Database, ds: Dataset, user: User, fmt: str | None = None) -> VersionedExport:
    """The cleaned NER corpus (export.export_ner) as a versioned export of kind ner: each sentence's
    label in the version is its list of tags."""
    from review.ner import store as ner_store

    text = export.export_ner(db, ds, user, fmt)
    run = latest_run(db, ds.id)
    tags = ner_store.cleaned_tags(db, ds)
    manifest = build_manifest(db, ds, run["id"] if run else None, "ner", {}, user=user)
    manifest.rows["format"] = fmt or export.ner_native_format(ds)
    out = VersionedExport(db, ds, user, "ner", manifest, 0)
    out.labels = tags
    return out.feed(iter([text]))


# ----------------------------------------------------------------------------- reading versions


def versions(db: sqlite_utils.Database, ds: Dataset) -> list[VersionSummary]:
    """Every version of ``ds``, newest first."""
    return [
        VersionSummary(r["number"], r["kind"], r["created_by"], r["created_at"], r["run_id"], r["sha256"], r["n_rows"])
        for r in store.rows(
            db,
            "SELECT number, kind, created_by, created_at, run_id, sha256, n_rows FROM versions WHERE dataset_id=?"
            " ORDER BY number DESC",
            [ds.id],
        )
    ]


def _row(db, ds: Dataset, number: int, labels: bool = False):
    cols = "id, number, kind, created_by, created_at, run_id, sha256, n_rows, manifest" + (", labels" if labels else "")
    r = store.fetch_one(db, f"SELECT {cols} FROM versions WHERE dataset_id=? AND number=?", [ds.id, number])
    if r is None:
        have = [v.number for v in versions(db, ds)[:20]]
        raise NotFound(
            f"{ds.name!r} has no version {number}: "
            + (f"its versions are {', '.join(map(str, sorted(have)))}." if have else "export it first.")
        )
    return r


def get_version(db: sqlite_utils.Database, ds: Dataset, number: int) -> Version:
    r = _row(db, ds, number)
    return Version(
        r["id"],
        ds.id,
        r["number"],
        r["kind"],
        r["created_by"],
        r["created_at"],
        r["run_id"],
        r["sha256"],
        r["n_rows"],
        json.loads(r["manifest"]),
    )


def manifest(db: sqlite_utils.Database, ds: Dataset, number: int) -> dict:
    """The manifest of version ``number`` of ``ds`` (NotFound naming the versions there are)."""
    return json.loads(_row(db, ds, number)["manifest"])


def latest_version(db: sqlite_utils.Database, ds: Dataset, kind: str | None = None) -> Version | None:
    number = store.scalar(
        db,
        "SELECT MAX(number) FROM versions WHERE dataset_id=?" + (" AND kind=?" if kind else ""),
        [ds.id, kind] if kind else [ds.id],
    )
    return None if number is None else get_version(db, ds, number)


def labels_of(db: sqlite_utils.Database, ds: Dataset, number: int) -> list:
    """Each row's label in version ``number`` (None: the row was not in it)."""
    return _unpack(_row(db, ds, number, labels=True)["labels"])


# ----------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class ChangedRow:
    idx: int
    key: str | None
    text: str | None
    label_a: object
    label_b: object


@dataclass(frozen=True)
class VersionDiff:
    """Two versions of a dataset compared. ``changed``: rows in both whose label differs; ``only_a`` /
    ``only_b``: rows in one of them only; ``moved``: (from, to, rows) most first (NER: per token, from
    tag to tag); ``counts``: (class, rows in a, rows in b) (NER: tokens per tag); ``flags_a`` /
    ``flags_b``: the manifests' flag counts and precision; ``run_lines``: review.rundiff's comparison of
    the two audit runs when they differ (empty: the same run); ``rows``: the page of changed rows
    after ``after``; ``next_after``: the row number to pass for the next page (None: the last)."""

    dataset: str
    a: int
    b: int
    kind_a: str
    kind_b: str
    run_a: int | None
    run_b: int | None
    n_rows_a: int
    n_rows_b: int
    changed: int
    only_a: int
    only_b: int
    moved: list[tuple[str, str, int]]
    counts: list[tuple[str, int, int]]
    flags_a: dict | None
    flags_b: dict | None
    run_lines: list[str] = field(default_factory=list)
    rows: list[ChangedRow] = field(default_factory=list)
    next_after: int | None = None


def _label_text(v) -> str:
    return " ".join(v) if isinstance(v, list) else str(v)


def run_comparison(db: sqlite_utils.Database, ds: Dataset, run_a: int, run_b: int) -> list[str]:
    """review.rundiff's lines comparing two audit runs (flags, precision, per class)."""
    return list(rundiff.format_run_diff(rundiff.compare_runs(db, ds, run_a, run_b)))


def compare_versions(
    db: sqlite_utils.Database, ds: Dataset, a: int, b: int, after: int = -1, limit: int = 50
) -> VersionDiff:
    """Version ``a`` against version ``b`` of ``ds`` (see VersionDiff); one page of at most ``limit``
    changed rows after row ``after``."""
    va, vb = get_version(db, ds, a), get_version(db, ds, b)
    la, lb = labels_of(db, ds, a), labels_of(db, ds, b)
    limit = max(1, min(int(limit), PAGE_MAX))
    n = max(len(la), len(lb))
    la += [None] * (n - len(la))
    lb += [None] * (n - len(lb))
    ner = va.kind == "ner" or vb.kind == "ner"
    changed = only_a = only_b = 0
    moved: Counter = Counter()
    page: list[int] = []
    more = False
    for i, (x, y) in enumerate(zip(la, lb)):
        if x is None or y is None:
            only_a += y is None and x is not None
            only_b += x is None and y is not None
            continue
        if x == y:
            continue
        changed += 1
        if ner:
            moved.update((p, q) for p, q in zip(x, y) if p != q)
        else:
            moved[(x, y)] += 1
        if i > after:
            if len(page) < limit:
                page.append(i)
            else:
                more = True
    count_a: Counter = Counter()
    count_b: Counter = Counter()
    for lab in la:
        if lab is not None:
            count_a.update(lab if ner else [lab])
    for lab in lb:
        if lab is not None:
            count_b.update(lab if ner else [lab])
    classes = sorted(set(count_a) | set(count_b), key=lambda c: (-(count_a[c] + count_b[c]), str(c)))
    rows = []
    if page:
        got = {
            r["idx"]: r
            for r in store.rows(
                db,
                f"SELECT idx, key, substr(text, 1, {SNIPPET}) AS text FROM items WHERE dataset_id=?"
                f" AND idx IN ({','.join('?' * len(page))})",
                [ds.id, *page],
            )
        }
        for i in page:
            r = got.get(i)
            rows.append(ChangedRow(i, r["key"] if r else None, r["text"] if r else None, la[i], lb[i]))
    audit_a, audit_b = ((v.manifest.get("flags") or {}).get("run_id") for v in (va, vb))
    run_lines = (
        run_comparison(db, ds, audit_a, audit_b)
        if audit_a is not None and audit_b is not None and audit_a != audit_b
        else []
    )
    return VersionDiff(
        dataset=ds.name,
        a=a,
        b=b,
        kind_a=va.kind,
        kind_b=vb.kind,
        run_a=va.run_id,
        run_b=vb.run_id,
        n_rows_a=va.n_rows,
        n_rows_b=vb.n_rows,
        changed=changed,
        only_a=only_a,
        only_b=only_b,
        moved=[(str(p), str(q), k) for (p, q), k in sorted(moved.items(), key=lambda kv: (-kv[1], kv[0]))],
        counts=[(str(c), count_a[c], count_b[c]) for c in classes],
        flags_a=va.manifest.get("flags"),
        flags_b=vb.manifest.get("flags"),
        run_lines=run_lines,
        rows=rows,
        next_after=page[-1] if more else None,
    )


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _flags_text(f: dict | None) -> str:
    if not f:
        return "no audit run"
    p = f.get("precision")
    prec = "no flagged row decided" if p is None else f"precision {p:.0%} ({f['wrong']} of {f['decided']} decided)"
    return f"run {f['run_id']}: {_plural(f['flagged'], 'row')} flagged, {prec}"


def format_version_diff(diff: VersionDiff, moved_max: int = 20) -> list[str]:
    """The comparison as lines of text (the `review diff --versions` output)."""
    unit = "sentence" if "ner" in (diff.kind_a, diff.kind_b) else "label"
    lines = [
        f"{diff.dataset}: version {diff.a} ({diff.kind_a}, {_plural(diff.n_rows_a, 'row')}) -> "
        f"version {diff.b} ({diff.kind_b}, {_plural(diff.n_rows_b, 'row')})",
        f"{_plural(diff.changed, unit)} changed",
    ]
    if diff.only_a or diff.only_b:
        lines.append(f"rows only in version {diff.a}: {diff.only_a:,}; only in version {diff.b}: {diff.only_b:,}")
    if diff.moved:
        lines.append("classes moved (from -> to: rows):" if unit == "label" else "tags moved (from -> to: tokens):")
        lines += [f"  {p} -> {q}: {k:,}" for p, q, k in diff.moved[:moved_max]]
        if len(diff.moved) > moved_max:
            lines.append(f"  … and {len(diff.moved) - moved_max} more pairs")
    lines.append(f"counts per class (version {diff.a} | version {diff.b}):")
    lines += [f"  {c}: {x:,} | {y:,}" + (f" ({y - x:+,})" if y != x else "") for c, x, y in diff.counts]
    lines.append(f"flags, version {diff.a}: {_flags_text(diff.flags_a)}")
    lines.append(f"flags, version {diff.b}: {_flags_text(diff.flags_b)}")
    if diff.run_lines:
        lines.append(f"runs {diff.run_a} -> {diff.run_b}:")
        lines += [f"  {line}" for line in diff.run_lines]
    return lines


def changed_label_text(v) -> str:
    """A label of a changed row as text (a NER sentence's tags joined by spaces)."""
    return "" if v is None else _label_text(v)
