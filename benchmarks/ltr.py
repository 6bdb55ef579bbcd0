"""Learning to rank from clicks: NDCG@10 on held-out queries of BM25, dense retrieval, the hybrid first
stage, RankNet / LambdaRank / listwise softmax trained on a click log with and without inverse
propensity weights, and LightGBM's LambdaMART on the same features and clicks.

    nice -n 5 .venv/bin/python benchmarks/ltr.py [--seeds 5] [--n-items 500] [--encoder minilm]

The defaults are chapter 15's sizes. For each seed ``s`` (``0..seeds-1``): a synthetic shop
(``--n-users``, ``--n-items`` over 16 categories, ``--n-interactions``; seed ``s``), ``--n-train-queries`` personalised training queries and ``--n-test-queries`` held-out ones
(:func:`recnb.search.ltr.click_experiment`): each query's ``--depth`` candidates are the top of the
hybrid first stage (min–max BM25 + cosine, α = 0.5), the logging ranker shows them best sellers
first, and clicks follow the position-based model with examination ``rank^-η`` (``--eta``). Every
ranker re-orders the held-out queries' candidates; NDCG@10 uses the true grades (gains 2^rel − 1)
over the whole catalogue (:func:`recnb.search.ltr.compare_rankers`).

Printed and written to ``benchmarks/results/ltr.csv`` (columns ``quantity, method, ips, seeds,
mean, low, high, t_low, t_high``): rows ``quantity = ndcg@10``, one per method and ``ips`` (``yes`` /
``no``; empty for the unlearned orders), hold the mean over seeds of each seed's mean NDCG@10, its 95 %
percentile bootstrap interval over seeds (``low, high``: :func:`recnb.evaluation.uncertainty.bootstrap_ci`)
and its 95 % Student-t interval over seeds (``t_low, t_high``: :func:`recnb.evaluation.uncertainty.t_interval`,
wider and the better guide with five seeds); rows ``quantity = difference`` hold per-seed
differences, paired by seed, with the same two intervals: "with
IPS minus without" for each ranker, the best recnb ranker with IPS minus the first stage and minus
BM25, and minus LambdaMART with IPS (the issue's target: within 0.01 or ahead). An interval that
holds 0 is no difference.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recnb.data.synthetic import make_shop
from recnb.evaluation.uncertainty import bootstrap_ci, t_interval
from recnb.models.text_encoder import TextEncoder, TfidfEncoder
from recnb.search.ltr import click_experiment, compare_rankers

RESULTS = Path(__file__).resolve().parent / "results" / "ltr.csv"


def interval(values: np.ndarray) -> dict[str, float]:
    """Mean over seeds, its 95 % percentile bootstrap interval (low, high) and its 95 % t interval."""
    ci, t = bootstrap_ci(values, method="percentile", seed=0), t_interval(values)
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "t_low": t.low, "t_high": t.high}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="shops (and click logs) to average over (default 5)")
    parser.add_argument("--n-items", type=int, default=500, help="items per shop (default 500, chapter 15's)")
    parser.add_argument("--n-users", type=int, default=300, help="users per shop (default 300)")
    parser.add_argument("--n-interactions", type=int, default=3000,
                        help="interactions per shop, the history popularity and taste are counted from (default 3000)")
    parser.add_argument("--n-train-queries", type=int, default=1000, help="queries in the click log (default 1000)")
    parser.add_argument("--n-test-queries", type=int, default=300, help="held-out queries (default 300)")
    parser.add_argument("--depth", type=int, default=20, help="candidates per query, shown and re-ranked (default 20)")
    parser.add_argument("--eta", type=float, default=1.0, help="position bias: examination = rank^-eta (default 1)")
    parser.add_argument("--max-epochs", type=int, default=10, help="epochs of each Lightning ranker (default 10)")
    parser.add_argument("--encoder", choices=("minilm", "tfidf"), default="minilm",
                        help="the dense side: the course's MiniLM (disk-cached) or TF-IDF (default minilm)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"CSV to write (default {RESULTS})")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (an interval over seeds needs two)")
    encoder = TextEncoder() if args.encoder == "minilm" else None
    per_seed = []
    for seed in range(args.seeds):
        t = time.perf_counter()
        shop = make_shop(n_users=args.n_users, n_items=args.n_items, n_categories=16, n_interactions=args.n_interactions,
                         seed=seed)
        experiment = click_experiment(shop, args.n_train_queries, args.n_test_queries, args.depth, args.eta,
                                      encoder=encoder if encoder is not None else TfidfEncoder(), seed=seed)
        table = compare_rankers(experiment, max_epochs=args.max_epochs, seed=seed)
        means = table.groupby(["method", "ips"], dropna=False)["ndcg"].mean().rename("ndcg").reset_index()
        per_seed.append(means.assign(seed=seed))
        print(f"seed {seed}: {int(experiment.log['click'].sum())} clicks on {len(experiment.log)} impressions, "
              f"{time.perf_counter() - t:.0f} s")
    runs = pd.concat(per_seed, ignore_index=True)
    runs["ips"] = runs["ips"].map({0.0: "no", 1.0: "yes"}).fillna("")
    rows = []
    for (method, ips), g in runs.groupby(["method", "ips"], sort=False):
        rows.append({"quantity": "ndcg@10", "method": method, "ips": ips, "seeds": len(g)}
                    | interval(g.sort_values("seed")["ndcg"].to_numpy()))
    result = pd.DataFrame(rows).sort_values("mean", ascending=False, ignore_index=True)
    wide = runs.pivot_table(index="seed", columns=["method", "ips"], values="ndcg")
    best = max(("ranknet", "lambdarank", "listwise"), key=lambda m: wide[(m, "yes")].mean())
    differences = {f"{m} IPS - no IPS": wide[(m, "yes")] - wide[(m, "no")]
                   for m in ("ranknet", "lambdarank", "listwise", "lambdamart")}
    for other in ("first stage", "bm25"):
        differences[f"{best} IPS - {other}"] = wide[(best, "yes")] - wide[(other, "")]
    differences[f"{best} IPS - lambdamart IPS"] = wide[(best, "yes")] - wide[("lambdamart", "yes")]
    diff_rows = [{"quantity": "difference", "method": name, "ips": "", "seeds": len(d)} | interval(d.to_numpy())
                 for name, d in differences.items()]
    table = pd.concat([result, pd.DataFrame(diff_rows)], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.round(4).to_csv(args.out, index=False)
    print(f"\nNDCG@10 on held-out queries, mean over {args.seeds} seeds, 95 % percentile bootstrap interval (low, high) "
          "and 95 % t interval (t_low, t_high) "
          f"({args.n_items} items, {args.n_train_queries} logged queries, depth {args.depth}, eta {args.eta:g}, "
          f"{args.encoder}):")
    print(result.drop(columns="quantity").round(3).to_string(index=False))
    print("\nper-seed differences, mean [95 % percentile bootstrap interval] [95 % t interval] "
          "(an interval holding 0 is no difference):")
    for row in diff_rows:
        print(f"  {row['method']:32s} {row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}] "
              f"t [{row['t_low']:+.3f}, {row['t_high']:+.3f}]")
    d = diff_rows[-1]
    verdict = "ahead or within 0.01" if d["mean"] >= -0.01 else "behind by more than 0.01"
    print(f"  -> the best recnb ranker ({best}) against LambdaMART, both with IPS: {verdict} (the issue's target)")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
