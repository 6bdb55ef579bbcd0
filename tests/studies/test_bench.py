"""recnb.studies.bench: the peer adapters give the peers' own scores in recnb's order; the benchmark plumbing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recnb.studies import bench
from recnb.data import make_shop, random_holdout
from recnb.data.synthetic import true_affinity
from recnb.evaluation import evaluate
from recnb.models.ease import EASE
from recnb.models.popularity import PopularityRecommender

INSTALL = 'peer library not installed: pip install -e ".[bench]"'


def _peer(name: str):
    return pytest.importorskip(name, reason=f"{name} {INSTALL}")


@pytest.fixture(scope="module")
def shop():
    return make_shop(n_users=60, n_items=40, n_categories=4, n_interactions=1500, seed=0)


@pytest.fixture(scope="module")
def split(shop):
    return random_holdout(shop, test_ratio=0.25, seed=0)


USERS = [0, 7, 3, 59]  # not sorted: rows must come back in this order


def test_implicit_item_cosine_scores_are_implicits_own(split):
    _peer("implicit")
    model = bench.ImplicitItemCosine(neighbours=10).fit(split)
    x = split.train_csr()
    scores = model.score(USERS)
    assert scores.shape == (len(USERS), split.n_items) and scores.dtype == torch.float32
    for row, u in enumerate(USERS):
        # implicit's own ranking of every item, liked ones included: scores = x_u S
        ids, values = model.model_.recommend(u, x[u], N=split.n_items, filter_already_liked_items=False)
        np.testing.assert_allclose(scores[row, ids].numpy(), values, rtol=1e-5, atol=1e-6)
    # and S is implicit's pruned cosine: at most K non-zeros per item row
    assert model.similarity_.getnnz(axis=1).max() <= 10


@pytest.mark.parametrize("cls", ["ImplicitALS", "ImplicitBPR"])
def test_implicit_factor_adapters_match_implicits_recommend(split, cls):
    _peer("implicit")
    model = getattr(bench, cls)(factors=8, iterations=5, regularization=0.01, seed=0).fit(split)
    x = split.train_csr()
    scores = model.score(USERS)
    assert scores.shape == (len(USERS), split.n_items) and scores.dtype == torch.float32
    assert scores.abs().max() > 1e-3  # not a degenerate all-zero model
    for row, u in enumerate(USERS):
        ids, values = model.model_.recommend(u, x[u], N=split.n_items, filter_already_liked_items=False)
        np.testing.assert_allclose(scores[row, ids].numpy(), values, rtol=1e-4, atol=1e-6 * np.abs(values).max())
    # rows follow the requested users
    np.testing.assert_allclose(model.score([USERS[1]]).numpy()[0], scores[1].numpy(), rtol=1e-4, atol=1e-6)


def test_cornac_bpr_scores_are_cornacs_own_through_the_id_maps(split):
    _peer("cornac")
    model = bench.CornacBPR(factors=8, iterations=5, seed=0).fit(split)
    scores = model.score(USERS).numpy()
    assert scores.shape == (len(USERS), split.n_items)
    peer = model.model_
    for row, u in enumerate(USERS):
        own = np.asarray(peer.score(peer.uid_map[str(u)]))  # cornac's inner item order
        for i in range(split.n_items):
            if str(i) in peer.iid_map:
                assert scores[row, i] == pytest.approx(own[peer.iid_map[str(i)]], rel=1e-5, abs=1e-6)
            else:  # an item with no training pair: cornac never saw it
                assert scores[row, i] == 0.0


def test_cornac_ease_is_cornacs_score_and_equals_recnb_ease_without_clipping(split):
    _peer("cornac")
    clipped = bench.CornacEASE(l2=20.0).fit(split)
    peer = clipped.model_
    scores = clipped.score(USERS).numpy()
    for row, u in enumerate(USERS):
        own = np.asarray(peer.score(peer.uid_map[str(u)])).ravel()
        inner = [peer.iid_map[str(i)] for i in range(split.n_items) if str(i) in peer.iid_map]
        known = [i for i in range(split.n_items) if str(i) in peer.iid_map]
        np.testing.assert_allclose(scores[row, known], own[inner], rtol=1e-5, atol=1e-6)
    assert (np.asarray(peer.B) >= 0).all()  # posB: negative weights set to 0
    # posB=False is the plain model: the same scores as recnb's EASE with the same lambda
    plain = bench.CornacEASE(l2=20.0, positive_only=False).fit(split)
    ours = EASE(l2=20.0).fit(split)
    np.testing.assert_allclose(plain.score(USERS).numpy(), ours.score(USERS).numpy(), rtol=1e-4, atol=1e-5)


def test_true_taste_oracle_scores_are_the_generating_affinity(shop, split):
    oracle = bench.TrueTasteOracle(shop.truth).fit(split)
    users = np.array(USERS)
    expected = true_affinity(shop.truth, split.users.id(users) - 1)[:, split.items.ids - 1]
    np.testing.assert_allclose(oracle.score(users).numpy(), expected)
    # knowing the truth beats popularity on the held-out items
    assert evaluate(oracle, split)["ndcg@10"] > evaluate(PopularityRecommender().fit(split), split)["ndcg@10"]


def test_true_view_probability_by_hand_and_its_oracle(shop, split):
    truth = shop.truth
    p = bench.true_view_probability(truth, [0, 5])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-9)  # one view lands on some item
    u, beta = 5, truth["price_sensitivity"][5]
    for i in (0, 13, 39):
        c = truth["item_category"][i]
        same = np.flatnonzero(truth["item_category"] == c)
        w = truth["item_popularity"] * np.exp(-beta * truth["item_log_price_ratio"])
        assert p[1, i] == pytest.approx(truth["user_taste"][u, c] * w[i] / w[same].sum(), rel=1e-9)
    oracle = bench.TrueViewOracle(truth).fit(split)
    users = np.array(USERS)
    expected = bench.true_view_probability(truth, split.users.id(users) - 1)[:, split.items.ids - 1]
    np.testing.assert_allclose(oracle.score(users).numpy(), expected, rtol=1e-6)


def test_write_split_round_trips(split, tmp_path):
    path = bench.write_split(split, tmp_path / "sub" / "split.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == ["user_id", "item_id", "set"]
    for part, frame in (("train", split.train), ("test", split.test)):
        got = set(map(tuple, back.loc[back["set"] == part, ["user_id", "item_id"]].to_numpy()))
        assert got == set(map(tuple, frame[["user_id", "item_id"]].to_numpy()))
    assert len(back) == len(back.drop_duplicates())


def test_run_benchmark_table_means_are_evaluate_and_models_are_fitted(split):
    calls = []
    out = bench.run_benchmark({"recnb popularity": PopularityRecommender, "recnb EASE": lambda: EASE(l2=20.0)},
                              split, k=5, progress=calls.append)
    assert calls == ["recnb popularity", "recnb EASE"]
    assert list(out.table.index) == calls
    assert list(out.table.columns) == ["library", "fit_s", "eval_s", "precision@5", "recall@5", "ndcg@5", "map@5"]
    assert (out.table["library"] == "recnb").all() and (out.table["fit_s"] >= 0).all()
    for name, model in out.models.items():
        direct = evaluate(model, split, k=5, metrics=("precision", "recall", "ndcg", "map"))
        for metric in ("precision@5", "recall@5", "ndcg@5", "map@5"):
            assert out.table.loc[name, metric] == pytest.approx(direct[metric], rel=1e-6)
        assert len(out.per_user[name]) == direct["users"]
    with pytest.raises(ValueError, match="models is empty"):
        bench.run_benchmark({}, split)


def test_ratio_check_by_hand():
    table = pd.DataFrame({"fit_s": [3.0, 2.0, 1.0], "ndcg@10": [0.45, 0.44, 0.50]}, index=["ours", "peer", "fast"])
    out = bench.ratio_check(table, "ours", "peer")
    assert out == {"metric_ours": 0.45, "metric_peer": 0.44, "time_ratio": 1.5, "quality_ok": True, "time_ok": True}
    out = bench.ratio_check(table, "ours", "fast")
    assert out["time_ratio"] == 3.0 and not out["time_ok"] and not out["quality_ok"]
    with pytest.raises(KeyError, match="missing"):
        bench.ratio_check(table, "missing", "peer")


def test_missing_peer_is_named_with_the_install_command(monkeypatch):
    monkeypatch.setattr(bench, "peers_available", lambda: {"implicit": False, "cornac": True})
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[bench\]"'):
        bench.ImplicitALS()
    models, missing = bench.peer_models()
    assert missing == ["implicit"] and not any(name.startswith("implicit") for name in models)
    with pytest.raises(ValueError, match="peer must be one of"):
        bench.require("lightfm")


def test_recnb_line_up_and_bad_threads():
    names = list(bench.recnb_models(mlp=False))
    assert names == ["recnb popularity", "recnb item-kNN", "recnb user-kNN", "recnb BPR", "recnb EASE"]
    assert "recnb MLP" in bench.recnb_models()
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        bench.thread_limit(0)


def test_eval_latency_is_positive(split):
    model = PopularityRecommender().fit(split)
    assert 0 < bench.eval_latency(model, split.n_users, repeats=2) < 60
    with pytest.raises(ValueError, match="repeats"):
        bench.eval_latency(model, split.n_users, repeats=0)
