"""Runs and relevance judgements as TREC files, for ``trec_eval`` / ``pytrec_eval`` / ``ranx``.

- **run** (one line per retrieved document): ``qid Q0 docno rank score tag``, ranks 1-based.
- **qrels** (one line per judged pair): ``qid 0 docno relevance``.

Query ids are ``q<row>`` and document ids ``d<index>`` by default (``query_ids`` / ``doc_ids``
override them). ``trec_eval`` orders a run by *score*, breaking ties by docno, not by the rank
column: give a run distinct scores per query (:func:`write_run` writes the ranking's scores as
they are, to full float64 precision, ``%.17g``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recnb.math.ranking import PAD, Ranking


def _ids(given: Sequence[str] | None, n: int, prefix: str, name: str) -> list[str]:
    if given is None:
        return [f"{prefix}{j}" for j in range(n)]
    ids = [str(x) for x in given]
    if len(ids) != n:
        raise ValueError(f"{name} must hold {n} ids, got {len(ids)}")
    if any(not x or any(c.isspace() for c in x) for x in ids):
        raise ValueError(f"{name} must be non-empty and free of white space (TREC files are space separated)")
    return ids


def write_run(path: str | Path, ranking: Ranking, query_ids: Sequence[str] | None = None,
              doc_ids: Sequence[str] | None = None, tag: str = "recnb") -> Path:
    """Write a :class:`Ranking` ``(Q, k)`` as a TREC run file; ``PAD`` slots are left out.

    ``doc_ids`` (if given) maps item index -> document id. Returns the path.
    """
    idx, scores = ranking.indices.numpy(), ranking.scores.double().numpy()
    if idx.ndim != 2 or idx.shape != scores.shape:
        raise ValueError(f"ranking must hold (Q, k) indices and scores, got {idx.shape} and {scores.shape}")
    qids = _ids(query_ids, idx.shape[0], "q", "query_ids")
    n_docs = int(idx.max()) + 1 if idx.size else 0
    dids = _ids(doc_ids, len(doc_ids), "d", "doc_ids") if doc_ids is not None else None
    if dids is not None and n_docs > len(dids):
        raise ValueError(f"ranking holds document index {n_docs - 1}, doc_ids only {len(dids)} ids")
    lines = []
    for q, qid in enumerate(qids):
        for j, (d, s) in enumerate(zip(idx[q], scores[q])):
            if d != PAD:
                lines.append(f"{qid} Q0 {dids[d] if dids else f'd{d}'} {j + 1} {s:.17g} {tag}\n")
    path = Path(path)
    path.write_text("".join(lines))
    return path


def write_qrels(path: str | Path, relevance: sp.spmatrix | np.ndarray, query_ids: Sequence[str] | None = None,
                doc_ids: Sequence[str] | None = None) -> Path:
    """Write graded relevance ``(Q, N)`` (non-negative integers; CSR or dense) as TREC qrels.

    Only non-zero judgements are written (``trec_eval`` treats unjudged documents as grade 0).
    Returns the path.
    """
    rel = sp.csr_matrix(relevance)
    rel.eliminate_zeros()
    if rel.nnz and (rel.data.min() < 0 or not np.all(rel.data == np.round(rel.data))):
        raise ValueError("relevance must hold non-negative integer grades")
    qids = _ids(query_ids, rel.shape[0], "q", "query_ids")
    dids = _ids(doc_ids, rel.shape[1], "d", "doc_ids")
    lines = []
    for q, qid in enumerate(qids):
        lo, hi = rel.indptr[q], rel.indptr[q + 1]
        for d, g in zip(rel.indices[lo:hi], rel.data[lo:hi]):
            lines.append(f"{qid} 0 {dids[d]} {int(g)}\n")
    path = Path(path)
    path.write_text("".join(lines))
    return path
