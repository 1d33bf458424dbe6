"""Hostile and broken files: a corpus the tests generate, plus property-based fuzzing of every
parser. Each bad file ends in a ReviewError that names the file and what is wrong, and leaves
the database byte for byte as it was (compared by SQL dump); files that are odd but valid
ingest with their values intact."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from review import ner
from review.errors import ReviewError
from review.ner import store as ner_store
from review.text import ingest


def rows(n: int = 20) -> str:
    return "".join(
        f"item number {i} about {'sports' if i % 2 else 'money'},{'s' if i % 2 else 'm'}\n" for i in range(n)
    )


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.csv", b"0" * 50_000_000)  # 50 MB that compresses to ~50 kB
    return buf.getvalue()


# (file name, bytes, words the message must hold)
BAD_TABLES = [
    ("empty.csv", b"", ["empty.csv", "empty"]),
    ("header_only.csv", b"text,label\n", ["header_only.csv", "no data rows"]),
    (
        "mixed_encodings.csv",
        ("text,label\n" + rows()).encode() + "café,m\n".encode("latin-1"),
        ["line 22", "not UTF-8"],
    ),
    ("nul.csv", ("text,label\n" + rows()).encode() + b"a\x00b,m\n", ["line 22", "NUL"]),
    (
        "unterminated.csv",
        ("text,label\n" + rows() + '"never closed,m\nmore,s\n').encode(),
        ["unterminated.csv", "quotes"],
    ),
    (
        "cols10k.csv",
        (",".join(f"c{i}" for i in range(10_000)) + "\n" + ",".join("1" * 10_000) + "\n").encode(),
        ["10,000 columns"],
    ),
    (
        "dup_ids.csv",
        ("id,text,label\n" + "".join(f"{i % 10},t {i},{'a' if i % 2 else 'b'}\n" for i in range(20))).encode(),
        ["'0'", "data rows 1, 11", "unique"],
    ),
    ("fake.parquet", b"this is not parquet at all", ["fake.parquet", "not a Parquet file"]),
    ("bomb.csv", zip_bomb(), ["bomb.csv", "ZIP archive"]),
    ("gzipped.csv", gzip.compress(("text,label\n" + rows()).encode()), ["gzipped.csv", "gzip"]),
    (
        "broken.jsonl",
        b'{"text": "a", "label": "x"}\n{"text": "b", "label": \n{"text": "c", "label": "y"}\n',
        ["line 2", "JSON"],
    ),
    (
        "one_class.csv",
        ("text,label\n" + "".join(f"t {i},same\n" for i in range(20))).encode(),
        ["only one class", "'same'"],
    ),
    ("tiny_class.csv", ("text,label\n" + rows() + "lonely one,rare\n").encode(), ["'rare'", "only 1"]),
    ("no_labels.csv", ("text,label\n" + "".join(f"t {i},\n" for i in range(20))).encode(), ["no row has a label"]),
    ("random.csv", bytes(range(256)) * 40, ["random.csv"]),
]

BAD_TOKENS = [
    ("ragged.conll", b"EU B-ORG\nrejects O\nGerman I-MISC x\n", ["line 3", "3 columns"]),
    ("bad_tag.conll", b"EU X-ORG\nrejects O\n", ["line 1", "'X-ORG'"]),
    (
        "broken_ner.jsonl",
        b'{"tokens":["a"],"tags":["O"]}\n{"tokens":\n{"tokens":["b"],"tags":["B-PER"]}\n',
        ["line 2", "JSON"],
    ),
    (
        "tags_len.jsonl",
        b'{"tokens":["a","b"],"tags":["O","B-PER"]}\n{"tokens":["a","b"],"tags":["O"]}\n',
        ["line 2", "1 tags for 2 tokens"],
    ),
    ("empty.conll", b"", ["empty.conll", "empty"]),
    ("only_docstart.conll", b"-DOCSTART- -X- O O\n\n", ["no token lines"]),
    ("latin1.conll", "Müller B-PER\n".encode("latin-1"), ["line 1", "not UTF-8"]),
    ("all_o.conll", b"a O\nb O\n\nc O\n", ["every tag is O"]),
]


def dump(db) -> str:
    return "\n".join(db.conn.iterdump())


@pytest.mark.parametrize("name,data,words", BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_table_refused_naming_the_problem_and_nothing_written(db, lead, name, data, words):
    before = dump(db)
    with pytest.raises(ReviewError) as e:
        df = ingest.read_table(data, name)
        prep = ingest.prepare(df, ingest.guess_mapping(df), name, data)
        ingest.write_dataset(db, prep, "x", lead)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert dump(db) == before


@pytest.mark.parametrize("name,data,words", BAD_TOKENS, ids=[c[0] for c in BAD_TOKENS])
def test_bad_token_file_refused_naming_the_line_and_nothing_written(db, lead, name, data, words):
    before = dump(db)
    with pytest.raises(ReviewError) as e:
        ner_store.write_ner_dataset(db, ner_store.read_corpus(data, name), data, "x", lead)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert dump(db) == before


def test_odd_but_valid_files_ingest_with_values_intact(db, lead):
    # a semicolon-delimited .csv is sniffed; labels that are numbers in one row and text in the next stay strings
    for name, data in [
        ("semicolon.csv", ("text;label\n" + rows().replace(",", ";")).encode()),
        ("crlf_bom.csv", b"\xef\xbb\xbf" + ("text,label\r\n" + rows().replace("\n", "\r\n")).encode()),
    ]:
        df = ingest.read_table(data, name)
        prep = ingest.prepare(df, ingest.guess_mapping(df), name, data)
        assert prep.labels == ["m", "s"] and prep.items["text"].iloc[0] == "item number 0 about money"
    mixed = ("text,label\n" + "".join(f"text {i} words,{[1, 'sports', '2.0'][i % 3]}\n" for i in range(30))).encode()
    df = ingest.read_table(mixed, "mixed.csv")
    prep = ingest.prepare(df, ingest.guess_mapping(df), "mixed.csv", mixed)
    assert prep.labels == ["1", "2.0", "sports"] and prep.items["given_label"].tolist()[:3] == ["1", "sports", "2.0"]
    # a 10 MB cell ingests whole
    big = "x" * 10_000_000
    data = ("text,label\n" + rows() + f"{big},m\n").encode()
    df = ingest.read_table(data, "big.csv")
    ds_id = ingest.write_dataset(db, ingest.prepare(df, ingest.guess_mapping(df), "big.csv", data), "big", lead)
    assert (
        db.execute("SELECT LENGTH(text) FROM items WHERE dataset_id=? AND idx=20", [ds_id]).fetchone()[0] == 10_000_000
    )


# ----------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(["f.csv", "f.tsv", "f.jsonl", "f.parquet", "f.txt"]))
def test_fuzz_table_reader_bytes(data, name):
    """Any bytes: a table or a ReviewError, never another exception."""
    try:
        df = ingest.read_table(data, name)
        ingest.prepare(df, ingest.guess_mapping(df), name, data)
    except ReviewError as e:
        assert str(e)


@FUZZ
@given(
    st.lists(st.lists(cells, min_size=1, max_size=4), max_size=15),
    st.sampled_from([",", "\t", ";", "|"]),
    st.booleans(),
)
def test_fuzz_table_reader_structured(table, sep, header):
    """Delimited text with arbitrary cells (quotes, newlines, separators inside): a table or a ReviewError."""
    text = "\n".join(sep.join(r) for r in ([["text", "label"]] if header else []) + table)
    data = text.encode("utf-8")
    try:
        df = ingest.read_table(data, "f.csv")
        ingest.prepare(df, ingest.guess_mapping(df), "f.csv", data)
    except ReviewError as e:
        assert str(e)


tag = st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-ORG", "B-", "X-Y", "O O", ""])
token = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=6)


@FUZZ
@given(
    st.lists(
        st.one_of(st.tuples(token, tag).map(lambda t: f"{t[0]} {t[1]}"), st.just(""), st.just("-DOCSTART- O"), cells),
        max_size=30,
    )
)
def test_fuzz_conll_parser(lines):
    """Any CoNLL-ish text: a corpus that writes back byte for byte, or a ReviewError naming the file."""
    text = "\n".join(lines)
    try:
        corpus = ner.parse_conll(text, "f.conll")
    except ReviewError as e:
        assert "f.conll" in str(e)
        return
    assert ner.write_conll(corpus, [s.tags for s in corpus.sentences]) == text


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.builds(
                lambda toks, tags: json.dumps({"tokens": toks, "tags": tags}),
                st.lists(token, max_size=4),
                st.lists(tag, max_size=4),
            ),
            st.text(max_size=20),
            st.just("{}"),
            st.just('{"tokens": 1, "tags": 2}'),
        ),
        max_size=8,
    )
)
def test_fuzz_jsonl_parser(lines):
    text = "\n".join(lines)
    try:
        corpus = ner.parse_jsonl(text, "f.jsonl")
    except ReviewError as e:
        assert "f.jsonl" in str(e)
        return
    for s in corpus.sentences:
        assert len(s.tokens) == len(s.tags) > 0
    again = ner.parse_jsonl(ner.write_jsonl(corpus, [s.tags for s in corpus.sentences]), "g.jsonl")
    assert [(s.tokens, s.tags) for s in again.sentences] == [(s.tokens, s.tags) for s in corpus.sentences]


def test_cli_refusal_names_the_file(tmp_path):
    import os
    import subprocess
    import sys

    f = tmp_path / "onecol.csv"
    f.write_text("text\nhello\nworld\n")
    r = subprocess.run(
        [sys.executable, "-m", "review.cli", "ingest", str(f), "--name", "x", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert r.returncode == 2 and "onecol.csv: No label column found among 'text'" in r.stderr
