"""The Rows page (pages/10_Rows.py) through AppTest: the audited demo dataset, filtered by given and
predicted label, paged forward and back (keyset: the rows of each page are the ones review.browse reads
after the last row of the page before), the kept filter (st.session_state["rows_filter"]), a bad kept
filter named in an error, and "Open row N" handing the row to the Review page, which claims it."""

from __future__ import annotations

import pytest

from review import browse, store
from review.browse import RowFilter
from tests.builders import html_of, open_page, run

ROWS = "pages/10_Rows.py"


@pytest.fixture
def rows_db(db, db_path, demo_ds, annotator, monkeypatch):
    monkeypatch.setenv("REVIEW_DB", str(db_path))
    return db


def table_rows(at) -> list[int]:
    assert len(at.dataframe) == 1, "one table of rows"
    return [int(i) for i in at.dataframe[0].value["row"]]


def test_filter_by_given_and_predicted_then_page_forward_and_back(rows_db, demo_ds, lead):
    at = open_page(ROWS, lead, demo_ds.name)
    assert table_rows(at) == list(range(50))  # no filter: the first page is rows 0-49
    assert "**400 rows** match: all rows" in [m.value for m in at.markdown]

    at.multiselect(key="rows_given").select("billing")
    run(at)
    at.multiselect(key="rows_predicted").select("billing")
    run(at)
    f = RowFilter(given=("billing",), predicted=("billing",))
    expected = list(browse.matching(rows_db, demo_ds, f))
    assert 50 < len(expected) <= 100, "two pages to walk"
    assert RowFilter.from_json(at.session_state["rows_filter"]) == f
    assert f"**{len(expected):,} rows** match" in " ".join(m.value for m in at.markdown)
    first = table_rows(at)
    assert first == expected[:50]
    assert at.button(key="rows_prev").disabled

    at.button(key="rows_next").click()
    run(at)
    assert table_rows(at) == expected[50:]  # keyset: after the first page's last row, nothing skipped
    assert any(f"Page 2 · matches 51–{len(expected)}" in c.value for c in at.caption)
    assert at.button(key="rows_next").disabled  # the last page
    at.button(key="rows_prev").click()
    run(at)
    assert table_rows(at) == first
    assert at.button(key="rows_prev").disabled

    at.multiselect(key="rows_predicted").unselect("billing").select("shipping")  # a new filter: page 1 again
    run(at)
    pair = list(browse.matching(rows_db, demo_ds, RowFilter(given=("billing",), predicted=("shipping",))))
    assert 0 < len(pair) < 50
    assert table_rows(at) == pair
    assert at.button(key="rows_next").disabled
    assert "Bulk fix these rows" not in html_of(at)  # no page link while pages/11_Bulk_fix.py is absent


def test_a_kept_filter_with_an_unknown_label_is_named(rows_db, demo_ds, lead):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state["user"] = (lead.name, lead.role, __import__("time").time())
    at.session_state["dataset_name"] = demo_ds.name
    at.session_state["rows_filter"] = RowFilter(given=("refunds", "billing")).to_json()
    at.switch_page(ROWS)
    run(at)
    assert any("'refunds' is not a label of" in e.value for e in at.error)
    assert at.multiselect(key="rows_given").value == ["billing"]  # what the dataset has is kept


def test_open_row_claims_it_in_the_review_card(rows_db, demo_ds, annotator):
    at = open_page(ROWS, annotator, demo_ds.name)
    at.text_input(key="rows_text").input("ag")  # two characters: a scan, no index needed
    run(at)
    rows = table_rows(at)
    assert rows and not browse.is_indexed(rows_db, demo_ds)
    target = rows[-1]
    at.selectbox(key="rows_pick").set_value(target)
    run(at)
    at.button(key="rows_open").click()
    run(at)
    assert (
        store.scalar(rows_db, "SELECT claimed_by FROM states WHERE dataset_id=? AND idx=?", [demo_ds.id, target])
        == annotator.name
    )
    key = store.scalar(rows_db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, target])
    assert any(f"**{key}** · row {target} of the upload" in m.value for m in at.markdown), "the card shows the row"
    assert at.button(key="keep") is not None and not at.button(key="keep").disabled


def test_a_row_held_by_another_annotator_opens_read_only_naming_them(rows_db, demo_ds, annotator, admin):
    from review import auth, workflow
    from tests.helpers import PASSWORD

    ben = auth.create_user(rows_db, "ben", "annotator", PASSWORD, admin)
    theirs = workflow.claim_next(rows_db, demo_ds, ben)
    at = open_page(ROWS, annotator, demo_ds.name)
    at.session_state["open_row"] = (demo_ds.id, theirs.idx)  # what "Open row N" hands over
    at.switch_page("pages/3_Review.py")
    run(at)
    assert any(f"ben is reviewing row {theirs.key} now: it is shown read-only." in i.value for i in at.info)
    assert any("it can no longer be changed here" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "keep"], "no decision buttons on a row someone else holds"
    assert (
        store.scalar(rows_db, "SELECT claimed_by FROM states WHERE dataset_id=? AND idx=?", [demo_ds.id, theirs.idx])
        == "ben"
    )


def test_a_ner_dataset_pages_and_searches_without_label_filters(page_db):
    from review import auth, datasets

    ds = datasets.get(page_db, "dev")
    at = open_page(ROWS, auth.User("anna", "annotator"), "dev")
    assert table_rows(at) == list(browse.matching(page_db, ds, RowFilter()))[:50]
    assert not [m for m in at.multiselect if m.key == "rows_given"], "a sentence's label is a tag sequence"
    at.text_input(key="rows_text").input("Germany")  # the first text search builds the index
    run(at)
    assert browse.is_indexed(page_db, ds)
    got = table_rows(at)
    assert got and got == list(browse.matching(page_db, ds, RowFilter(text="Germany")))[:50]
