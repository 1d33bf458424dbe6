"""NER through the whole loop with real SQLite files, real cleanlab and the real CoNLL-2003 dev
file (its first documents): ingest, audit, review queue, token corrections, verify, swaps,
export (CoNLL byte for byte but the changed tags, and JSONL), the `review` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from review import audit, datasets, ner, stats, store, workflow
from review.errors import IngestError, PermissionDenied, ReviewError
from review.ner import store as ner_store
from tests.builders import ANNA, LEAD, conll_slice, held, html_of, open_page, run
from tests.helpers import counts

# the fixtures ndb and page_db (a copy of the audited CoNLL template) are in tests/db/conftest.py


def verify(db, review_id: int, user, action: str, label=None, note: str = "") -> None:
    version = store.scalar(
        db,
        "SELECT st.version FROM reviews r JOIN states st ON st.dataset_id=r.dataset_id AND st.idx=r.idx WHERE r.id=?",
        [review_id],
    )
    workflow.verify(db, review_id, user, action, version, label=label, note=note)


def test_ingest_stores_sentences_and_the_file(ndb):
    ds = datasets.get(ndb, "dev")
    corpus = ner.parse_conll(conll_slice().decode("utf-8"), "dev.conll")
    assert (
        ds.task == "ner" and ds.mapping.scheme == "IOB1" and ds.mapping.format == "conll" and ds.mapping.n_columns == 4
    )
    assert ds.n_items == len(corpus.sentences)
    first = list(
        ndb.query("SELECT key, tokens, given_tags, given_label, meta FROM items WHERE dataset_id=? AND idx=0", [ds.id])
    )[0]
    assert json.loads(first["tokens"]) == corpus.sentences[0].tokens
    assert json.loads(first["given_label"]) == corpus.sentences[0].tags == json.loads(first["given_tags"])
    assert json.loads(first["meta"]) == {"doc": 0, "line": 3}
    assert bytes(store.scalar(ndb, "SELECT content FROM sources WHERE dataset_id=?", [ds.id])) == conll_slice()
    assert set(ner_store.tag_options(ds)) >= {"O", "I-PER", "B-PER", "I-ORG", "I-LOC", "I-MISC"}


def test_refusals_name_the_line_and_write_nothing(db, lead):
    before = counts(db)
    bad = conll_slice(2).replace(b"\n- : O O\n", b"\n- O O\n", 1)
    with pytest.raises(IngestError, match=r"dev\.conll, line 4: 3 columns where the file's first token line has 4"):
        ner_store.read_corpus(bad, "dev.conll")
    bad = conll_slice(2).replace(b"LEICESTERSHIRE NNP I-NP I-ORG", b"LEICESTERSHIRE NNP I-NP X-ORG", 1)
    with pytest.raises(IngestError, match=r"line 5"):
        ner_store.read_corpus(bad, "dev.conll")
    with pytest.raises(IngestError, match=r"line 2.*2 tags for 3 tokens"):
        ner_store.read_corpus(
            b'{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b", "c"], "tags": ["O", "B-X"]}\n', "x.jsonl"
        )
    with pytest.raises(IngestError, match="not UTF-8"):
        ner_store.read_corpus(b"caf\xe9 O\n", "latin.conll")
    only_o = b"a O\nb O\n\nc O\n"
    with pytest.raises(IngestError, match="every tag is O"):
        ner_store.write_ner_dataset(db, ner_store.read_corpus(only_o, "o.conll"), only_o, "o", lead)
    assert counts(db) == before


def test_audit_flags_sentences_and_tokens(ndb):
    ds = datasets.get(ndb, "dev")
    run = datasets.latest_run(ndb, ds.id)
    m = run["metrics"]
    assert run["kind"] == "audit" and m["sentences"] == ds.n_items and m["flagged"] > 0
    assert m["flagged tokens"] == store.scalar(ndb, "SELECT COUNT(*) FROM token_issues WHERE run_id=?", [run["id"]])
    assert m["model agreement with given labels"] > 0.85
    flagged = store.scalar(ndb, "SELECT COUNT(*) FROM scores WHERE run_id=? AND is_issue=1", [run["id"]])
    assert flagged == m["flagged"]
    # every flagged sentence has flagged tokens, the token view points at them, the suggestion is valid
    for idx, probs, sugg, reason in ndb.execute(
        "SELECT idx, probs, suggested_label, reason FROM scores WHERE run_id=? AND is_issue=1 ORDER BY rank LIMIT 50",
        [run["id"]],
    ):
        view = json.loads(probs)
        toks = [
            r[0]
            for r in ndb.execute(
                "SELECT token FROM token_issues WHERE run_id=? AND idx=? ORDER BY token", [run["id"], idx]
            )
        ]
        assert view["flagged"] == toks and toks
        assert not ner.scheme_violations(json.loads(sugg), "IOB1")
        assert f"token {toks[0]} " in reason
    swaps = ner_store.swaps(ndb, ds)
    assert swaps and swaps[0]["tokens"] >= swaps[-1]["tokens"] and swaps[0]["given_tag"] != swaps[0]["predicted_tag"]


def test_token_correction_verify_and_export_change_one_tag(ndb):
    ds = datasets.get(ndb, "dev")
    s = workflow.claim_next(ndb, ds, ANNA)
    assert s.tokens and json.loads(s.given_label) and s.probs["flagged"]
    tags = json.loads(s.current_label)
    j = s.probs["flagged"][0]
    # an invalid sequence is refused naming the token; a wrong length too
    bad = list(tags)
    bad[j] = "B-PER" if (j == 0 or tags[j - 1][2:] != "PER") else "B-LOC"
    with pytest.raises(ReviewError, match=rf"token {j}"):
        workflow.decide(ndb, ds, s.idx, ANNA, "relabel", s.version, new_label=bad)
    with pytest.raises(ReviewError, match="tokens but"):
        workflow.decide(ndb, ds, s.idx, ANNA, "relabel", s.version, new_label=tags[:-1])
    new = list(tags)
    new[j] = "O" if tags[j] != "O" else "I-MISC"
    new = ner.from_iob2(ner.to_iob2(new, "IOB1"), "IOB1")
    rid = workflow.decide(ndb, ds, s.idx, ANNA, "relabel", s.version, new_label=new)
    with pytest.raises(PermissionDenied):
        verify(ndb, rid, ANNA, "approve")
    verify(ndb, rid, LEAD, "approve")

    out = ner_store.export_conll(ndb, ds).encode("utf-8")
    before, after = conll_slice().split(b"\n"), out.split(b"\n")
    assert len(before) == len(after)
    changed = [k for k, (a, b) in enumerate(zip(before, after)) if a != b]
    want = [k for k in range(len(new)) if new[k] != tags[k]]
    assert len(changed) == len(want) >= 1
    first_line = json.loads(store.scalar(ndb, "SELECT meta FROM items WHERE dataset_id=? AND idx=?", [ds.id, s.idx]))[
        "line"
    ]
    assert changed == [first_line - 1 + k for k in want]
    for k, pos in zip(changed, want):
        assert after[k].rsplit(b" ", 1) == [before[k].rsplit(b" ", 1)[0], new[pos].encode()]
    lines = ner_store.export_jsonl(ndb, ds).splitlines()
    assert len(lines) == ds.n_items and json.loads(lines[s.idx]) == {"tokens": s.tokens, "tags": new}


def test_override_with_tags_and_keep(ndb):
    ds = datasets.get(ndb, "dev")
    s = workflow.claim_next(ndb, ds, ANNA)
    rid = workflow.decide(ndb, ds, s.idx, ANNA, "keep", s.version)
    own = json.loads(s.suggested_label)
    if own == json.loads(s.current_label):
        own = ["O"] * len(own)
    verify(ndb, rid, LEAD, "override", label=own)
    assert ner_store.cleaned_tags(ndb, ds)[s.idx] == own
    s2 = workflow.claim_next(ndb, ds, ANNA)
    rid = workflow.decide(ndb, ds, s2.idx, ANNA, "keep", s2.version)
    verify(ndb, rid, LEAD, "approve")
    assert ner_store.cleaned_tags(ndb, ds)[s2.idx] == json.loads(s2.given_label)


def test_swap_filter_gives_exactly_those_sentences(ndb):
    ds = datasets.get(ndb, "dev")
    top = ner_store.swaps(ndb, ds)[0]
    seen = []
    while True:
        s = workflow.claim_next(ndb, ds, ANNA, exclude=seen, swap=(top["given_tag"], top["predicted_tag"]))
        if s is None:
            break
        tags, pred = json.loads(s.given_label), s.probs["predicted"]
        assert any(tags[j] == top["given_tag"] and pred[j] == top["predicted_tag"] for j in s.probs["flagged"])
        seen.append(s.idx)
    assert len(seen) == top["sentences"]


def test_accept_span_gives_a_valid_sequence():
    tags = ["O", "I-ORG", "I-ORG", "O"]
    pred = ["O", "I-PER", "I-PER", "O"]
    assert ner_store.accept_span(tags, pred, 1, 2, "IOB1") == ["O", "I-PER", "I-ORG", "O"]
    assert ner_store.accept_span(["O", "O", "O"], ["I-PER", "I-PER", "O"], 1, 2, "IOB2") == ["O", "B-PER", "O"]


# ----------------------------------------------------------------------------- the command line


def _review(*args, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "review.cli", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=600,
    )


def test_cli_ingest_audit_suspects_export(tmp_path):
    db = tmp_path / "cli.db"
    src = tmp_path / "dev.conll"
    src.write_bytes(conll_slice(15))
    r = _review("ingest", str(src), "--name", "dev", "--task", "ner", db=db)
    assert r.returncode == 0, r.stderr
    assert "sentences" in r.stdout and "IOB1" in r.stdout
    r = _review("audit", "dev", db=db)
    assert r.returncode == 0, r.stderr
    assert "suspect sentences" in r.stdout
    r = _review("suspects", "dev", "--format", "json", "--limit", "5", db=db)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 5 and all(isinstance(x["tokens"], list) and x["tokens"] for x in rows)
    assert {"id", "given_label", "predicted_label", "confidence", "quality", "is_issue", "rank"} <= set(rows[0])
    assert rows[0]["id"].isdigit()
    out = tmp_path / "clean.conll"
    r = _review("export", "dev", "--out", str(out), db=db)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()  # nothing verified yet: the upload, byte for byte
    r = _review("export", "dev", "--out", str(tmp_path / "clean.jsonl"), "--format", "jsonl", db=db)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "clean.jsonl").read_text().splitlines()) == len(
        ner.parse_conll(src.read_text(), "x").sentences
    )
    r = _review("ingest", str(src), "--name", "dev2", db=db)  # no --task ner: the extension tells
    assert r.returncode == 0, r.stderr
    assert datasets.get(store.connect(db), "dev2").task == "ner"


# ----------------------------------------------------------------------------- pages (AppTest)


def test_upload_page_ingests_conll_and_refuses_a_bad_line(page_db):
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    data = conll_slice(5)
    at.file_uploader(key="upload_file").upload("five.conll", data, "text/plain")
    run(at)
    n = len(ner.parse_conll(data.decode(), "x").sentences)
    assert at.subheader[0].value.startswith(f"NER file: conll, {n:,} sentences")
    assert "<span" in html_of(at) and "ner-entity" in html_of(at)
    at.text_input(key="dataset_name_input").set_value("five")
    at.button(key="ingest").click()
    run(at)
    assert not at.error, [e.value for e in at.error]
    ds = datasets.get(page_db, "five")
    assert ds.task == "ner" and ds.n_items == n
    assert datasets.latest_run(page_db, ds.id)["kind"] == "integrity"

    before = counts(page_db)
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    at.file_uploader(key="upload_file").upload("bad.conll", data.replace(b"\n- : O O\n", b"\n- O O\n", 1), "text/plain")
    run(at)
    assert any("bad.conll, line 4: 3 columns" in e.value for e in at.error)
    assert not any(b.key == "ingest" for b in at.button)  # nothing to ingest from a refused file
    assert counts(page_db) == before


def test_review_page_token_change_invalid_then_valid_and_accept_span(page_db):
    ds = datasets.get(page_db, "dev")
    at = open_page("pages/3_Review.py", ANNA)
    idx = held(page_db, ds)
    s = workflow.get_suspect(page_db, ds, idx)
    tags = json.loads(s.current_label)
    page = html_of(at)
    assert "ner-legend" in page and page.count("ner-suspect") == len(s.probs["flagged"])
    ek = f"ner_edit_{ds.id}_{idx}_{s.version}"
    # a B- tag after O breaks IOB1: the page says which token, and nothing is saved
    j = next(k for k, t in enumerate(tags) if t == "O" and (k == 0 or tags[k - 1] == "O"))
    at.selectbox(key=f"tok_{ek}").set_value(j)
    run(at)
    at.selectbox(key=f"tag_{ek}_{j}").set_value("B-PER")
    run(at)
    at.button(key="set_tag").click()
    run(at)
    assert any(
        f"token {j}" in e.value and "not a valid IOB1" in e.value.replace("Not a valid", "not a valid")
        for e in at.error
    )
    at.button(key="save_tags").click()
    run(at)
    assert any(f"token {j}" in w.value for w in at.warning)
    assert not list(page_db.query("SELECT id FROM reviews WHERE dataset_id=?", [ds.id]))
    # I-PER there is valid: saved as one changed tag
    at.selectbox(key=f"tag_{ek}_{j}").set_value("I-PER")
    run(at)
    at.button(key="set_tag").click()
    run(at)
    at.button(key="save_tags").click()
    run(at)
    assert any(f"Sentence {s.key}: 1 tag changed." in m.value for m in at.success)
    rev = list(page_db.query("SELECT idx, decision, new_label FROM reviews WHERE dataset_id=?", [ds.id]))
    want = list(tags)
    want[j] = "I-PER"
    assert rev == [{"idx": idx, "decision": "relabel", "new_label": ner_store.canon(want)}]

    # the next suspect: accept the model's tags for a suspect span in one click (the first span
    # whose acceptance changes something; the others' buttons are disabled)
    idx2 = held(page_db, ds)
    assert idx2 != idx
    s2 = workflow.get_suspect(page_db, ds, idx2)
    now = json.loads(s2.current_label)
    proposals = [
        ner_store.accept_span(now, s2.probs["predicted"], a, z, "IOB1")
        for a, z in ner_store.flagged_spans(s2.probs["flagged"])[:8]
    ]
    k = next(i for i, p in enumerate(proposals) if p != now)
    assert all(at.button(key=f"accept_{i}").disabled == (p == now) for i, p in enumerate(proposals))
    at.button(key=f"accept_{k}").click()
    run(at)
    got = store.scalar(page_db, "SELECT new_label FROM reviews WHERE dataset_id=? AND idx=?", [ds.id, idx2])
    assert json.loads(got) == proposals[k]


def test_audit_swaps_open_exactly_those_sentences_in_review(page_db):
    ds = datasets.get(page_db, "dev")
    at = open_page("pages/2_Audit.py", LEAD)
    swaps = ner_store.swaps(page_db, ds)
    assert at.tabs[1].label == "Tag swaps"
    table = [d.value for d in at.dataframe if "predicted_tag" in d.value.columns][0]
    assert list(table["given_tag"]) == [r["given_tag"] for r in swaps]
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["orientation"] == "h"
    at.selectbox(key="swap_pick").set_value(1)
    run(at)
    at.button(key="open_swap").click()
    run(at)
    g, p = swaps[1]["given_tag"], swaps[1]["predicted_tag"]
    assert any(f"tagged {g} that the model tags {p}" in i.value for i in at.info)
    idx = page_db.execute(
        "SELECT idx FROM states WHERE dataset_id=? AND claimed_by='lena' AND state='open'", [ds.id]
    ).fetchone()[0]
    run_id = datasets.latest_run(page_db, ds.id)["id"]
    assert (
        page_db.execute(
            "SELECT COUNT(*) FROM token_issues WHERE run_id=? AND idx=? AND given_tag=? AND predicted_tag=?",
            [run_id, idx, g, p],
        ).fetchone()[0]
        >= 1
    )


def test_audit_stores_tag_inconsistency_findings_and_the_model_choice(page_db):
    ds = datasets.get(page_db, "dev")
    run = datasets.latest_run(page_db, ds.id)
    found = [f for f in stats.findings(page_db, run["id"]) if f["kind"] == "tag_inconsistency"]
    assert found, "40 CoNLL documents always hold some string tagged two ways"
    corpus = ner_store.load_given(page_db, ds)
    lopsided = []
    for f in found[:20]:
        d = f["detail"]
        assert d["split"][d["majority"]] * 4 >= 3 * (d["n"] - 1) and d["n"] >= 3
        for sent, a, b, _reading in d["odd"]:
            assert sent in f["rows"] and " ".join(corpus.sentences[sent].tokens[a:b]) == d["text"]
        lopsided.append(d["split"][d["majority"]] / d["n"])
    assert lopsided == sorted(lopsided, reverse=True)  # most lopsided first
    f = found[0]
    sent, a = f["detail"]["odd"][0][:2]  # the odd token's reason names the split
    reason = page_db.execute(
        "SELECT reason FROM token_issues WHERE run_id=? AND idx=? AND token=?", [run["id"], sent, a]
    ).fetchone()
    assert reason is None or "other occurrences" in reason[0]
    params = run["params"]
    assert set(params["candidates"]) == {"sgd", "crf"} and params["crf_weight"] in ner.MIX_WEIGHTS
    at = open_page("pages/2_Audit.py", LEAD)
    assert any("tag inconsistency" in m.value for m in at.markdown)
    model_tab = next(t for t in at.tabs if t.label == "Model")
    assert any("Token model" in m.value for m in model_tab.markdown)
    assert [d.value for d in model_tab.dataframe][0]["candidate"].tolist() == ["logistic regression", "CRF"]


def test_verify_page_approves_a_sentence_and_export_offers_conll(page_db):
    ds = datasets.get(page_db, "dev")
    s = workflow.claim_next(page_db, ds, ANNA)
    tags = json.loads(s.current_label)
    new = ner_store.accept_span(tags, s.probs["predicted"], *ner_store.flagged_spans(s.probs["flagged"])[0], "IOB1")
    if new == tags:
        new = ["O"] * len(tags)
    workflow.decide(page_db, ds, s.idx, ANNA, "relabel", s.version, new_label=new)
    at = open_page("pages/4_Verify.py", LEAD)
    assert "ner-sentence" in html_of(at)
    rid = store.scalar(page_db, "SELECT id FROM reviews WHERE dataset_id=?", [ds.id])
    at.button(key=f"approve_{rid}").click()
    run(at)
    assert any(f"Sentence {s.key}: approved." in m.value for m in at.success)
    assert ner_store.cleaned_tags(page_db, ds)[s.idx] == new
    at = open_page("pages/5_Export.py", LEAD)
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download the cleaned corpus (CONLL)", "Download as JSONL", "Download the audit trail (CSV)"]


def test_tokens_are_shown_as_text_never_html(page_db, tmp_path):
    evil = "<img/src=x/onerror=alert(1)>"  # CoNLL tokens hold no spaces; browsers read / as one
    data = (f"-DOCSTART- O\n\n{evil} I-PER\nsays O\nhi O\n\nBob I-PER\nwaves O\n\n" * 6).encode()
    at = open_page("pages/1_Upload.py", LEAD, dataset=None)
    at.file_uploader(key="upload_file").upload("evil.conll", data, "text/plain")
    run(at)
    page = html_of(at)
    assert evil not in page and html_escape(evil) in page
    assert "<img" not in page.replace("&lt;img", "")


from html import escape as html_escape  # noqa: E402


def test_jsonl_with_own_per_token_probabilities(db, lead, tmp_path):
    """A team's fine-tuned model: JSONL with pred_probs per token. The audit uses them (no model
    of ours) and flags the token whose given tag they contradict; export keeps the JSONL lines."""
    import numpy as np

    corpus = ner.parse_conll(conll_slice(10).decode(), "x")
    names = ["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER", "O"]
    rng = np.random.default_rng(0)
    lines, target = [], None
    for i, s in enumerate(corpus.sentences):
        tags = ner.to_iob2(s.tags, "IOB1")
        P = np.full((len(tags), len(names)), 0.01)
        for j, t in enumerate(tags):
            P[j, names.index(t)] = 0.9 + 0.05 * rng.random()
        if target is None and "B-PER" in tags:
            j = tags.index("B-PER")
            P[j] = 0.01
            P[j, names.index("B-ORG")] = 0.97  # the model is sure this PER is an ORG
            target = (i, j)
        P = P / P.sum(axis=1, keepdims=True)
        lines.append(
            json.dumps(
                {
                    "id": f"s{i}",
                    "tokens": s.tokens,
                    "tags": tags,
                    "pred_probs": np.round(P, 4).tolist(),
                    "tag_names": names,
                }
            )
        )
    data = ("\n".join(lines) + "\n").encode()
    ds_id = ner_store.write_ner_dataset(db, ner_store.read_corpus(data, "own.jsonl"), data, "own", lead)
    audit.run_audit(db, ds_id, lead)
    ds = datasets.get(db, ds_id)
    run = datasets.latest_run(db, ds_id)
    assert (
        ds.mapping.format == "jsonl"
        and ds.mapping.scheme == "IOB2"
        and run["params"]["model"] == "given per-token probabilities"
    )
    flagged = {
        (i, j): p
        for i, j, p in db.execute("SELECT idx, token, predicted_tag FROM token_issues WHERE run_id=?", [run["id"]])
    }
    assert flagged.get(target) == "B-ORG"
    assert store.scalar(db, "SELECT key FROM items WHERE dataset_id=? AND idx=?", [ds_id, target[0]]) == f"s{target[0]}"
    assert ner_store.export_conll(db, ds).encode() == data  # nothing verified: the upload itself
