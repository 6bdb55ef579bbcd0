"""recnb against implicit and cornac on MovieLens-100k: NDCG@10, P@10, R@10, MAP@10 and fit seconds from one run.

    nice -n 5 .venv/bin/python benchmarks/movielens.py [--seed 0] [--out reports/movielens_split.csv]

The protocol of notebook 08 (issue 8): every rating a positive, a per-user random 75/25 split
(``random_holdout(load_movielens(), test_ratio=0.25, seed)``, written to ``--out`` so others can
reuse it), full ranking of each user's unseen items, k = 10. EASE's λ is chosen on a validation
split carved out of the training part. Every model is fitted once under the same thread limit
(``--threads``, 1 by default). Then three checks, printed as PASS/FAIL lines:

- recnb's best model is ahead of every peer (NDCG@10);
- recnb's BPR (``EmbeddingRecommender(loss="bpr")``, its defaults) at least as good as cornac's BPR
  in at most 2x its fit time;
- full-ranking evaluation of all users by the embedding model (score, mask, top-10) ≤ 50 ms.

Timings are measured here and in the notebook, never asserted by tests; on a shared machine they
are noisy (run it on a quiet one for numbers to quote).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from recnb.studies.bench import eval_latency, peer_models, ratio_check, recnb_models, run_benchmark, thread_limit, write_split
from recnb.data import holdout_validation, random_holdout
from recnb.data.movielens import HOW_TO_GET, find_movielens, load_movielens
from recnb.evaluation import tune
from recnb.models.ease import EASE

LAM_GRID = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
LATENCY_TARGET_S = 0.050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of every model (default 0)")
    parser.add_argument("--out", default="reports/movielens_split.csv",
                        help="where to write the split as CSV: user_id,item_id,set (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads for every model (default 1)")
    parser.add_argument("--no-mlp", action="store_true", help="leave out recnb's MLP (the slowest model)")
    args = parser.parse_args()

    if find_movielens() is None:
        raise SystemExit("MovieLens-100k is not installed. " + HOW_TO_GET)
    split = random_holdout(load_movielens(), test_ratio=0.25, seed=args.seed)
    path = write_split(split, args.out)
    print(f"split: {split.n_users} users, {split.n_items} items, {len(split.train)} train / {len(split.test)} test "
          f"pairs (seed {args.seed}) -> {path}")

    validation = holdout_validation(split, ratio=0.25, seed=args.seed)
    with thread_limit(args.threads):
        search = tune(EASE(), validation, validation, {"l2": list(LAM_GRID)}, k=10)
    ease_l2 = search.best_params_["l2"]
    print(f"EASE λ chosen on validation: {ease_l2:g} (NDCG@10 {search.best_value_:.4f} there)")

    models = recnb_models(seed=args.seed, ease_l2=ease_l2, mlp=not args.no_mlp)
    peers, missing = peer_models(seed=args.seed, threads=args.threads)
    for name in missing:
        print(f"peer {name} is not installed (pip install -e \".[bench]\"): left out")
    models.update(peers)
    start = time.perf_counter()
    result = run_benchmark(models, split, k=10, threads=args.threads,
                           progress=lambda name: print(f"  fitting {name}", flush=True))
    table = result.table.sort_values("ndcg@10", ascending=False)
    columns = ["ndcg@10", "precision@10", "recall@10", "map@10", "fit_s", "eval_s"]
    with pd.option_context("display.precision", 4, "display.width", 120):
        print(f"\nMovieLens-100k, full ranking, k = 10 ({len(result.per_user['recnb popularity'])} test users; "
              f"{time.perf_counter() - start:.0f} s in all)\n")
        print(table[columns].to_string(float_format=lambda v: f"{v:.4f}"))

    print()
    ours = table[table["library"] == "recnb"]
    theirs = table[table["library"] != "recnb"]
    if len(theirs):
        best, best_peer = ours["ndcg@10"].idxmax(), theirs["ndcg@10"].idxmax()
        ok = ours["ndcg@10"].max() > theirs["ndcg@10"].max()
        print(f"{'PASS' if ok else 'FAIL'} best recnb model ahead of every peer: {best} "
              f"{ours['ndcg@10'].max():.4f} vs {best_peer} {theirs['ndcg@10'].max():.4f}")
    if "cornac BPR" in table.index:
        check = ratio_check(table, "recnb BPR", "cornac BPR", max_time_ratio=2.0)
        print(f"{'PASS' if check['quality_ok'] else 'FAIL'} recnb BPR NDCG@10 {check['metric_ours']:.4f} >= "
              f"cornac BPR {check['metric_peer']:.4f}")
        print(f"{'PASS' if check['time_ok'] else 'FAIL'} recnb BPR fit time {table.loc['recnb BPR', 'fit_s']:.2f} s "
              f"<= 2 x cornac BPR {table.loc['cornac BPR', 'fit_s']:.2f} s (ratio {check['time_ratio']:.2f})")
    with thread_limit(args.threads):
        latency = eval_latency(result.models["recnb BPR"], split.n_users, k=10)
    print(f"{'PASS' if latency <= LATENCY_TARGET_S else 'FAIL'} full-ranking evaluation of all {split.n_users} users "
          f"by the embedding model: {1000 * latency:.1f} ms (target <= {1000 * LATENCY_TARGET_S:.0f} ms)")


if __name__ == "__main__":
    main()
