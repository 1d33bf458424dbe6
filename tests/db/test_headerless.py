"""Headerless uploads (AG News: ``label,title,description`` with no header line).

ingest.sniff_header tells a first line of data from a header; guess_mapping proposes label =
the short low-cardinality column and text = the long columns (joined with datasets.TEXT_SEP);
parse_class_names names label values (pairs, one name per line, AG News' classes.txt), refusing
a value without a name, a name given twice, a name for a value that does not occur. Then the
Upload page (AppTest): the box "The first line is data" ticked on arrival, the class names
pasted or uploaded, refusals that write nothing; and `review ingest --classes FILE`.
"""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from review import datasets, store
from review.errors import IngestError, ReviewError
from review.text import ingest
from tests.helpers import DATA, ROOT, counts

APP = ROOT / "app.py"
UPLOAD = "pages/1_Upload.py"
AG_DIR = DATA / "ag_news"
AG_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
PASTE = "1=World, 2=Sports, 3=Business, 4=Sci/Tech"


@pytest.fixture(scope="module")
def ag300() -> bytes:
    """The first 300 lines of the real AG News test split, as a user would cut it."""
    path = AG_DIR / "test.csv"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"AG News test data not found at {path}; CI must provide shared/data/ag_news/test.csv.")
        pytest.skip(f"AG News test data not found at {path}")
    with open(path, "rb") as f:
        return b"".join(next(f) for _ in range(300))


@pytest.fixture(scope="module")
def classes_txt() -> bytes:
    path = AG_DIR / "classes.txt"
    if not path.exists():
        pytest.skip(f"AG News classes.txt not found at {path}")
    return path.read_bytes()


def ag_like(n: int = 10, first_title: str = "Fears for pension after the talks") -> bytes:
    """A headerless AG-News style CSV: label 1-4, title, description; n rows per class."""
    lines = [f'"3","{first_title}","Unions representing workers say they are disappointed after talks, again."']
    for i in range(n):
        for label, word in (("1", "summit"), ("2", "match"), ("3", "shares"), ("4", "chip")):
            lines.append(
                f'"{label}","A {word} story number {i}","The {word} report {i} says, in a long sentence, what happened."'
            )
    return ("\n".join(lines) + "\n").encode()


def csv_of(rows: list[dict], **kw) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False, **kw).encode()


def reviews_table(n: int = 8) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({"id": f"r{2 * i}", "text": f"good happy lovely text number {i}", "label": "pos"})
        rows.append({"id": f"r{2 * i + 1}", "text": f"bad sad awful text number {i}", "label": "neg"})
    return rows


# ----------------------------------------------------------------------------- sniff_header


def test_sniff_ag_news_first_line_is_data(ag300):
    guess = ingest.sniff_header(ag300, "test.csv")
    assert guess.headerless
    assert "column 1: '3' is one of its values (1, 2, 3, 4)" in guess.reason
    assert "column 2: a text of 7 words" in guess.reason and "column 3: a text of" in guess.reason


def test_sniff_a_short_first_title_is_outvoted():
    # the title column votes "header" (2 words, like a column name); label and description vote "data"
    assert ingest.sniff_header(ag_like(first_title="Olympics Update"), "train.csv").headerless


@pytest.mark.parametrize(
    "rows_or_bytes, name",
    [
        (reviews_table(), "reviews.csv"),  # id, text, label: column names
        ([{"ref": r["id"], "words": r["text"], "verdict": r["label"], "extra": "x"} for r in reviews_table()], "r.csv"),
        ([{"a": i, "b": i * 0.5} for i in range(10)], "numbers.csv"),  # a name over numbers
        ([{"kind": ["pos", "neg"][i % 2], "phrase": f"short {i}"} for i in range(10)], "kp.csv"),  # nothing says data
        (
            b"text\tlabel\nfine and dandy all day\tpos\nawful and sad all day\tneg\nfine again all day long\tpos\n",
            "t.tsv",
        ),
        (b"3,first line\n4,second line\n", "two_lines.csv"),  # too short to compare
        (b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', "f.jsonl"),
        (b"PK\x03\x04" + b"\x00" * 20, "zip.csv"),  # unreadable: read_table says so
    ],
)
def test_sniff_keeps_a_header(rows_or_bytes, name):
    data = rows_or_bytes if isinstance(rows_or_bytes, bytes) else csv_of(rows_or_bytes)
    guess = ingest.sniff_header(data, name)
    assert not guess.headerless, guess


def test_sniff_headerless_sentiment_and_a_class_named_like_a_column():
    rows = (
        "\n".join(
            f"{lab},{txt} number {i} was really something"
            for i in range(6)
            for lab, txt in (("pos", "the film"), ("neg", "the food"))
        )
        + "\n"
    )
    assert ingest.sniff_header(rows.encode(), "s.csv").headerless
    # 'comment' is a column name, but also a value further down: it does not make a header
    rows = (
        "\n".join(
            f"{lab},this is message {i} of the support queue today" for i in range(6) for lab in ("comment", "question")
        )
        + "\n"
    )
    assert ingest.sniff_header(rows.encode(), "q.csv").headerless
    # once 'comment' never comes again it is a column name
    assert not ingest.sniff_header(("comment,label\n" + rows).encode(), "q.csv").headerless


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(max_size=10), min_size=1, max_size=4), max_size=12), st.sampled_from([",", "\t", ";"]))
def test_sniff_never_raises(table, sep):
    data = "\n".join(sep.join(r) for r in table).encode("utf-8", "surrogatepass")
    guess = ingest.sniff_header(data, "f.csv")
    assert isinstance(guess.headerless, bool)
    try:  # and whatever it says, the guess of the columns raises nothing but an IngestError
        df = ingest.read_table(data, "f.csv", no_header=guess.headerless)
        ingest.guess_partial(df, ingest.PAGE_HINTS)
    except ReviewError:
        pass


# ----------------------------------------------------------------------------- guess_mapping without a header


def test_guess_headerless_ag_news(ag300):
    df = ingest.read_table(ag300, "test.csv", no_header=True)
    assert df.shape == (300, 3) and df.iloc[0, 0] == "3"
    m = ingest.guess_mapping(df, ingest.PAGE_HINTS)
    assert (m.label, m.text, m.id) == ("1", ["2", "3"], None)
    assert ingest.label_values(df, m) == ["1", "2", "3", "4"]


def test_guess_headerless_label_not_first_an_id_and_a_number():
    lines = [
        f"{100 + i},{i * 0.37:.2f},{('pos', 'neg')[i % 2]},item {i} is {('lovely', 'awful')[i % 2]} all round"
        for i in range(12)
    ]
    df = ingest.read_table(("\n".join(lines) + "\n").encode(), "x.csv", no_header=True)
    m = ingest.guess_mapping(df)
    assert (m.id, m.label, m.text) == ("1", "3", ["4"])  # the decimals in column 2 go to meta
    prep = ingest.prepare(df, m, "x.csv")
    assert json.loads(prep.items["meta"].iloc[1]) == {"2": "0.37"} and prep.items["key"].iloc[0] == "100"


def test_guess_headerless_refusals_name_the_page_box():
    df = ingest.read_table(
        b"".join(f"only text number {i} here,another {i} text\n".encode() for i in range(8)), "t.csv", no_header=True
    )
    guess, note = ingest.guess_partial(df, ingest.PAGE_HINTS)
    assert "No column looks like a label column" in note and "the 'Label column' box" in note and "--" not in note
    assert guess.text == ["1", "2"]
    with pytest.raises(IngestError, match="--label-col"):
        ingest.guess_mapping(df)  # the command names its flag


def test_headered_guess_note_names_the_page_box():
    df = ingest.read_table(csv_of([{"ref": "a", "words": "b"}] * 3), "r.csv")
    _, note = ingest.guess_partial(df, ingest.PAGE_HINTS)
    assert note.endswith("say which column holds the text (the 'Text column(s)' box).")


# ----------------------------------------------------------------------------- class names


def test_parse_class_names_forms(classes_txt):
    values = ["1", "2", "3", "4"]
    want = dict(zip(values, AG_NAMES))
    assert ingest.parse_class_names(classes_txt.decode(), values, "classes.txt") == want
    assert ingest.parse_class_names(PASTE, values) == want
    assert ingest.parse_class_names("4 = Sci/Tech\n2=Sports\n\n1=World\n3=Business\n", values) == want
    assert ingest.parse_class_names("\ufeffWorld\r\nSports\r\nBusiness\r\nSci/Tech\r\n", values) == want
    assert ingest.parse_class_names("World, Sports, Business, Sci/Tech", values) == want
    assert ingest.parse_class_names("1=World, at large\n2=a\n3=b\n4=c", values)["1"] == "World, at large"
    assert ingest.parse_class_names("  \n", values) == {}
    # line k names the k-th value in natural order: 10 comes after 9
    ten = [str(i) for i in range(1, 11)]
    assert ingest.parse_class_names("\n".join(f"c{i}" for i in ten), ten)["10"] == "c10"


@pytest.mark.parametrize(
    "text, message",
    [
        ("1=World, 2=Sports, 3=Business", "the label value '4' has no name"),
        ("World\nSports\nBusiness", "the label value '4' has no name: 3 name(s) for 4 label values (1, 2, 3, 4)"),
        ("World\nSports\nSports\nSci/Tech", "the name 'Sports' is given to both '2' and '3'"),
        ("1=World, 2=World, 3=b, 4=c", "the name 'World' is given to both '1' and '2'"),
        (
            PASTE + ", 5=Other",
            "'5=Other' names the label value '5', which does not occur in the label column (its values: 1, 2, 3, 4)",
        ),
        (
            "World\nSports\nBusiness\nSci/Tech\nOther",
            "line 5 ('Other') names no class: the label column has 4 value(s)",
        ),
        ("1=World, 1=Earth, 2=a, 3=b, 4=c", "the label value '1' is named twice ('World' and 'Earth')"),
        ("1=, 2=a, 3=b, 4=c", "the label value '1' has no name after '='"),
        ("1=World\nSports", "'Sports' is not of the form value=name"),
    ],
)
def test_parse_class_names_refusals(text, message):
    with pytest.raises(IngestError) as exc:
        ingest.parse_class_names(text, ["1", "2", "3", "4"], "classes.txt")
    assert str(exc.value).startswith("classes.txt: ") and message in str(exc.value), str(exc.value)


def test_class_names_become_the_labels_and_the_values_are_kept(db, lead):
    df = ingest.read_table(ag_like(), "train.csv", no_header=True)
    m = ingest.guess_mapping(df)
    m.class_names = ingest.parse_class_names(PASTE, ingest.label_values(df, m))
    ds_id = ingest.write_dataset(db, ingest.prepare(df, m, "train.csv", ag_like()), "ag", lead)
    ds = datasets.get(db, ds_id)
    assert ds.labels == AG_NAMES  # in the order of the values 1, 2, 3, 4, not sorted by name
    assert ds.mapping.class_names == dict(zip("1234", AG_NAMES)) and ds.mapping.text_sep == "\n"
    rows = list(db.query("SELECT text, given_label FROM items WHERE dataset_id=? ORDER BY idx", [ds_id]))
    assert rows[0] == {
        "text": "Fears for pension after the talks\nUnions representing workers say they are "
        "disappointed after talks, again.",
        "given_label": "Business",
    }
    assert [r["given_label"] for r in rows[1:5]] == AG_NAMES
    log = json.loads(store.scalar(db, "SELECT payload FROM audit_log WHERE action='upload'"))
    assert log["labels"] == AG_NAMES and log["mapping"]["class_names"]["3"] == "Business"


def test_prepare_checks_class_names_itself(db, lead):
    df = ingest.read_table(ag_like(), "train.csv", no_header=True)
    before = counts(db)
    for names, message in [
        ({"1": "W", "2": "S", "3": "B"}, "the label value '4' in column '1' has no class name"),
        (
            {"1": "W", "2": "S", "3": "B", "4": "T", "9": "X"},
            "'X' is given for the label value '9', which does not occur",
        ),
        ({"1": "W", "2": "S", "3": "B", "4": "W"}, "the name 'W' is given to both '1' and '4'"),
    ]:
        m = ingest.Mapping(text=["2", "3"], label="1", class_names=names)
        with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ingest.prepare(df, m, "train.csv")
    assert counts(db) == before


def test_declared_label_set_may_use_values_or_names():
    df = ingest.read_table(ag_like(), "train.csv", no_header=True)
    m = ingest.Mapping(text=["2", "3"], label="1", class_names=dict(zip("1234", AG_NAMES)))
    assert ingest.prepare(df, m, "t.csv", label_set=["1", "2", "3", "4"]).labels == AG_NAMES
    assert ingest.prepare(df, m, "t.csv", label_set=AG_NAMES[::-1]).labels == AG_NAMES[::-1]


def test_class_names_in_the_wide_form():
    rows = [
        {"id": f"i{k}", "text": f"text {k}", "a1": ("1", "2")[k % 2], "a2": ("1", "2")[k % 2] if k % 3 else None}
        for k in range(12)
    ]
    df = ingest.read_table(csv_of(rows), "wide.csv")
    m = ingest.Mapping(text=["text"], id="id", annotators=["a1", "a2"])
    m.class_names = ingest.parse_class_names("cat\ndog", ingest.label_values(df, m))
    prep = ingest.prepare(df, m, "wide.csv")
    assert prep.labels == ["cat", "dog"] and {l for _, _, l in prep.annotations} == {"cat", "dog"}


def test_old_mappings_read_their_space_join():
    old = json.dumps({"text": ["2", "3"], "label": "1"})
    assert ingest.Mapping.from_json(old).text_sep == " " and ingest.Mapping.from_json(old).class_names == {}
    assert ingest.Mapping.from_json(ingest.Mapping(text=["a", "b"]).to_json()).text_sep == "\n"


# ----------------------------------------------------------------------------- review ingest


def run_cli(argv, capsys) -> tuple[int, str, str]:
    from review import cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_classes_flag_and_hints(tmp_path, capsys):
    data, db_file = ag_like(), tmp_path / "cli.db"
    (tmp_path / "train.csv").write_bytes(data)
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    (tmp_path / "three.txt").write_text("World\nSports\nBusiness\n")
    news = tmp_path / "train.csv"
    # without --no-header the header guess fails, and the message says which flag to add
    code, out, err = run_cli(["ingest", news, "--name", "x", "--db", db_file], capsys)
    assert code == 2 and "The first line looks like data, not a header (column 1: '3' is one of its values" in err
    assert err.rstrip().endswith("add --no-header.")
    # a classes file that leaves a value unnamed: refused, naming it, nothing written
    code, out, err = run_cli(
        ["ingest", news, "--name", "x", "--no-header", "--classes", tmp_path / "three.txt", "--db", db_file], capsys
    )
    assert code == 2 and "three.txt: the label value '4' has no name" in err
    code, out, err = run_cli(
        ["ingest", news, "--name", "news", "--no-header", "--classes", tmp_path / "classes.txt", "--db", db_file],
        capsys,
    )
    assert code == 0, err
    assert "text: 2, 3; label: 1" in out and "classes: World, Sports, Business, Sci/Tech" in out
    db = store.connect(db_file)
    try:
        assert store.scalar(db, "SELECT COUNT(*) FROM datasets") == 1
        assert datasets.get(db, "news").mapping.class_names["4"] == "Sci/Tech"
        assert store.scalar(db, "SELECT given_label FROM items WHERE idx=0") == "Business"
    finally:
        db.conn.close()
    # explicit columns without --no-header: ingested as asked, with a note on stderr
    code, out, err = run_cli(
        ["ingest", news, "--name", "n2", "--text-col", "2", "--label-col", "1", "--db", db_file], capsys
    )
    assert code == 0 and "note: the first line of train.csv looks like data" in err and "ingested 40 rows" in out


# ----------------------------------------------------------------------------- the Upload page


@pytest.fixture
def page_db(db, db_path, lead, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    return db


def open_upload() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["user"] = ("lena", "lead", time.time())
    at.switch_page(UPLOAD)
    return rerun(at)


def rerun(thing) -> AppTest:
    at = thing.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    """The elements' text as the user reads it (safe_text.md's backslashes dropped)."""
    return [e.value.replace("\\", "") for e in elements]


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="upload_file").upload(name, data, "text/csv")
    return rerun(at)


def test_upload_ag_news_first_line_is_data_and_named_classes(page_db, ag300):
    at = upload(open_upload(), "test.csv", ag300)
    assert at.checkbox(key="no_header").value is True
    info = texts(at.info)[0]
    assert info.startswith("The first line looks like data, not a header (column 1: '3' is one of its values")
    assert "Untick **The first line is data** if it is a header." in info
    assert texts(at.subheader)[0] == "Preview: 300 rows, 3 columns"
    assert at.dataframe[0].value.iloc[0].tolist() == [
        "3",
        "Fears for T N pension after talks",
        ingest.read_table(ag300, "t.csv", True).iloc[0, 2],
    ]
    assert at.multiselect(key="map_text").value == ["2", "3"] and at.selectbox(key="map_label").value == "1"
    assert not any(i.startswith("Choose the columns yourself") for i in texts(at.info))
    assert any("in this order: 1, 2, 3, 4" in c for c in texts(at.caption))
    at.text_area(key="class_names").input(PASTE)
    rerun(at)
    assert "The labels will be: 1 → World · 2 → Sports · 3 → Business · 4 → Sci/Tech" in texts(at.caption)
    at.text_input(key="dataset_name_input").input("agnews")
    rerun(at.button(key="ingest").click())
    assert not at.error, texts(at.error)
    assert texts(at.success) == [
        "Dataset 'agnews' ingested: 300 rows, classes World, Sports, Business, Sci/Tech "
        "(named from the values 1=World, 2=Sports, 3=Business, 4=Sci/Tech). "
        "Integrity checks done; run the audit to rank suspects."
    ]
    ds = datasets.get(page_db, "agnews")
    assert ds.labels == AG_NAMES and ds.mapping.class_names == dict(zip("1234", AG_NAMES))
    first = page_db.execute("SELECT text, given_label FROM items WHERE dataset_id=? AND idx=0", [ds.id]).fetchone()
    assert (
        first[0].startswith("Fears for T N pension after talks\nUnions representing workers") and first[1] == "Business"
    )
    given = [r[0] for r in page_db.execute("SELECT given_label FROM items WHERE dataset_id=? ORDER BY idx", [ds.id])]
    assert len(given) == 300 and set(given) <= set(AG_NAMES)


def test_upload_untick_and_tick_again(page_db, ag300):
    at = upload(open_upload(), "test.csv", ag300)
    rerun(at.checkbox(key="no_header").uncheck())
    assert texts(at.subheader)[0] == "Preview: 299 rows, 3 columns"
    notes = texts(at.info)
    assert any("but the box is unticked: it is read as the header" in n for n in notes)
    choose = next(n for n in notes if n.startswith("Choose the columns yourself"))
    assert "the 'Text column(s)' box" in choose and "--" not in choose  # the page's boxes, not the command's flags
    rerun(at.checkbox(key="no_header").check())
    assert texts(at.subheader)[0] == "Preview: 300 rows, 3 columns"
    assert at.multiselect(key="map_text").value == ["2", "3"] and at.selectbox(key="map_label").value == "1"


def test_upload_classes_txt(page_db, ag300, classes_txt):
    at = upload(open_upload(), "test.csv", ag300)
    at.file_uploader(key="upload_classes").upload("classes.txt", classes_txt, "text/plain")
    rerun(at)
    rerun(at.button(key="ingest").click())
    assert not at.error, texts(at.error)
    assert datasets.get(page_db, "test").labels == AG_NAMES


@pytest.mark.parametrize(
    "names, message",
    [
        ("1=World, 2=Sports, 3=Business", "The class names: the label value '4' has no name."),
        ("World\nSports\nSports\nSci/Tech", "The class names: the name 'Sports' is given to both '2' and '3'"),
        (PASTE + ", 5=Other", "The class names: '5=Other' names the label value '5', which does not occur"),
    ],
)
def test_upload_refuses_bad_class_names_and_writes_nothing(page_db, names, message):
    at = upload(open_upload(), "train.csv", ag_like())
    before = counts(page_db)
    at.text_area(key="class_names").input(names)
    rerun(at)
    assert len(at.warning) == 1 and message in texts(at.warning)[0]  # said as soon as typed
    rerun(at.button(key="ingest").click())
    assert len(at.error) == 1 and at.error[0].value.startswith(message), at.error[0].value
    assert not at.success and counts(page_db) == before


def test_upload_refuses_names_given_twice_ways(page_db, classes_txt):
    at = upload(open_upload(), "train.csv", ag_like())
    at.text_area(key="class_names").input(PASTE)
    at.file_uploader(key="upload_classes").upload("classes.txt", classes_txt, "text/plain")
    rerun(at)
    rerun(at.button(key="ingest").click())
    assert texts(at.error) == ["Give the class names one way: paste them or upload a classes.txt, not both."]
    assert store.scalar(page_db, "SELECT COUNT(*) FROM datasets") == 0


def test_upload_with_a_header_is_not_ticked(page_db):
    at = upload(open_upload(), "reviews.csv", csv_of(reviews_table()))
    assert at.checkbox(key="no_header").value is False
    assert not any("first line" in i for i in texts(at.info))
    assert texts(at.subheader)[0] == "Preview: 16 rows, 3 columns"
    rerun(at.button(key="ingest").click())
    assert datasets.get(page_db, "reviews").labels == ["neg", "pos"]
