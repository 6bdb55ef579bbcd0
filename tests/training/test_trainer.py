from __future__ import annotations

import logging
import os
import random
import signal
import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from recnb.data import make_shop, random_holdout
from recnb.data.splits import holdout_validation
from recnb.evaluation import evaluate
from recnb.models.embedding import EmbeddingRecommender
from recnb.training import TorchThreads, ddp_strategy, make_trainer, scoped_fit_state
from recnb.training.trainer import LIGHTNING_LOGGERS


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


# -- a fit leaves the process as it found it (issue 16) --------------------------------------------


class _Boom(RuntimeError):
    pass


class _Tiny(pl.LightningModule):
    """A linear regression whose step draws from torch's *global* generator (noise and, through
    ``shuffle=True``, the batch order), and records the process state it trains under."""

    def __init__(self, fail_at: int | None = None, interrupt: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.fail_at, self.interrupt = fail_at, interrupt
        self.during: dict[str, object] = {}

    def training_step(self, batch, batch_idx):
        self.during.update(threads=torch.get_num_threads(), deterministic=torch.are_deterministic_algorithms_enabled())
        if batch_idx == self.fail_at:
            raise KeyboardInterrupt if self.interrupt else _Boom("raised inside training_step")
        x, y = batch
        return ((self.layer(x) + 0.1 * torch.rand(len(x), 1) - y) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(5)
        x = torch.randn(64, 3, generator=g)
        return DataLoader(TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]])), batch_size=8, shuffle=True)


def _state() -> dict[str, object]:
    """Everything a fit could leave changed, in comparable form."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "threads": torch.get_num_threads(),
        "deterministic": (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
        "python generator": random.getstate(),
        "numpy generator": (name, keys.tobytes(), pos, has_gauss, gauss),
        "torch generator": torch.get_rng_state().numpy().tobytes(),
        "environment": {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")},
        "warning filters": list(warnings.filters),
        "logger levels": {n: logging.getLogger(n).level for n in (*LIGHTNING_LOGGERS, "")},
        "sigint": signal.getsignal(signal.SIGINT),
    }


@pytest.fixture
def process():
    """A process state that differs from what a recnb fit applies (3 threads, deterministic mode
    off, generators seeded elsewhere, no warning filter, Lightning's loggers at INFO), restored after
    the test whatever the code under test left behind."""
    levels = {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS}
    with warnings.catch_warnings(), scoped_fit_state(quiet=False):
        warnings.resetwarnings()
        torch.set_num_threads(3)
        torch.use_deterministic_algorithms(False)
        for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG"):
            os.environ.pop(k, None)
        random.seed(11), np.random.seed(12), torch.manual_seed(13)
        for n in LIGHTNING_LOGGERS:
            logging.getLogger(n).setLevel(logging.INFO)
        yield _state()
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)


def _differences(before, after):
    return sorted(k for k in before if before[k] != after[k])


def _fit_tiny(fail_at=None):
    model = _Tiny(fail_at=fail_at)
    make_trainer(2, seed=0).fit(model)
    return model


def _fit_recnb_model(split, fail_at, monkeypatch):
    if fail_at is not None:
        step = EmbeddingRecommender.training_step

        def failing(self, batch, batch_idx):
            if batch_idx == fail_at:
                raise _Boom("raised inside training_step")
            return step(self, batch, batch_idx)
        monkeypatch.setattr(EmbeddingRecommender, "training_step", failing)
    return EmbeddingRecommender(embedding_dim=4, max_epochs=2, batch_size=64).fit(split)


@pytest.mark.parametrize("fail_at", [1, None], ids=["raising", "completing"])
def test_a_make_trainer_fit_leaves_the_process_as_it_found_it(process, fail_at):
    model = _Tiny(fail_at=fail_at)  # (its layer's initialisation draws from torch's generator)
    process = _state()
    trainer_made = make_trainer(2, seed=0)
    assert _differences(process, _state()) == []  # building the Trainer changes nothing either
    if fail_at is None:
        trainer_made.fit(model)
    else:
        with pytest.raises(_Boom):
            trainer_made.fit(model)
    assert model.during == {"threads": 1, "deterministic": True}  # the run's own settings applied...
    assert _differences(process, _state()) == []  # ...and nothing of them left behind


@pytest.mark.parametrize("fail_at", [1, None], ids=["raising", "completing"])
def test_a_recnb_model_fit_leaves_the_process_as_it_found_it(process, split, fail_at, monkeypatch):
    if fail_at is None:
        _fit_recnb_model(split, None, monkeypatch)
    else:
        with pytest.raises(_Boom):
            _fit_recnb_model(split, fail_at, monkeypatch)
    assert _differences(process, _state()) == []


def test_fit_with_a_plain_trainer_also_restores_what_training_draws(process, split):
    """``LightningRecommender.fit`` scopes any Trainer: here the global generator the step draws
    from, and the thread count a ``TorchThreads`` callback set (restored in ``on_exception``)."""
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, callbacks=[TorchThreads(1)])
    before = _state()
    step = EmbeddingRecommender.training_step

    def noisy(self, batch, batch_idx):
        torch.rand(3)  # a draw from the global generator, as dropout would
        if batch_idx == 1:
            raise _Boom("raised inside training_step")
        return step(self, batch, batch_idx)

    model = EmbeddingRecommender(embedding_dim=4, batch_size=64)
    model.training_step = noisy.__get__(model)
    with pytest.raises(_Boom):
        model.fit(split, trainer=trainer)
    assert _differences(before, _state()) == []


def test_torch_threads_callback_restores_on_an_exception(process):
    """Lightning does not call ``teardown`` when training raises; ``TorchThreads`` restores in ``on_exception``."""
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, callbacks=[TorchThreads(1)])
    with pytest.raises(_Boom):
        trainer.fit(_Tiny(fail_at=1))
    assert torch.get_num_threads() == 3


def test_an_interrupted_fit_gives_back_the_sigint_handler(process):
    """On Ctrl-C Lightning ignores SIGINT and exits (SystemExit); the handler comes back."""
    model = _Tiny(fail_at=1, interrupt=True)
    process = _state()
    with pytest.raises(SystemExit):
        make_trainer(1, seed=0).fit(model)
    assert signal.getsignal(signal.SIGINT) is process["sigint"]
    assert _differences(process, _state()) == []


def test_the_seed_still_fixes_the_result_whatever_the_global_state():
    """The run seeds the global generators it draws from (noise, batch order), so the same seed gives
    the same weights even when the caller's generators are elsewhere; another seed gives others."""
    def weights(seed, global_seed):
        torch.manual_seed(global_seed), np.random.seed(global_seed), random.seed(global_seed)
        model = _Tiny()
        torch.nn.init.constant_(model.layer.weight, 0.0), torch.nn.init.constant_(model.layer.bias, 0.0)
        make_trainer(3, seed=seed).fit(model)
        return torch.cat([model.layer.weight.flatten(), model.layer.bias]).detach()

    first = weights(0, global_seed=1)
    assert torch.equal(first, weights(0, global_seed=2))
    assert not torch.equal(first, weights(1, global_seed=1))


def test_recnb_model_weights_are_reproducible_and_generators_untouched(split):
    a = EmbeddingRecommender(embedding_dim=4, max_epochs=2, batch_size=64).fit(split)
    torch.rand(5)
    state = torch.get_rng_state()  # the caller's generator, after a draw of its own
    b = EmbeddingRecommender(embedding_dim=4, max_epochs=2, batch_size=64).fit(split)
    assert torch.equal(a.user_embedding.weight, b.user_embedding.weight)
    assert torch.equal(state, torch.get_rng_state())  # the fit neither reseeded nor advanced it


def test_scoped_fit_state_restores_when_the_block_raises():
    before = _state()
    with pytest.raises(_Boom), scoped_fit_state(seed=3, deterministic=True):
        torch.set_num_threads(1)
        warnings.filterwarnings("ignore", message="anything")
        np.random.rand(2), random.random(), torch.rand(2)
        os.environ["PL_GLOBAL_SEED"] = "99"
        assert torch.are_deterministic_algorithms_enabled()
        raise _Boom("inside the block")
    assert _differences(before, _state()) == []
    with pytest.raises(ValueError, match="seed must be an integer"):
        make_trainer(1, seed=-1)


def test_a_logger_created_inside_the_scope_is_not_left_quiet():
    """quiet_lightning creates Lightning's loggers if they do not exist yet; the scope must not
    leave them at ERROR (they existed nowhere before, so they go back to NOTSET)."""
    manager = logging.root.manager
    saved = {n: manager.loggerDict.pop(n) for n in LIGHTNING_LOGGERS if n in manager.loggerDict}
    try:
        with scoped_fit_state():
            assert logging.getLogger("lightning.pytorch").level == logging.ERROR
        assert {n: logging.getLogger(n).level for n in LIGHTNING_LOGGERS} == dict.fromkeys(LIGHTNING_LOGGERS, logging.NOTSET)
    finally:
        for n in LIGHTNING_LOGGERS:
            manager.loggerDict.pop(n, None)
        manager.loggerDict.update(saved)
