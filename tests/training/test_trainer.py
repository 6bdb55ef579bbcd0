from __future__ import annotations

import pytest
from pytorch_lightning.strategies import DDPStrategy

from recnb.data import make_shop, random_holdout
from recnb.data.splits import holdout_validation
from recnb.evaluation import evaluate
from recnb.models.embedding import EmbeddingRecommender
from recnb.training import ddp_strategy, make_trainer


@pytest.fixture(scope="module")
def split():
    return random_holdout(make_shop(n_users=60, n_items=40, n_categories=3, n_interactions=1500, seed=0), seed=0)


def test_make_trainer_single_and_multi_process():
    one = make_trainer(1)
    assert one.world_size == 1 and not isinstance(one.strategy, DDPStrategy)
    two = make_trainer(1, devices=2)
    assert isinstance(two.strategy, DDPStrategy) and two.world_size == 2
    assert two.strategy.process_group_backend == "gloo"
    assert two.strategy.launcher.is_interactive_compatible  # forked workers: usable in a notebook kernel
    assert not make_trainer(1, devices=2, strategy="ddp_spawn").strategy.launcher.is_interactive_compatible


@pytest.mark.parametrize("name, interactive", [("ddp_notebook", True), ("ddp_fork", True), ("ddp_spawn", False)])
def test_ddp_strategy_names(name, interactive):
    s = ddp_strategy(name)
    assert isinstance(s, DDPStrategy) and s.process_group_backend == "gloo"
    assert make_trainer(1, devices=2, strategy=name).strategy.launcher.is_interactive_compatible == interactive


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(devices=0), ValueError, "devices must be a positive integer"),
    (dict(devices=2, strategy="ddp_magic"), ValueError, "strategy must be one of"),
])
def test_make_trainer_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_trainer(1, **kwargs)


def test_fit_without_validation_has_no_validation_curve(split):
    h = EmbeddingRecommender(max_epochs=2, batch_size=64).fit(split).trainer_.logger.history
    assert "val_ndcg@10" not in h.columns and h["train_loss"].notna().sum() == 2


def test_fit_with_a_validation_split_logs_its_ndcg_each_epoch(split):
    val = holdout_validation(split, ratio=0.25, seed=0)
    m = EmbeddingRecommender(max_epochs=3, batch_size=64).fit(val, validation=val)
    h = m.trainer_.logger.history
    assert h["val_ndcg@10"].notna().sum() == 3
    # the last value is recnb.evaluation' NDCG@10 of the final model on the validation items
    assert h["val_ndcg@10"].dropna().iloc[-1] == pytest.approx(evaluate(m, val, 10)["ndcg@10"], abs=1e-6)
    assert h["val_ndcg@10"].dropna().iloc[-1] != pytest.approx(evaluate(m, split, 10)["ndcg@10"], abs=1e-6)
    with pytest.raises(ValueError, match="own train part"):
        EmbeddingRecommender(max_epochs=1).fit(split, validation=val)


def test_training_threads_apply_during_fit_only(split):
    import torch
    from pytorch_lightning.callbacks import Callback

    from recnb.training import torch_threads

    class Spy(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append(torch.get_num_threads())

    seen: list[int] = []
    with torch_threads(2):
        EmbeddingRecommender(embedding_dim=4, max_epochs=2).fit(
            split, trainer=make_trainer(2, threads=1, callbacks=[Spy()]))
        assert seen == [1, 1]  # trained on one thread...
        assert torch.get_num_threads() == 2  # ...and the process has its two back for scoring
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError("a failing block")
        assert torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="threads must be a positive integer, got 0"):
        make_trainer(1, threads=0)
