import numpy as np
import torch

from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.data.schema import ITEM_IDX, USER_IDX
from recnb.data.splits import random_holdout
from recnb.data.synthetic import make_shop
from recnb.math.losses import bpr_loss
from recnb.studies.privacy.federated import FedAvgRecommender, client_of_users, epoch_generator, weighted_average


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
