"""recnb's implicit ALS against implicit's on MovieLens-100k: NDCG@10 and fit seconds, 1 and 2 threads.

    nice -n 5 .venv/bin/python benchmarks/als.py [--data movielens|shop] [--seed 0] [--repeats 3]

Protocol of notebook 08: every rating a positive, a per-user random 75/25 split
(``random_holdout(load_movielens(), 0.25, seed)``; ``--data shop``: ``make_shop(seed)`` split
80/20), full ranking of each user's unseen items, NDCG@10 by :func:`recnb.evaluation.evaluate`.

Both libraries get the same factors, regularisation and iterations (``--factors``, ``--l2``,
``--iterations``) and the same confidence ``c_ui = 1 + α r_ui``: recnb's ``alpha=α`` is implicit's
``alpha=1 + α``, since implicit takes ``alpha · r_ui`` itself as the confidence (see
:mod:`recnb.models.als`). Each solver is paired with implicit's: recnb ``cg`` (3 steps) with
implicit's default ``use_cg=True`` (3 steps), recnb ``cholesky`` with ``use_cg=False``. Every fit
runs under the same thread count (``--threads``, default 1 and 2: recnb's torch threads, implicit's
OpenMP threads, BLAS held to one thread for implicit as it asks, see :class:`PeerALS`); the
fit time printed is the fastest of ``--repeats`` fits (the same seed, so the same model). Then one
check, printed as PASS/FAIL: recnb's NDCG@10 within 0.005 of implicit's for each solver (issue 21).

Timings are measured here, never asserted by tests; on a shared machine they are noisy (run it on
a quiet one for numbers to quote).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Self

import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from recnb.data import make_shop, random_holdout
from recnb.data.movielens import HOW_TO_GET, find_movielens, load_movielens
from recnb.data.schema import Split
from recnb.evaluation import evaluate
from recnb.models.als import ALSRecommender
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.studies.bench import require, thread_limit

TOLERANCE = 0.005


class PeerALS(Recommender):
    """``implicit.als.AlternatingLeastSquares`` as implicit recommends running it: its own ``threads``
    OpenMP threads over the rows, BLAS held to one thread (recnb's :class:`~recnb.studies.bench.ImplicitALS`
    adapter holds BLAS to ``threads`` too, which implicit warns against); ``use_cg`` picks its solver."""

    def __init__(self, factors: int, regularization: float, alpha: float, iterations: int, use_cg: bool, seed: int,
                 threads: int) -> None:
        self.params = {"factors": factors, "regularization": regularization, "alpha": alpha, "iterations": iterations,
                       "use_cg": use_cg, "random_state": seed, "num_threads": threads}

    def fit(self, split: Split) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares

        self.remember_split(split)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(**self.params)
            model.fit(split.train_csr("binary"), show_progress=False)
        self.user_factors_, self.item_factors_ = model.user_factors, model.item_factors
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        u = as_user_tensor(users, self.n_users_).numpy()
        return torch.from_numpy(self.user_factors_[u] @ self.item_factors_.T)


def fastest_fit(make: Callable[[], Recommender], split: Split, repeats: int, threads: int) -> tuple[Recommender, float]:
    """The last of ``repeats`` fits of fresh ``make()`` models and the fastest fit's seconds."""
    best = float("inf")
    for _ in range(repeats):
        model = make()
        with thread_limit(threads):
            start = time.perf_counter()
            model.fit(split)
            best = min(best, time.perf_counter() - start)
    return model, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--data", choices=("movielens", "shop"), default="movielens")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of every model (default 0)")
    parser.add_argument("--factors", type=int, default=32, help="embedding_dim / factors (default 32)")
    parser.add_argument("--l2", type=float, default=30.0, help="l2 / regularization λ (default 30)")
    parser.add_argument("--alpha", type=float, default=3.0, help="recnb's α in c = 1 + α r (default 3)")
    parser.add_argument("--iterations", type=int, default=15, help="ALS sweeps (default 15)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=3, help="fits per model, the fastest timed (default 3)")
    args = parser.parse_args()
    require("implicit")

    if args.data == "movielens":
        if find_movielens() is None:
            raise SystemExit("MovieLens-100k is not installed. " + HOW_TO_GET)
        split = random_holdout(load_movielens(), test_ratio=0.25, seed=args.seed)
    else:
        split = random_holdout(make_shop(seed=args.seed), seed=args.seed)
    print(f"{args.data}: {split.n_users} users, {split.n_items} items, {split.train_csr().nnz} training pairs; "
          f"factors {args.factors}, λ {args.l2:g}, α {args.alpha:g} (implicit alpha {1 + args.alpha:g}), "
          f"{args.iterations} iterations, fastest of {args.repeats} fits")

    rows = []
    for threads in args.threads:
        for solver in ("cg", "cholesky"):
            ours = partial(ALSRecommender, embedding_dim=args.factors, l2=args.l2, alpha=args.alpha,
                           iterations=args.iterations, solver=solver, seed=args.seed, threads=threads)
            peer = partial(PeerALS, factors=args.factors, regularization=args.l2, alpha=1 + args.alpha,
                           iterations=args.iterations, use_cg=solver == "cg", seed=args.seed, threads=threads)
            for library, make in (("recnb", ours), ("implicit", peer)):
                model, seconds = fastest_fit(make, split, args.repeats, threads)
                ndcg = evaluate(model, split, k=10)["ndcg@10"]
                rows.append({"threads": threads, "solver": solver, "library": library, "ndcg@10": ndcg,
                             "fit_s": seconds})
                print(f"  {threads} thread(s) {solver:8s} {library:8s} NDCG@10 {ndcg:.4f}  fit {seconds:.3f} s",
                      flush=True)

    table = pd.DataFrame(rows).pivot_table(index=["threads", "solver"], columns="library", values=["ndcg@10", "fit_s"])
    table[("fit_s", "recnb/implicit")] = table[("fit_s", "recnb")] / table[("fit_s", "implicit")]
    print()
    print(table.round(4).to_string())
    print()
    gap = (table[("ndcg@10", "recnb")] - table[("ndcg@10", "implicit")]).abs()
    for (threads, solver), value in gap.items():
        verdict = "PASS" if value <= TOLERANCE else "FAIL"
        print(f"{verdict}: {solver}, {threads} thread(s): |NDCG@10 recnb − implicit| = {value:.4f} "
              f"(target ≤ {TOLERANCE})")


if __name__ == "__main__":
    main()
