"""BundleScorer: shapes, the MSE loss, freezing, and early stopping restoring the best weights."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from recnb.models.bundle import BundleScorer, fit_bundle_scorer, pair_features, pair_loader, pair_mse
from recnb.models.text_encoder import mean_pool
from recnb.training import make_trainer

TEXTS = ["slim smartphone", "silicone phone case", "thin laptop", "padded laptop bag", "running shoes", "sports socks"]


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return pd.DataFrame({"anchor": [0, 0, 2, 2, 4, 4], "candidate": [1, 2, 3, 5, 5, 0],
                         "target": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})


def _batch(pairs: pd.DataFrame) -> dict[str, torch.Tensor]:
    return next(iter(pair_loader(pairs, batch_size=len(pairs))))


def test_pair_features_layout():
    u, v = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 0.5]])
    assert pair_features(u, v).tolist() == [[1.0, -2.0, 3.0, 0.5, 2.0, 2.5, 3.0, -1.0]]


def test_forward_shapes_and_mse(pairs):
    model = BundleScorer(TEXTS, max_length=16, train_layers=1, hidden=8).eval()
    batch = _batch(pairs)
    out = model(batch["anchor"], batch["candidate"])
    assert out.shape == (len(pairs),)
    assert model.embed(torch.tensor([0, 3])).shape == (2, 384)
    loss = model.training_step(batch, 0)
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(out, batch["target"]).item(), rel=1e-6)
    assert pair_mse(model, pairs) == pytest.approx(loss.item(), rel=1e-5)
    # each pair scored from the cached item vectors agrees with forward
    table = model.score_candidates([0, 2, 4])
    assert table.shape == (3, len(TEXTS))
    assert table[0, 1].item() == pytest.approx(out[0].item(), abs=1e-5)
    assert table[2, 0].item() == pytest.approx(out[5].item(), abs=1e-5)


def test_masked_mean_pooling_ignores_padding():
    model = BundleScorer(TEXTS, max_length=16, train_layers=0, hidden=8).eval()
    with torch.no_grad():
        alone = model.encode_items(torch.tensor([0]))  # trimmed to its own length: no padding
        together = model.encode_items(torch.tensor([0, 3]))  # padded to the longer text
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train_layers", [1, 3, 6])
def test_the_kept_frozen_bottom_gives_the_encoder_s_own_vectors(train_layers):
    model = BundleScorer(TEXTS, max_length=16, train_layers=train_layers, hidden=8).eval()
    items = torch.tensor([3, 0, 5])
    mask = model.attention_mask[items]
    with torch.no_grad():
        full = mean_pool(model.encoder(input_ids=model.input_ids[items], attention_mask=mask).last_hidden_state, mask)
        first = model.encode_items(items)  # computes the bottom states of items 3, 0, 5 and keeps them
        again = model.encode_items(torch.tensor([0, 3]))  # a shorter batch: read from the kept states
    torch.testing.assert_close(first, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, full[[1, 0]], atol=1e-5, rtol=1e-5)
    assert model._bottom_done.tolist() == [True, False, False, True, False, True]
    model.load_state_dict(model.state_dict())  # the same frozen weights: the bottom states stay
    assert model._bottom is not None
    changed = model.state_dict()
    changed["encoder.embeddings.word_embeddings.weight"] = changed["encoder.embeddings.word_embeddings.weight"] + 1.0
    model.load_state_dict(changed)  # other frozen weights: recomputed
    assert model._bottom is None


def test_computing_the_bottom_in_training_draws_no_random_numbers():
    model = BundleScorer(TEXTS, max_length=16, train_layers=2, hidden=8).train()
    modes = [m.training for m in model.modules()]
    state = torch.get_rng_state()
    model._bottom_states(torch.tensor([0, 1, 2]), 4)  # the full encoder runs, its trained top layers without dropout
    assert torch.equal(torch.get_rng_state(), state)
    assert [m.training for m in model.modules()] == modes and model.encoder.encoder.layer[-1].training


def _counting_encoder_calls(model: BundleScorer) -> list[int]:
    """One entry per pass through the encoder's top layer (a full pass, or the fine-tuned top alone)."""
    calls: list[int] = []
    model.encoder.encoder.layer[-1].register_forward_hook(lambda module, args, out: calls.append(1))
    return calls


def test_a_frozen_encoder_encodes_each_item_once(pairs):
    model = BundleScorer(TEXTS, max_length=16, train_layers=0, hidden=8, lr=1e-2, warmup=0.0)
    calls = _counting_encoder_calls(model)
    batch = _batch(pairs)
    model.training_step(batch, 0)  # train mode, with gradient: the head's, the encoder is a fixed function
    first = len(calls)
    assert first >= 1 and model._cached[torch.unique(torch.cat([batch["anchor"], batch["candidate"]]))].all()
    model.training_step(batch, 1)
    model.eval()
    with torch.no_grad():
        cached = model.embed(torch.tensor([0, 3, 5]))
    assert len(calls) == first  # nothing encoded again, in train or eval mode
    torch.testing.assert_close(cached, model.encode_items(torch.tensor([0, 3, 5])), atol=1e-5, rtol=1e-5)
    model.train()
    loss = model.training_step(batch, 2)
    loss.backward()
    assert model.head[0].weight.grad is not None and all(p.grad is None for p in model.encoder.parameters())


def test_a_fine_tuned_encoder_reuses_vectors_only_without_gradient(pairs):
    model = BundleScorer(TEXTS, max_length=16, train_layers=1, hidden=8).eval()
    calls = _counting_encoder_calls(model)
    with torch.no_grad():
        first = model.embed(torch.tensor([0, 1]))
        n = len(calls)
        model.embed(torch.tensor([1, 0]))
    assert len(calls) == n  # the second call read the table
    with_grad = model.embed(torch.tensor([0, 1]))  # gradient wanted: encoded now (the top layer, on the kept bottom)
    assert len(calls) == n + 1 and with_grad.requires_grad
    torch.testing.assert_close(with_grad.detach(), first, atol=1e-5, rtol=1e-5)
    model.train()
    model.training_step(_batch(pairs), 0)  # the weights are about to change: the table is dropped
    assert model._cache is None
    model.eval()
    n = len(calls)
    with torch.no_grad():
        model.embed(torch.tensor([0]))
    assert len(calls) == n + 1  # item 0 encoded again


def _one_step(model: BundleScorer, pairs: pd.DataFrame) -> None:
    trainer = make_trainer(1, seed=0, limit_train_batches=1)
    trainer.fit(model, pair_loader(pairs, batch_size=len(pairs)))


@pytest.mark.parametrize("train_layers", [0, 1])
def test_freezing_leaves_frozen_parameters_unchanged(pairs, train_layers):
    model = BundleScorer(TEXTS, max_length=16, train_layers=train_layers, hidden=8, lr=1e-2, warmup=0.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _one_step(model, pairs)
    top = f"encoder.encoder.layer.{model.encoder.config.num_hidden_layers - 1}."
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any(n.startswith("head.") for n in changed)
    encoder_changed = {n for n in changed if n.startswith("encoder.")}
    if train_layers == 0:
        assert encoder_changed == set()
    else:  # only the top layer moved; embeddings and the five layers below it did not
        assert encoder_changed and all(n.startswith(top) for n in encoder_changed)


def test_train_layers_is_checked():
    with pytest.raises(ValueError, match="train_layers"):
        BundleScorer(TEXTS, max_length=16, train_layers=7)


def test_early_stopping_restores_the_best_weights(pairs):
    # validation asks for the opposite of training: the more the model fits, the worse validation gets
    val = pairs.assign(target=1.0 - pairs["target"])
    model = BundleScorer(TEXTS, max_length=16, train_layers=1, hidden=8, lr=1e-3, head_lr=3e-2, warmup=0.0)
    result = fit_bundle_scorer(model, pairs, val, max_epochs=8, batch_size=3, patience=2)
    assert result.stopped_epoch is not None and result.epochs_run < 8
    assert result.best_val_loss == min(result.val_losses) < result.val_losses[-1]
    assert len(result.val_losses) == result.best_check + 3  # stopped after `patience` checks without improvement
    assert pair_mse(model, val) == pytest.approx(result.best_val_loss, rel=1e-4)
    assert {"train_loss_step", "val_loss"} <= set(result.history.columns)
