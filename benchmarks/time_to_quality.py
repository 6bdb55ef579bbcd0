"""Time to quality: NDCG@10 on a validation split against training wall seconds, per model and thread count.

    nice -n 5 .venv/bin/python benchmarks/time_to_quality.py --data movielens
    nice -n 5 .venv/bin/python benchmarks/time_to_quality.py --data shop --users 200000 --items 50000 \
        --events 5000000 --budget 120 --eval-users 10000      # the committed large-shop curves
    .venv/bin/python benchmarks/time_to_quality.py --plot-only        # redraw the PNG from the CSVs

Data: MovieLens-100k (``load_movielens``, the recbole wheel's copy) or the synthetic shop
(``make_shop``), split ``random_holdout(data, 0.2, seed)``; the curves train on the validation
split's ``train`` part (``holdout_validation(split, 0.2, seed)``) and are scored on its held-out
items, full ranking of each user's unseen items (:func:`recnb.evaluation.evaluate`). The test
part is never looked at.

Models, each with its library's default thread count and with one thread:

- ``recnb BPR``: :class:`~recnb.models.embedding.EmbeddingRecommender` with its defaults (BPR,
  d=64, 4 negatives, Adagrad, 12 epochs), evaluated after every epoch by a Lightning callback. Its
  trainer's default is one thread (:func:`~recnb.training.make_trainer`), so its one curve is both
  its default and its one-thread curve.
- ``recnb BPR-SGD``: the same model with ``optimizer="sgd"``, BPR's per-triple SGD step as one
  compiled loop (:mod:`recnb.training.bpr_sgd`): rate 0.02 (the best of 0.02, 0.05 and 0.1 on
  MovieLens' validation curve, so its MovieLens curve is tuned on what it is scored on, as the
  peers' defaults are not), 30 epochs, 32,768 rows per step (the batch changes no update, only how
  often Lightning's loop and the sampler run), one thread.
- ``recnb ALS``: :class:`~recnb.models.als.ALSRecommender` at implicit's hyper-parameters as the
  :class:`~recnb.studies.bench.ImplicitALS` adapter sets them (32 factors, λ = 10, confidence
  ``1 + r``: recnb's ``alpha=0`` is implicit's ``alpha=1``), conjugate gradient, 15 iterations;
  default threads: torch's count (2 here). ALS has no per-iteration hook, so each point is a fresh
  fit of ``n`` iterations (same seed: the same first ``n`` iterations as the longer fit).
- ``implicit ALS`` / ``implicit BPR``: the bench adapters' hyper-parameters (ALS as above; BPR 64
  factors, rate 0.003, 200 iterations), evaluated from implicit's own per-iteration ``callback``
  (BLAS held to one thread, as implicit asks); default threads: all cores (``num_threads=0``).
- ``cornac BPR``: the adapter's hyper-parameters (64 factors, 200 iterations, rate 0.01); no
  per-iteration hook, so fresh fits of ``n`` iterations; default threads: all cores.

``--budget S`` stops each curve at its first point past ``S`` training seconds (Lightning's
``should_stop``, an exception from implicit's callback, no further fresh fit; nor one that, at the
last fit's seconds per iteration, would take over ``2 S``), and
``--eval-users N`` scores every point on the same seeded sample of ``N`` validation users, which
keeps a large shop's curves to minutes.

Seconds are training wall seconds only: the clock starts when the fit starts (set-up included)
and stops while a point is evaluated. Rows go to ``benchmarks/results/time_to_quality_<data>.csv``
(``data, model, threads, label, iteration, seconds, ndcg@10, load``); the PNG
(``benchmarks/results/time_to_quality.png``) draws every CSV present. The issue-21 targets are
printed as met / not met with their figures. Timings are measurements on a shared machine (the
load average is printed and stored beside them), never asserted by tests.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from threadpoolctl import threadpool_limits

from recnb.data import holdout_validation, make_shop, random_holdout
from recnb.data.movielens import HOW_TO_GET, find_movielens, load_movielens
from recnb.data.schema import Split
from recnb.evaluation import evaluate
from recnb.models.als import ALSRecommender
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.models.embedding import EmbeddingRecommender
from recnb.studies.bench import peers_available
from recnb.training import make_trainer

RESULTS = Path(__file__).parent / "results"
MODELS = ("recnb BPR", "recnb BPR-SGD", "recnb ALS", "implicit ALS", "implicit BPR", "cornac BPR")
#: recnb BPR-SGD's settings (see the module doc)
BPR_SGD = {"optimizer": "sgd", "lr": 0.02, "max_epochs": 30, "batch_size": 32_768}
#: a wall-clock budget for the "best within the same budget" target (seconds of training)
BUDGET_S = 120.0
#: hyper-parameters shared by recnb's and implicit's ALS (the ImplicitALS adapter's)
ALS = {"factors": 32, "regularization": 10.0, "iterations": 15}
#: iteration counts at which fresh-fit curves (recnb ALS, cornac BPR) are measured
ALS_POINTS = (1, 2, 4, 8, 15)
CORNAC_POINTS = (2, 10, 50, 200)
#: implicit BPR's iterations evaluated from its callback
IMPLICIT_BPR_POINTS = frozenset((1, 2, 5, 10, 20, 50, 100, 200))


def table(x: Any) -> torch.Tensor:
    """A float32 copy of a factor table (a tensor or an array), taken now."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().clone()
    return torch.from_numpy(np.array(x, dtype=np.float32))


class Factors(Recommender):
    """A snapshot of factor tables taken during training: ``score = U_users Vᵀ (+ b)``."""

    def __init__(self, split: Split, user_factors: Any, item_factors: Any, item_bias: Any = None) -> None:
        self.remember_split(split)
        self.u, self.v = table(user_factors), table(item_factors)
        self.b = None if item_bias is None else table(item_bias).reshape(1, -1)

    def fit(self, split: Split) -> Self:
        raise TypeError("a Factors snapshot is not trained; it scores the tables it was given")

    def score(self, users: Users = None) -> torch.Tensor:
        s = self.u[as_user_tensor(users, self.n_users_)] @ self.v.T
        return s if self.b is None else s + self.b


class OverBudget(Exception):
    """Raised from implicit's callback to stop a fit whose curve has passed the budget."""


class Curve:
    """Collects ``(iteration, training seconds, NDCG@10)``; ``point`` stops the clock while it evaluates
    and returns whether the curve has passed ``budget`` training seconds."""

    def __init__(self, val: Split, budget: float, users: np.ndarray | None) -> None:
        self.val, self.budget, self.users, self.rows, self.paused = val, budget, users, [], 0.0
        self.start = time.perf_counter()

    def point(self, iteration: int, snapshot: Callable[[], Recommender], seconds: float | None = None) -> bool:
        now = time.perf_counter()
        train_s = seconds if seconds is not None else now - self.start - self.paused
        ndcg = evaluate(snapshot(), self.val, k=10, metrics=("ndcg",), users=self.users)["ndcg@10"]
        self.rows.append({"iteration": iteration, "seconds": train_s, "ndcg@10": ndcg, "load": os.getloadavg()[0]})
        self.paused += time.perf_counter() - now
        return train_s > self.budget


def recnb_bpr(curve: Curve, threads: int, seed: int, **settings: Any) -> list[dict]:
    val = curve.val
    model = EmbeddingRecommender(seed=seed, **settings)

    class EveryEpoch(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            bias = None if module.item_bias is None else module.item_bias.weight.detach().squeeze(1)
            trainer.should_stop = curve.point(trainer.current_epoch + 1, lambda: Factors(
                val, module.user_embedding.weight.detach(), module.item_embedding.weight.detach(), bias))

    curve.start = time.perf_counter()
    model.fit(val, trainer=make_trainer(model.hparams.max_epochs, seed=seed, threads=threads, callbacks=[EveryEpoch()]))
    return curve.rows


def fresh_fits(curve: Curve, points: tuple[int, ...], make: Callable[[int], Recommender]) -> list[dict]:
    for n in points:
        if curve.rows and curve.rows[-1]["seconds"] * n / curve.rows[-1]["iteration"] > 2 * curve.budget:
            break  # this fit alone would take over twice the budget, at the last fit's seconds per iteration
        model = make(n)
        start = time.perf_counter()
        model.fit(curve.val)
        if curve.point(n, lambda fitted=model: fitted, seconds=time.perf_counter() - start):
            break
    return curve.rows


def recnb_als(curve: Curve, threads: int, seed: int) -> list[dict]:
    return fresh_fits(curve, ALS_POINTS, lambda n: ALSRecommender(
        embedding_dim=ALS["factors"], l2=ALS["regularization"], alpha=0.0, iterations=n, seed=seed, threads=threads))


def implicit_model(name: str, curve: Curve, threads: int, seed: int) -> list[dict]:
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    val = curve.val
    with threadpool_limits(1, "blas"):  # implicit checks the BLAS pool when the model is built
        if name == "implicit ALS":
            model = AlternatingLeastSquares(**ALS, alpha=1.0, random_state=seed, num_threads=threads)
            points = None
        else:
            model = BayesianPersonalizedRanking(factors=64, learning_rate=0.003, regularization=0.01, iterations=200,
                                                random_state=seed, num_threads=threads)
            points = IMPLICIT_BPR_POINTS

    def callback(iteration: int, elapsed: float, *rest: Any) -> None:
        if (points is None or iteration + 1 in points) and curve.point(
                iteration + 1, lambda: Factors(val, model.user_factors, model.item_factors)):
            raise OverBudget

    with threadpool_limits(1, "blas"):
        curve.start = time.perf_counter()
        try:
            model.fit(val.train_csr(), show_progress=False, callback=callback)
        except OverBudget:
            pass
    return curve.rows


def cornac_bpr(curve: Curve, threads: int, seed: int) -> list[dict]:
    from recnb.studies.bench import CornacBPR

    return fresh_fits(curve, CORNAC_POINTS, lambda n: CornacBPR(iterations=n, seed=seed, threads=threads))


def run(name: str, curve: Curve, threads: int, seed: int) -> list[dict]:
    if name == "recnb BPR":
        return recnb_bpr(curve, threads, seed)
    if name == "recnb BPR-SGD":
        return recnb_bpr(curve, threads, seed, **BPR_SGD)
    if name == "recnb ALS":
        return recnb_als(curve, threads, seed)
    if name.startswith("implicit"):
        return implicit_model(name, curve, threads, seed)
    return cornac_bpr(curve, threads, seed)


def default_threads(name: str) -> int:
    """The thread count each library uses when not told: recnb's trainer 1, the rest every core."""
    return 1 if name.startswith("recnb BPR") else os.cpu_count() or 1


def load(args: argparse.Namespace) -> tuple[str, Split]:
    if args.data == "movielens":
        if find_movielens() is None:
            raise SystemExit(f"MovieLens-100k not found. {HOW_TO_GET}")
        data, name = load_movielens(), "movielens"
    else:
        data = make_shop(n_users=args.users, n_items=args.items, n_interactions=args.events, seed=args.seed)
        name = f"shop_{args.users}x{args.items}x{args.events}"
    split = random_holdout(data, 0.2, seed=args.seed)
    return name, holdout_validation(split, 0.2, seed=args.seed)


def reached(rows: pd.DataFrame, value: float) -> float:
    """Training seconds at which a curve first reaches ``value`` (inf if never)."""
    hit = rows[rows["ndcg@10"] >= value]
    return float(hit["seconds"].min()) if len(hit) else float("inf")


def targets(table: pd.DataFrame, budget: float = BUDGET_S) -> list[str]:
    """The issue's targets that this table can answer, as 'met' / 'not met' lines with the figures
    (a lead under 5 % of the peer's value, in one run on one split with no interval, is reported as level, not met)."""
    lines = []
    data = table["data"].iloc[0]
    default = table[table["label"] == "default threads"]
    curves = {m: g for m, g in default.groupby("model")}
    if data == "movielens" and "cornac BPR" in curves:
        best = curves["cornac BPR"]["ndcg@10"].max()
        theirs = reached(curves["cornac BPR"], best)
        for bpr in ("recnb BPR", "recnb BPR-SGD"):
            if bpr in curves:
                ours = reached(curves[bpr], best)
                lines.append(f"{'met' if ours < theirs else 'NOT met'}: {bpr} reaches cornac BPR's best NDCG@10 "
                             f"{best:.4f} in {ours:.1f} s, cornac in {theirs:.1f} s (default threads; {bpr}'s best "
                             f"{curves[bpr]['ndcg@10'].max():.4f})")
    if data != "movielens" and {"recnb ALS", "implicit ALS"} <= curves.keys():
        goal = curves["implicit ALS"]["ndcg@10"].iloc[-1]
        fit = curves["implicit ALS"]["seconds"].iloc[-1]
        ours = reached(curves["recnb ALS"], goal - 1e-9)
        lines.append(f"{'met' if ours <= 1.5 * fit else 'NOT met'}: recnb ALS reaches implicit ALS's NDCG@10 "
                     f"{goal:.4f} in {ours:.1f} s; 1.5 x implicit's fit time = {1.5 * fit:.1f} s")
    if data != "movielens":
        within = default[default["seconds"] <= budget].groupby("model")["ndcg@10"].max()
        ours = within[[m for m in within.index if m.startswith("recnb")]]
        peers = within[[m for m in within.index if not m.startswith("recnb")]]
        if len(ours) and len(peers):
            lead = ours.max() - peers.max()
            verdict = "NOT met" if lead <= 0 else "level, not met" if lead < 0.05 * peers.max() else "met"
            lines.append(f"{verdict}: best recnb model within {budget:.0f} s: {ours.idxmax()} {ours.max():.4f}; "
                         f"best peer: {peers.idxmax()} {peers.max():.4f} (one run, no interval: a lead under 5 % is level)")
    return lines


def plot(out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = sorted(RESULTS.glob("time_to_quality_*.csv"))
    if not files:
        return None
    fig, axes = plt.subplots(1, len(files), figsize=(6.2 * len(files), 4.4), squeeze=False)
    colours = dict(zip(MODELS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, path in zip(axes[0], files):
        table = pd.read_csv(path)
        for (model, label), g in table.groupby(["model", "label"], sort=False):
            n = int(g["threads"].iloc[0])
            ax.plot(g["seconds"], g["ndcg@10"], marker=".", color=colours.get(model),
                    linestyle="-" if label == "default threads" else "--",
                    label=f"{model}, {n} thread{'s' * (n > 1)}{' (default)' * (label == 'default threads')}")
        ax.set_xscale("log")
        ax.set_xlabel("training wall seconds (log scale)")
        ax.set_ylabel("validation NDCG@10")
        ax.set_title(f"{table['data'].iloc[0]} (load avg {table['load'].median():.1f} on {os.cpu_count()} cores)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data", choices=("movielens", "shop"), default="movielens", help="data set (default movielens)")
    p.add_argument("--users", type=int, default=20_000, help="shop users (default 20,000)")
    p.add_argument("--items", type=int, default=5_000, help="shop items (default 5,000)")
    p.add_argument("--events", type=int, default=500_000, help="shop interaction rows (default 500,000)")
    p.add_argument("--models", nargs="*", choices=MODELS, default=list(MODELS), help="models to run (default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, split and models (default 0)")
    p.add_argument("--budget", type=float, default=float("inf"),
                   help="stop each curve at its first point past this many training seconds (default: no limit)")
    p.add_argument("--eval-users", type=int, default=None,
                   help="score every point on this many validation users, a seeded sample (default: all)")
    p.add_argument("--plot-only", action="store_true", help="only redraw the PNG from the CSVs in results/")
    p.add_argument("--png", type=Path, default=RESULTS / "time_to_quality.png", help="where the plot goes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame | None:
    args = parse(argv)
    if args.plot_only:
        print(f"wrote {plot(args.png)}")
        return None
    available = peers_available()
    name, val = load(args)
    print(f"{name}: {val.n_users:,} users x {val.n_items:,} items, {val.train_csr().nnz:,} training pairs, "
          f"{len(val.test_users):,} validation users; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    users = None
    if args.eval_users is not None and args.eval_users < len(val.test_users):
        users = np.sort(np.random.default_rng(args.seed).choice(val.test_users, args.eval_users, replace=False))
        print(f"every point is scored on {args.eval_users:,} of the {len(val.test_users):,} validation users")
    rows = []
    for model in args.models:
        library = model.split()[0]
        if library != "recnb" and not available.get(library, False):
            print(f"{model}: skipped, {library} is not installed (pip install {library})")
            continue
        default = default_threads(model)
        runs = [("default threads", default)] + ([("one thread", 1)] if default > 1 else [])
        for label, threads in runs:
            got = run(model, Curve(val, args.budget, users), threads, args.seed)
            for r in got:
                rows.append({"data": name, "model": model, "threads": threads, "label": label, **r})
            last = got[-1]
            print(f"{model:<13} {threads} thread(s) [{label}]: NDCG@10 {last['ndcg@10']:.4f} after "
                  f"{last['iteration']} iterations, {last['seconds']:.1f} s (load {last['load']:.1f}); best "
                  f"{max(r['ndcg@10'] for r in got):.4f}", flush=True)
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"time_to_quality_{'movielens' if name == 'movielens' else 'shop'}.csv"
    table.to_csv(path, index=False, float_format="%.6g")
    print(f"wrote {path} and {plot(args.png)}")
    for line in targets(table, min(args.budget, BUDGET_S)):
        print(line)
    return table


if __name__ == "__main__":
    main()
