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
    monkeypatch.setattr(bench, "peers_available", lambda: {"implicit": False, "cornac": True, "lenskit": False})
    with pytest.raises(ModuleNotFoundError, match=r'pip install -e "\.\[bench\]"'):
        bench.ImplicitALS()
    models = bench.protocol_models()
    assert not any(name.startswith(("implicit", "lenskit")) for name in models)
    assert list(models) == ["recnb EASE", "recnb EDLAE", "recnb ALS", "recnb item-kNN", "recnb BPR", "cornac EASE",
                            "cornac BPR"]
    assert "recnb BPR" not in bench.protocol_models(bpr=False)
    with pytest.raises(ValueError, match="peer must be one of"):
        bench.require("lightfm")
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        bench.thread_limit(0)


def test_eval_latency_is_positive(split):
    model = PopularityRecommender().fit(split)
    assert 0 < bench.eval_latency(model, split.n_users, repeats=2) < 60
    with pytest.raises(ValueError, match="repeats"):
        bench.eval_latency(model, split.n_users, repeats=0)


# -- LensKit adapters: LensKit's own scores in recnb's order -----------------------------------------

def _lenskit_scores(model, user: int, history: np.ndarray | None, n_items: int) -> np.ndarray:
    from lenskit.data import ItemList, RecQuery

    query = RecQuery(user_id=user, history_items=None if history is None else ItemList(item_ids=history))
    out = model(query, ItemList(item_ids=np.arange(n_items)))
    scores = np.full(n_items, np.nan)
    scores[np.asarray(out.ids(), dtype=np.int64)] = out.scores()
    return scores


def test_lenskit_ease_is_lenskits_score_and_recnbs_ease(split):
    _peer("lenskit")
    model = bench.LenskitEASE(l2=20.0).fit(split)
    x = split.train_csr()
    scores = model.score(USERS).numpy()
    for row, u in enumerate(USERS):
        np.testing.assert_allclose(scores[row], _lenskit_scores(model.model_, u, x[u].indices, split.n_items),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scores, EASE(l2=20.0).fit(split).score(USERS).numpy(), rtol=1e-3, atol=1e-4)


def test_lenskit_als_factors_are_lenskits_stored_embeddings(split):
    _peer("lenskit")
    model = bench.LenskitALS(embedding_dim=8, regularization=1.0, weight=5.0, epochs=3).fit(split)
    scores = model.score(USERS).numpy()
    assert np.abs(scores).max() > 1e-3
    for row, u in enumerate(USERS):  # no query items: LensKit scores with the trained user embedding
        np.testing.assert_allclose(scores[row], _lenskit_scores(model.model_, u, None, split.n_items), rtol=1e-4, atol=1e-5)
    again = bench.LenskitALS(embedding_dim=8, regularization=1.0, weight=5.0, epochs=3).fit(split)
    np.testing.assert_array_equal(again.score(USERS).numpy(), scores)  # seeded


def test_lenskit_item_knn_is_lenskits_sum_of_neighbour_similarities(split):
    _peer("lenskit")
    model = bench.LenskitItemKNN(neighbours=5).fit(split)
    x = split.train_csr()
    scores = model.score(USERS).numpy()
    for row, u in enumerate(USERS):
        own = _lenskit_scores(model.model_, u, x[u].indices, split.n_items)
        np.testing.assert_array_equal(np.isnan(own), np.isneginf(scores[row]))
        np.testing.assert_allclose(scores[row][~np.isnan(own)], own[~np.isnan(own)], rtol=1e-6)
    # implicit feedback: the score of item i sums its <= 5 most similar items among the user's (by hand)
    sim = model.model_.sim_matrix.to_scipy().toarray()  # row j: item j's neighbours and similarities
    u, profile, checked = USERS[0], x[USERS[0]].indices, 0
    for i in range(split.n_items):
        s = sim[profile, i]
        s = np.sort(s[s >= 1e-6])[::-1][:5]
        if s.size:
            assert scores[0, i] == pytest.approx(s.sum(), rel=1e-5)
            checked += 1
    assert checked > split.n_items // 2


# -- the tuning protocol -------------------------------------------------------------------------

def test_protocol_budget_argmax_refit_and_paired_test(shop):
    from scipy import stats

    from recnb.data import holdout_validation
    from recnb.evaluation import evaluate_per_user
    from recnb.evaluation.uncertainty import bootstrap_ci, paired_bootstrap
    from recnb.models.dlae import DLAE

    spaces = {"recnb EASE": {"l2": [1.0, 10.0, 100.0, 1000.0]},
              "recnb EDLAE": {"dropout": [0.2, 0.6], "l2": [5.0, 50.0]}}
    models = {"recnb EASE": EASE, "recnb EDLAE": DLAE}
    lines = []
    out = bench.run_protocol(shop, models, spaces, n_splits=2, n_trials=3, seed=4, progress=lines.append)
    assert len(lines) == 4 and out.metric == "ndcg@10"
    # every model gets exactly the budget, on every split
    assert (out.runs["trials"] == 3).all() and len(out.runs) == 4
    assert all(len(search.table) == 3 for search in out.searches.values())
    for s in range(2):
        split = random_holdout(shop, test_ratio=0.25, seed=4 + s)
        validation = holdout_validation(split, ratio=0.25, seed=4 + s)
        search = out.searches[(s, "recnb EASE")]
        # each trial's value is EASE's validation NDCG@10; the chosen λ is their argmax
        values = [evaluate(EASE(l2=l2).fit(validation), validation, metrics=("ndcg",))["ndcg@10"] for l2 in search.table["l2"]]
        np.testing.assert_allclose(search.table["value"], values, rtol=1e-6)
        best = float(search.table["l2"].iloc[int(np.argmax(values))])
        row = out.runs.query("split == @s and model == 'recnb EASE'").iloc[0]
        assert row["best_params"] == {"l2": best}
        # refit on the full training part, scored on the test part
        frame = evaluate_per_user(EASE(l2=best).fit(split), split, metrics=("ndcg",))
        np.testing.assert_allclose(out.per_user["recnb EASE"][s].to_numpy(), frame["ndcg@10"].to_numpy(), rtol=1e-6)
        assert row["test"] == pytest.approx(frame["ndcg@10"].mean())
    table = bench.protocol_table(out, n_resamples=300)
    for name in models:
        runs = out.runs[out.runs["model"] == name]
        assert table.loc[name, "mean"] == pytest.approx(runs["test"].mean())
        assert table.loc[name, "trials"] == 3 and table.loc[name, "splits"] == 2
        interval = bootstrap_ci(out.per_user[name].mean(axis=1), n_resamples=300)
        assert (table.loc[name, "low"], table.loc[name, "high"]) == pytest.approx((interval.low, interval.high))
    # the paired test: per-user means over the splits, the same as scipy on those vectors
    paired = bench.paired_protocol(out, "recnb EDLAE", "recnb EASE", n_resamples=300)
    a, b = out.per_user["recnb EDLAE"].mean(axis=1), out.per_user["recnb EASE"].mean(axis=1)
    d = (a - b).to_numpy()
    assert paired["mean_diff"] == pytest.approx(d.mean()) and paired["users"] == len(d)
    if np.any(d != 0):
        assert paired["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    direct = paired_bootstrap(a, b, n_resamples=300)
    assert (paired["low"], paired["high"], paired["p_value"]) == pytest.approx((direct.low, direct.high, direct.p_value))
    ci = stats.bootstrap((d,), np.mean, n_resamples=300, method="BCa", random_state=0).confidence_interval
    assert paired["low"] == pytest.approx(ci.low, abs=0.01) and paired["high"] == pytest.approx(ci.high, abs=0.01)
    split_diffs = (out.per_user["recnb EDLAE"] - out.per_user["recnb EASE"]).mean(axis=0)
    np.testing.assert_allclose(paired["split_diffs"], split_diffs.to_numpy())


def test_protocol_refuses_a_smaller_budget_or_a_missing_space(shop):
    with pytest.raises(ValueError, match="fewer than n_trials=5"):
        bench.run_protocol(shop, {"recnb EASE": EASE}, {"recnb EASE": {"l2": [1.0, 10.0]}}, n_trials=5)
    with pytest.raises(KeyError, match="no search space"):
        bench.run_protocol(shop, {"mine": EASE}, n_trials=2)


def test_search_spaces_hold_the_budget_and_name_real_parameters():
    from sklearn.model_selection import ParameterGrid

    models = bench.protocol_models()
    for name, factory in models.items():
        space = bench.SEARCH_SPACES[name]
        assert len(ParameterGrid(space)) >= 10, name
        assert set(space) <= set(factory().get_params()), name
    # the two BPRs search the same space, so the seeded random search draws the same settings
    assert bench.SEARCH_SPACES["implicit BPR"] == bench.SEARCH_SPACES["cornac BPR"]
