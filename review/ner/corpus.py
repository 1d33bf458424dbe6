"""The parsed file: Sentence and Corpus dataclasses, and the -DOCSTART- marker."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    """One sentence. tokens, tags: (n_tokens,) strings, tags in the file's scheme;
    lines: the original lines (n_tokens,) byte for byte, without the line ending
    (for JSONL: the one JSON line); doc: document number (0-based, -DOCSTART- separated,
    0 if none); start_line: 1-based line number of its first token."""

    tokens: list[str]
    tags: list[str]
    lines: list[str]
    doc: int = 0
    start_line: int = 1
    id: str | None = None  # JSONL "id", when given
    pred_probs: np.ndarray | None = None  # JSONL "pred_probs" (n_tokens, K), when given


@dataclass
class Corpus:
    """A parsed file. sentences (n_sent,); scheme 'IOB1'|'IOB2'|'BIOES'; tag_column: index of
    the tag column (= n_columns - 1; -1 for JSONL); n_columns (0 for JSONL); entity_types:
    sorted entity types seen. The other fields let write_conll / write_jsonl rebuild the file:
    other_lines {0-based line index: line} holds every line outside a sentence (blank,
    -DOCSTART-), eol the line ending ('\\n' or '\\r\\n', or a list per line when mixed)."""

    sentences: list[Sentence]
    scheme: str
    tag_column: int
    n_columns: int
    entity_types: list[str]
    filename: str = ""
    format: str = "conll"  # 'conll' | 'jsonl'
    other_lines: dict[int, str] = field(default_factory=dict)
    n_lines: int = 0
    eol: str | list[str] = "\n"
    final_eol: bool = True  # the text ends with a line ending
    bom: str = ""
    prob_tag_names: list[str] | None = None  # JSONL: class order of "pred_probs"

    @property
    def n_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)
