"""Graded NDCG (gains 2^rel - 1) by hand and against pytrec_eval on exported TREC run and qrels files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recnb.math.metrics import graded_ndcg_at_k, ndcg_at_k
from recnb.math.ranking import PAD, Ranking
from recnb.search.trec import write_qrels, write_run

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval checks graded NDCG: pip install -e '.[search]'")


def test_graded_ndcg_by_hand():
    grades = torch.tensor([[2, 0, 1, 1, 0], [0, 0, 0, 0, 0]])
    ranked = torch.tensor([[2, 0, 4, PAD], [0, 1, 2, 3]])
    d = [1 / math.log2(j + 1) for j in range(1, 5)]
    dcg = 1 * d[0] + 3 * d[1]  # grades 1, 2, 0, PAD -> gains 1, 3, 0, 0
    idcg = 3 * d[0] + 1 * d[1] + 1 * d[2]  # ideal: 2, 1, 1, 0
    got = graded_ndcg_at_k(ranked, grades)
    assert got[0].item() == pytest.approx(dcg / idcg, abs=1e-7) and torch.isnan(got[1])
    lin = graded_ndcg_at_k(ranked, grades, gain="linear")[0].item()
    assert lin == pytest.approx((1 * d[0] + 2 * d[1]) / (2 * d[0] + d[1] + d[2]), abs=1e-7)
    # sparse grades give the same; 0/1 grades give the binary NDCG
    torch.testing.assert_close(graded_ndcg_at_k(ranked, sp.csr_matrix(grades.numpy())), got, equal_nan=True)
    binary = torch.tensor([[True, False, True, False, True]])
    torch.testing.assert_close(graded_ndcg_at_k(ranked[:1], binary.long()), ndcg_at_k(ranked[:1], binary))


def test_graded_ndcg_bad_input():
    with pytest.raises(ValueError, match="gain must be one of"):
        graded_ndcg_at_k(torch.tensor([[0]]), torch.tensor([[1]]), gain="log")
    with pytest.raises(ValueError, match="non-negative"):
        graded_ndcg_at_k(torch.tensor([[0]]), torch.tensor([[-1]]))
    with pytest.raises(IndexError, match="0..1"):
        graded_ndcg_at_k(torch.tensor([[5]]), torch.tensor([[1, 0]]))
    with pytest.raises(ValueError, match="ranked has 2 rows, grades has 1"):
        graded_ndcg_at_k(torch.tensor([[0], [1]]), torch.tensor([[1, 0]]))


@pytest.mark.parametrize("gain", ["exponential", "linear"])
def test_graded_ndcg_matches_pytrec_eval(tmp_path, gain):
    """Random graded judgements and a random run of distinct scores, written as TREC files and read
    back by pytrec_eval (trec_eval's ndcg_cut is linear in the judged value, so the qrels hold the
    gain 2^rel - 1 for the exponential check)."""
    rng = np.random.default_rng(0)
    n_q, n_items, k = 40, 60, 10
    grades = rng.choice([0, 0, 0, 1, 2], size=(n_q, n_items))
    grades[:, 0] = np.maximum(grades[:, 0], 1)  # every query has a relevant item
    scores = torch.from_numpy(rng.permutation(n_q * n_items).reshape(n_q, n_items).astype(np.float64))
    top = torch.topk(scores, k)
    ranking = Ranking(top.indices, top.values)
    judged = 2 ** grades - 1 if gain == "exponential" else grades
    run_file = write_run(tmp_path / "run.txt", ranking)
    qrels_file = write_qrels(tmp_path / "qrels.txt", sp.csr_matrix(judged))
    qrels, run = {}, {}
    for line in qrels_file.read_text().splitlines():
        q, _, d, g = line.split()
        qrels.setdefault(q, {})[d] = int(g)
    for line in run_file.read_text().splitlines():
        q, _, d, _, s, _ = line.split()
        run.setdefault(q, {})[d] = float(s)
    result = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}"}).evaluate(run)
    expected = np.array([result[f"q{j}"][f"ndcg_cut_{k}"] for j in range(n_q)])
    got = graded_ndcg_at_k(ranking.indices, grades, gain=gain).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert expected.std() > 0.05  # the check is not degenerate


def test_trec_files(tmp_path):
    ranking = Ranking(torch.tensor([[3, 1, PAD]]), torch.tensor([[2.5, 1.0, -float("inf")]]))
    text = write_run(tmp_path / "r", ranking, query_ids=["a"], doc_ids=["x", "y", "z", "w"]).read_text()
    assert text == "a Q0 w 1 2.5 recnb\na Q0 y 2 1 recnb\n"
    text = write_qrels(tmp_path / "q", sp.csr_matrix(np.array([[0, 2, 1]]))).read_text()
    assert text == "q0 0 d1 2\nq0 0 d2 1\n"
    with pytest.raises(ValueError, match="query_ids must hold 1 ids"):
        write_run(tmp_path / "r", ranking, query_ids=["a", "b"])
    with pytest.raises(ValueError, match="non-negative integer grades"):
        write_qrels(tmp_path / "q", np.array([[0.5]]))
