"""(positive, negative) pairs per second of one BPR epoch: recnb's EmbeddingRecommender against implicit's BPR.

    nice -n 5 .venv/bin/python benchmarks/bpr_speed.py --size large          # 200,000 x 50,000 x 5,000,000
    .venv/bin/python benchmarks/bpr_speed.py --size medium --profile         # where recnb's epoch goes

Data: the synthetic shop (``make_shop``) split ``random_holdout(data, 0.2, seed)``; both models
train on ``split.train_csr()`` (the distinct training pairs).

- recnb: one epoch of :class:`~recnb.models.embedding.EmbeddingRecommender` (BPR, d=64,
  ``--n-negatives`` 4) for each of ``--optimizers``: ``adagrad`` (the default model, batch 2048:
  sparse gradients where the tables are large) and ``sgd`` (BPR's per-triple step, one compiled
  loop, :mod:`recnb.training.bpr_sgd`; batch ``--sgd-batch-size``, which changes no update, only
  how often Lightning's loop and the sampler run), trained by its Lightning trainer on one thread
  (its default). An epoch visits every training pair once with ``n_negatives`` negatives:
  ``pairs = nnz · n_negatives``. The seconds are the whole ``fit`` (trainer set-up, sampling and,
  for ``sgd``, loading the compiled loop from numba's cache included).
- implicit: ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (64 factors, the bench adapter's
  settings) for ``--iterations`` iterations on ``--threads`` OpenMP threads (default 1 and 2), BLAS
  held to one thread; an iteration draws ``nnz`` (user, positive, negative) samples, so ``pairs =
  nnz`` per iteration; seconds per iteration from implicit's own per-iteration ``callback``.

``--profile`` adds cProfile's top functions of recnb's epoch (process CPU time). Prints the issue-21
target (recnb at least half of implicit's pairs per second with implicit's default threads) as met /
not met. Timings on a shared machine are upper bounds: the load average is printed beside each.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recnb.data import make_shop, random_holdout
from recnb.models.embedding import EmbeddingRecommender
from recnb.studies.bench import require

SIZES = {
    "small": (2_000, 1_000, 100_000),
    "medium": (20_000, 5_000, 500_000),
    "large": (200_000, 50_000, 5_000_000),
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--size", choices=sorted(SIZES), default="medium",
                   help="shop users x items x events: " + ", ".join(f"{k} = {u:,} x {i:,} x {e:,}"
                                                                 for k, (u, i, e) in SIZES.items()))
    p.add_argument("--n-negatives", type=int, default=4, help="recnb's negatives per positive (default 4)")
    p.add_argument("--optimizers", nargs="*", choices=("adagrad", "sgd"), default=["adagrad", "sgd"],
                   help="recnb's optimisers timed (default both)")
    p.add_argument("--sgd-batch-size", type=int, default=32_768,
                   help="rows per Lightning step for recnb's sgd (default 32768; adagrad keeps 2048)")
    p.add_argument("--iterations", type=int, default=3, help="implicit BPR iterations timed (default 3)")
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="implicit's thread counts (default 1 2)")
    p.add_argument("--profile", action="store_true", help="print cProfile's top functions of recnb's epoch")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def recnb_epoch(split, optimizer: str, n_negatives: int, batch_size: int, seed: int,
                profile: bool) -> tuple[float, float]:
    """Wall and process-CPU seconds of one epoch (the whole ``fit``)."""
    model = EmbeddingRecommender(max_epochs=1, optimizer=optimizer, n_negatives=n_negatives, batch_size=batch_size,
                                 seed=seed)
    profiler = cProfile.Profile(time.process_time) if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    model.fit(split)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    step = "per-triple SGD" if optimizer == "sgd" else f"{'sparse' if model.user_embedding.sparse else 'dense'} gradients"
    print(f"recnb BPR epoch, {optimizer} ({step}, batch {batch_size}): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU ({load()})", flush=True)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    return wall, cpu


def implicit_iteration(split, threads: int, iterations: int, seed: int) -> float:
    """Median seconds per iteration of implicit's BPR on ``threads`` threads."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    times: list[float] = []
    with threadpool_limits(1, "blas"):
        model = BayesianPersonalizedRanking(factors=64, learning_rate=0.003, regularization=0.01,
                                            iterations=iterations, random_state=seed, num_threads=threads)
        last = [time.perf_counter()]

        def callback(iteration: int, elapsed: float, *rest: object) -> None:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        last[0] = time.perf_counter()
        model.fit(split.train_csr(), show_progress=False, callback=callback)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse(argv)
    require("implicit")
    users, items, events = SIZES[args.size]
    start = time.perf_counter()
    split = random_holdout(make_shop(n_users=users, n_items=items, n_interactions=events, seed=args.seed), 0.2,
                           seed=args.seed)
    nnz = split.train_csr().nnz
    print(f"shop {users:,} x {items:,} x {events:,}: {nnz:,} training pairs (built in "
          f"{time.perf_counter() - start:.0f} s); torch {torch.__version__}, {os.cpu_count()} cores, {load()}",
          flush=True)
    rates = {}
    for optimizer in args.optimizers:
        batch_size = args.sgd_batch_size if optimizer == "sgd" else EmbeddingRecommender().hparams.batch_size
        wall, cpu = recnb_epoch(split, optimizer, args.n_negatives, batch_size, args.seed, args.profile)
        rates[f"recnb {optimizer}"] = nnz * args.n_negatives / wall
        rates[f"recnb {optimizer} (CPU seconds)"] = nnz * args.n_negatives / cpu
    for threads in args.threads:
        seconds = implicit_iteration(split, threads, args.iterations, args.seed)
        rates[f"implicit {threads} thread(s)"] = nnz / seconds
        print(f"implicit BPR, {threads} thread(s): {seconds:.2f} s per iteration ({load()})", flush=True)
    for name, rate in rates.items():
        print(f"{name:<24} {rate / 1e6:7.3f} M (positive, negative) pairs per second")
    peer = f"implicit {os.cpu_count()} thread(s)"
    for optimizer in args.optimizers:
        if peer in rates:
            ratio = rates[f"recnb {optimizer}"] / rates[peer]
            print(f"{'met' if ratio >= 0.5 else 'NOT met'}: recnb {optimizer}'s pairs per second are {ratio:.2f} x "
                  f"implicit's with its default {os.cpu_count()} threads (target >= 0.5)")
    return rates


if __name__ == "__main__":
    main()
