"""Exports do not alter data: the spreadsheet formula guard only where asked for (the Export page's
"Safe to open in a spreadsheet", on by default; `review export --spreadsheet-safe`), and a NER export
in the format requested, or a refusal naming what is possible."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from review import auth, cli, ner, store
from review.ner import store as ner_store
from review.text import ingest
from tests.helpers import APP

PW = "correct horse battery"
LEAD = ("-lena", "lead")  # a legal user name that starts like a formula: the audit trail holds it

HOSTILE = [
    ("-5", "- first bullet"),
    ("+7", "+ second point"),
    ("=1+1", "=SUM(A1:A2)"),
    ("@x", "@home soon"),
    ("-DOCSTART-", "-- a dash line"),
]

EXPORT = "pages/5_Export.py"


def _source_csv() -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "text", "label"])
    for i, (ident, text) in enumerate(HOSTILE):
        w.writerow([ident, text, "pos" if i % 2 else "neg"])
    for i in range(12):
        w.writerow([f"r{i}", f"plain words number {i}", "pos" if i % 2 else "neg"])
    return buf.getvalue()


@pytest.fixture
def text_db(tmp_path, monkeypatch):
    path = tmp_path / "review.db"
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PW, None)
    lead = auth.create_user(db, LEAD[0], "lead", PW, admin)
    src = tmp_path / "notes.csv"
    src.write_text(_source_csv(), encoding="utf-8")
    ingest.ingest_bytes(db, src.read_bytes(), "notes.csv", "notes", lead)
    yield {"db": db, "path": path, "src": src}
    db.conn.close()


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _main(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([*map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- CLI, text datasets


def test_cli_export_writes_cells_as_stored_without_the_flag(text_db, tmp_path, capsys):
    out, trail = tmp_path / "clean.csv", tmp_path / "trail.csv"
    code, stdout, err = _main(capsys, "export", "notes", "--out", out, "--audit-trail", trail, "--db", text_db["path"])
    assert code == 0, err
    assert "spreadsheet-safe" not in stdout
    source = _rows(text_db["src"])
    got = _rows(out)
    assert [(r["id"], r["text"]) for r in got] == [(r["id"], r["text"]) for r in source]  # every value as uploaded
    raw = out.read_text(encoding="utf-8")
    assert "\n-5,- first bullet,neg," in raw and "'" not in raw
    assert raw.splitlines()[3].startswith("=1+1,=SUM(A1:A2),")
    actors = {r["actor"] for r in _rows(trail)}
    assert LEAD[0] in actors and "'" + LEAD[0] not in actors  # the trail follows the choice


def test_cli_export_guards_cells_with_the_flag(text_db, tmp_path, capsys):
    out, trail = tmp_path / "clean.csv", tmp_path / "trail.csv"
    code, stdout, err = _main(
        capsys, "export", "notes", "--out", out, "--audit-trail", trail, "--spreadsheet-safe", "--db", text_db["path"]
    )
    assert code == 0, err
    assert "spreadsheet-safe" in stdout
    got = _rows(out)
    assert [(r["id"], r["text"]) for r in got[: len(HOSTILE)]] == [("'" + i, "'" + t) for i, t in HOSTILE]
    assert got[len(HOSTILE)]["id"] == "r0"  # plain cells untouched
    actors = {r["actor"] for r in _rows(trail)}
    assert "'" + LEAD[0] in actors and LEAD[0] not in actors
    payload = json.loads(
        text_db["db"]
        .execute(
            "SELECT payload FROM audit_log WHERE action='export' AND payload LIKE '%cleaned labels%' ORDER BY id DESC"
        )
        .fetchone()[0]
    )
    assert payload["spreadsheet_safe"] is True  # the trail records the choice


def test_cli_help_explains_the_flag():
    helps = cli.parser()._subparsers._group_actions[0].choices["export"].format_help()
    assert "--spreadsheet-safe" in helps and "'-5" in helps


def test_cli_text_dataset_refuses_a_corpus_format(text_db, tmp_path, capsys):
    code, _, err = _main(
        capsys, "export", "notes", "--out", tmp_path / "x.conll", "--format", "conll", "--db", text_db["path"]
    )
    assert code == 2 and "exports as csv only" in err
    assert not (tmp_path / "x.conll").exists()


# ----------------------------------------------------------------------------- the Export page (AppTest)


def _open_export(user=LEAD) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = (user[0], user[1], time.time())
    at.switch_page(EXPORT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _download(deferred, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(deferred[name]().decode("utf-8"))))


def test_page_download_is_guarded_by_default_and_as_stored_when_unticked(text_db, deferred):
    at = _open_export()
    box = at.checkbox(key="spreadsheet_safe")
    assert box.label == "Safe to open in a spreadsheet" and box.value is True
    assert any("'-5" in c.value and "Untick" in c.value for c in at.caption)  # explained on the page
    got = _download(deferred, "notes-cleaned.csv")
    assert [(r["id"], r["text"]) for r in got[: len(HOSTILE)]] == [("'" + i, "'" + t) for i, t in HOSTILE]
    assert "'" + LEAD[0] in {r["actor"] for r in _download(deferred, "notes-audit-trail.csv")}

    box.uncheck()
    at.run()
    assert not at.exception
    assert at.checkbox(key="spreadsheet_safe").value is False
    got = _download(deferred, "notes-cleaned.csv")
    source = _rows(text_db["src"])
    assert [(r["id"], r["text"]) for r in got] == [(r["id"], r["text"]) for r in source]
    assert LEAD[0] in {r["actor"] for r in _download(deferred, "notes-audit-trail.csv")}


# ----------------------------------------------------------------------------- NER: the format requested

SENTS = [
    (["Anna", "lives", "in", "Berlin", "."], ["B-PER", "O", "O", "B-LOC", "O"]),
    (["-", "Bob", "works", "at", "ACME"], ["O", "B-PER", "O", "O", "B-ORG"]),
    (["=x", "Paris", "is", "big"], ["O", "B-LOC", "O", "O"]),
]


def _jsonl(sents=SENTS, docs=None) -> bytes:
    lines = []
    for i, (toks, tags) in enumerate(sents):
        rec = {"id": f"s{i}", "tokens": toks, "tags": tags}
        if docs:
            rec["doc"] = docs[i]
        lines.append(json.dumps(rec))
    return ("\n".join(lines) + "\n").encode()


def _conll(sents=SENTS) -> bytes:
    return "".join("".join(f"{t} X {g}\n" for t, g in zip(toks, tags)) + "\n" for toks, tags in sents).encode()


@pytest.fixture
def ner_db(tmp_path, monkeypatch):
    path = tmp_path / "review.db"
    monkeypatch.setenv("REVIEW_DB", str(path))
    db = store.connect(path)
    admin = auth.create_user(db, "alice", "admin", PW, None)
    lead = auth.create_user(db, LEAD[0], "lead", PW, admin)

    def add(name: str, data: bytes, filename: str):
        src = tmp_path / filename
        src.write_bytes(data)
        ner_store.write_ner_dataset(db, ner_store.read_corpus(data, filename), data, name, lead)
        return src

    yield {"db": db, "path": path, "add": add}
    db.conn.close()


def test_jsonl_corpus_asked_for_conll_writes_real_conll(ner_db, tmp_path, capsys):
    ner_db["add"]("js", _jsonl(), "js.jsonl")
    out = tmp_path / "js.txt"
    code, stdout, err = _main(capsys, "export", "js", "--out", out, "--format", "conll", "--db", ner_db["path"])
    assert code == 0, err
    assert "(conll)" in stdout
    text = out.read_text(encoding="utf-8")
    assert "{" not in text  # not JSONL in disguise
    blocks = text.split("\n\n")
    assert blocks[0].splitlines() == ["Anna\tB-PER", "lives\tO", "in\tO", "Berlin\tB-LOC", ".\tO"]
    back = ner.parse_conll(text, "back")
    assert [(s.tokens, s.tags) for s in back.sentences] == [(list(t), list(g)) for t, g in SENTS]
    assert (tmp_path / "js2.conll").exists() is False
    code, _, err = _main(
        capsys, "export", "js", "--out", tmp_path / "js2.conll", "--db", ner_db["path"]
    )  # the extension
    assert code == 0 and (tmp_path / "js2.conll").read_text(encoding="utf-8") == text


def test_jsonl_corpus_with_documents_keeps_them_as_docstart_lines(ner_db, tmp_path, capsys):
    ner_db["add"]("docs", _jsonl(docs=[0, 0, 1]), "docs.jsonl")
    out = tmp_path / "docs.conll"
    assert _main(capsys, "export", "docs", "--out", out, "--db", ner_db["path"])[0] == 0
    back = ner.parse_conll(out.read_text(encoding="utf-8"), "back")
    assert [s.doc for s in back.sentences] == [0, 0, 1]


@pytest.mark.parametrize(
    "token, why", [("New York", "holds whitespace"), ("-DOCSTART-", "document break"), ("", "is empty")]
)
def test_jsonl_corpus_conll_refused_when_a_token_cannot_be_a_column(ner_db, tmp_path, capsys, token, why):
    sents = [SENTS[0], (["I", "like", token], ["O", "O", "B-LOC"])]
    ner_db["add"]("odd", _jsonl(sents), "odd.jsonl")
    out = tmp_path / "odd.conll"
    code, _, err = _main(capsys, "export", "odd", "--out", out, "--format", "conll", "--db", ner_db["path"])
    assert code == 2
    assert "cannot be written as CoNLL" in err and why in err and repr(token) in err and "'s1'" in err
    assert "JSONL" in err and "CSV" in err  # what is possible
    assert not out.exists()


def test_jsonl_corpus_as_jsonl_is_the_upload(ner_db, tmp_path, capsys):
    src = ner_db["add"]("js", _jsonl(), "js.jsonl")
    for args in (
        ["--out", tmp_path / "a.jsonl"],
        ["--out", tmp_path / "a.out"],
        ["--out", tmp_path / "b.txt", "--format", "jsonl"],
    ):
        code, _, err = _main(capsys, "export", "js", *args, "--db", ner_db["path"])
        assert code == 0, err
        assert args[1].read_bytes() == src.read_bytes()


def test_conll_corpus_asked_for_jsonl_writes_jsonl(ner_db, tmp_path, capsys):
    src = ner_db["add"]("co", _conll(), "co.conll")
    out = tmp_path / "co.jsonl"
    code, _, err = _main(capsys, "export", "co", "--out", out, "--db", ner_db["path"])
    assert code == 0, err
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["tokens"], r["tags"]) for r in recs] == [(list(t), list(g)) for t, g in SENTS]
    for args in (["--out", tmp_path / "c.txt"], ["--out", tmp_path / "d.x", "--format", "conll"]):
        assert _main(capsys, "export", "co", *args, "--db", ner_db["path"])[0] == 0
        assert args[1].read_bytes() == src.read_bytes()  # the upload, byte for byte


def test_ner_csv_export_follows_the_flag(ner_db, tmp_path, capsys):
    ner_db["add"]("co", _conll(), "co.conll")
    plain, safe = tmp_path / "p.csv", tmp_path / "s.csv"
    assert _main(capsys, "export", "co", "--out", plain, "--format", "csv", "--db", ner_db["path"])[0] == 0
    assert (
        _main(capsys, "export", "co", "--out", safe, "--format", "csv", "--spreadsheet-safe", "--db", ner_db["path"])[0]
        == 0
    )
    assert _rows(plain)[1]["text"].startswith("-") and _rows(safe)[1]["text"].startswith("'-")


def test_page_offers_a_jsonl_corpus_as_its_jsonl(ner_db, deferred):
    data = _jsonl()
    ner_db["add"]("js", data, "js.jsonl")
    at = _open_export()
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download the cleaned corpus (JSONL)", "Download the audit trail (CSV)"]
    assert deferred["js-cleaned.jsonl"]() == data
    assert at.checkbox(key="spreadsheet_safe").value is True
    assert "'" + LEAD[0] in {r["actor"] for r in _download(deferred, "js-audit-trail.csv")}
