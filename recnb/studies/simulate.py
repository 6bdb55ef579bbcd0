"""Simulated users on the synthetic shop: bandits, cold start and feedback loops measured on the truth.

The synthetic shop (:mod:`recnb.data.synthetic`) knows every user's true affinity ``s_ui``
(:func:`recnb.data.synthetic.true_affinity`), and its generator turns a view into a click with
probability ``sigmoid(s_ui − 1.5)``, a click into a cart with the same probability and a cart into
a purchase with ``0.5``. Simulated users here respond with exactly those probabilities, so what a
policy *really* delivers can be measured, not only what an offline metric on logged data says.

Three simulations:

- **Bandits over categories** (:func:`run_user_bandits`, :func:`run_contextual_bandit`): pulling
  arm ``c`` shows the user an item drawn uniformly from category ``c``; the click then has
  probability ``μ_uc = mean_{i ∈ c} sigmoid(s_ui − 1.5)`` (:func:`category_click_means`).
- **Cold start** (:func:`cold_start_curve`): quality of a model's top-k for new users as a function
  of how many of their interactions it has seen (:func:`reveal_history`), measured against the
  truth (:func:`truth_quality`), between the click rates of the best and of a random list
  (:func:`oracle_click_rates`); an onboarding prior (:class:`OnboardingRecommender`).
- **Feedback loop** (:func:`run_feedback_loop`): recommend → users respond from their true tastes
  → clicked items appended to the log → model refitted (or fine-tuned, :class:`WarmStartEmbedding`)
  → repeat, with per-round utility, offline NDCG, exposure Gini, coverage and taste alignment.

Every simulation takes a ``seed`` and draws from ``numpy.random.default_rng`` generators derived
from it: the same seed gives the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Self

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from recnb.policies.bandits import BanditRun, Policy, cumulative_regret
from recnb.data import synthetic
from recnb.data.analysis import gini
from recnb.data.schema import (EVENT, ITEM, ITEM_IDX, RATING, SESSION, TIME, USER, USER_IDX, Split, SplitLike, as_split,
                               dense_rows)
from recnb.math.ranking import PAD, rank
from recnb.evaluation import catalogue_coverage, evaluate, exposure_gini, mean_jaccard, ndcg_at_k
from recnb.evaluation.uncertainty import bootstrap_ci, paired_bootstrap
from recnb.models.base import Recommender, Users, as_user_tensor
from recnb.models.embedding import EmbeddingRecommender
from recnb.data.categories import category_means
from recnb.policies.rerank import ItemSimilarity, mmr
from recnb.training import make_trainer

#: the shop's click (and cart) probability is sigmoid(s_ui - CLICK_OFFSET)
CLICK_OFFSET = 1.5
#: probability that a cart becomes a purchase
PURCHASE_RATE = 0.5


def click_probability(affinity: np.ndarray) -> np.ndarray:
    """``sigmoid(s − 1.5)``: the shop's probability that a view of an item with affinity ``s`` is clicked."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(affinity, dtype=np.float64) - CLICK_OFFSET)))


def _true_affinity(truth: dict[str, Any], users: np.ndarray) -> np.ndarray:
    return np.asarray(synthetic.true_affinity(truth, np.asarray(users, dtype=np.int64)), dtype=np.float64)


def category_click_means(truth: dict[str, Any], users: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """``(len(users), C)``: ``μ_uc = mean_{i : c_i = c} sigmoid(s_ui − 1.5)``.

    The click probability of user ``u`` when shown an item drawn uniformly from category ``c``:
    the arm means of the category bandit. Users are scored ``batch_size`` at a time (memory
    ``batch_size × n_items``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    users = np.asarray(users, dtype=np.int64)
    n_cat = len(truth["categories"])
    parts = [category_means(click_probability(_true_affinity(truth, users[s : s + batch_size])), truth["item_category"], n_cat)
             for s in range(0, len(users), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, n_cat))


class ClickRateBracket(NamedTuple):
    """The two click rates every list's click rate lies between (:func:`oracle_click_rates`)."""

    oracle: float
    random: float


def oracle_click_rates(
    truth: dict[str, Any], k: int, users: np.ndarray | None = None, batch_size: int = 1024
) -> ClickRateBracket:
    """The best and the random list's expected clicks per slot, averaged over ``users`` (default: all).

    With ``p_ui = sigmoid(s_ui − 1.5)`` and ``B_u`` the user's ``k`` items of largest ``p_ui``:

    - ``oracle = mean_u (1/k) Σ_{i ∈ B_u} p_ui``: a list of the ``k`` truly best items (seen or not);
    - ``random = mean_u mean_i p_ui``: an item drawn uniformly from the catalogue.

    Users are scored ``batch_size`` at a time (memory ``batch_size × n_items``). Returns
    ``ClickRateBracket(oracle, random)``.
    """
    n_users, n_items = len(truth["user_taste"]), len(truth["item_category"])
    users = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64)
    if users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users must be a non-empty 1-d array of user indices, got shape {users.shape}")
    if not 1 <= k <= n_items:
        raise ValueError(f"k must lie in 1..{n_items} (the shop's items), got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    best_sum = random_sum = 0.0
    for start in range(0, len(users), batch_size):
        p = click_probability(_true_affinity(truth, users[start : start + batch_size]))
        best_sum += np.partition(p, n_items - k, axis=1)[:, n_items - k :].mean(axis=1).sum()
        random_sum += p.mean(axis=1).sum()
    return ClickRateBracket(float(best_sum / len(users)), float(random_sum / len(users)))


# --- bandits against simulated users ---------------------------------------------------------


def _check_means(means: np.ndarray) -> np.ndarray:
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.size == 0:
        raise ValueError(f"means must be a non-empty (n_users, n_arms) array, got shape {means.shape}")
    if (means < 0).any() or (means > 1).any():
        raise ValueError("means must be click probabilities in [0, 1]")
    return means


def run_user_bandits(
    policies: dict[str, Callable[[], Policy]],
    means: np.ndarray,
    n_rounds: int,
    seed: int = 0,
) -> dict[str, BanditRun]:
    """Each user of ``means`` ``(U, K)`` meets a fresh copy of every policy for ``n_rounds`` rounds.

    A new user arrives with no history; the policy learns their favourite category from clicks.
    Rewards are ``1[v_ut < μ_{u,a_t}]`` with the uniforms ``v`` shared by all policies (common
    random numbers: differences between policies are not noise of the draws); each policy's own
    randomness comes from ``default_rng([seed, 1, u])``. Regret per user against ``max_a μ_ua``.
    Returns ``{name: BanditRun}`` with arrays ``(U, n_rounds)``.
    """
    means = _check_means(means)
    n_users, n_arms = means.shape
    v = np.random.default_rng([seed, 0]).random((n_users, n_rounds))
    out = {}
    for name, make in policies.items():
        arms = np.empty((n_users, n_rounds), dtype=np.int64)
        for u in range(n_users):
            policy, rng = make(), np.random.default_rng([seed, 1, u])
            if policy.n_arms != n_arms:
                raise ValueError(f"policy {name!r} has {policy.n_arms} arms, means has {n_arms}")
            for t in range(n_rounds):
                a = policy.select(rng)
                policy.update(a, float(v[u, t] < means[u, a]))
                arms[u, t] = a
        chosen = np.take_along_axis(means, arms, axis=1)
        rewards = (v < chosen).astype(np.float64)
        out[name] = BanditRun(arms, rewards, cumulative_regret(means.max(axis=1, keepdims=True), chosen))
    return out


def run_contextual_bandit(
    policies: dict[str, Callable[[], Policy]],
    means: np.ndarray,
    contexts: np.ndarray,
    n_rounds: int,
    seed: int = 0,
) -> dict[str, BanditRun]:
    """One stream of ``n_rounds`` visits; in each, a user ``u_t`` drawn uniformly arrives with ``contexts[u_t]``.

    ``means`` ``(U, K)`` click probabilities, ``contexts`` ``(U, d)`` what the policy knows of each
    user. Every policy sees the same arrivals and the same reward uniforms. Non-contextual policies
    ignore the context and learn the population's best arm. The regret is against the per-round
    best arm of the visiting user, ``Σ_t (max_a μ_{u_t a} − μ_{u_t a_t})``. Returns
    ``{name: BanditRun}`` with arrays ``(n_rounds,)``.
    """
    means = _check_means(means)
    contexts = np.asarray(contexts, dtype=np.float64)
    if contexts.ndim != 2 or len(contexts) != len(means):
        raise ValueError(f"contexts must be (n_users, d) with n_users = {len(means)}, got shape {contexts.shape}")
    rng0 = np.random.default_rng([seed, 0])
    visitors = rng0.integers(len(means), size=n_rounds)
    v = rng0.random(n_rounds)
    out = {}
    for name, make in policies.items():
        policy, rng = make(), np.random.default_rng([seed, 2])
        arms = np.empty(n_rounds, dtype=np.int64)
        for t, u in enumerate(visitors):
            a = policy.select(rng, context=contexts[u])
            policy.update(a, float(v[t] < means[u, a]), context=contexts[u])
            arms[t] = a
        chosen = means[visitors, arms]
        out[name] = BanditRun(arms, (v < chosen).astype(np.float64), cumulative_regret(means[visitors].max(axis=1), chosen))
    return out


# --- cold start ------------------------------------------------------------------------------


def truth_quality(ranked: torch.Tensor, affinity: np.ndarray, seen: torch.Tensor, k: int | None = None) -> pd.DataFrame:
    """Per-user quality of lists against the truth: ``click_rate`` and ``true_ndcg``.

    ``ranked`` ``(U, k)`` item indices (PAD allowed), ``affinity`` ``(U, n_items)`` true ``s_ui``,
    ``seen`` ``(U, n_items)`` bool items the user already has (not recommendable).

    - ``click_rate_u = mean_{i ∈ L_u} sigmoid(s_ui − 1.5)``: expected clicks per slot of the list;
    - ``true_ndcg_u``: NDCG@k of the list with the relevant set the user's ``k`` truly best
      *unseen* items (highest ``s_ui``, ties to the lower index).
    """
    ranked = torch.as_tensor(ranked).long()
    aff = torch.as_tensor(np.asarray(affinity, dtype=np.float64))
    seen = torch.as_tensor(seen).bool()
    if aff.shape != seen.shape or aff.shape[0] != ranked.shape[0]:
        raise ValueError(f"ranked (U, k), affinity and seen (U, n_items) disagree: {tuple(ranked.shape)}, "
                         f"{tuple(aff.shape)}, {tuple(seen.shape)}")
    k = ranked.shape[1] if k is None else k
    valid = ranked != PAD
    p = torch.as_tensor(click_probability(aff.numpy()))
    p_list = torch.gather(p, 1, ranked.clamp(min=0))
    click_rate = (p_list * valid).sum(1) / valid.sum(1).clamp(min=1)
    best = rank(aff, k=k, exclude=seen).indices
    relevant = torch.zeros_like(seen)
    rows = torch.arange(len(best))[:, None].expand_as(best)
    ok = best != PAD
    relevant[rows[ok], best[ok]] = True
    return pd.DataFrame({"click_rate": click_rate.numpy(), "true_ndcg": ndcg_at_k(ranked, relevant).numpy()})


def reveal_history(split: Split, users: np.ndarray, n: int) -> Split:
    """``split`` with each of ``users`` keeping only their first ``n`` training rows (by time).

    The rest of their training rows is dropped (test rows are untouched): these users become new
    users who have so far interacted ``n`` times. Other users keep everything.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    train = split.train
    chosen = train[USER_IDX].isin(np.asarray(users))
    order = train[chosen].sort_values([USER_IDX, TIME, ITEM_IDX], kind="stable")
    kept = order.groupby(USER_IDX, sort=False).head(n)
    new_train = pd.concat([train[~chosen], kept]).sort_index()
    return replace(split, train=new_train.reset_index(drop=True), name=f"{split.name} | {n} revealed")


def onboarding_picks(truth: dict[str, Any], users: np.ndarray, n_picks: int, seed: int = 0,
                     noise: float = 0.0) -> np.ndarray:
    """``(len(users), C)`` bool: the categories each user ticks at sign-up.

    Each user picks ``n_picks`` distinct categories, drawn without replacement with probability
    ``w_c = (1 − noise) θ_uc + noise / C``: ``noise = 0`` ticks what the user truly likes (in
    proportion to the true taste ``θ_uc``, not always their top), ``noise = 1`` ticks categories at
    random -- a questionnaire answered carelessly, or a taste the user cannot put into words. The
    simulator knows ``θ``; a real questionnaire does not, so ``noise = 0`` is the most favourable case.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must lie in [0, 1], got {noise}")
    taste = np.asarray(truth["user_taste"])[np.asarray(users)]
    n_cat = taste.shape[1]
    if not 1 <= n_picks <= n_cat:
        raise ValueError(f"n_picks must lie in 1..{n_cat}, got {n_picks}")
    rng = np.random.default_rng([seed, 3])
    picks = np.zeros(taste.shape, dtype=bool)
    for row, w in enumerate(taste):
        w = np.maximum((1.0 - noise) * w / max(w.sum(), 1e-12) + noise / n_cat, 1e-12)
        picks[row, rng.choice(n_cat, size=n_picks, replace=False, p=w / w.sum())] = True
    return picks


class OnboardingRecommender(Recommender):
    """Popularity within the categories a user picked at sign-up, then popularity elsewhere.

    ``score(u, i) = 1[c_i ∈ P_u] + n_i / (1 + max_j n_j)`` with ``P_u`` the picked categories and
    ``n_i`` the training users of item ``i``: every picked-category item ranks above every other,
    each group by popularity. A user with no picks gets plain popularity.
    ``picks``: ``(n_users, C)`` bool for every user of the split; ``item_category``: ``(n_items,)`` codes.
    """

    def __init__(self, picks: np.ndarray, item_category: np.ndarray) -> None:
        self.picks = torch.as_tensor(np.asarray(picks, dtype=bool))
        self.item_category = torch.as_tensor(np.asarray(item_category)).long()
        if self.picks.ndim != 2 or self.item_category.max() >= self.picks.shape[1]:
            raise ValueError(f"picks must be (n_users, C) covering every category code; got shape {tuple(self.picks.shape)}")

    def fit(self, split: SplitLike) -> Self:
        split = as_split(split)
        if self.picks.shape[0] != split.n_users or len(self.item_category) != split.n_items:
            raise ValueError(f"picks {tuple(self.picks.shape)} and item_category ({len(self.item_category)},) must "
                             f"cover the split's {split.n_users} users and {split.n_items} items")
        self.remember_split(split)
        counts = torch.from_numpy(split.item_counts()).double()
        self.popularity_ = (counts / (1.0 + counts.max())).float()
        return self

    def score(self, users: Users = None) -> torch.Tensor:
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        return self.picks[u][:, self.item_category].float() + self.popularity_

    def __repr__(self) -> str:
        return f"OnboardingRecommender(picks per user={self.picks.sum(1).float().mean().item():g})"


def cold_start_curve(
    split: Split,
    truth: dict[str, Any],
    fit_models: Callable[[Split], dict[str, Recommender]],
    users: np.ndarray,
    history_sizes: list[int],
    k: int = 10,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Truth-measured quality of each model for new ``users`` who have ``n`` interactions, per ``n``.

    For every ``n`` in ``history_sizes``: ``reveal_history(split, users, n)``, ``fit_models`` returns
    ``{name: recommender fitted on it}`` (one call, so models can share fitted components), and each
    one's top-``k`` for ``users`` is scored with :func:`truth_quality`, ``batch_size`` users at a
    time (memory ``batch_size × n_items``). Every user must have at least ``max(history_sizes)``
    training rows (so the same users are compared at every ``n``). Returns one row per
    ``(model, n)``: mean ``click_rate`` and ``true_ndcg`` over the users.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    users = np.asarray(users, dtype=np.int64)
    have = split.user_counts()[users]
    if (have < max(history_sizes)).any():
        raise ValueError(f"every user needs >= max(history_sizes) = {max(history_sizes)} training rows; "
                         f"user {users[have < max(history_sizes)][0]} has {have.min()}")
    rows = []
    for n in history_sizes:
        revealed = reveal_history(split, users, n)
        models = fit_models(revealed)
        ranked = {name: model.recommend(users, k=k, batch_size=batch_size).indices for name, model in models.items()}
        quality: dict[str, list[pd.DataFrame]] = {name: [] for name in models}
        for start in range(0, len(users), batch_size):
            batch = slice(start, start + batch_size)
            aff = _true_affinity(truth, users[batch])
            seen = dense_rows(revealed.seen_csr(), users[batch])
            for name in models:
                quality[name].append(truth_quality(ranked[name][batch], aff, seen, k))
        for name, parts in quality.items():
            q = pd.concat(parts, ignore_index=True)
            rows.append({"model": name, "n": n, "click_rate": q["click_rate"].mean(), "true_ndcg": q["true_ndcg"].mean()})
    return pd.DataFrame(rows)


# --- the feedback loop -----------------------------------------------------------------------


def respond(truth: dict[str, Any], users: np.ndarray, ranked: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """Simulated responses to lists: ``(U, k)`` int stage reached, 0 view .. 3 purchase, -1 for PAD.

    Each shown item is viewed; as in the generator, a view becomes a click with probability
    ``sigmoid(s_ui − 1.5)``, a click a cart with the same probability, a cart a purchase with 0.5.
    """
    ranked = torch.as_tensor(ranked).long().numpy()
    aff = _true_affinity(truth, users)
    p = click_probability(np.take_along_axis(aff, np.maximum(ranked, 0), axis=1))
    draws = rng.random((3, *ranked.shape))
    click = draws[0] < p
    cart = click & (draws[1] < p)
    buy = cart & (draws[2] < PURCHASE_RATE)
    stage = click.astype(np.int64) + cart + buy
    return np.where(ranked == PAD, -1, stage)


def taste_alignment(scores: torch.Tensor, item_category: np.ndarray, taste: np.ndarray) -> float:
    """How well a model's scores recover users' true category tastes: mean Pearson correlation.

    Per user, the learned category preference is the mean score over each category's items
    (``(U, C)``); the result is the mean over users of its Pearson correlation with the true taste
    ``θ_u`` ``(U, C)`` (users whose row is constant are left out). 1 = the model ranks categories
    exactly as the truth does; 0 = unrelated.
    """
    taste = np.asarray(taste, dtype=np.float64)
    learned = category_means(torch.as_tensor(scores), item_category, taste.shape[1])
    a = learned - learned.mean(1, keepdims=True)
    b = taste - taste.mean(1, keepdims=True)
    denom = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    ok = denom > 1e-12
    if not ok.any():
        return float("nan")
    return float(((a * b).sum(1)[ok] / denom[ok]).mean())


class WarmStartEmbedding(EmbeddingRecommender):
    """:class:`EmbeddingRecommender` that can be fine-tuned on new events only (the real-time path).

    ``fit`` trains from scratch as usual. :meth:`partial_fit` keeps the current embeddings and runs
    ``epochs`` more epochs of the same loss on ``new_rows`` only (negatives sampled among items the
    user has not interacted with in those rows), then remembers the full ``split`` for exclusion.
    """

    def build(self, split: Split) -> None:
        if getattr(self, "_warm", False) and self.user_embedding is not None:
            if self.user_embedding.num_embeddings != split.n_users or self.item_embedding.num_embeddings != split.n_items:
                raise ValueError("partial_fit needs a split of the same users and items as the one fitted")
            return
        super().build(split)

    def partial_fit(self, split: Split, new_rows: pd.DataFrame, epochs: int = 1) -> Self:
        """Fine-tune on ``new_rows`` (rows of ``split.train``) for ``epochs`` epochs; ``split`` is the full log."""
        if self.user_embedding is None:
            raise RuntimeError("partial_fit needs a fitted model: call fit(split) first")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        new_only = replace(split, train=new_rows.reset_index(drop=True), test=split.test.iloc[:0])
        hp: Any = self.hparams
        self._warm = True
        try:
            self.train()
            trainer = make_trainer(max_epochs=epochs, seed=hp.seed, progress=hp.progress)
            with warnings.catch_warnings():  # the new-events split has no validation users, by design
                warnings.filterwarnings("ignore", message="Total length of .* across ranks is zero")
                trainer.fit(self, datamodule=self.datamodule(new_only))
        finally:
            self._warm = False
        self.eval()
        self.remember_split(split)
        return self


RankingPolicy = Callable[[Recommender, np.ndarray, int, np.random.Generator], torch.Tensor]


def greedy_policy(model: Recommender, users: np.ndarray, k: int, rng: np.random.Generator) -> torch.Tensor:
    """The model's top-``k`` unseen items: ``(U, k)``."""
    return model.recommend(users, k=k).indices


def epsilon_policy(epsilon: float) -> RankingPolicy:
    """A policy that replaces each slot of the greedy list, with probability ``epsilon``, by a
    uniformly random unseen item not already in the list (ε-mixing exploration)."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")

    def policy(model: Recommender, users: np.ndarray, k: int, rng: np.random.Generator) -> torch.Tensor:
        ranked = model.recommend(users, k=k).indices.clone()
        seen = model.seen_rows(users).numpy()
        swap = rng.random(ranked.shape) < epsilon
        for row in np.flatnonzero(swap.any(axis=1)):
            free = np.flatnonzero(~seen[row] & ~np.isin(np.arange(seen.shape[1]), ranked[row].numpy()))
            slots = np.flatnonzero(swap[row])[: len(free)]
            ranked[row, slots] = torch.as_tensor(rng.choice(free, size=len(slots), replace=False))
        return ranked

    return policy


def mmr_policy(item_similarity: ItemSimilarity, lam: float, n_candidates: int = 50) -> RankingPolicy:
    """A policy that re-ranks the model's top ``n_candidates`` with maximal marginal relevance
    (:func:`recnb.policies.rerank.mmr`, weight ``lam`` on relevance) before showing ``k`` of them."""

    def policy(model: Recommender, users: np.ndarray, k: int, rng: np.random.Generator) -> torch.Tensor:
        return mmr(model.recommend(users, k=n_candidates), item_similarity, lam, k=k).indices

    return policy


def _append_events(split: Split, users: np.ndarray, ranked: np.ndarray, stage: np.ndarray, round_: int) -> pd.DataFrame:
    """Training rows for the clicked items (one per clicked pair; event = furthest stage reached)."""
    rows, cols = np.nonzero(stage >= 1)
    t0 = split.train[TIME].max() if len(split.train) else pd.Timestamp("2024-01-01")
    frame = pd.DataFrame(
        {
            USER_IDX: users[rows].astype(np.int64),
            ITEM_IDX: ranked[rows, cols].astype(np.int64),
            EVENT: np.array(["view", "click", "cart", "purchase"])[stage[rows, cols]],
            RATING: np.nan,
            TIME: t0 + pd.Timedelta(hours=1) + pd.to_timedelta(cols, unit="s"),
        }
    )
    frame[USER] = split.users.id(frame[USER_IDX].to_numpy())
    frame[ITEM] = split.items.id(frame[ITEM_IDX].to_numpy())
    if SESSION in split.train.columns:
        frame[SESSION] = -(round_ + 1)
    return frame[list(split.train.columns)]


def run_feedback_loop(
    split: Split,
    truth: dict[str, Any],
    make_model: Callable[[], Recommender],
    policy: RankingPolicy,
    n_rounds: int,
    users_per_round: int,
    k: int = 10,
    update: str = "retrain",
    epochs: int = 1,
    replay: float = 0.0,
    panel: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, Split]:
    """Recommend → respond → append → update, ``n_rounds`` times. Returns ``(per-round frame, final split)``.

    Round ``r`` (after the initial fit on ``split``): ``users_per_round`` distinct users, drawn with
    probability ∝ their activity ``truth["user_activity"]``, get ``policy(model, users, k, rng)``;
    they respond (:func:`respond`); each clicked item becomes a training row; the model is updated
    by ``update="retrain"`` (a fresh ``make_model()`` fitted on the whole log) or
    ``"incremental"`` (``model.partial_fit(log, rows, epochs)``, e.g. :class:`WarmStartEmbedding`),
    where ``rows`` are the new rows plus, with ``replay > 0``, a random sample of
    ``round(replay * len(new_rows))`` rows of the previous log (experience replay;
    ``replay=float("inf")``: the whole previous log).

    Per round (measured on the lists served *before* the update):

    - ``utility``: mean true click probability of the shown items (expected clicks per slot);
      ``oracle_utility``: the same for each user's ``k`` truly best items not yet in the log (the
      ceiling, which falls as users consume their favourites); ``clicks``: the clicks drawn;
    - ``new_rows``: rows appended to the log; ``log_gini``: Gini of item popularity in the log;
    - ``exposure_gini``, ``coverage``: of the round's lists (:func:`recnb.evaluation.exposure_gini`,
      :func:`recnb.evaluation.catalogue_coverage`); ``jaccard``: how alike the users' lists are
      (:func:`recnb.evaluation.mean_jaccard`, Chaney et al.'s homogenisation);
    - ``offline_ndcg``: NDCG@k of the model on ``split``'s test part (logged data held out);
    - ``alignment``: :func:`taste_alignment` of the model on a fixed ``panel`` of users.
    """
    if update not in ("retrain", "incremental"):
        raise ValueError(f"update must be 'retrain' or 'incremental', got {update!r}")
    if replay < 0:
        raise ValueError(f"replay must be >= 0, got {replay}")
    if not 1 <= users_per_round <= split.n_users:
        raise ValueError(f"users_per_round must lie in 1..{split.n_users}, got {users_per_round}")
    rng = np.random.default_rng([seed, 4])
    activity = np.asarray(truth["user_activity"], dtype=np.float64)[: split.n_users]
    panel = np.arange(min(split.n_users, 200)) if panel is None else np.asarray(panel)
    taste = np.asarray(truth["user_taste"])[panel]
    log = split
    model = make_model().fit(log)
    records = []
    for r in range(n_rounds):
        users = np.sort(rng.choice(split.n_users, size=users_per_round, replace=False, p=activity / activity.sum()))
        ranked = policy(model, users, k, rng)
        aff = _true_affinity(truth, users)
        stage = respond(truth, users, ranked, rng)
        shown = ranked.numpy()
        p = click_probability(np.take_along_axis(aff, np.maximum(shown, 0), axis=1))
        best = rank(torch.as_tensor(aff), k=k, exclude=dense_rows(log.seen_csr(), users)).indices.numpy()
        p_best = click_probability(np.take_along_axis(aff, np.maximum(best, 0), axis=1))[best != PAD]
        with torch.no_grad():
            alignment = taste_alignment(model.score(panel), truth["item_category"], taste)
        new_rows = _append_events(log, users, shown, stage, r)
        records.append({
            "round": r,
            "utility": float(p[shown != PAD].mean()),
            "oracle_utility": float(p_best.mean()),
            "clicks": int((stage >= 1).sum()),
            "new_rows": len(new_rows),
            "exposure_gini": exposure_gini(ranked, split.n_items),
            "coverage": catalogue_coverage(ranked, split.n_items),
            "jaccard": mean_jaccard(ranked),
            "offline_ndcg": evaluate(model, log, k=k, metrics=("ndcg",))[f"ndcg@{k}"],
            "alignment": alignment,
        })
        old = log.train
        log = replace(log, train=pd.concat([old, new_rows], ignore_index=True))
        records[-1]["log_gini"] = gini(log.item_counts())
        if update == "retrain":
            model = make_model().fit(log)
        else:
            n_old = len(old) if np.isinf(replay) else min(len(old), round(replay * len(new_rows)))
            rows = pd.concat([new_rows, old.iloc[np.sort(rng.choice(len(old), size=n_old, replace=False))]])
            model = model.partial_fit(log, rows, epochs)
    return pd.DataFrame(records), log


@dataclass(frozen=True)
class FeedbackLoop:
    """One arm of a feedback-loop study: the model, the policy that shows its lists, and the update
    (the arguments of :func:`run_feedback_loop` of the same names)."""

    make_model: Callable[[], Recommender]
    policy: RankingPolicy
    update: str = "retrain"
    epochs: int = 1
    replay: float = 0.0


def replicate_feedback_loops(
    make_world: Callable[[int], tuple[Split, dict[str, Any]]],
    make_loops: Callable[[int, dict[str, Any]], dict[str, FeedbackLoop]],
    seeds: list[int] | range,
    n_rounds: int,
    users_per_round: int,
    k: int = 10,
    progress: bool = False,
) -> pd.DataFrame:
    """Every loop on every seed: one tidy frame, a row per ``(loop, seed, round)``.

    For each ``seed``, ``make_world(seed)`` gives the logged split and the truth (regenerate the
    shop and redraw the split there, so that seeds are independent replications), and
    ``make_loops(seed, truth)`` the named :class:`FeedbackLoop` s (their models seeded with
    ``seed``); each runs through :func:`run_feedback_loop` with ``seed``. The columns are
    ``run_feedback_loop``'s plus ``loop``, ``seed`` and ``share = utility / oracle_utility``.
    """
    frames = []
    for seed in tqdm(list(seeds), desc="seeds", disable=not progress):
        log, truth = make_world(seed)
        for name, loop in make_loops(seed, truth).items():
            frame, _ = run_feedback_loop(log, truth, loop.make_model, loop.policy, n_rounds, users_per_round, k=k,
                                         update=loop.update, epochs=loop.epochs, replay=loop.replay, seed=seed)
            frames.append(frame.assign(loop=name, seed=seed, share=frame["utility"] / frame["oracle_utility"]))
    return pd.concat(frames, ignore_index=True)


def _at_round(frame: pd.DataFrame, round_: int | None) -> pd.DataFrame:
    last = int(frame["round"].max()) if round_ is None else round_
    if last not in set(frame["round"]):
        raise ValueError(f"round {last} is not in the frame (rounds {sorted(set(frame['round']))})")
    return frame[frame["round"] == last]


def replication_table(frame: pd.DataFrame, columns: list[str], round_: int | None = None,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each loop's ``columns`` at ``round_`` (default: the last), with a
    ``confidence`` percentile-bootstrap interval of that mean (:func:`recnb.evaluation.uncertainty.bootstrap_ci`).

    ``frame``: :func:`replicate_feedback_loops`' output. Returns one row per loop (in order of first
    appearance) and columns ``(column, "mean" | "low" | "high")``, plus ``seeds``. With a handful
    of seeds the interval is rough: read it as the seed-to-seed spread, not a precise bound.
    """
    at = _at_round(frame, round_)
    rows = {}
    for name, part in at.groupby("loop", sort=False):
        row: dict[tuple[str, str], float] = {}
        for col in columns:
            ci = bootstrap_ci(part[col].to_numpy(), confidence=confidence)
            row.update({(col, "mean"): ci.mean, (col, "low"): ci.low, (col, "high"): ci.high})
        row[("seeds", "")] = float(len(part))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def compare_loops(frame: pd.DataFrame, a: str, b: str, column: str, round_: int | None = None,
                  confidence: float = 0.95) -> dict[str, float]:
    """Loop ``a`` minus loop ``b`` on ``column`` at ``round_`` (default: the last), paired by seed.

    Returns the mean difference over seeds, its paired-bootstrap interval
    (:func:`recnb.evaluation.uncertainty.paired_bootstrap`), ``wins`` (seeds where ``a > b``) and
    ``seeds``. A difference whose interval contains 0, or that does not hold at every seed, is not
    a finding of the replication.
    """
    at = _at_round(frame, round_)
    va = at[at["loop"] == a].set_index("seed")[column]
    vb = at[at["loop"] == b].set_index("seed")[column]
    if va.empty or vb.empty:
        raise ValueError(f"loops {a!r} and {b!r} must both be in the frame; it holds {sorted(set(frame['loop']))}")
    if set(va.index) != set(vb.index):
        raise ValueError(f"loops {a!r} and {b!r} ran on different seeds: {sorted(va.index)} vs {sorted(vb.index)}")
    vb = vb.loc[va.index]
    paired = paired_bootstrap(va.to_numpy(), vb.to_numpy(), confidence=confidence)
    return {"difference": paired.mean_diff, "low": paired.low, "high": paired.high,
            "wins": float((va.to_numpy() > vb.to_numpy()).sum()), "seeds": float(len(va))}
