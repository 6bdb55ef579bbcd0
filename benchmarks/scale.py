"""Wall seconds and peak resident memory (RSS) of recnb's stages on a large synthetic shop.

Stages (in one process, in order): ``make_shop``; the split (``random_holdout``, 20 % per user);
ItemKNN fit + full evaluation of every test user (NDCG@10 etc. over the whole catalogue); one BPR
epoch of ``EmbeddingRecommender`` (its default hyper-parameters, ``max_epochs=1``); full evaluation
of the embedding model; one epoch of BPR's per-triple SGD (``optimizer="sgd"``, the settings of
``benchmarks/time_to_quality.py``: rate 0.02, 32,768 rows per step). Each stage's peak RSS is measured on its own (Linux ``VmHWM``, reset
before the stage, see :mod:`recnb.training.profiling`); the last line is the whole run's peak.
``--dense-epoch`` adds one BPR epoch with dense gradients (``sparse_gradients=False``) beside the
default one; ``--movielens`` adds 12-epoch fits of the default model on MovieLens-100k with sparse
and with dense gradients (the small-table side of the automatic choice).

Every run appends its rows to ``--csv`` (default ``benchmarks/results/scale.csv``): ``date, users,
items, events, huge_pages, threads, stage, seconds, peak_gib, load, value`` (``huge_pages``: the
``THP_MEM_ALLOC_ENABLE`` setting, 1 unless the environment set it to 0 before ``import recnb``;
``load``: the 1-minute load average when the stage ended; ``value``: the stage's NDCG@10 where it
has one). Chapter 09 reads the latest row of each stage from it. To compare huge pages off:

    THP_MEM_ALLOC_ENABLE=0 .venv/bin/python benchmarks/scale.py --skip knn bpr --evaluate-only

    .venv/bin/python benchmarks/scale.py --size large          # 200,000 x 50,000 x 5,000,000
    .venv/bin/python benchmarks/scale.py --users 20000 --items 5000 --events 500000
    .venv/bin/python benchmarks/scale.py --size small --skip knn

Targets at the large size on a 2-core machine: make_shop <= 60 s, split <= 30 s, ItemKNN
fit + evaluation <= 120 s, one BPR epoch <= 60 s, embedding evaluation <= 30 s, peak RSS <= 8 GB.
Timings are measurements, never asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from recnb.data.movielens import find_movielens, load_movielens
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.evaluation import evaluate
from recnb.models.embedding import EmbeddingRecommender
from recnb.models.knn import ItemKNN
from recnb.training.profiling import Stage, measure, peak_rss_bytes, reset_peak_rss

SIZES = {
    "tiny": (500, 200, 10_000),
    "small": (2_000, 1_000, 100_000),
    "medium": (20_000, 5_000, 500_000),
    "large": (200_000, 50_000, 5_000_000),
}
STAGES = ("shop", "split", "knn", "bpr")
CSV = Path(__file__).parent / "results" / "scale.csv"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--size", choices=sorted(SIZES), default="medium",
                   help="preset users x items x events: " + ", ".join(f"{k} = {u:,} x {i:,} x {e:,}" for k, (u, i, e) in SIZES.items()))
    p.add_argument("--users", type=int, help="number of users (overrides --size)")
    p.add_argument("--items", type=int, help="number of items (overrides --size)")
    p.add_argument("--events", type=int, help="target number of interaction rows (overrides --size)")
    p.add_argument("--categories", type=int, default=10, help="item categories of the shop (default 10)")
    p.add_argument("--neighbours", type=int, default=100, help="ItemKNN neighbours per item (default 100)")
    p.add_argument("--batch-size", type=int, default=1024, help="users scored at once in evaluation (default 1024)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--skip", nargs="*", default=[], choices=["knn", "bpr"], help="stages to leave out")
    p.add_argument("--dense-epoch", action="store_true", help="also one BPR epoch with dense gradients")
    p.add_argument("--evaluate-only", action="store_true",
                   help="with --skip bpr: train one epoch unmeasured, measure only the embedding's full evaluation")
    p.add_argument("--movielens", action="store_true",
                   help="also 12 epochs of the default model on MovieLens-100k, sparse and dense gradients")
    p.add_argument("--csv", type=Path, default=CSV, help=f"CSV the rows are appended to (default {CSV})")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    u, i, e = SIZES[args.size]
    args.users, args.items, args.events = args.users or u, args.items or i, args.events or e
    return args


def main(argv: list[str] | None = None) -> list[Stage]:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"recnb scale benchmark: {args.users:,} users x {args.items:,} items x {args.events:,} events, seed "
          f"{args.seed}; python {platform.python_version()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    whole = peak_rss_bytes()
    stages: list[Stage] = []

    rows: list[dict] = []
    size = {"users": args.users, "items": args.items, "events": args.events}

    def report(stage: Stage, extra: str = "", value: float | None = None, where: dict | None = None) -> None:
        load = os.getloadavg()[0]
        print(f"{stage.name:<37} {stage.seconds:9.1f} s  {stage.peak_gib:7.2f} GiB peak RSS  {extra}  (load {load:.1f})",
              flush=True)
        rows.append({"date": time.strftime("%Y-%m-%d %H:%M"), **(where or size),
                     "huge_pages": int(os.environ.get("THP_MEM_ALLOC_ENABLE", "1") != "0"),
                     "threads": torch.get_num_threads(), "stage": stage.name, "seconds": stage.seconds,
                     "peak_gib": stage.peak_gib, "load": load, "value": value})

    with measure("make_shop", stages) as s:
        data = make_shop(n_users=args.users, n_items=args.items, n_categories=args.categories,
                         n_interactions=args.events, seed=args.seed)
    report(s, f"{len(data.interactions):,} rows")
    with measure("split (random_holdout 0.2)", stages) as s:
        split = random_holdout(data, test_ratio=0.2, seed=args.seed)
        split.seen_csr(), split.test_csr()  # the CSR matrices every later stage reads
    report(s, f"{split.seen_csr().nnz:,} train pairs, {len(split.test_users):,} test users")
    del data
    if "knn" not in args.skip:
        with measure("ItemKNN fit + full evaluation", stages) as s:
            knn = ItemKNN(neighbours=args.neighbours).fit(split)
            result = evaluate(knn, split, k=10, batch_size=args.batch_size)
        report(s, f"NDCG@10 {result['ndcg@10']:.4f} over {int(result['users']):,} users", result["ndcg@10"])
        del knn
    if "bpr" not in args.skip or args.evaluate_only:
        if args.evaluate_only:
            bpr = EmbeddingRecommender(max_epochs=1, seed=args.seed).fit(split)
        else:
            with measure("one BPR epoch (EmbeddingRecommender)", stages) as s:
                bpr = EmbeddingRecommender(max_epochs=1, seed=args.seed).fit(split)
            kind = "sparse" if bpr.user_embedding.sparse else "dense"
            report(s, f"d={bpr.hparams.embedding_dim}, batch {bpr.hparams.batch_size}, {kind} gradients")
        with measure("embedding full evaluation", stages) as s:
            result = evaluate(bpr, split, k=10, batch_size=args.batch_size)
        report(s, f"NDCG@10 {result['ndcg@10']:.4f} over {int(result['users']):,} users", result["ndcg@10"])
        if not args.evaluate_only:
            with measure("one BPR-SGD epoch (optimizer='sgd')", stages) as s:
                sgd = EmbeddingRecommender(max_epochs=1, optimizer="sgd", lr=0.02, batch_size=32_768,
                                           seed=args.seed).fit(split)
            report(s, f"d={sgd.hparams.embedding_dim}, batch {sgd.hparams.batch_size}, "
                      f"{sgd.hparams.n_negatives} negatives per positive")
    if args.dense_epoch:
        with measure("one BPR epoch, dense gradients", stages) as s:
            EmbeddingRecommender(max_epochs=1, seed=args.seed, sparse_gradients=False).fit(split)
        report(s, "sparse_gradients=False")
    if args.movielens:
        if find_movielens() is None:
            print("MovieLens-100k not found: --movielens skipped", file=sys.stderr)
        else:
            ml = random_holdout(load_movielens(), test_ratio=0.2, seed=args.seed)
            where = {"users": ml.n_users, "items": ml.n_items, "events": len(ml.train) + len(ml.test)}
            for sparse in (True, False):
                with measure(f"MovieLens-100k 12 epochs, {'sparse' if sparse else 'dense'} gradients", stages) as s:
                    m = EmbeddingRecommender(seed=args.seed, sparse_gradients=sparse).fit(ml)
                ndcg = evaluate(m, ml, k=10)["ndcg@10"]
                report(s, f"NDCG@10 {ndcg:.4f}", ndcg, where)
    whole = max([whole] + [st.peak_rss for st in stages])
    print(f"{'whole run':<37} {sum(st.seconds for st in stages):9.1f} s  {whole / 2**30:7.2f} GiB peak RSS", flush=True)
    if not reset_peak_rss():
        print("(no per-stage peak reset on this system: each stage's peak is the peak so far)", file=sys.stderr)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.csv, mode="a", header=not args.csv.exists(), index=False, float_format="%.6g")
    print(f"appended {len(rows)} rows to {args.csv}")
    return stages


if __name__ == "__main__":
    main()
