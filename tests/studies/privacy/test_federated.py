import numpy as np
import pandas as pd
import pytest
import torch

from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.data.schema import ITEM_IDX, USER_IDX
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.losses import bpr_loss
from recnb.studies.privacy.federated import (FedAvgRecommender, client_of_users, dominant_category, dp_local_step,
                                             epoch_generator, weighted_average)
from recnb.training.accountant import dp_sgd_epsilon


def test_one_client_fedavg_equals_centralised_sgd():
    split = random_holdout(make_shop(n_users=50, n_items=30, n_interactions=900, seed=1), seed=1)
    fed = FedAvgRecommender(n_clients=1, rounds=3, local_epochs=2, embedding_dim=6, lr=5.0, batch_size=32,
                            n_negatives=2, seed=0).fit(split)
    # centralised: one model, torch.optim.SGD, the same 6 epochs of batches
    pairs = np.unique(split.train[[USER_IDX, ITEM_IDX]].to_numpy(), axis=0)
    users, items = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
    positives = PositiveSet(users, items, split.n_users, split.n_items)
    U0, V0 = fed.init_tables(split.n_users, split.n_items)
    U, V = torch.nn.Parameter(U0), torch.nn.Parameter(V0)
    opt = torch.optim.SGD([U, V], lr=5.0)
    for epoch in range(6):
        g = epoch_generator(0, 0, epoch)
        order = torch.randperm(len(users), generator=g)
        for start in range(0, len(order), 32):
            idx = order[start:start + 32]
            neg = sample_negatives(users[idx], 2, positives, None, g, check=False)
            loss = bpr_loss((U[users[idx]] * V[items[idx]]).sum(1), (U[users[idx]].unsqueeze(1) * V[neg]).sum(2))
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(fed.item_embedding_, V.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(fed.user_embedding_, U.detach(), rtol=0, atol=1e-5)
    assert len(fed.history_) == 3


def test_weighted_average_and_partition():
    a, b = torch.ones(2, 2), torch.full((2, 2), 4.0)
    torch.testing.assert_close(weighted_average([a, b], [3, 1]), torch.full((2, 2), 1.75))
    owner = client_of_users(10, 3, seed=0)
    assert sorted(np.bincount(owner).tolist()) == [3, 3, 4]


def test_several_clients_differ_from_one_and_callback_logs():
    split = random_holdout(make_shop(n_users=50, n_items=30, n_interactions=900, seed=1), seed=1)
    common = dict(rounds=2, embedding_dim=6, lr=5.0, batch_size=32, n_negatives=2, seed=0)
    one = FedAvgRecommender(n_clients=1, **common).fit(split)
    four = FedAvgRecommender(n_clients=4, client_fraction=0.5, **common).fit(split, callback=lambda r, m: {"r2": r * 2})
    assert [h["clients"] for h in four.history_] == [2, 2] and [h["r2"] for h in four.history_] == [2, 4]
    assert (one.item_embedding_ - four.item_embedding_).abs().max() > 1e-3


def test_non_iid_partition_by_group():
    groups = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2])
    owner = client_of_users(12, 4, seed=3, groups=groups)
    assert np.bincount(owner).tolist() == [3, 3, 3, 3]
    # contiguous shards of the users sorted by group: client c's groups all lie at or above client c-1's
    for c in range(3):
        assert groups[owner == c].max() <= groups[owner == c + 1].min()
    with pytest.raises(ValueError, match="one label per user"):
        client_of_users(12, 4, groups=groups[:5])


def test_dominant_category_by_hand():
    split = random_holdout(make_shop(n_users=40, n_items=30, n_interactions=800, seed=2), seed=2)
    dominant = dominant_category(split)
    cats = sorted(split.items_frame["category"].unique())
    train = split.train.drop_duplicates([USER_IDX, ITEM_IDX])
    for u in range(0, 40, 7):
        mine = split.items_frame["category"].to_numpy()[train.loc[train[USER_IDX] == u, ITEM_IDX].to_numpy()]
        counts = pd.Series(mine).value_counts()
        best = min(counts.index[counts == counts.max()])  # ties to the smaller category
        assert cats[dominant[u]] == best


def test_dp_local_step_without_noise_is_the_clipped_gradient_step():
    torch.manual_seed(0)
    U, V = torch.randn(5, 3, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    users, items = torch.tensor([0, 2, 2, 4]), torch.tensor([[1, 3, 5], [0, 6, 6], [2, 1, 4], [5, 0, 3]])
    # autograd of the summed per-example BPR losses, each example's gradient clipped to C by hand
    C, expected, lr = 0.3, 8.0, 2.0
    total_u, total_v = torch.zeros_like(U), torch.zeros_like(V)
    for b in range(4):
        Ub, Vb = U.clone().requires_grad_(True), V.clone().requires_grad_(True)
        s = Vb[items[b]] @ Ub[users[b]]
        gu, gv = torch.autograd.grad(bpr_loss(s[:1], s[1:].unsqueeze(0)), (Ub, Vb))
        norm = torch.sqrt(gu.pow(2).sum() + gv.pow(2).sum())
        total_u += gu * min(1.0, C / norm.item())
        total_v += gv * min(1.0, C / norm.item())
    U1, V1 = U.clone(), V.clone()
    dp_local_step(U1, V1, users, items, torch.tensor([0, 2, 4]), lr, C, 0.0, expected, torch.Generator())
    torch.testing.assert_close(U1, U - lr * total_u / expected)
    torch.testing.assert_close(V1, V - lr * total_v / expected)


def test_dp_local_step_noise_lands_on_every_item_and_only_on_the_clients_users():
    U, V = torch.zeros(6, 400, dtype=torch.float64), torch.zeros(50, 400, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    empty = torch.zeros(0, dtype=torch.int64)
    dp_local_step(U, V, empty, empty.reshape(0, 2), torch.tensor([1, 4]), 1.0, 2.0, 1.5, 10.0, g)
    # an empty batch still releases noise N(0, (σC)²)/(qN) = 0.3² per entry
    assert abs(V.std().item() / 0.3 - 1) < 0.02 and (V != 0).all()
    assert (U[[0, 2, 3, 5]] == 0).all() and abs(U[[1, 4]].std().item() / 0.3 - 1) < 0.05


def test_dp_fedavg_budget_matches_centralised_dp_sgd():
    split = random_holdout(make_shop(n_users=60, n_items=30, n_interactions=1200, seed=1), seed=1)
    common = dict(rounds=2, local_epochs=2, embedding_dim=4, lr=5.0, n_negatives=2, noise_multiplier=1.2,
                  sample_rate=0.25, noise_seed=0, seed=0)
    central = FedAvgRecommender(n_clients=1, **common).fit(split)
    fed = FedAvgRecommender(n_clients=3, **common).fit(split)
    half = FedAvgRecommender(n_clients=4, client_fraction=0.5, **common).fit(split)
    # every client takes rounds × local_epochs × round(1/q) = 16 noisy steps: the same ε as centralised
    assert central.client_steps_.tolist() == [16] and fed.client_steps_.tolist() == [16, 16, 16]
    assert fed.epsilon(1e-5) == central.epsilon(1e-5) == dp_sgd_epsilon(0.25, 1.2, 16, 1e-5)
    assert half.client_steps_.sum() == 2 * 2 * 2 * 4 and half.epsilon(1e-5) <= central.epsilon(1e-5)
    assert FedAvgRecommender(n_clients=3).epsilon(1e-5) == float("inf")
    # a fixed noise seed reproduces the run; the default draws fresh noise
    again = FedAvgRecommender(n_clients=3, **common).fit(split)
    torch.testing.assert_close(again.item_embedding_, fed.item_embedding_, rtol=0, atol=0)
    fresh = FedAvgRecommender(n_clients=3, **(common | {"noise_seed": None})).fit(split)
    assert (fresh.item_embedding_ - fed.item_embedding_).abs().max() > 1e-3
    non_iid = FedAvgRecommender(n_clients=3, partition="category", **common).fit(split)
    assert np.isfinite(non_iid.item_embedding_.numpy()).all()
    with pytest.raises(ValueError, match="partition"):
        FedAvgRecommender(partition="by_region")
