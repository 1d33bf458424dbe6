"""Named-entity (token-level) label review: pure functions, no SQL, no streamlit.

Which module holds what (every name below is re-exported here, so ``ner.parse_conll`` works):

* :mod:`.schemes`: tagging schemes IOB1, IOB2 and BIOES: ``SCHEMES``, :func:`detect_scheme`,
  :func:`scheme_violations`, :func:`validate`, :func:`entity_spans`, :func:`to_iob2`, :func:`from_iob2`.
* :mod:`.corpus`: the :class:`Sentence` and :class:`Corpus` dataclasses, ``DOCSTART``.
* :mod:`.conll`: :func:`parse_conll` / :func:`write_conll` (CoNLL columns, byte-for-byte round trip);
  :mod:`.jsonl`: :func:`parse_jsonl` / :func:`write_jsonl` (one ``{"tokens", "tags"}`` per line);
  :mod:`.lines`: what the two share (line endings and BOM kept, the bad-tag refusal, the tags check).
* :mod:`.features`: :func:`token_features`; :mod:`.model`: :func:`token_probs` (out-of-sample
  per-token probabilities, cross-validated by document), :func:`token_accuracy`.
* :mod:`.crf`: :func:`crf_token_probs` (a linear-chain CRF, python-crfsuite, on token-window
  feature strings; model.token_probs mixes it with the logistic regression).
* :mod:`.consistency`: :func:`tag_inconsistency` (the same string tagged differently across the
  corpus, returning a :class:`TagConsistency`), :func:`inconsistency_findings`.
* :mod:`.issues`: :func:`find_issues` (cleanlab's token classification fused with tag
  inconsistency, plus scheme violations), returning a :class:`TokenIssues`.
* :mod:`.inject`: ``ERROR_KINDS``, :func:`inject_errors` (for benchmarks, tests and demos).
* :mod:`.view`: :func:`token_view_html`, :func:`legend_html`, :func:`entity_colour` (every token
  HTML-escaped).

schemes and corpus import nothing else from the package; the other modules build on them.
Positions are 0-based (sentence number, token number in the sentence); line numbers
in messages are 1-based, as an editor shows them.
"""

from __future__ import annotations

from review.ner.conll import parse_conll, write_conll
from review.ner.consistency import TagConsistency, Variation, inconsistency_findings, tag_inconsistency
from review.ner.corpus import DOCSTART, Corpus, Sentence
from review.ner.crf import crf_token_probs
from review.ner.features import MIN_FEATURE_COUNT, token_features
from review.ner.inject import ERROR_KINDS, inject_errors
from review.ner.issues import TokenIssues, find_issues
from review.ner.jsonl import parse_jsonl, write_jsonl
from review.ner.model import (
    MIX_WEIGHTS,
    SGD_ALPHA,
    SGD_EPOCHS,
    TOKEN_MODELS,
    Progress,
    TokenModel,
    token_accuracy,
    token_model,
    token_probs,
)
from review.ner.schemes import SCHEMES, detect_scheme, entity_spans, from_iob2, scheme_violations, to_iob2, validate
from review.ner.view import FIXED_COLOURS, PALETTE, entity_colour, legend_html, token_view_html

__all__ = [
    "DOCSTART",
    "ERROR_KINDS",
    "FIXED_COLOURS",
    "MIN_FEATURE_COUNT",
    "PALETTE",
    "SCHEMES",
    "SGD_ALPHA",
    "SGD_EPOCHS",
    "Corpus",
    "Progress",
    "Sentence",
    "TokenIssues",
    "detect_scheme",
    "entity_colour",
    "entity_spans",
    "find_issues",
    "from_iob2",
    "inject_errors",
    "legend_html",
    "parse_conll",
    "parse_jsonl",
    "scheme_violations",
    "TagConsistency",
    "Variation",
    "inconsistency_findings",
    "tag_inconsistency",
    "to_iob2",
    "token_accuracy",
    "token_features",
    "token_probs",
    "token_view_html",
    "validate",
    "write_conll",
    "write_jsonl",
    "crf_token_probs",
    "MIX_WEIGHTS",
    "TOKEN_MODELS",
    "TokenModel",
    "token_model",
]
