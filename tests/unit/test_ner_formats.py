"""review.ner: CoNLL/JSONL round trips, tagging schemes, refusals, suspects on real CoNLL-2003."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from review import ner
from review.errors import IngestError, ReviewError
from tests.helpers import DATA

CONLL = DATA / "conll2003"

SMALL = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Japan NNP I-NP I-LOC
and CC O O
Syria NNP I-NP I-LOC
, , O O
Germany NNP I-NP I-LOC
Italy NNP I-NP B-LOC
draw VB I-VP O
. . O O
"""

IOB2 = "Peter B-PER\nBlackburn I-PER\nvisits O\nEU B-ORG\n\nJapan B-LOC\n"
BIOES = "Peter B-PER\nBlackburn E-PER\nvisits O\nEU S-ORG\n\nJapan S-LOC\n"


def conll_file(name: str) -> Path:
    path = CONLL / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CoNLL-2003 data not found at {path}; CI must provide shared/data/conll2003/{name}.")
        pytest.skip(f"{path} is missing (shared/data is not beside the repository)")
    return path


# ----------------------------------------------------------------------------- parse / write


def test_parse_small_file():
    c = ner.parse_conll(SMALL, "small.conll")
    assert c.scheme == "IOB1"
    assert (c.n_columns, c.tag_column) == (4, 3)
    assert c.entity_types == ["LOC", "MISC", "ORG", "PER"]
    assert [s.tokens for s in c.sentences][1] == ["Peter", "Blackburn"]
    assert [s.doc for s in c.sentences] == [0, 0, 1]
    assert [s.start_line for s in c.sentences] == [3, 9, 14]
    assert c.sentences[2].lines[5] == "Italy NNP I-NP B-LOC"
    assert sorted(k for k, line in c.other_lines.items() if line.startswith("-DOCSTART-")) == [0, 11]
    assert c.sentences[2].tags[-4:] == ["I-LOC", "B-LOC", "O", "O"]


@pytest.mark.parametrize(
    "text",
    [
        SMALL,
        SMALL.replace("\n", "\r\n"),  # Windows line endings
        SMALL.rstrip("\n"),  # no final newline
        SMALL + "\n\n",  # trailing blank lines
        "\ufeff" + SMALL.replace(" ", "\t"),  # BOM, tab-separated
        SMALL.replace("rejects VBZ I-VP O\n", "rejects VBZ I-VP O\r\n").replace("EU NNP", "EU  NNP"),  # mixed
        SMALL.replace("call NN I-NP O", "call NN I-NP O   "),  # trailing spaces
    ],
)
def test_write_conll_round_trip_is_byte_identical(text):
    c = ner.parse_conll(text, "small.conll")
    assert ner.write_conll(c, [s.tags for s in c.sentences]) == text


def test_write_conll_changes_only_the_tag_column():
    text = SMALL.replace("German JJ I-NP I-MISC", "German\tJJ\tI-NP\tI-MISC  ").replace("\n", "\r\n")
    c = ner.parse_conll(text, "small.conll")
    tags = [list(s.tags) for s in c.sentences]
    tags[0][2] = "I-LOC"
    tags[2][5] = "I-LOC"  # Italy: B-LOC -> I-LOC (merges with Germany, still valid IOB1)
    out = ner.write_conll(c, tags)
    old, new = text.split("\r\n"), out.split("\r\n")
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert changed == [
        ("German\tJJ\tI-NP\tI-MISC  ", "German\tJJ\tI-NP\tI-LOC  "),
        ("Italy NNP I-NP B-LOC", "Italy NNP I-NP I-LOC"),
    ]
    again = ner.parse_conll(out, "small.conll")
    assert [s.tags for s in again.sentences] == tags
    with pytest.raises(ValueError, match="sentence 1: 1 tags for 2 tokens"):
        ner.write_conll(c, [tags[0], ["O"], tags[2]])


def test_scheme_detection():
    assert ner.parse_conll(SMALL, "a").scheme == "IOB1"
    assert ner.parse_conll(IOB2, "b").scheme == "IOB2"
    assert ner.parse_conll(BIOES, "c").scheme == "BIOES"
    only_o = ner.parse_conll("a O\nb O\n", "d")
    assert only_o.scheme == "IOB2" and only_o.entity_types == []
    # IOB1 with a B- between two adjacent same-type entities only
    assert ner.parse_conll("Japan I-LOC\nItaly B-LOC\nwin O\n", "e").scheme == "IOB1"


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("a NN O\nb NN I-PER\nc O\n", "line 3", "2 columns where the file's first token line has 3"),
        ("a NN O\nb NN I-PER\n\nc NN X-PER\n", "line 4", "'X-PER' is not a tag"),
        ("a NN O\nb NN PER\n", "line 2", "'PER' is not a tag"),
        ("a NN O\nb NN i-per\n", "line 2", "'i-per' is not a tag"),
        ("-DOCSTART- -X- O\n\na NN O\nb NN B-\n", "line 4", "'B-' is not a tag"),
        ("onlyonecolumn\n", "line 1", "only one column"),
    ],
)
def test_parse_conll_refusals_name_file_and_line(text, where, what):
    with pytest.raises(IngestError) as e:
        ner.parse_conll(text, "bad.conll")
    assert f"bad.conll, {where}" in str(e.value) and what in str(e.value)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- -X- O\n\n"])
def test_parse_conll_refuses_empty_files(text):
    with pytest.raises(IngestError, match="empty.conll: (the file is empty|no token lines)"):
        ner.parse_conll(text, "empty.conll")


# ----------------------------------------------------------------------------- JSONL


def test_jsonl_round_trip_and_changes():
    lines = [
        json.dumps({"id": "s1", "tokens": ["Peter", "Blackburn", "<b>"], "tags": ["B-PER", "I-PER", "O"]}),
        "",
        json.dumps({"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"], "extra": 1}),
    ]
    text = "\n".join(lines) + "\n"
    c = ner.parse_jsonl(text, "s.jsonl")
    assert c.scheme == "IOB2" and c.format == "jsonl" and c.entity_types == ["ORG", "PER"]
    assert [s.start_line for s in c.sentences] == [1, 3] and c.sentences[0].id == "s1"
    assert ner.write_jsonl(c, [s.tags for s in c.sentences]) == text
    out = ner.write_jsonl(c, [s.tags for s in c.sentences[:1]] + [["B-LOC", "O"]])
    assert out.split("\n")[0] == lines[0]
    assert json.loads(out.split("\n")[2]) == {"tokens": ["EU", "rejects"], "tags": ["B-LOC", "O"], "extra": 1}
    # a CoNLL corpus exports as plain JSONL
    conll = ner.parse_conll(SMALL, "small.conll")
    rows = [json.loads(x) for x in ner.write_jsonl(conll, [s.tags for s in conll.sentences]).splitlines()]
    assert rows[1] == {"tokens": ["Peter", "Blackburn"], "tags": ["I-PER", "I-PER"]}


def test_jsonl_pred_probs():
    recs = [
        {"tokens": ["a", "b"], "tags": ["B-X", "O"], "pred_probs": [[0.8, 0.2], [0.1, 0.9]], "tag_names": ["B-X", "O"]},
        {"tokens": ["c"], "tags": ["O"], "pred_probs": [[0.3, 0.7]]},
    ]
    c = ner.parse_jsonl("\n".join(map(json.dumps, recs)), "p.jsonl")
    assert c.prob_tag_names == ["B-X", "O"] and c.sentences[0].pred_probs.shape == (2, 2)
    assert not c.final_eol and ner.write_jsonl(c, [s.tags for s in c.sentences]) == "\n".join(map(json.dumps, recs))


@pytest.mark.parametrize(
    "line2, what",
    [
        ('{"tokens": ["a", "b"], "tags": ["O"]}', "line 2: 1 tags for 2 tokens"),
        ('{"tokens": ["a"], "tags": ["O"]', "line 2: not valid JSON"),
        ('{"tokens": ["a"]}', 'line 2: needs an object with "tokens" and "tags"'),
        ('{"tokens": ["a"], "tags": ["PER"]}', "line 2, token 0: 'PER' is not a tag"),
        ('{"tokens": ["a"], "tags": ["O"], "pred_probs": [[0.5, 0.5], [0.5, 0.5]]}', 'line 2: "pred_probs" must'),
    ],
)
def test_jsonl_refusals_name_the_line(line2, what):
    text = '{"tokens": ["x"], "tags": ["O"]}\n' + line2 + "\n"
    with pytest.raises(IngestError) as e:
        ner.parse_jsonl(text, "bad.jsonl")
    assert f"bad.jsonl, {what}" in str(e.value)
    with pytest.raises(IngestError, match="bad.jsonl: the file is empty"):
        ner.parse_jsonl("\n", "bad.jsonl")


# ----------------------------------------------------------------------------- schemes

CASES = {
    "IOB1": [["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG", "I-LOC"], ["O"], ["I-MISC"]],
    "IOB2": [["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG", "B-LOC"], ["O"], ["B-MISC"]],
    "BIOES": [["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "S-ORG", "S-LOC"], ["O"], ["S-MISC"]],
}


@pytest.mark.parametrize("scheme", ner.SCHEMES)
def test_conversions_round_trip(scheme):
    for tags, iob2 in zip(CASES[scheme], CASES["IOB2"]):
        assert ner.to_iob2(tags, scheme) == iob2
        assert ner.from_iob2(iob2, scheme) == tags
        assert ner.scheme_violations(tags, scheme) == []
        assert ner.entity_spans(tags, scheme) == ner.entity_spans(iob2, "IOB2")
    assert ner.entity_spans(CASES[scheme][0], scheme) == [
        (0, 2, "PER"),
        (3, 4, "LOC"),
        (4, 5, "LOC"),
        (6, 7, "ORG"),
        (7, 8, "LOC"),
    ]


def test_scheme_violations_reasons():
    assert ner.scheme_violations(["O", "I-PER"], "IOB2") == [(1, "I-PER after O (an IOB2 entity starts with B-PER)")]
    ((pos, why),) = ner.scheme_violations(["B-ORG", "I-PER"], "IOB2")
    assert pos == 1 and why.startswith("I-PER after B-ORG")
    assert ner.scheme_violations(["I-PER"], "IOB2")[0][1].startswith("I-PER at sentence start")
    assert ner.scheme_violations(["O", "I-PER"], "IOB1") == []  # legal in IOB1
    ((pos, why),) = ner.scheme_violations(["O", "B-PER", "I-PER"], "IOB1")
    assert pos == 1 and why.startswith("B-PER after O")
    assert ner.scheme_violations(["I-LOC", "B-LOC"], "IOB1") == []
    bioes = ner.scheme_violations(["B-PER", "O", "I-LOC", "E-LOC", "S-ORG", "E-ORG", "B-MISC"], "BIOES")
    assert [p for p, _ in bioes] == [0, 2, 5, 6]
    assert bioes[0][1].startswith("B-PER followed by O") and bioes[3][1].startswith(
        "B-MISC followed by the sentence end"
    )
    assert ner.scheme_violations(["S-PER"], "IOB2")[0][1] == "S-PER is not an IOB2 tag (E- and S- belong to BIOES)"
    assert "'X-PER' is not a tag" in ner.scheme_violations(["X-PER"], "IOB1")[0][1]
    with pytest.raises(ValueError, match="Unknown tagging scheme"):
        ner.scheme_violations(["O"], "BILOU")


def test_validate_names_position_and_problem():
    ner.validate(["B-PER", "I-PER", "O"], "IOB2")
    with pytest.raises(ReviewError) as e:
        ner.validate(["O", "O", "I-PER"], "IOB2")
    assert "token 2 ('I-PER'): I-PER after O" in str(e.value) and "IOB2" in str(e.value)
    with pytest.raises(ReviewError, match=r"token 0 \('B-PER'\): B-PER at sentence start .* and 1 more"):
        ner.validate(["B-PER", "O", "B-LOC", "O", "B-ORG", "B-MISC"], "IOB1")


def test_invalid_sequences_are_repaired_leniently():
    assert ner.to_iob2(["O", "I-PER", "I-PER"], "IOB2") == ["O", "B-PER", "I-PER"]
    assert ner.to_iob2(["B-PER", "I-ORG"], "IOB2") == ["B-PER", "B-ORG"]
    assert ner.from_iob2(["O", "I-PER"], "IOB1") == ["O", "I-PER"]
    assert ner.to_iob2(["E-PER", "I-PER"], "BIOES") == ["B-PER", "B-PER"]


# ----------------------------------------------------------------------------- issues and display


def test_find_issues_and_common_swaps_with_given_probabilities():
    # 30 sentences "<name> wins", the model sure of each tag; sentence 30 gives Rome I-PER
    # where the model says LOC, sentence 31 breaks IOB1 (B-ORG after O).
    names = ["B-LOC", "B-ORG", "B-PER", "O"]
    rows, probs = [], []
    for k in range(30):
        word, tag, cls = [("Paris", "I-LOC", 0), ("Anna", "I-PER", 2), ("Fiat", "I-ORG", 1)][k % 3]
        rows.append(f"{word} NNP {tag}\nwins VBZ O\n")
        probs.append(np.array([[0.94 if j == cls else 0.02 for j in range(4)], [0.02, 0.02, 0.02, 0.94]]))
    rows.append("Rome NNP I-PER\nwins VBZ O\n")
    probs.append(np.array([[0.96, 0.01, 0.02, 0.01], [0.02, 0.02, 0.02, 0.94]]))  # above LOC's mean 0.94
    rows.append("x SYM O\nIBM NNP B-ORG\n")
    probs.append(np.array([[0.02, 0.02, 0.02, 0.94], [0.02, 0.94, 0.02, 0.02]]))
    c = ner.parse_conll("\n".join(rows), "t.conll")
    r = ner.find_issues(c, probs, names)
    assert isinstance(r, ner.TokenIssues)
    assert r.flagged == [(30, 0), (31, 1)]
    assert r.predicted[30] == ["I-LOC", "O"] and r.predicted_iob2[30] == ["B-LOC", "O"]
    assert r.reasons[(30, 0)] == "given I-PER; the model predicts I-LOC (96%) and gives the given tag 2%"
    assert r.reasons[(31, 1)].startswith("not valid IOB1: B-ORG after O")
    q = r.sentence_quality
    assert q.shape == (32,) and q[31] == 0.0 and q[30] < q[:30].min()
    assert [len(t) for t in r.token_quality] == [2] * 32
    assert abs(r.confidence[30][0] - 0.96) < 1e-6


def test_token_view_html_escapes_every_token():
    evil = "<img src=x onerror=alert(1)>"
    tokens = [evil, "visits", "Paris", "\"&'"]
    tags = ["I-PER", "O", "I-LOC", "I-<b>"]
    out = ner.token_view_html(
        tokens,
        tags,
        "IOB1",
        flagged_positions=[0, 3],
        predicted=["I-ORG", "O", "I-LOC", "<script>"],
        confidence=[0.91, 1, 1, 0.5],
    )
    assert "<img" not in out and "<script>" not in out and "<b>" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out and "&lt;script&gt;" in out
    assert "&quot;&amp;&#x27;" in out
    assert "→I-ORG 91%" in out and out.count('class="ner-suspect"') == 2
    assert ner.FIXED_COLOURS["PER"] in out and ner.FIXED_COLOURS["LOC"] in out
    assert 'data-type="&lt;b&gt;"' in out
    legend = ner.legend_html(["PER", "ORG", "LOC", "MISC", "<i>GENE</i>"])
    assert "&lt;i&gt;GENE&lt;/i&gt;" in legend and "<i>" not in legend
    assert ner.entity_colour("GENE") == ner.entity_colour("GENE") in ner.PALETTE
    assert ner.entity_colour("ORG") == ner.FIXED_COLOURS["ORG"]


def test_token_probs_small_corpus_without_documents():
    text = "\n".join(
        f"{w} O\nvisited O\n{c} I-LOC\n"
        for w, c in [
            ("Anna", "Paris"),
            ("Bob", "Rome"),
            ("Cid", "Oslo"),
            ("Dan", "Bern"),
            ("Eve", "Lima"),
            ("Fay", "Kiev"),
            ("Gus", "Riga"),
            ("Hal", "Baku"),
            ("Ida", "Doha"),
            ("Jo", "Male"),
        ]
    )
    c = ner.parse_conll(text, "t.conll")
    probs, names = ner.token_probs(c, n_folds=5)
    assert names == ["B-LOC", "O"] and [p.shape for p in probs] == [(3, 2)] * 10
    assert all(np.allclose(p.sum(axis=1), 1) for p in probs)
    assert ner.token_accuracy(c, probs, names) >= 0.9


# ----------------------------------------------------------------------------- real data


def test_real_conll2003_round_trip_and_parse_speed():
    text = conll_file("eng.testa").read_text(encoding="utf-8")
    c = ner.parse_conll(text, "eng.testa")
    assert (len(c.sentences), c.n_tokens, c.scheme) == (3250, 51362, "IOB1")
    assert ner.write_conll(c, [s.tags for s in c.sentences]) == text
    assert all(ner.from_iob2(ner.to_iob2(s.tags, "IOB1"), "IOB1") == s.tags for s in c.sentences)
    train = conll_file("eng.train").read_text(encoding="utf-8")
    c = ner.parse_conll(train, "eng.train")  # its speed is measured by benchmarks/ner_conll.py
    assert (len(c.sentences), c.n_tokens) == (14041, 203621)


def test_real_conll2003_suspects_recall_injected_type_swaps():
    clean = ner.parse_conll(conll_file("eng.testa").read_text(encoding="utf-8"), "eng.testa")
    noisy_tags, injected = ner.inject_errors(clean, {"type_swap": 0.02}, seed=1)
    assert len(injected) == round(0.02 * sum(len(ner.entity_spans(s.tags, "IOB1")) for s in clean.sentences))
    c = ner.parse_conll(ner.write_conll(clean, noisy_tags), "eng.testa (noisy)")
    assert [s.tags for s in c.sentences] == noisy_tags
    probs, names = ner.token_probs(c)
    acc = ner.token_accuracy(c, probs, names)
    assert acc >= 0.9, acc
    r = ner.find_issues(c, probs, names)
    flagged_sents = {i for i, _ in r.flagged}
    recall = np.mean([d["sent"] in flagged_sents for d in injected])
    assert recall >= 0.5, recall
    assert len(flagged_sents) < 0.25 * len(c.sentences)
    assert set(r.reasons) == set(r.flagged)


# ----------------------------------------------------------------------------- tag inconsistency, token model


def _corpus(sentences: list[list[tuple[str, str]]], docs: list[int] | None = None) -> ner.Corpus:
    """IOB2 sentences of (token, tag) -> a parsed corpus (a -DOCSTART- before each new document)."""
    lines, prev = [], None
    for k, sent in enumerate(sentences):
        d = docs[k] if docs else 0
        if docs and d != prev:
            lines += ["-DOCSTART- O", ""]
            prev = d
        lines += [f"{t} {g}" for t, g in sent] + [""]
    return ner.parse_conll("\n".join(lines), "t.conll")


def test_tag_inconsistency_finds_the_odd_occurrence_and_scores_its_lopsidedness():
    sents = [[("Germany", "B-LOC"), ("won", "O")]] * 4 + [[("Germany", "B-ORG"), ("lost", "O")]]
    sents += [[("New", "B-LOC"), ("York", "I-LOC"), ("wins", "O")]] * 3 + [
        [("New", "O"), ("York", "B-LOC"), ("sang", "O")]
    ]
    sents += [[("Paris", "B-LOC")], [("Paris", "B-PER")]]  # one against one: no majority
    c = _corpus(sents)
    tc = ner.tag_inconsistency(c)
    odd = {v.text: v for v in tc.variations}
    g = odd["Germany"]
    assert (g.n, g.split, g.majority, g.minority, g.readings) == (5, {"LOC": 4, "ORG": 1}, "LOC", [(4, 0, 1)], ["ORG"])
    assert tc.token_score[4].tolist() == [1.0, 0.0] and tc.token_score[0].tolist() == [0.0, 0.0]
    assert "'Germany' is tagged LOC in 4 of its 4 other occurrences; tagged ORG here" == tc.reason(4, 0)
    ny = odd["New York"]
    assert ny.split == {"LOC": 3, "mixed": 1} and ny.minority == [(8, 0, 2)]
    assert tc.token_score[8][0] == 1.0 and tc.reason(8, 0).endswith("partly an entity here")
    assert odd["York"].split == {"inside": 3, "LOC": 1}  # York inside New York three times
    assert "Paris" not in odd and tc.token_score[9].tolist() == [0.0] and tc.reason(9, 0) is None
    assert tc.sentence_score()[[0, 4, 8, 9]].tolist() == [0.0, 1.0, 1.0, 0.0]
    found = ner.inconsistency_findings(tc)
    germany = next(f for f in found if f.detail["text"] == "Germany")
    assert germany.kind == "tag_inconsistency" and germany.rows == [4]
    assert germany.reason_for(4) == "'Germany' is tagged LOC in 4 of 5 occurrences; tagged ORG here"
    assert "Germany" in germany.message and "sentence 4" in germany.message


def test_find_issues_fuses_inconsistency_into_the_token_quality():
    sents = [[("Germany", "B-LOC"), ("won", "O")]] * 6 + [[("Germany", "B-ORG"), ("lost", "O")]]
    c = _corpus(sents)
    names = ["B-LOC", "B-ORG", "O"]
    probs = [np.array([[0.6, 0.3, 0.1], [0.05, 0.05, 0.9]])] * 7  # the model hesitates on every Germany
    plain = ner.find_issues(c, probs, names, consistency=False)
    fused = ner.find_issues(c, probs, names)
    assert plain.token_quality[6][0] == pytest.approx(fused.model_quality[6][0])
    assert fused.token_quality[6][0] == pytest.approx(plain.token_quality[6][0] * (1 - ner.issues.FUSE_WEIGHT))
    assert fused.token_quality[0][0] == pytest.approx(plain.token_quality[0][0])  # agreeing occurrences untouched
    assert fused.sentence_quality[6] < plain.sentence_quality[6]
    assert (6, 0) in fused.flagged and "other occurrences" in fused.reasons[(6, 0)]


def test_token_model_mixes_crf_and_logistic_regression_by_log_loss():
    people, places = ["Anna", "Bob", "Cid", "Dan", "Eve", "Fay"], ["Paris", "Rome", "Oslo", "Bern", "Lima", "Kiev"]
    sents, docs = [], []
    for d in range(6):
        for k in range(5):
            p, q = people[(d + k) % 6], places[(d * 2 + k) % 6]
            sents.append([(p, "B-PER"), ("visited", "O"), (q, "B-LOC"), ("today", "O")])
            docs.append(d)
    c = _corpus(sents, docs)
    fit = ner.token_model(c, n_folds=3)
    assert fit.tag_names == ["B-LOC", "B-PER", "O"] and len(fit.probs) == len(sents)
    assert all(p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1) for p in fit.probs)
    assert ner.token_accuracy(c, fit.probs, fit.tag_names) >= 0.9
    assert fit.params["crf_weight"] in ner.MIX_WEIGHTS and set(fit.params["candidates"]) == {"sgd", "crf"}
    best = min(fit.params["mixture_log_loss"].values())
    assert fit.params["mixture_log_loss"][f"{fit.params['crf_weight']:g}"] == best and "log loss" in fit.params["why"]
    crf = ner.token_model(c, n_folds=3, model="crf")
    assert crf.params["model"] == "crf" and set(crf.params["candidates"]) == {"crf"}
    with pytest.raises(ReviewError, match="Unknown token model"):
        ner.token_model(c, model="bert")
