"""The notebook layer: every notebook runs through the report runner in the smoke profile, and
what it records must hold. Plus the form every committed notebook keeps."""

from __future__ import annotations

import ast
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
    "15_product_search", "16_nearest_neighbours",
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
    # for items nobody has touched, CF knows nothing: only alpha = 0 (content alone) finds them
    assert m["best_alpha_new_items"] == 0.0
    assert m["ndcg@10_new_items_best"] > 0.03
    # 6.5: item-kNN cannot place new items; the per-item blends and reserved slots do (smoke run:
    # kNN 0.005, support 0.26, switching 0.33, slots 0.17, learned 0.10), without losing on all items
    assert m["ndcg@10_new_itemknn"] < 0.02
    for key in ("support", "switching"):
        assert m[f"ndcg@10_new_{key}"] > m["ndcg@10_new_itemknn"] + 0.15
        assert m[f"ndcg@10_all_{key}"] > m["ndcg@10_all_itemknn"] - 0.01
    assert m["ndcg@10_new_slots"] > m["ndcg@10_new_itemknn"] + 0.05
    assert m["ndcg@10_new_learned"] > m["ndcg@10_new_itemknn"]
    assert m["ndcg@10_all_switching_minus_itemknn"] == pytest.approx(m["ndcg@10_all_switching"] - m["ndcg@10_all_itemknn"], abs=1e-3)
    # 6.6 reads the committed replication over five seeds: the per-item blends beat content alone on
    # new items (committed means +0.17, +0.17, +0.11; interval low ends +0.15, +0.15, +0.09), and on all items
    # their interval against item-kNN holds 0
    assert m["replicated_seeds"] >= 5
    for key, low in (("support", 0.1), ("switching", 0.1), ("learned", 0.05)):
        assert m[f"replicated_new_{key}_minus_content_ci_low"] > low
    for key in ("support", "switching", "learned"):
        assert m[f"replicated_all_{key}_minus_itemknn_ci_low"] < 0 < m[f"replicated_all_{key}_minus_itemknn_ci_high"]


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
    # the adversaries attack the same targets and facts: blurred stars never help, known dates never hurt
    for k in (1, 2, 4, 8):
        assert m[f"reidentified_at_{k}_ratings_within_one_star"] <= m[f"reidentified_at_{k}_ratings"]
        assert m[f"reidentified_at_{k}_ratings_with_dates"] >= m[f"reidentified_at_{k}_ratings"]
    assert m["reidentified_at_2_ratings_with_dates"] > m["reidentified_at_2_ratings"] + 0.1
    # Laplace popularity: a large epsilon keeps the ranking, a tiny one destroys it
    assert m["ndcg@10_dp_popularity_user_eps_max"] > m["ndcg@10_dp_popularity_user_eps_min"] + 0.05
    assert m["ndcg@10_dp_popularity_user_eps_max"] > m["ndcg@10_random"]
    # DP-SGD: more noise, smaller epsilon, worse ranking
    assert m["epsilon_dp_sgd_sigma_1"] > m["epsilon_dp_sgd_sigma_2"]
    assert m["ndcg@10_dp_sgd_sigma_0"] > m["ndcg@10_dp_sgd_sigma_2"] + 0.05
    # few FedAvg rounds over 4 clients lag centralised SGD at every seed (the interval of the gap lies below 0)
    assert m["ndcg@10_centralised_sgd"] > m["ndcg@10_fedavg"] and m["ndcg@10_fedavg_minus_centralised_high"] < 0
    # DP-FedAvg and centralised DP-SGD at the same (q, sigma, epochs) spend the same epsilon (parallel composition)
    assert m["epsilon_dp_fedavg"] == pytest.approx(m["epsilon_dp_centralised"]) and 0 < m["epsilon_dp_fedavg"] < 50
    assert m["ndcg@10_dp_centralised"] < m["ndcg@10_centralised_sgd"]
    # group privacy of the median user's interactions: n eps, and a delta far above the per-interaction 1e-5
    assert m["group_epsilon_median_user"] > m["epsilon_dp_sgd_sigma_1"] and m["group_delta_median_user"] > 1e-3
    # generalisation only merges classes; suppressing for 5-anonymity removes at least the unique rows
    assert m["k_anonymity_coarsest_generalisation"] >= m["k_anonymity_quasi_identifiers"]
    assert m["suppressed_share_for_5_anonymity"] >= m["unique_share_coarsest_generalisation"]
    # composition of daily eps = 0.1 releases: advanced loses to basic over a month, wins over a year
    assert m["epsilon_basic_composition_365_releases"] == pytest.approx(36.5)
    assert m["epsilon_advanced_composition_30_releases"] > m["epsilon_basic_composition_30_releases"]
    assert m["epsilon_advanced_composition_365_releases"] < m["epsilon_basic_composition_365_releases"]
    assert 30 < m["composition_crossover_releases"] <= 365
    # the exact optimum lies below both bounds; the advanced bound without its linear term falls below it (no bound)
    for k in (30, 365):
        assert m[f"epsilon_optimal_composition_{k}_releases"] <= min(m[f"epsilon_advanced_composition_{k}_releases"],
                                                                      m[f"epsilon_basic_composition_{k}_releases"])
    assert m["epsilon_sqrt_term_only_365_releases"] < m["epsilon_optimal_composition_365_releases"]


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
    # category lift in the history names the generator's complement of every category
    assert m["complement_categories_found"] == 1.0
    # the category complement reads only the anchor's category, yet beats item-level lift (smoke run 0.73 vs 0.28)
    assert m["ndcg@10_category_complement"] > m["ndcg@10_lift"] + 0.2
    # a head trained on complementarity beats the pretrained similarity, which ranks substitutes first
    # (smoke run: 0.108 vs 0.028 with the head alone on the frozen encoder, one epoch)
    assert m["ndcg@10_fine-tuned"] > m["ndcg@10_frozen_cosine"] + 0.05
    assert m["hit_rate@10_lift"] > 0.3  # lift has history for most test anchors: far above chance
    # the model learned: validation MSE below the best constant p(1-p) = 0.1875 (3 negatives per positive)
    assert m["best_val_mse"] < 0.1875


def _benchmark(m: dict[str, Any]) -> None:
    # the shop's protocol ran live: every model got the same budget, and the choice is the validation argmax
    assert m["shop_trials_min"] == m["shop_trials_max"] == m["shop_n_trials"]
    assert m["shop_ease_lambda_is_argmax"] == 1.0
    assert m["shop_best_recnb_ndcg"] > m["shop_ndcg@10_recnb_popularity"]
    assert m["shop_paired_low"] <= m["shop_paired_diff"] <= m["shop_paired_high"]
    # on a random split, held-out items come from the sessions that made the training items: the
    # oracle of true view probabilities beats the oracle of true taste
    assert m["shop_ndcg@10_oracle_true_view"] > m["shop_ndcg@10_oracle_true_taste"]
    assert m["shop_future_ndcg@10_oracle_view"] > m["shop_future_ndcg@10_best_model"] > 0
    from recnb.studies.bench import peers_available

    if any(peers_available().values()):  # the bench extra is installed: the peers must have run
        assert m["shop_best_peer_ndcg"] > m["shop_ndcg@10_recnb_popularity"]
    if "ml_paired_diff" in m:  # the committed MovieLens tables were read
        assert m["ml_paired_low"] <= m["ml_paired_diff"] <= m["ml_paired_high"]
        assert m["ml_best_recnb_ndcg"] > 0.3 and m["ml_best_peer_ndcg"] > 0.3


def _scaling_out(m: dict[str, Any]) -> None:
    # DDP (2 forked processes) and 1 process both learned (seeds 0-2: margins 0.05-0.15 over popularity)
    assert m["ndcg@10_1proc"] > m["ndcg@10_popularity"] + 0.03
    assert m["ndcg@10_2proc_scaled_lr"] > m["ndcg@10_popularity"] + 0.03
    assert m["ndcg@10_2proc"] > m["ndcg@10_popularity"]
    # comparable quality (5 epochs on a tiny shop: a looser tolerance than tests/models/test_ddp.py's 0.06)
    assert abs(m["ndcg@10_1proc"] - m["ndcg@10_2proc_scaled_lr"]) < 0.1
    # 9.7: the per-triple SGD trainer (30 epochs) and the default Adagrad one both learn (smoke, seed 0:
    # 0.458 and 0.465 against popularity 0.181; default sizes 0.246 and 0.264 against 0.086)
    assert m["ndcg@10_sgd_per_triple"] > m["ndcg@10_popularity"] + 0.05
    assert m["ndcg@10_adagrad_defaults"] > m["ndcg@10_popularity"] + 0.05


def _product_search(m: dict[str, Any]) -> None:
    # recnb's BM25 is bm25s' Lucene BM25 and its graded NDCG is trec_eval's, on the notebook's own data
    assert m["bm25_max_abs_diff_bm25s"] < 1e-6 and m["trec_max_abs_diff"] < 1e-6
    # both retrievers far above a random ranking (smoke run: BM25 0.73, dense 0.86, random 0.06)
    assert m["ndcg@10_bm25"] > m["ndcg@10_random"] + 0.4 and m["ndcg@10_dense"] > m["ndcg@10_random"] + 0.4
    # a synonym shares no token with any item: dense finds it, BM25 mostly cannot (smoke: 0.86 vs 0.35)
    assert m["ndcg@10_synonym_dense"] > m["ndcg@10_synonym_bm25"] + 0.3
    # exact attribute words are BM25's strength (smoke: 0.96 vs 0.91)
    assert m["ndcg@10_attribute_bm25"] > m["ndcg@10_attribute_dense"]
    # spelling the misspelled queries right recovers much of BM25's loss (smoke: +0.35)
    assert m["ndcg@10_misspelling_intended_minus_typed"] > 0.15
    # the headline comparison comes with its interval around it
    assert m["hybrid_gain_low"] <= m["hybrid_gain"] <= m["hybrid_gain_high"]
    # 15.6: every ranker's NDCG is a proper value, and weighting clicks by 1/propensity helps the
    # pairwise and listwise rankers (smoke, seed 0: RankNet 0.790 vs 0.771, listwise 0.794 vs 0.782)
    for name in ("bm25", "dense", "first_stage", "ranknet_ips", "ranknet_naive", "listwise_ips", "listwise_naive",
                 "lambdarank_ips", "lambdarank_naive", "lambdamart_ips", "lambdamart_naive"):
        assert 0 < m[f"ltr_ndcg@10_{name}"] <= 1
    assert m["ltr_ndcg@10_ranknet_ips"] > m["ltr_ndcg@10_ranknet_naive"] + 0.01
    assert m["ltr_ndcg@10_listwise_ips"] > m["ltr_ndcg@10_listwise_naive"] + 0.005


def _nearest_neighbours(m: dict[str, Any]) -> None:
    # an IVF that probes every cell is exact: recall 1 (2-D toy and the clustered vectors), and
    # retrieve-then-rank through it returns exactly the model's lists (no NDCG lost at all)
    assert m["toy_recall@10_all_cells"] == 1.0 and m["recall@10_ivf_all_cells"] == 1.0
    assert m["shop_list_recall@10_all_cells"] == 1.0 and m["shop_ndcg_loss_all_cells"] == 0.0
    # one probed cell misses neighbours (smoke: toy 0.87, clustered 0.55), and recall never falls as nprobe grows
    assert m["toy_recall@10_nprobe1"] < 0.95 and m["recall@10_ivf_nprobe1"] < 0.9
    assert m["recall@10_ivf_rises"] == 1.0
    # the augmentation trick: argmin distance = argmax inner product for every query; raw L2 is not MIPS
    assert m["mips_mismatches_augmented"] == 0 and m["mips_mismatches_raw"] > 0
    # one shop cell loses most of the exact lists (smoke: list recall 0.08 ip, 0.17 l2) and with them NDCG
    assert m["shop_list_recall@10_nprobe1_ip"] < 0.5 and m["shop_list_recall@10_nprobe1_l2"] < 0.5
    assert m["shop_ndcg@10_rtr_nprobe1_ip"] < m["shop_ndcg@10_exact"]


EXPECTATIONS: dict[str, Check] = {
    "16_nearest_neighbours": _nearest_neighbours,
    "15_product_search": _product_search,
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
    # every name the parameters cell assigns is one papermill can inject (a comment papermill cannot
    # parse silently drops its parameter from the list)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert assigned == set(declared), f"not injectable: {sorted(assigned - set(declared))}"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_profile(path: Path, tmp_path: Path):
    report = run_report([path], profile="smoke", out_dir=tmp_path, name="smoke", html=False, log=lambda _: None)
    (result,) = report.results
    assert result.status == "ok", result.error
    EXPECTATIONS[path.stem](result.metrics)
