"""Top-k selection vs a full sort for ranking a (users x items) score matrix; prints milliseconds.

    .venv/bin/python benchmarks/topk_vs_sort.py [--users 256] [--items 1000 10000 100000] [--k 10]

Speed is measured here, never asserted by tests. ``recnb rank`` adds a NaN check and the
deterministic tie-break on top of ``torch.topk`` / ``torch.sort``.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from recnb.math.ranking import rank


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` runs of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods: dict[str, Callable[[torch.Tensor, np.ndarray], object]] = {
        "torch.sort": lambda s, _: torch.sort(s, dim=1, descending=True, stable=True),
        f"torch.topk k={args.k}": lambda s, _: torch.topk(s, args.k, dim=1),
        f"np.argpartition k={args.k}": lambda _, a: np.argpartition(-a, args.k, axis=1)[:, : args.k],
        "rank k=None": lambda s, _: rank(s),
        f"rank k={args.k}": lambda s, _: rank(s, k=args.k),
    }
    print(f"{args.users} users, {args.threads} thread(s), best of {args.repeat}, milliseconds")
    print(f"{'items':>8} " + " ".join(f"{name:>20}" for name in methods))
    for n in args.items:
        scores = torch.randn(args.users, n, generator=torch.Generator().manual_seed(0))
        array = scores.numpy()
        row = [best_of(lambda f=f: f(scores, array), args.repeat) for f in methods.values()]
        print(f"{n:>8} " + " ".join(f"{ms:>20.2f}" for ms in row))


if __name__ == "__main__":
    main()
