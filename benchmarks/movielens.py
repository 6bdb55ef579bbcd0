"""recnb against implicit, cornac and LensKit on MovieLens-100k, every model tuned with the same budget.

    nice -n 5 .venv/bin/python benchmarks/movielens.py [--splits 5] [--trials 8] [--seed 0] [--threads 1]

The protocol of notebook 08 (issue 19), ``recnb.studies.bench.run_protocol``: every rating a
positive; for each of ``--splits`` per-user random 75/25 splits (seeds ``seed, seed + 1, ...``) a
validation split is carved out of the training part (25 % of each user's training pairs); every
model, recnb's and the peers', gets the same random search (``--trials`` distinct settings drawn
from its space in ``recnb.studies.bench.SEARCH_SPACES``, seeded by the split's seed, scored by
NDCG@10 on validation), then its best setting is refit on the full training part (timed) and
scored on the test part (full ranking of each user's unseen items, k = 10). Every model runs under
the same thread limit (``--threads``, 1 by default). Writes to ``--out-dir``:

- ``movielens_tuned.csv``: one row per model: mean NDCG@10 over the splits, its 95 % bootstrap
  interval over users (each user's mean over the splits), the spread of the split means, refit
  and search seconds, trials per split;
- ``movielens_runs.csv``: one row per (split, model): the chosen parameters (JSON), validation
  and test NDCG@10, seconds;
- ``movielens_trials.csv``: every trial of every search (split, model, parameters as JSON,
  validation NDCG@10, fit seconds);
- ``movielens_paired.csv``: the paired test of recnb's best model against the best tuned peer
  (and against every other peer), per-user means over the splits.

Fit times are one run on a shared machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import pandas as pd

from recnb.data.movielens import HOW_TO_GET, find_movielens, load_movielens
from recnb.studies.bench import (SEARCH_SPACES, Protocol, paired_protocol, protocol_models, protocol_table,
                                 run_protocol)

ARGS: argparse.Namespace | None = None  # the parsed arguments, for the forked split workers


def _models() -> dict:
    models = protocol_models(seed=ARGS.seed, threads=ARGS.threads, bpr=ARGS.bpr)
    return {name: models[name] for name in ARGS.models} if ARGS.models else models


def one_split(s: int) -> tuple[pd.DataFrame, dict[str, pd.Series], pd.DataFrame]:
    """Split ``s`` of the protocol (seed ``seed + s``): its rows, per-user test values and every trial."""
    out = run_protocol(load_movielens(), _models(), n_splits=1, n_trials=ARGS.trials, seed=ARGS.seed + s,
                       threads=ARGS.threads, progress=lambda line: print(f"  [seed {ARGS.seed + s}]", line, flush=True))
    trials = pd.concat([search.table.drop(columns=[c for c in search.table.columns if c not in ("trial", "value", "fit_s")])
                        .assign(split=s, model=name, params=[json.dumps({k: search.table[k].iloc[i] for k in search.table.columns
                                                                         if k not in ("trial", "value", "users", "fit_s")},
                                                                        sort_keys=True, default=float)
                                                             for i in range(len(search.table))])
                        for (_, name), search in out.searches.items()], ignore_index=True)
    return out.runs.assign(split=s), {name: frame[0] for name, frame in out.per_user.items()}, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--splits", type=int, default=5, help="random 75/25 splits (default %(default)s)")
    parser.add_argument("--trials", type=int, default=8, help="random-search trials per model and split (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first split, the searches and every model (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads for every model (default 1)")
    parser.add_argument("--bpr", action="store_true",
                        help="include recnb's BPR embedding (a Lightning model: about 10x the cost of the others)")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help=f"run only these models (default: all installed); names: {', '.join(SEARCH_SPACES)}")
    parser.add_argument("--jobs", type=int, default=1,
                        help="splits run at once in forked processes (each model still on --threads threads; default 1)")
    parser.add_argument("--n-resamples", type=int, default=2000, help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--out-dir", default="benchmarks/results", help="where the CSVs go (default %(default)s)")
    global ARGS
    args = ARGS = parser.parse_args()

    if find_movielens() is None:
        raise SystemExit("MovieLens-100k is not installed. " + HOW_TO_GET)
    installed = protocol_models(bpr=True)
    unknown = [m for m in args.models or [] if m not in installed]
    if unknown:
        raise SystemExit(f"--models: unknown or not installed {unknown}; choose from {list(installed)}")
    models = _models()
    print(f"MovieLens-100k: {args.splits} splits x {len(models)} models x {args.trials} trials, "
          f"{args.threads} thread(s) each, {args.jobs} split(s) at once; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    start = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            parts = pool.map(one_split, range(args.splits), chunksize=1)
    else:
        parts = [one_split(s) for s in range(args.splits)]
    result = Protocol(pd.concat([runs for runs, _, _ in parts], ignore_index=True),
                      {name: pd.DataFrame({s: values[name] for s, (_, values, _) in enumerate(parts)}) for name in models},
                      {}, "ndcg@10")
    trials = pd.concat([t for _, _, t in parts], ignore_index=True)
    elapsed = time.perf_counter() - start
    table = protocol_table(result, n_resamples=args.n_resamples, seed=args.seed)

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.rename_axis("model").to_csv(out / "movielens_tuned.csv", float_format="%.6g")
    runs = result.runs.assign(best_params=result.runs["best_params"].map(lambda p: json.dumps(p, sort_keys=True)))
    runs.to_csv(out / "movielens_runs.csv", index=False, float_format="%.6g")
    trials[["split", "model", "trial", "params", "value", "fit_s"]].to_csv(out / "movielens_trials.csv", index=False,
                                                                       float_format="%.6g")
    ours, theirs = table[table["library"] == "recnb"], table[table["library"] != "recnb"]
    paired = []
    if len(ours) and len(theirs):
        best = ours.index[0]
        for peer in theirs.index:  # best tuned peer first
            test = paired_protocol(result, best, peer, n_resamples=args.n_resamples, seed=args.seed)
            paired.append({**test, "split_diffs": json.dumps([round(v, 6) for v in test["split_diffs"]])})
        pd.DataFrame(paired).to_csv(out / "movielens_paired.csv", index=False, float_format="%.6g")

    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(f"\n{result.metric} over {args.splits} splits ({elapsed / 60:.1f} min in all; load average "
              f"{os.getloadavg()[0]:.1f} now)\n")
        print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if paired:
        p = paired[0]
        print(f"\n{p['a']} - {p['b']} (best tuned peer): {p['mean_diff']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}] "
              f"over {p['users']} users, bootstrap p = {p['p_value']:.4f}, Wilcoxon p = {p['wilcoxon_p']:.2g}; "
              f"ahead on {p['splits_ahead']} of {args.splits} splits")
    print(f"written to {out}/movielens_tuned.csv, movielens_runs.csv, movielens_trials.csv, movielens_paired.csv")


if __name__ == "__main__":
    main()
