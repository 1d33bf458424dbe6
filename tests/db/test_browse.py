"""review.browse (search and filter the rows, a page at a time) and workflow.claim_row (any row in the
review card), on the audited demo dataset and on decisions made with workflow.decide / verify. Every
filter's rows are checked against the same rows computed here from the items, scores and states."""

from __future__ import annotations

import time

import pytest

from review import auth, browse, datasets, store, workflow
from review.browse import RowFilter
from review.errors import NotFound, ReviewError
from review.stats import BANDS
from review.text import ingest
from tests.builders import build_crowd_db
from tests.helpers import PASSWORD, other_label


@pytest.fixture
def ben(db, admin):
    return auth.create_user(db, "ben", "annotator", PASSWORD, admin)


@pytest.fixture
def lead2(db, admin):
    return auth.create_user(db, "leo", "lead", PASSWORD, admin)


def items(db, ds) -> list[dict]:
    return store.rows(db, "SELECT idx, text, given_label, meta FROM items WHERE dataset_id=? ORDER BY idx", [ds.id])


def scores(db, ds) -> dict[int, dict]:
    run = datasets.latest_run(db, ds.id)
    return {
        r["idx"]: r
        for r in store.rows(
            db,
            "SELECT idx, predicted_label, quality, is_issue, COALESCE(fused_action, action) AS action"
            " FROM scores WHERE run_id=?",
            [run["id"]],
        )
    }


def rows_of(db, ds, f: RowFilter) -> list[int]:
    return list(browse.matching(db, ds, f))


def some_flagged(db, ds, n: int) -> list[int]:
    run = datasets.latest_run(db, ds.id)
    got = db.execute("SELECT idx FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank LIMIT ?", [run["id"], n])
    return [r[0] for r in got.fetchall()]


def version(db, ds, idx: int) -> int:
    return store.scalar(db, "SELECT version FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])


def decide_row(db, ds, who, idx: int, decision: str, label: str | None = None) -> int:
    s = workflow.claim_row(db, ds, who, idx)
    return workflow.decide(db, ds, idx, who, decision, s.version, new_label=label)


# ----------------------------------------------------------------------------- filters on the demo


def test_no_filter_is_every_row_and_counts_are_capped(db, demo_ds):
    assert rows_of(db, demo_ds, RowFilter()) == list(range(400))
    assert browse.count(db, demo_ds, RowFilter()) == 400
    assert browse.count(db, demo_ds, RowFilter(), cap=100) == 101  # more than the cap: cap + 1
    assert browse.count(db, demo_ds, RowFilter(), cap=None) == 400


def test_given_predicted_action_band_flagged_meta_against_the_tables(db, demo_ds):
    its, sc = items(db, demo_ds), scores(db, demo_ds)
    for label in demo_ds.labels:
        f = RowFilter(given=(label,))
        assert rows_of(db, demo_ds, f) == [r["idx"] for r in its if r["given_label"] == label]
        assert rows_of(db, demo_ds, RowFilter(predicted=(label,))) == sorted(
            i for i, s in sc.items() if s["predicted_label"] == label
        )
    two = tuple(demo_ds.labels[:2])
    assert rows_of(db, demo_ds, RowFilter(given=two)) == [r["idx"] for r in its if r["given_label"] in two]
    a, b = "billing", "shipping"
    pair = [r["idx"] for r in its if r["given_label"] == a and sc[r["idx"]]["predicted_label"] == b]
    assert pair and rows_of(db, demo_ds, RowFilter(given=(a,), predicted=(b,))) == pair
    actions = {s["action"] for s in sc.values()}
    assert {"keep", "relabel"} <= actions
    for action in actions:
        assert rows_of(db, demo_ds, RowFilter(action=(action,))) == sorted(
            i for i, s in sc.items() if s["action"] == action
        )
    flagged = sorted(i for i, s in sc.items() if s["is_issue"])
    assert 0 < len(flagged) < 400
    assert rows_of(db, demo_ds, RowFilter(flagged=True)) == flagged
    assert browse.count(db, demo_ds, RowFilter(flagged=True), cap=None) == len(flagged)
    assert browse.count(db, demo_ds, RowFilter(flagged=True), cap=5) == 6
    assert rows_of(db, demo_ds, RowFilter(flagged=False)) == sorted(set(range(400)) - set(flagged))
    seen = 0
    for k, (lo, hi) in enumerate(BANDS):
        want = sorted(i for i in flagged if lo <= sc[i]["quality"] < (hi if k < len(BANDS) - 1 else 1.0000001))
        assert rows_of(db, demo_ds, RowFilter(band=k)) == want
        assert browse.count(db, demo_ds, RowFilter(band=k, flagged=True), cap=None) == len(want)  # read from scores
        seen += len(want)
    assert seen == len(flagged)  # the bands cover every flagged row once
    assert browse.meta_keys(db, demo_ds) == ["channel"]
    values = browse.meta_values(db, demo_ds, "channel")
    assert set(values) == {"email", "chat", "phone", "web form"} and values[0] == "email"  # most frequent first
    import json

    for v in values:
        want = [r["idx"] for r in its if json.loads(r["meta"])["channel"] == v]
        assert rows_of(db, demo_ds, RowFilter(meta=(("channel", v),))) == want
    assert rows_of(db, demo_ds, RowFilter(meta=(("channel", "fax"),))) == []
    combo = RowFilter(given=("technical",), flagged=True, meta=(("channel", "email"),))
    assert rows_of(db, demo_ds, combo) == [
        r["idx"]
        for r in its
        if r["given_label"] == "technical" and sc[r["idx"]]["is_issue"] and json.loads(r["meta"])["channel"] == "email"
    ]


def test_state_current_label_and_reviewer_follow_decisions(db, demo_ds, annotator, ben, lead, lead2):
    a, b, c, d, e = some_flagged(db, demo_ds, 5)
    given = {r["idx"]: r["given_label"] for r in items(db, demo_ds)}
    new_a = other_label(demo_ds, given[a])
    ra = decide_row(db, demo_ds, annotator, a, "relabel", new_a)
    decide_row(db, demo_ds, annotator, b, "keep")
    decide_row(db, demo_ds, ben, c, "unsure")
    rd = decide_row(db, demo_ds, ben, d, "keep")
    new_e = other_label(demo_ds, given[e])
    re_ = decide_row(db, demo_ds, ben, e, "relabel", new_e)
    workflow.verify(db, ra, lead, "approve", version(db, demo_ds, a))
    workflow.verify(db, rd, lead, "reject", version(db, demo_ds, d), note="look again")
    workflow.verify(db, re_, lead2, "override", version(db, demo_ds, e), label=given[e])  # back to the given label

    def state(*names):
        return rows_of(db, demo_ds, RowFilter(state=names))

    assert state("approved") == [a]
    assert state("kept") == [b]
    assert state("unsure") == [c]
    assert state("overridden") == [e]
    assert state("relabelled") == []
    assert state("kept", "unsure") == sorted([b, c])
    for names in (("approved",), ("kept", "unsure"), ("open",), ("open", "kept")):  # counts agree with the rows
        assert browse.count(db, demo_ds, RowFilter(state=names), cap=None) == len(state(*names))
    assert state("open") == sorted(set(range(400)) - {a, b, c, e})  # d was rejected: open again
    assert d in state("open", "approved") and a in state("open", "approved")

    current = rows_of(db, demo_ds, RowFilter(current=(new_a,)))
    assert a in current and a not in rows_of(db, demo_ds, RowFilter(given=(new_a,)))
    assert a not in rows_of(db, demo_ds, RowFilter(current=(given[a],)))
    assert e in rows_of(db, demo_ds, RowFilter(current=(given[e],)))  # overridden to the given label
    assert rows_of(db, demo_ds, RowFilter(current=(new_a,))) == sorted(
        [i for i, g in given.items() if g == new_a and i != a] + [a]
    )
    pg = browse.page(db, demo_ds, RowFilter(state=("approved",)))
    assert [(r.idx, r.state, r.current_label, r.given_label) for r in pg.rows] == [(a, "approved", new_a, given[a])]

    assert rows_of(db, demo_ds, RowFilter(reviewer="anna")) == sorted([a, b])
    assert rows_of(db, demo_ds, RowFilter(reviewer="ben")) == sorted([c, d, e])  # a rejected decision still counts
    assert rows_of(db, demo_ds, RowFilter(reviewer="lena")) == []
    assert browse.reviewers(db, demo_ds) == ["anna", "ben"]
    assert rows_of(db, demo_ds, RowFilter(reviewer="ben", state=("overridden",))) == [e]
    browse.ensure_index(db, demo_ds)  # the text index drives, the state and the reviewer filter its rows
    words = store.scalar(db, "SELECT text FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, a])[:12]
    assert rows_of(db, demo_ds, RowFilter(text=words, state=("approved",))) == [a]
    assert rows_of(db, demo_ds, RowFilter(text=words, reviewer="anna")) == [a]
    assert rows_of(db, demo_ds, RowFilter(text=words, reviewer="ben")) == []
    assert browse.count(db, demo_ds, RowFilter(reviewer="ben"), cap=None) == 3
    assert rows_of(db, demo_ds, RowFilter(reviewer="ben", flagged=True)) == sorted([c, d, e])
    assert [r.idx for r in browse.page(db, demo_ds, RowFilter(reviewer="ben"), after=min(c, d, e), limit=1).rows] == [
        sorted([c, d, e])[1]
    ]


def test_annotator_filter_on_several_annotators_per_row(tmp_path):
    path = tmp_path / "crowd.db"
    build_crowd_db(path, audit_it=False)
    db = store.connect(path)
    try:
        ds = datasets.get(db, "crowd")
        assert browse.annotators(db, ds) == ["ann1", "ann2", "ann3"]
        for name in ("ann1", "ann2", "ann3"):
            want = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT idx FROM annotations WHERE dataset_id=? AND annotator=? ORDER BY idx",
                    [ds.id, name],
                )
            ]
            assert rows_of(db, ds, RowFilter(annotator=name)) == want
        contested = store.scalar(db, "SELECT idx FROM items WHERE dataset_id=? AND key='contested'", [ds.id])
        assert contested in rows_of(db, ds, RowFilter(annotator="ann2"))
        assert contested not in rows_of(db, ds, RowFilter(annotator="ann3"))  # ann3 did not label it
        assert rows_of(db, ds, RowFilter(annotator="nobody")) == []
    finally:
        db.conn.close()


# ----------------------------------------------------------------------------- paging


@pytest.mark.parametrize(
    "f", [RowFilter(), RowFilter(flagged=False), RowFilter(given=("billing",)), RowFilter(text="order")]
)
def test_keyset_paging_reads_every_row_exactly_once(db, demo_ds, f):
    browse.ensure_index(db, demo_ds)
    seen, after, pages = [], -1, 0
    while True:
        pg = browse.page(db, demo_ds, f, after=after, limit=7)
        assert len(pg.rows) <= 7
        seen += [r.idx for r in pg.rows]
        pages += 1
        if pg.next_after is None:
            break
        assert pg.next_after == pg.rows[-1].idx and len(pg.rows) == 7
        after = pg.next_after
    assert seen == sorted(set(seen)), "in row order, none twice"
    assert seen == rows_of(db, demo_ds, f) and len(seen) == browse.count(db, demo_ds, f, cap=None)
    assert pages == max(1, -(-len(seen) // 7))
    assert len(browse.page(db, demo_ds, f, limit=10_000).rows) == min(len(seen), browse.PAGE_MAX)


def test_a_page_carries_the_row_and_the_runs_view(db, demo_ds):
    sc = scores(db, demo_ds)
    r = browse.page(db, demo_ds, RowFilter(flagged=True), limit=1).rows[0]
    it = store.fetch_one(
        db, "SELECT key, text, given_label FROM items WHERE dataset_id=? AND idx=?", [demo_ds.id, r.idx]
    )
    assert (r.key, r.text, r.given_label, r.current_label, r.state) == (
        it["key"],
        it["text"][: browse.SNIPPET],
        it["given_label"],
        it["given_label"],
        "open",
    )
    assert (r.predicted_label, r.action, r.is_issue) == (sc[r.idx]["predicted_label"], sc[r.idx]["action"], True)
    assert 0 <= r.confidence <= 1 and r.rank >= 1


# ----------------------------------------------------------------------------- the text index


def test_text_search_substring_case_and_a_short_text_by_scan(db, demo_ds):
    its = items(db, demo_ds)

    def expect(text):
        return [r["idx"] for r in its if text.lower() in (r["text"] or "").lower()]

    with pytest.raises(ReviewError, match="not indexed for search yet"):
        browse.page(db, demo_ds, RowFilter(text="refund"))
    assert browse.needs_index(RowFilter(text="abc")) and not browse.needs_index(RowFilter(text=" ab "))
    calls = []
    assert browse.ensure_index(db, demo_ds, lambda frac, msg: calls.append((frac, msg))) is True
    assert calls and calls[-1][0] == 1.0 and "400" in calls[-1][1]
    assert browse.ensure_index(db, demo_ds) is False and browse.is_indexed(db, demo_ds)  # once
    for text in ("refund", "REFUND", "Refund", "ship", "ipping", "app"):  # substrings of words, any case
        want = expect(text)
        assert want, text
        assert rows_of(db, demo_ds, RowFilter(text=text)) == want, text
        assert browse.count(db, demo_ds, RowFilter(text=text)) == len(want)
    assert rows_of(db, demo_ds, RowFilter(text="REFUND")) == rows_of(db, demo_ds, RowFilter(text="refund"))
    phrase = " ".join((its[3]["text"] or "").split()[1:3])  # two words as they stand in a text
    assert 3 in rows_of(db, demo_ds, RowFilter(text=phrase)) and rows_of(db, demo_ds, RowFilter(text=phrase)) == expect(
        phrase
    )
    assert rows_of(db, demo_ds, RowFilter(text="zqxj")) == []
    for short in ("ap", "AP", "x"):  # under three characters: a scan, same answer
        assert not browse.needs_index(RowFilter(text=short))
        assert rows_of(db, demo_ds, RowFilter(text=short)) == expect(short), short
    given = rows_of(db, demo_ds, RowFilter(text="refund", given=("billing",)))
    assert given == [r["idx"] for r in its if "refund" in r["text"].lower() and r["given_label"] == "billing"]


def test_text_search_with_quotes_and_operators_in_the_text(db, lead):
    texts = [
        'She said "hello" twice',
        "it's O'Brien's parcel",
        'a "quoted" AND NOT an operator',
        "hello without quotes",
        "NEAR(x y) * ^ - + : ( )",
        'only ""double"" quotes',
    ] + [f"filler row {k}" for k in range(8)]  # five rows of each class at least (an upload's rule)
    csv = "text,label\n" + "".join('"' + t.replace('"', '""') + f'",{"ab"[i % 2]}\n' for i, t in enumerate(texts))
    ds = datasets.get(db, ingest.ingest_bytes(db, csv.encode(), "q.csv", "quotes", lead))
    browse.ensure_index(db, ds)
    for needle, want in [
        ('"hello"', [0]),
        ("hello", [0, 3]),
        ("O'Brien's", [1]),
        ("'s", [1]),  # two characters, a scan
        ('"quoted" AND NOT', [2]),
        ("NOT an", [2]),
        ("NEAR(x y)", [4]),
        ("* ^ -", [4]),
        ('""double""', [5]),
        ('"', [0, 2, 5]),
    ]:
        assert rows_of(db, ds, RowFilter(text=needle)) == want, needle


def test_an_index_build_stopped_half_way_is_redone_whole(db, demo_ds, monkeypatch):
    monkeypatch.setattr(browse, "INDEX_CHUNK", 100)
    stop = RuntimeError("stopped")

    def progress(frac, msg):
        if frac >= 0.5 and frac < 1:
            raise stop

    with pytest.raises(RuntimeError):
        browse.ensure_index(db, demo_ds, progress)
    assert not browse.is_indexed(db, demo_ds)
    browse.ensure_index(db, demo_ds)
    its = items(db, demo_ds)
    assert rows_of(db, demo_ds, RowFilter(text="refund")) == [r["idx"] for r in its if "refund" in r["text"].lower()]


def test_a_second_session_does_not_build_the_index_twice(db, db_path, demo_ds, monkeypatch):
    """While one session builds the index, another one's first search is refused with a clear message
    (two builds would write each row twice); a build that stopped writing for BUILD_STALE seconds is taken
    over and done whole."""
    monkeypatch.setattr(browse, "INDEX_CHUNK", 100)
    other = store.connect(db_path)
    seen = []

    def progress(frac, msg):
        if frac < 1 and not seen:
            seen.append(frac)
            with pytest.raises(ReviewError, match="is being indexed for search in another session"):
                browse.ensure_index(other, demo_ds)

    assert browse.ensure_index(db, demo_ds, progress) is True and seen
    assert browse.ensure_index(other, demo_ds) is False
    assert store.scalar(db, "SELECT COUNT(*) FROM meta_info WHERE key LIKE 'search_index_build:%'") == 0
    want = [r["idx"] for r in items(db, demo_ds) if "refund" in r["text"].lower()]
    assert rows_of(db, demo_ds, RowFilter(text="refund")) == want

    # a build whose session died (its marker left, old): the next search takes it over
    ds2 = datasets.get(db, demo_ds.id)
    with store.transaction(db):
        db.execute("DELETE FROM search_index WHERE dataset_id=?", [ds2.id])
        db.execute(
            "INSERT INTO meta_info(key, value) VALUES (?, ?)",
            [f"{browse.BUILD_KEY}{ds2.id}", '{"token": "dead", "at": %f}' % (time.time() - browse.BUILD_STALE - 1)],
        )
    assert browse.ensure_index(other, ds2) is True
    assert rows_of(other, ds2, RowFilter(text="refund")) == want
    other.conn.close()


# ----------------------------------------------------------------------------- refusals


def test_a_filter_naming_an_unknown_value_is_refused_with_its_name(db, demo_ds):
    with pytest.raises(ReviewError, match=r"'refunds' is not a label of 'demo-support-tickets': choose among account"):
        browse.page(db, demo_ds, RowFilter(given=("refunds",)))
    with pytest.raises(ReviewError, match="'Billing' is not a label"):
        browse.count(db, demo_ds, RowFilter(predicted=("Billing",)))
    with pytest.raises(ReviewError, match="'gone' is not a label"):
        list(browse.matching(db, demo_ds, RowFilter(current=("billing", "gone"))))
    with pytest.raises(ReviewError, match="Unknown state 'closed'"):
        browse.page(db, demo_ds, RowFilter(state=("closed",)))
    with pytest.raises(ReviewError, match="Unknown action 'delete'"):
        browse.page(db, demo_ds, RowFilter(action=("delete",)))
    with pytest.raises(ReviewError, match="Unknown score band 9"):
        browse.page(db, demo_ds, RowFilter(band=9))


def test_the_filter_round_trips_as_json_and_says_what_it_is(db, demo_ds):
    f = RowFilter(
        text='say "hi"', given=("billing",), predicted=("shipping",), band=1, flagged=True, meta=(("channel", "email"),)
    )
    assert RowFilter.from_json(f.to_json()) == f and RowFilter.from_json({"given": ["billing"], "x": 1}).given == (
        "billing",
    )
    assert f.describe() == (
        "text contains 'say \"hi\"', given billing, predicted shipping, label quality 0.05–0.10, flagged, "
        "channel = 'email'"
    )
    assert RowFilter().describe() == "all rows" and RowFilter().empty()


# ----------------------------------------------------------------------------- claim_row


def held_by(db, ds, idx):
    row = store.fetch_one(db, "SELECT claimed_by, claimed_until FROM states WHERE dataset_id=? AND idx=?", [ds.id, idx])
    return row["claimed_by"] if row and (row["claimed_until"] or 0) > time.time() else None


def test_claim_row_claims_an_open_row_and_releases_the_users_other_claim(db, demo_ds, annotator):
    queued = workflow.claim_next(db, demo_ds, annotator)
    unflagged = rows_of(db, demo_ds, RowFilter(flagged=False))[0]
    s = workflow.claim_row(db, demo_ds, annotator, unflagged)
    assert (s.idx, s.state, s.claimed_by) == (unflagged, "open", "anna")
    assert held_by(db, demo_ds, unflagged) == "anna" and held_by(db, demo_ds, queued.idx) is None
    assert workflow.claim_next(db, demo_ds, annotator).idx == unflagged  # the queue shows the row she holds
    workflow.decide(db, demo_ds, unflagged, annotator, "keep", s.version)
    assert rows_of(db, demo_ds, RowFilter(state=("kept",))) == [unflagged]
    with pytest.raises(NotFound, match="has no row 4000"):
        workflow.claim_row(db, demo_ds, annotator, 4000)


def test_claim_row_held_by_another_annotator_comes_back_read_only(db, demo_ds, annotator, ben):
    theirs = workflow.claim_next(db, demo_ds, ben)
    mine = workflow.claim_next(db, demo_ds, annotator)
    s = workflow.claim_row(db, demo_ds, annotator, theirs.idx)
    assert (s.idx, s.state, s.claimed_by) == (theirs.idx, "open", "ben")
    assert held_by(db, demo_ds, theirs.idx) == "ben"
    assert held_by(db, demo_ds, mine.idx) == "anna"  # nothing taken, nothing given back
    from review.errors import StaleViewError

    with pytest.raises(StaleViewError, match="being reviewed by ben"):
        workflow.decide(db, demo_ds, theirs.idx, annotator, "keep", s.version)
    db.execute(
        "UPDATE states SET claimed_until=? WHERE dataset_id=? AND idx=?", [time.time() - 1, demo_ds.id, theirs.idx]
    )
    assert workflow.claim_row(db, demo_ds, annotator, theirs.idx).claimed_by == "anna"  # an expired claim is free


def test_claim_row_on_an_approved_row_is_read_only(db, demo_ds, annotator, ben, lead):
    idx = some_flagged(db, demo_ds, 1)[0]
    rid = decide_row(db, demo_ds, ben, idx, "keep")
    pending = workflow.claim_row(db, demo_ds, annotator, idx)
    assert (pending.state, pending.claimed_by) == ("kept", None)
    workflow.verify(db, rid, lead, "approve", pending.version)
    s = workflow.claim_row(db, demo_ds, annotator, idx)
    assert (s.state, s.claimed_by, s.latest_review["status"]) == ("approved", None, "approved")
    assert held_by(db, demo_ds, idx) is None
    from review.errors import StaleViewError

    with pytest.raises(StaleViewError, match="already approved"):
        workflow.decide(db, demo_ds, idx, annotator, "keep", s.version)


def test_claim_row_needs_an_active_account(db, demo_ds, annotator, admin):
    auth.set_active(db, "anna", False, admin)
    with pytest.raises(ReviewError):
        workflow.claim_row(db, demo_ds, annotator, 0)


def test_count_within_counts_a_range_at_a_time_and_says_how_far_it_got(db, demo_ds, monkeypatch):
    f = RowFilter(meta=(("channel", "phone"),))  # read from the items in row order
    want = browse.count(db, demo_ds, f, cap=None)
    whole = browse.count_within(db, demo_ds, f, cap=10_000)
    assert (whole.n, whole.through, whole.text()) == (want, None, f"{want:,}")
    assert browse.count_within(db, demo_ds, f, cap=10).text() == "10+"
    monkeypatch.setattr(browse, "COUNT_WINDOW", 50)
    cut = browse.count_within(db, demo_ds, f, cap=10_000, seconds=0)  # no time: the first range only
    assert cut.through == 49 and cut.n == len([i for i in rows_of(db, demo_ds, f) if i <= 49])
    assert cut.text() == f"at least {cut.n:,}"
    assert browse.count_within(db, demo_ds, f, cap=10_000, seconds=60).n == want  # 50, 100, 200, 400 rows
    for g in (RowFilter(state=("approved",)), RowFilter(reviewer="anna"), RowFilter(flagged=True)):  # whole
        assert browse.count_within(db, demo_ds, g, seconds=0).through is None
