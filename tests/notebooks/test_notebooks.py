"""The notebook layer: every notebook runs through the report runner in the smoke profile, and
what it records must hold. Plus the form every committed notebook keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import nbformat
import pytest

from recnb.report.parameters import declared_parameters, load_profiles
from recnb.report.runner import DEFAULT_KERNEL, NOTEBOOKS_DIR, run_report

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
COURSE = [
    "00_quickstart", "01_cosine_and_ranking", "02_sigmoid_loss", "03_data_asset_inventory",
    "04_collaborative_filtering", "05_content_features", "06_hybrid_blending", "07_evaluation",
    "08_benchmark", "09_scaling_out", "10_diversity", "11_cold_start_and_exploration", "12_feedback_loops", "13_bundles_by_fine_tuning", "14_privacy",
]

# What each notebook's recorded metrics must satisfy in the smoke profile: name -> check.
Check = Callable[[dict[str, Any]], None]


def _quickstart(m: dict[str, Any]) -> None:
    # trained models beat popularity; the lists sit in the users' true tastes, which no model saw
    # (10 categories: a random category has mean taste 0.1; smoke run 0.27 over all 200 users)
    assert m["ndcg@10_bpr"] > m["ndcg@10_popularity"] + 0.03
    assert m["ndcg@10_hybrid"] > m["ndcg@10_popularity"] + 0.03
    assert m["mean_true_taste_of_recs"] > 0.18


def _cosine_and_ranking(m: dict[str, Any]) -> None:
    # trained embeddings rank far above chance (random scores give ~0.04 on the smoke shop),
    # whether scored by dot product or cosine
    assert m["ndcg@10_dot"] > 0.2 and m["ndcg@10_cosine"] > 0.2


def _sigmoid_loss(m: dict[str, Any]) -> None:
    assert m["ndcg@10_bpr"] > m["ndcg@10_popularity"] + 0.05
    assert m["ndcg@10_bpr"] > m["ndcg@10_positive_only"]
    assert m["ndcg@10_negative_sampling"] > m["ndcg@10_random"] + 0.1
    assert m["ndcg@10_popularity"] > m["ndcg@10_random"]


def _content_features(m: dict[str, Any]) -> None:
    assert m["mean_pool_max_abs_diff"] < 1e-5  # hand mean-pool == the encoder's output
    assert m["category_knn_accuracy_minilm"] > 0.9 and m["category_knn_accuracy_tfidf"] > 0.9
    # items with no interactions: only text can place them
    assert m["ndcg@10_new_items_minilm"] > m["ndcg@10_new_items_popularity"] + 0.1
    assert m["ndcg@10_new_items_tfidf"] > m["ndcg@10_new_items_popularity"] + 0.1


def _data_asset_inventory(m: dict[str, Any]) -> None:
    # MovieLens-100k as GroupLens publishes it: 943 users, 1,682 items, 100,000 ratings
    assert (m["n_users_movielens"], m["n_items_movielens"]) == (943, 1682)
    assert m["sparsity_movielens"] == pytest.approx(1 - 100_000 / (943 * 1682))
    assert 0 < m["rows_dropped_cleaning"] < m["rows_raw_synthetic"] and m["bots_flagged"] >= 1
    # a long tail: item popularity is far from equal, and the head holds most interactions
    assert 0.3 < m["gini_synthetic"] < 0.9 and 0.3 < m["gini_movielens"] < 0.9
    assert m["sparsity_synthetic"] > 0.9


def _collaborative_filtering(m: dict[str, Any]) -> None:
    # the planted tastes make neighbourhoods informative: both kNNs clearly beat popularity
    assert m["ndcg@10_item-knn_synthetic"] > m["ndcg@10_popularity_synthetic"] + 0.1
    assert m["ndcg@10_user-knn_synthetic"] > m["ndcg@10_popularity_synthetic"] + 0.1
    # ~250 star ratings on the smoke shop: bias-only is within noise of the global mean there
    assert m["rmse_bias_only"] < m["rmse_global_mean"] + 0.01


def _hybrid_blending(m: dict[str, Any]) -> None:
    # normalising before blending beats blending raw scores at the same alpha
    assert m["ndcg@10_validation_minmax_alpha_0.5"] > m["ndcg@10_validation_raw_alpha_0.5"] + 0.02
    # the alpha chosen on validation keeps the blend well above content alone on test
    assert m["ndcg@10_hybrid_test"] > m["ndcg@10_content_test"] + 0.05
    # for items nobody has touched, CF knows nothing: the best alpha leans to content, and the
    # blend then finds new items (CF alone scores them all 0, so its NDCG on them is 0)
    assert m["best_alpha_new_items"] <= 0.5
    assert m["ndcg@10_new_items_best"] > 0.03


def _evaluation(m: dict[str, Any]) -> None:
    assert m["ndcg@10_ease"] > 0.3, m["ndcg@10_ease"]
    # 7.7: the sweep of chapter 01 ran every run (2 embedding sizes x the smoke profile's 2 seeds)
    assert m["sweep_runs_ok"] == 4
    assert m["ndcg@10_ease_ci_low"] < m["ndcg@10_ease"] < m["ndcg@10_ease_ci_high"]
    assert m["gauc_ease"] > m["gauc_popularity"] > 0.5
    assert m["personalisation_ease"] > m["personalisation_popularity"]
    assert m["exposure_gini_ease"] < m["exposure_gini_popularity"]
    # the notebook's example: two models whose means differ but whose separate intervals overlap
    assert m["intervals_overlap_ease_runner_up"] == 1.0
    # sampled metrics (the held-out item among sampled negatives) inflate NDCG and reorder models
    assert m["sampled_ndcg@10_ease"] > m["ndcg@10_ease"] + 0.05
    assert m["sampled_flips"] >= 1
    # a time split removes the leakage from the future that a random split allows
    assert m["ndcg@10_ease_time_split"] < m["ndcg@10_ease"]


def _cold_start_and_exploration(m: dict[str, Any]) -> None:
    assert m["click_rate_oracle"] > m["click_rate_random"]
    assert m["true_ndcg_n0_onboarding"] > m["true_ndcg_n0_popularity"]
    assert m["ndcg@10_new_shelf_content"] > m["ndcg@10_new_shelf_itemknn"]
    assert m["regret_thompson"] < m["regret_eps_fixed"]
    # Thompson's regret flattens (sub-linear); fixed-epsilon keeps paying epsilon * gap per round
    assert m["regret_half_ratio_thompson"] < m["regret_half_ratio_eps_fixed"]
    # share of the regret paid in the second half: about 1/2 when it grows linearly
    assert m["regret_half_ratio_thompson"] < 0.35 and m["regret_half_ratio_eps_fixed"] > 0.4
    # CF learns from a new user's first interactions
    assert m["true_ndcg_n3_item-kNN"] > m["true_ndcg_n0_item-kNN"] + 0.1
    assert m["stream_regret_linucb_taste"] < m["stream_regret_thompson"]


def _feedback_loops(m: dict[str, Any]) -> None:
    assert m["log_gini_rise_popularity"] > 0  # rich get richer
    assert m["coverage_last_epsilon_finetune"] > m["coverage_last_greedy_finetune"]
    assert m["exposure_gini_last_epsilon_finetune"] < m["exposure_gini_last_greedy_finetune"]
    assert m["share_last_greedy_retrain"] > m["share_last_popularity"]
    assert m["coverage_last_mmr_finetune"] > m["coverage_last_greedy_finetune"]
    # the replicated finding (means over the smoke profile's seeds): learning from the new rows alone
    # is what hurts, so replaying the whole log restores the share; fine-tuned lists grow alike
    assert m["share_last_finetune_whole_log"] > m["share_last_greedy_finetune"]
    assert m["jaccard_last_greedy_finetune"] > m["jaccard_last_greedy_retrain"]


def _privacy(m: dict[str, Any]) -> None:
    # pseudonymous users are mostly unique on quasi-identifiers; generalisation lowers it
    assert m["unique_share_quasi_identifiers"] > 0.5 and m["k_anonymity_quasi_identifiers"] == 1
    assert m["unique_share_coarsest_generalisation"] < m["unique_share_quasi_identifiers"]
    # a few known ratings re-identify; more knowledge never hurts the attacker
    assert m["reidentified_at_8_ratings"] >= 0.9
    assert m["reidentified_at_8_ratings"] > m["reidentified_at_1_ratings"] + 0.5
    assert m["reidentified_at_8_ratings"] >= m["reidentified_at_2_ratings"] >= m["reidentified_at_1_ratings"]
    # Laplace popularity: a large epsilon keeps the ranking, a tiny one destroys it
    assert m["ndcg@10_dp_popularity_user_eps_max"] > m["ndcg@10_dp_popularity_user_eps_min"] + 0.05
    assert m["ndcg@10_dp_popularity_user_eps_max"] > m["ndcg@10_random"]
    # DP-SGD: more noise, smaller epsilon, worse ranking
    assert m["epsilon_dp_sgd_sigma_1"] > m["epsilon_dp_sgd_sigma_2"]
    assert m["ndcg@10_dp_sgd_sigma_0"] > m["ndcg@10_dp_sgd_sigma_2"] + 0.05
    # few FedAvg rounds over 4 clients lag centralised SGD
    assert m["ndcg@10_centralised_sgd"] > m["ndcg@10_fedavg"]
    # generalisation only merges classes; suppressing for 5-anonymity removes at least the unique rows
    assert m["k_anonymity_coarsest_generalisation"] >= m["k_anonymity_quasi_identifiers"]
    assert m["suppressed_share_for_5_anonymity"] >= m["unique_share_coarsest_generalisation"]
    # composition of daily eps = 0.1 releases: advanced loses to basic over a month, wins over a year
    assert m["epsilon_basic_composition_365_releases"] == pytest.approx(36.5)
    assert m["epsilon_advanced_composition_30_releases"] > m["epsilon_basic_composition_30_releases"]
    assert m["epsilon_advanced_composition_365_releases"] < m["epsilon_basic_composition_365_releases"]
    assert 30 < m["composition_crossover_releases"] <= 365


def _diversity(m: dict[str, Any]) -> None:
    # MMR with lambda < 1 makes lists more varied by category than the base ranking
    assert m["ild_mmr_category"] > m["ild_base"] + 0.05
    assert m["ild_mmr_category_lam0"] > 0.9  # lambda = 0: about one item per category
    # diversifying beyond users' tastes lowers the true-taste mass of the lists
    assert m["taste_mmr_category_lam0"] < m["taste_base"]
    # calibration moves the lists' category mix towards the users' histories
    assert m["kl_calibrated"] < 0.5 * m["kl_base"]
    assert m["explanation_max_abs_error"] < 1e-4  # explanations are exact decompositions
    # a high score cut-off shortens lists, shrinks coverage and raises the precision of what is shown
    assert m["threshold_length_high"] < 5
    assert m["threshold_coverage_high"] < m["threshold_coverage_low"]
    assert m["threshold_precision_high"] > m["threshold_precision_low"]


def _bundles_by_fine_tuning(m: dict[str, Any]) -> None:
    # a head trained on complementarity beats the pretrained similarity, which ranks substitutes first
    assert m["ndcg@10_fine-tuned"] > m["ndcg@10_frozen_cosine"] + 0.1
    assert m["hit_rate@10_lift"] > 0.3  # lift has history for most test anchors: far above chance
    # the model learned: validation MSE below the best constant p(1-p) = 0.1875 (3 negatives per positive)
    assert m["best_val_mse"] < 0.1875


def _benchmark(m: dict[str, Any]) -> None:
    assert m["best_recnb_ndcg"] > m["ndcg@10_recnb_popularity"]
    assert m["ndcg@10_recnb_bpr"] > m["ndcg@10_recnb_popularity"]
    # on a random split, held-out items come from the sessions that made the training items: the
    # oracle of true view probabilities beats the oracle of true taste
    assert m["shop_ndcg@10_oracle_true_view"] > m["shop_ndcg@10_oracle_true_taste"]
    assert m["shop_future_ndcg@10_oracle_view"] > m["shop_future_ndcg@10_best_model"] > 0
    from recnb.studies.bench import peers_available

    if any(peers_available().values()):  # the bench extra is installed: the peers must have run
        assert m["best_peer_ndcg"] > m["ndcg@10_recnb_popularity"]


def _scaling_out(m: dict[str, Any]) -> None:
    # DDP (2 forked processes) and 1 process both learned (seeds 0-2: margins 0.05-0.15 over popularity)
    assert m["ndcg@10_1proc"] > m["ndcg@10_popularity"] + 0.03
    assert m["ndcg@10_2proc_scaled_lr"] > m["ndcg@10_popularity"] + 0.03
    assert m["ndcg@10_2proc"] > m["ndcg@10_popularity"]
    # comparable quality (5 epochs on a tiny shop: a looser tolerance than tests/models/test_ddp.py's 0.06)
    assert abs(m["ndcg@10_1proc"] - m["ndcg@10_2proc_scaled_lr"]) < 0.1


EXPECTATIONS: dict[str, Check] = {
    "09_scaling_out": _scaling_out,
    "08_benchmark": _benchmark,
    "13_bundles_by_fine_tuning": _bundles_by_fine_tuning,
    "10_diversity": _diversity,
    "14_privacy": _privacy,
    "11_cold_start_and_exploration": _cold_start_and_exploration,
    "12_feedback_loops": _feedback_loops,
    "07_evaluation": _evaluation,
    "04_collaborative_filtering": _collaborative_filtering,
    "06_hybrid_blending": _hybrid_blending,
    "03_data_asset_inventory": _data_asset_inventory,
    "00_quickstart": _quickstart,
    "01_cosine_and_ranking": _cosine_and_ranking,
    "02_sigmoid_loss": _sigmoid_loss,
    "05_content_features": _content_features,
}


def test_the_course_is_complete():
    assert [p.stem for p in NOTEBOOKS] == COURSE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_form(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    assert nb.metadata["kernelspec"]["name"] == DEFAULT_KERNEL
    declared = declared_parameters(path)
    assert {"seed", "progress"} <= set(declared), "every notebook takes seed and progress"
    assert declared["progress"].default == "False", "progress bars are off by default"
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom before committing"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert any(c.source.startswith("# NBVAL_CHECK_OUTPUT") for c in code), "at least one nbval-checked cell"
    assert "papermill" not in nb.metadata, "refresh strips per-run metadata (make notebooks)"
    assert path.stem in load_profiles()["smoke"], "a smoke entry in profiles.yaml"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path: Path, tmp_path: Path):
    report = run_report([path], profile="smoke", out_dir=tmp_path, name="smoke", html=False, log=lambda _: None)
    (result,) = report.results
    assert result.status == "ok", result.error
    EXPECTATIONS[path.stem](result.metrics)
