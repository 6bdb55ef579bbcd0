"""Evaluation: how good a fitted recommender's lists are, with how sure we can be.

The formulas live one layer down, in :mod:`recnb.math.metrics` (precision, recall, NDCG, MAP, hit
rate, MRR over a ranking and a relevance mask); this package runs them on models and splits:

- :mod:`recnb.evaluation.protocol` -- the one evaluation path: ``evaluate`` / ``evaluate_per_user``
  (users a batch at a time, an optional shelf of items), ``relevance``, ``rank_of``, ``compare``;
- :mod:`recnb.evaluation.rating` -- RMSE and MAE of rating models;
- :mod:`recnb.evaluation.auc` -- per-user AUC and GAUC;
- :mod:`recnb.evaluation.beyond` -- coverage, popularity, diversity, exposure, novelty, personalisation;
- :mod:`recnb.evaluation.sampled` -- the sampled protocol (held-out item among sampled negatives);
- :mod:`recnb.evaluation.uncertainty` -- bootstrap intervals and paired tests over users or seeds;
- :mod:`recnb.evaluation.tuning` -- ``tune``: one hyper-parameter search (grid, random, Optuna's
  TPE) over clones of any recommender, scored on a validation split;
- :mod:`recnb.evaluation.blending` -- ``alpha_curve``: a hybrid's quality against its weight α.

Every name below is importable from ``recnb.evaluation`` directly.
"""

from recnb.math.metrics import (
    batch_ndcg,
    f1_at_k,
    hit_rate_at_k,
    hits,
    map_at_k,
    mean,
    mrr,
    ndcg_at_k,
    precision_at_k,
    RANKING_FORMULAS,
    RANKING_FUNCTIONS,
    RANKING_METRICS,
    recall_at_k,
)
from recnb.evaluation.protocol import (
    compare,
    DEFAULT_METRICS,
    evaluate,
    evaluate_per_user,
    evaluated_users,
    rank_of,
    relevance,
)
from recnb.evaluation.rating import (
    mae,
    rating_metrics,
    rmse,
)
from recnb.evaluation.auc import (
    bpr_auc_bound,
    gauc,
    user_auc,
)
from recnb.evaluation.beyond import (
    catalogue_coverage,
    exposure_counts,
    exposure_gini,
    intra_list_diversity,
    mean_jaccard,
    mean_popularity,
    novelty,
    personalisation,
)
from recnb.evaluation.sampled import (
    held_out_negatives,
    sampled_rank_metrics,
    sampled_ranks,
)

from recnb.evaluation.tuning import (
    TuneResult,
    tune,
)
from recnb.evaluation.blending import (
    alpha_curve,
)

__all__ = [
    "bpr_auc_bound",
    "batch_ndcg",
    "f1_at_k",
    "hit_rate_at_k",
    "hits",
    "map_at_k",
    "mean",
    "mrr",
    "ndcg_at_k",
    "precision_at_k",
    "RANKING_FORMULAS",
    "RANKING_FUNCTIONS",
    "RANKING_METRICS",
    "recall_at_k",
    "compare",
    "DEFAULT_METRICS",
    "evaluate",
    "evaluate_per_user",
    "evaluated_users",
    "rank_of",
    "relevance",
    "mae",
    "rating_metrics",
    "rmse",
    "gauc",
    "user_auc",
    "catalogue_coverage",
    "exposure_counts",
    "exposure_gini",
    "intra_list_diversity",
    "mean_jaccard",
    "mean_popularity",
    "novelty",
    "personalisation",
    "held_out_negatives",
    "sampled_rank_metrics",
    "sampled_ranks",
    "TuneResult",
    "tune",
    "alpha_curve",
]
