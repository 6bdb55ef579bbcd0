from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from torch.utils.data import DistributedSampler

from recnb.data import make_shop, random_holdout
from recnb.data.datamodule import InteractionDataModule, ShardedBatchSampler, batch_generator
from recnb.data.splits import holdout_validation
from recnb.data.sampling import PositiveSet, sample_negatives
from recnb.training import make_trainer


@pytest.fixture(scope="module")
def split():
    return random_holdout(make_shop(n_users=60, n_items=50, n_categories=4, n_interactions=3000, seed=0), seed=0)


def test_positive_set_membership():
    ps = PositiveSet(torch.tensor([0, 0, 2]), torch.tensor([1, 3, 0]), n_users=3, n_items=4)
    got = ps.contains(torch.tensor([[0], [1], [2]]), torch.arange(4)[None, :])
    expected = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(got, expected)
    assert ps.counts.tolist() == [2, 0, 1]


def test_uniform_negatives_are_uniform_over_the_non_positives():
    ps = PositiveSet(torch.tensor([0, 0]), torch.tensor([0, 1]), n_users=1, n_items=5)
    neg = sample_negatives(torch.zeros(20_000, dtype=torch.long), 1, ps, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(neg.flatten(), minlength=5).double() / neg.numel()
    assert freq[:2].sum() == 0
    torch.testing.assert_close(freq[2:], torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.015, rtol=0)


def test_popularity_negatives_follow_the_weights_renormalised():
    ps = PositiveSet(torch.tensor([0]), torch.tensor([3]), n_users=1, n_items=4)
    w = torch.tensor([1.0, 2.0, 0.0, 5.0])
    neg = sample_negatives(torch.zeros(30_000, dtype=torch.long), 1, ps, w, torch.Generator().manual_seed(0))
    freq = torch.bincount(neg.flatten(), minlength=4).double() / neg.numel()
    # item 3 is a positive and item 2 has weight 0: the mass 1 : 2 goes to items 0 and 1
    torch.testing.assert_close(freq, torch.tensor([1 / 3, 2 / 3, 0.0, 0.0], dtype=torch.float64), atol=0.015, rtol=0)


def test_a_user_with_nothing_left_to_sample_is_an_error():
    ps = PositiveSet(torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]), n_users=2, n_items=3)
    with pytest.raises(ValueError, match="user index 0 has no item left"):
        sample_negatives(torch.tensor([0, 1]), 2, ps)
    ps = PositiveSet(torch.tensor([0]), torch.tensor([0]), n_users=1, n_items=3)
    with pytest.raises(ValueError, match="user index 0 has no item left"):
        sample_negatives(torch.tensor([0]), 1, ps, torch.tensor([1.0, 0.0, 0.0]))


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_implicit_batches_cover_each_pair_once_and_never_sample_a_positive(split, sampler):
    dm = InteractionDataModule(split, batch_size=64, n_negatives=5, sampler=sampler, seed=1)
    batches = list(dm.train_dataloader())
    assert len(batches) == len(dm.train_dataloader()) == -(-dm.n_train // 64)
    b = batches[0]
    assert b["user"].shape == (64,) and b["pos"].shape == (64,) and b["neg"].shape == (64, 5)
    assert b["neg"].dtype == torch.int64
    users = torch.cat([b["user"] for b in batches])
    pos = torch.cat([b["pos"] for b in batches])
    neg = torch.cat([b["neg"] for b in batches])
    expected = set(zip(split.train["user_idx"], split.train["item_idx"]))
    assert sorted(zip(users.tolist(), pos.tolist())) == sorted(expected)
    seen = split.seen_mask()
    assert not seen[users[:, None], neg].any()
    if sampler == "popularity":  # items nobody trained on are never drawn
        never = torch.as_tensor(np.setdiff1d(np.arange(split.n_items), split.train["item_idx"]))
        assert not torch.isin(neg, never).any()


def test_batches_are_seeded_and_change_per_epoch(split):
    a = list(InteractionDataModule(split, batch_size=128, seed=5).train_dataloader())
    dm = InteractionDataModule(split, batch_size=128, seed=5)
    b = list(dm.train_dataloader())
    assert all(torch.equal(x["neg"], y["neg"]) and torch.equal(x["user"], y["user"]) for x, y in zip(a, b))
    second = list(dm.train_dataloader())  # no trainer: the second pass is epoch 1
    assert not torch.equal(second[0]["user"], b[0]["user"])
    other = list(InteractionDataModule(split, batch_size=128, seed=6).train_dataloader())
    assert not torch.equal(other[0]["neg"], a[0]["neg"])


def test_explicit_batches_hold_the_rated_rows(split):
    dm = InteractionDataModule(split, mode="explicit", batch_size=50)
    batches = list(dm.train_dataloader())
    rated = split.train.dropna(subset=["rating"])
    got = sorted(
        zip(*(torch.cat([b[k] for b in batches]).tolist() for k in ("user", "item", "rating")))
    )
    assert got == sorted(zip(rated["user_idx"], rated["item_idx"], rated["rating"]))
    assert batches[0]["rating"].dtype == torch.float32


def test_no_validation_split_means_no_validation_batches(split):
    assert list(InteractionDataModule(split).val_dataloader()) == []


def test_validation_batches_serve_the_validation_split_never_the_test_split(split):
    val = holdout_validation(split, ratio=0.25, seed=0)
    dm = InteractionDataModule(val, eval_batch_size=16, validation=val)
    batches = list(dm.val_dataloader())
    assert len(batches) == -(-len(val.test_users) // 16)
    users = torch.cat([b["user"] for b in batches])
    assert users.tolist() == val.test_users.tolist()
    seen = torch.cat([b["seen"] for b in batches])
    relevant = torch.cat([b["relevant"] for b in batches])
    assert seen.dtype == relevant.dtype == torch.bool and seen.shape == (len(users), split.n_items)
    # the dense blocks, by hand from the frames: seen = val.train pairs, relevant = val.test pairs
    dense_seen = torch.zeros(split.n_users, split.n_items, dtype=torch.bool)
    dense_seen[val.train["user_idx"].to_numpy(), val.train["item_idx"].to_numpy()] = True
    dense_rel = torch.zeros_like(dense_seen)
    dense_rel[val.test["user_idx"].to_numpy(), val.test["item_idx"].to_numpy()] = True
    assert torch.equal(seen, dense_seen[users]) and torch.equal(relevant, dense_rel[users])
    test_pairs = set(zip(split.test["user_idx"], split.test["item_idx"]))
    served = set(zip(*(t.tolist() for t in torch.nonzero(relevant, as_tuple=True))))
    assert not {(int(users[r]), i) for r, i in served} & test_pairs
    # test_dataloader serves split.test (for trainer.test)
    test_users = torch.cat([b["user"] for b in InteractionDataModule(split).test_dataloader()])
    assert test_users.tolist() == split.test_users.tolist()


def test_a_validation_split_must_share_the_index_space_and_hold_unseen_pairs(split):
    other = random_holdout(make_shop(n_users=30, n_items=50, n_categories=4, n_interactions=900, seed=0), seed=0)
    with pytest.raises(ValueError, match="same users and items"):
        InteractionDataModule(split, validation=other)
    val = holdout_validation(split, seed=0)  # its held-out pairs are training pairs of split
    with pytest.raises(ValueError, match="train on the validation split's own train part"):
        InteractionDataModule(split, validation=val)
    with pytest.raises(TypeError, match="validation must be a Split"):
        InteractionDataModule(split, validation=split.test)


def test_training_rows_are_sharded_like_a_distributed_sampler(split):
    dm = InteractionDataModule(split, batch_size=50, n_negatives=3, seed=4)
    n = dm.n_train
    for epoch in (0, 1):
        for r in range(4):
            mine = ShardedBatchSampler(n, 50, num_replicas=4, rank=r, seed=4)
            torchs = DistributedSampler(range(n), num_replicas=4, rank=r, seed=4, shuffle=True)
            mine.set_epoch(epoch)
            torchs.set_epoch(epoch)
            assert mine.rows().tolist() == list(torchs)
            keys = list(mine)
            assert len(keys) == len(mine) == -(-len(torchs) // 50)
            assert torch.cat([k.rows for k in keys]).tolist() == list(torchs)
    # one epoch, four ranks: disjoint shares covering every pair, padded to a multiple of 4
    loaders = [dm.train_dataloader(rank=r, world_size=4) for r in range(4)]
    pairs = []
    for loader in loaders:
        loader.sampler.set_epoch(0)
        batches = list(loader)
        pairs.append(torch.stack([torch.cat([b["user"] for b in batches]), torch.cat([b["pos"] for b in batches])], 1))
    assert [len(p) for p in pairs] == [-(-n // 4)] * 4
    everything = torch.cat(pairs)
    assert len(torch.unique(everything, dim=0)) == n == len(split.train[["user_idx", "item_idx"]].drop_duplicates())
    assert len(everything) - n == 4 * -(-n // 4) - n > 0


def test_negatives_are_seeded_per_epoch_rank_and_batch(split):
    dm = InteractionDataModule(split, batch_size=40, n_negatives=2, seed=7)
    first = list(dm.train_dataloader(rank=1, world_size=2))
    key = next(iter(ShardedBatchSampler(dm.n_train, 40, num_replicas=2, rank=1, seed=7)))
    assert key.epoch == 0 and key.rank == 1 and key.number == 0
    expected = sample_negatives(dm.users[key.rows], 2, dm.positives, None, batch_generator(7, 0, 1, 0), check=False)
    assert torch.equal(first[0]["neg"], expected)
    again = list(InteractionDataModule(split, batch_size=40, n_negatives=2, seed=7).train_dataloader(rank=1, world_size=2))
    assert all(torch.equal(a["neg"], b["neg"]) and torch.equal(a["user"], b["user"]) for a, b in zip(first, again))


def test_seed_must_be_a_non_negative_integer(split):
    for seed in (1.5, "0", -1, True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            InteractionDataModule(split, seed=seed)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(mode="pairwise"), "mode must be"), (dict(sampler="zipf"), "sampler must be"), (dict(n_negatives=0), "n_neg")],
)
def test_bad_arguments(split, kwargs, message):
    with pytest.raises(ValueError, match=message):
        InteractionDataModule(split, **kwargs)


class _Recorder(pl.LightningModule):
    """A dot-product model trained with BPR that keeps the negatives it was given."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.u = torch.nn.Embedding(n_users, 4)
        self.i = torch.nn.Embedding(n_items, 4)
        self.negatives: list[list[torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.negatives.append([])
        self.negatives[-1].append(batch["neg"].clone())
        u = self.u(batch["user"])
        diff = (u * self.i(batch["pos"])).sum(-1) - (u[:, None] * self.i(batch["neg"])).sum(-1).mean(-1)
        return -torch.nn.functional.logsigmoid(diff).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_real_trainer_gets_new_negatives_each_epoch_and_the_same_per_run(split):
    runs = []
    for _ in range(2):
        model = _Recorder(split.n_users, split.n_items)
        make_trainer(max_epochs=2, seed=0).fit(
            model, datamodule=InteractionDataModule(split, batch_size=256, n_negatives=2, seed=0)
        )
        runs.append([torch.cat(epoch) for epoch in model.negatives])
    assert len(runs[0]) == len(runs[1]) == 2
    assert not torch.equal(runs[0][0], runs[0][1])
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
