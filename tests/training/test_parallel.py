from __future__ import annotations

import math

import pytest
import torch

from recnb.data.datamodule import steps_per_epoch
from recnb.training.parallel import allreduce_mean, effective_batch_size, scaled_lr, shard_batch, shard_gradients
from recnb.training.profiling import csr_bytes, dense_matrix_bytes, measure, peak_rss_bytes, reset_peak_rss


def _bpr_setup(n=12):
    g = torch.Generator().manual_seed(0)
    U = torch.randn(5, 3, generator=g, requires_grad=True)
    V = torch.randn(7, 3, generator=g, requires_grad=True)
    batch = {"user": torch.randint(5, (n,), generator=g), "pos": torch.randint(7, (n,), generator=g),
             "neg": torch.randint(7, (n,), generator=g)}

    def loss(b):
        u = U[b["user"]]
        return -torch.nn.functional.logsigmoid((u * V[b["pos"]]).sum(1) - (u * V[b["neg"]]).sum(1)).mean()

    return loss, (U, V), batch


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_averaged_shard_gradients_equal_the_full_batch_gradient(world):
    loss, params, batch = _bpr_setup(12)  # 12 rows: equal shards for every world size here
    full = torch.autograd.grad(loss(batch), params)
    averaged = allreduce_mean(shard_gradients(loss, params, batch, world))
    for a, b in zip(averaged, full):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_unequal_shards_do_not_average_to_the_full_gradient():
    loss, params, batch = _bpr_setup(13)  # shards of 7 and 6 rows
    full = torch.autograd.grad(loss(batch), params)
    averaged = allreduce_mean(shard_gradients(loss, params, batch, 2))
    assert not torch.allclose(averaged[0], full[0], atol=1e-6)
    # weighting each shard by its size restores it
    grads = shard_gradients(loss, params, batch, 2)
    weighted = [(7 * a + 6 * b) / 13 for a, b in zip(*grads)]
    torch.testing.assert_close(weighted[0], full[0], rtol=1e-5, atol=1e-7)


def test_shard_batch_and_bad_input():
    parts = shard_batch({"a": torch.arange(5), "b": torch.arange(5) * 10}, 2)
    assert [p["a"].tolist() for p in parts] == [[0, 1, 2], [3, 4]] and parts[1]["b"].tolist() == [30, 40]
    with pytest.raises(ValueError, match="share their first dimension"):
        shard_batch({"a": torch.arange(5), "b": torch.arange(4)}, 2)
    with pytest.raises(ValueError, match="world_size must be a positive integer"):
        shard_batch({"a": torch.arange(5)}, 0)
    with pytest.raises(ValueError, match="rank 1's gradients"):
        allreduce_mean([[torch.zeros(2)], [torch.zeros(3)]])


def test_effective_batch_and_learning_rate_scaling():
    assert effective_batch_size(512, 2) == 1024 and effective_batch_size(256, 8, accumulate_grad_batches=2) == 4096
    assert scaled_lr(0.01, 4) == pytest.approx(0.04) and scaled_lr(0.01, 4, "sqrt") == pytest.approx(0.02)
    assert scaled_lr(0.01, 3, "none") == 0.01 and scaled_lr(0.1, 2, "sqrt") == pytest.approx(0.1 * math.sqrt(2))
    with pytest.raises(ValueError, match="rule must be one of"):
        scaled_lr(0.01, 2, "cubic")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        effective_batch_size(0, 2)


def test_measure_sees_a_large_allocation():
    import numpy as np

    stages = []
    with measure("small", stages):
        np.ones(1000)
    with measure("big", stages):
        a = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
        del a
    small, big = stages
    assert big.seconds >= 0 and big.name == "big"
    if reset_peak_rss():  # Linux: per-stage peaks
        assert big.peak_rss - small.peak_rss > 300 * 2**20
        assert big.growth > 300 * 2**20 and small.growth < 50 * 2**20
    assert peak_rss_bytes() > 0


def test_memory_arithmetic_matches_numpy_and_scipy():
    import numpy as np
    import scipy.sparse as sp

    assert dense_matrix_bytes(7, 5) == np.zeros((7, 5), dtype=np.float32).nbytes
    m = sp.random(50, 30, density=0.1, format="csr", dtype=np.float32, random_state=0)
    assert csr_bytes(50, m.nnz) == m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
    assert dense_matrix_bytes(200_000, 50_000) == 40_000_000_000
    with pytest.raises(ValueError, match="nnz must be a non-negative integer"):
        csr_bytes(3, -1)


@pytest.mark.parametrize("n_rows, batch_size, world, expected", [(10, 4, 1, 3), (10, 4, 2, 2), (9, 5, 2, 1), (17, 4, 4, 2)])
def test_steps_per_epoch_counts_the_sampler_batches(n_rows, batch_size, world, expected):
    from recnb.data.datamodule import ShardedBatchSampler

    assert steps_per_epoch(n_rows, batch_size, world) == expected  # ⌈⌈n/W⌉/b⌉ by hand
    for rank in range(world):
        sampler = ShardedBatchSampler(n_rows, batch_size, num_replicas=world, rank=rank)
        assert len(list(sampler)) == len(sampler) == expected


def test_steps_per_epoch_bad_input():
    assert steps_per_epoch(0, 8, 2) == 0
    with pytest.raises(ValueError, match="world_size must be a positive integer"):
        steps_per_epoch(10, 4, 0)
    with pytest.raises(ValueError, match="n_rows must be a non-negative integer"):
        steps_per_epoch(-1, 4)


def test_shard_gradients_of_a_sparse_embedding_are_dense_and_exact():
    table = torch.nn.Embedding(6, 3, sparse=True)
    batch = {"row": torch.tensor([0, 2, 2, 5])}

    def loss(b):
        return (table(b["row"]) ** 2).sum(dim=1).mean()

    (g0,), (g1,) = shard_gradients(loss, [table.weight], batch, 2)
    assert not g0.is_sparse and g0.shape == (6, 3)
    w = table.weight.detach()
    expected0 = torch.zeros(6, 3)
    expected0[0], expected0[2] = w[0], w[2]  # d/dw mean(‖w_0‖², ‖w_2‖²) = (2 w / 2) on each row used
    torch.testing.assert_close(g0, expected0)
    torch.testing.assert_close(g1[2], w[2])
    torch.testing.assert_close(g1[5], w[5])
    assert g1[[0, 1, 3, 4]].abs().sum() == 0
