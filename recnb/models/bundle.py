"""A bundle scorer: fine-tune all-MiniLM-L6-v2 on pairs of item texts with a small head and MSE.

What document 003 meant (a pretrained bidirectional encoder, a task head, MSE on a score, early
stopping), done so that it runs. For an anchor item ``a`` and a candidate ``j`` with texts
``x_a, x_j``:

.. math::

    u = \\operatorname{pool}(\\mathrm{BERT}(x_a)), \\quad v = \\operatorname{pool}(\\mathrm{BERT}(x_j)), \\qquad
    \\hat y = W_2\\,\\mathrm{ReLU}\\big(W_1 [u;\\, v;\\, |u - v|;\\, u \\odot v] + b_1\\big) + b_2,

with ``pool`` the attention-masked mean of :func:`recnb.models.text_encoder.mean_pool` (``u, v``
``(B, 384)``, features ``(B, 1536)``), and the loss ``L = mean_b (ŷ_b - y_b)²`` (MSE) on the
pair's target ``y`` (:mod:`recnb.data.bundles`). The features are Sentence-BERT's
(Reimers & Gurevych 2019) plus the product ``u ⊙ v``.

``train_layers`` chooses what is fine-tuned: ``0`` freezes the encoder (only the head learns),
``n`` (default 2) fine-tunes the top ``n`` of the 6 transformer layers, ``None`` everything
(embeddings included). Frozen parameters get ``requires_grad = False`` and stay in eval mode, so
the frozen bottom of the network is a fixed function of each text: its output is computed once per
item and kept, and a step costs a forward and a backward pass through the top layers only
(:meth:`BundleScorer.encode_items`). Where a whole item vector is fixed -- a frozen encoder
(``train_layers = 0``), or eval mode without gradient (validation, scoring) -- each item is encoded
once and its vector reused until the weights change (:meth:`BundleScorer.embed`). Optimiser:
AdamW, ``lr`` for the encoder and ``head_lr`` for the head, with a linear warm-up over ``warmup``
of the steps then a linear decay to 0 (``transformers.get_linear_schedule_with_warmup``), stepped
every optimiser step.

:func:`fit_bundle_scorer` trains with a real ``Trainer`` (:func:`recnb.training.make_trainer`),
Lightning's ``EarlyStopping`` on the validation MSE and ``ModelCheckpoint`` into a temporary
directory, and loads the best checkpoint's weights back at the end.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from recnb.models.text_encoder import default_model_path, load_pretrained, mean_pool
from recnb.training import HistoryLogger, make_trainer, scoped_fit_state


def pair_features(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[u; v; |u - v|; u ⊙ v]``: ``(B, 4H)`` from two ``(B, H)`` (or broadcastable) tensors."""
    u, v = torch.broadcast_tensors(u, v)
    return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)


class BundleScorer(pl.LightningModule):
    """Pairs of item texts -> compatibility score (see the module docstring).

    ``texts``: every item's text, indexed by item index (tokenised once, cut at ``max_length``
    tokens; batches refer to items by index). ``hidden``: the head's hidden width.
    ``train_layers``: top transformer layers to fine-tune (0 = frozen encoder, ``None`` = all).
    ``lr`` / ``head_lr`` / ``weight_decay``: AdamW; ``warmup``: share of the training steps with a
    linearly rising learning rate. Batches are dicts ``{"anchor": (B,), "candidate": (B,),
    "target": (B,)}`` (item indices, float targets); each distinct item of a batch is encoded once.
    """

    def __init__(
        self,
        texts: Sequence[str],
        model_path: str | Path | None = None,
        max_length: int = 32,
        train_layers: int | None = 2,
        hidden: int = 128,
        lr: float = 1e-4,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if not texts or bad:
            raise ValueError(f"texts must be a non-empty sequence of strings; rows {bad[:5]} are not strings")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must lie in [0, 1), got {warmup}")
        self.save_hyperparameters(ignore=["texts", "model_path"])
        path = Path(model_path) if model_path is not None else default_model_path()
        tokenizer, pretrained = load_pretrained(path.resolve())
        self.encoder = copy.deepcopy(pretrained)  # our own copy: TextEncoder's shared model stays untouched
        n_layers = self.encoder.config.num_hidden_layers
        if train_layers is not None and not 0 <= train_layers <= n_layers:
            raise ValueError(f"train_layers must be None or lie in 0..{n_layers}, got {train_layers}")
        tokens = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        self.register_buffer("input_ids", tokens["input_ids"], persistent=False)
        self.register_buffer("attention_mask", tokens["attention_mask"], persistent=False)
        self.n_items = len(texts)
        dim = self.encoder.config.hidden_size
        generator = torch.Generator().manual_seed(seed)
        self.head = torch.nn.Sequential(torch.nn.Linear(4 * dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        with torch.no_grad():  # seeded init, independent of the global RNG
            for layer in (self.head[0], self.head[2]):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        self._frozen = self._freeze(train_layers)
        self._cache: torch.Tensor | None = None  # (n_items, H) item vectors, valid where ``_cached`` is True
        self._cached = torch.zeros(self.n_items, dtype=torch.bool)
        self._bottom: torch.Tensor | None = None  # (n_items, max_length, H) frozen-bottom states, where ``_bottom_done``
        self._bottom_done = torch.zeros(self.n_items, dtype=torch.bool)
        self.train()

    def _freeze(self, train_layers: int | None) -> list[torch.nn.Module]:
        """Set ``requires_grad`` and return the frozen sub-modules (embeddings and bottom layers)."""
        if train_layers is None:
            return []
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        layers = self.encoder.encoder.layer
        cut = len(layers) - train_layers
        for layer in layers[cut:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        return [self.encoder.embeddings, *layers[:cut]]

    def train(self, mode: bool = True) -> BundleScorer:
        """As ``nn.Module.train``, but frozen parts stay in eval mode: no dropout where nothing learns,
        so the frozen bottom of the encoder is a fixed function of the text."""
        super().train(mode)
        for module in self._frozen if hasattr(self, "_frozen") else []:
            module.eval()
        return self

    def encoder_parameters(self) -> list[torch.nn.Parameter]:
        """The encoder's parameters that are fine-tuned."""
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def embed(self, items: torch.Tensor) -> torch.Tensor:
        """Pooled encoder outputs ``(len(items), H)`` for item indices (not normalised), as the model uses them.

        When the vectors are a fixed function of the texts -- a frozen encoder, or eval mode without
        gradient -- each item is encoded once (:meth:`encode_items`) and its vector reused until the
        next training step of a fine-tuned encoder (or ``fit_bundle_scorer``'s restore) clears them;
        otherwise (fine-tuning, or dropout in train mode) the items are encoded now, with gradient.
        """
        items = torch.as_tensor(items, dtype=torch.int64, device=self.input_ids.device)
        if items.numel() and (items.min() < 0 or items.max() >= self.n_items):
            raise IndexError(f"item indices must lie in 0..{self.n_items - 1}, got {items.min().item()}..{items.max().item()}")
        if self.encoder_parameters() and (self.training or torch.is_grad_enabled()):
            return self.encode_items(items)
        with torch.inference_mode(False), torch.no_grad():  # the table is an ordinary tensor, even under Lightning's inference mode
            items = items.clone()
            if self._cache is None:
                self._cache = torch.zeros(self.n_items, self.encoder.config.hidden_size, device=self.input_ids.device)
                self._cached = torch.zeros(self.n_items, dtype=torch.bool, device=self.input_ids.device)
            missing = torch.unique(items[~self._cached[items]])
            for s in range(0, len(missing), 256):
                self._cache[missing[s : s + 256]] = self.encode_items(missing[s : s + 256])
            self._cached[missing] = True
            return self._cache[items]

    def encode_items(self, items: torch.Tensor) -> torch.Tensor:
        """Pooled encoder outputs ``(len(items), H)`` computed now (item indices, checked by :meth:`embed`).

        With ``0 < train_layers``, the frozen bottom's output (the hidden states entering the first
        fine-tuned layer) is a fixed function of the text: it is computed once per item
        (:meth:`_bottom_states`) and only the fine-tuned top layers run here, with the same additive
        attention mask the encoder builds (padding keys at the dtype's minimum).
        """
        mask = self.attention_mask[items]
        length = max(int(mask.sum(dim=1).max()), 1) if items.numel() else 1
        ids, mask = self.input_ids[items, :length], mask[:, :length]  # trim the shared padding
        if not self.hparams.train_layers:  # everything fine-tuned (None), or nothing (0: embed caches the vectors)
            return mean_pool(self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        hidden = self._bottom_states(items, length)
        extended = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.encoder.encoder.layer[len(self._frozen) - 1 :]:
            out = layer(hidden, extended)
            hidden = out[0] if isinstance(out, tuple) else out  # a tuple in transformers 4, a tensor in 5
        return mean_pool(hidden, mask)

    def _bottom_states(self, items: torch.Tensor, length: int) -> torch.Tensor:
        """The frozen bottom's output ``(len(items), length, H)``: ``hidden_states[cut]`` of the encoder,
        computed the first time an item is asked for and kept (the frozen weights never change). The
        encoder runs in eval mode for it: the top layers' dropout, unused here, draws no random numbers."""
        modes = [module.training for module in self.encoder.modules()]
        self.encoder.eval()
        try:
            return self._fill_bottom(items, length)
        finally:
            for module, mode in zip(self.encoder.modules(), modes, strict=True):
                module.training = mode

    def _fill_bottom(self, items: torch.Tensor, length: int) -> torch.Tensor:
        with torch.inference_mode(False), torch.no_grad():
            items = items.clone()
            if self._bottom is None:
                shape = (self.n_items, self.input_ids.shape[1], self.encoder.config.hidden_size)
                self._bottom = torch.zeros(shape, device=self.input_ids.device)
                self._bottom_done = torch.zeros(self.n_items, dtype=torch.bool, device=self.input_ids.device)
            missing = torch.unique(items[~self._bottom_done[items]])
            for s in range(0, len(missing), 256):
                part = missing[s : s + 256]
                mask = self.attention_mask[part]
                n = max(int(mask.sum(dim=1).max()), 1)
                states = self.encoder(input_ids=self.input_ids[part, :n], attention_mask=mask[:, :n], output_hidden_states=True)
                self._bottom[part, :n] = states.hidden_states[len(self._frozen) - 1]
            self._bottom_done[missing] = True
            return self._bottom[items, :length]

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module.load_state_dict``; drops the cached item vectors, and the bottom states
        unless the frozen weights loaded equal the present ones (as in a restored checkpoint)."""
        frozen = {name: p for name, p in self.named_parameters() if not p.requires_grad}
        if any(name in state_dict and not torch.equal(state_dict[name], p) for name, p in frozen.items()):
            self._bottom = None
        self._cache = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, anchor: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of the pairs ``(anchor[b], candidate[b])``; every distinct item encoded once."""
        anchor, candidate = torch.as_tensor(anchor), torch.as_tensor(candidate)
        if anchor.shape != candidate.shape or anchor.ndim != 1:
            raise ValueError(f"anchor and candidate must be (B,) index tensors of one shape, got {tuple(anchor.shape)} and {tuple(candidate.shape)}")
        items, inverse = torch.unique(torch.cat([anchor, candidate]), return_inverse=True)
        emb = self.embed(items)
        u, v = emb[inverse[: len(anchor)]], emb[inverse[len(anchor) :]]
        return self.head(pair_features(u, v)).squeeze(-1)

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self(batch["anchor"], batch["candidate"]), batch["target"].float())

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.encoder_parameters():
            self._cache = None  # the encoder's weights change: cached item vectors are stale
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["target"]))
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_linear_schedule_with_warmup

        groups = [{"params": list(self.head.parameters()), "lr": self.hparams.head_lr}]
        if self.encoder_parameters():
            groups.append({"params": self.encoder_parameters(), "lr": self.hparams.lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.hparams.warmup * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """Every item's pooled vector ``(n_items, H)`` in eval mode, from :meth:`embed`'s cache."""
        was_training = self.training
        self.eval()
        try:
            return self.embed(torch.arange(self.n_items))
        finally:
            self.train(was_training)

    @torch.no_grad()
    def score_candidates(self, anchors: Any, candidates: Any = None) -> torch.Tensor:
        """Scores ``(A, C)`` of every candidate (default: every item) for each anchor, from the cached item vectors."""
        emb = self.item_embeddings()
        a = torch.as_tensor(np.asarray(anchors), dtype=torch.int64)
        c = torch.arange(self.n_items) if candidates is None else torch.as_tensor(np.asarray(candidates), dtype=torch.int64)
        was_training = self.training
        self.eval()
        step = max(1, 8192 // max(len(c), 1))  # anchors per batch: about 8,192 pairs through the head at once
        try:
            return torch.cat([self.head(pair_features(emb[a[s : s + step]][:, None, :], emb[c][None])).squeeze(-1)
                              for s in range(0, len(a), step)]) if len(a) else torch.empty(0, len(c))
        finally:
            self.train(was_training)


def pair_loader(pairs: pd.DataFrame, batch_size: int = 32, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A ``DataLoader`` of ``{"anchor", "candidate", "target"}`` batches over a pair frame
    (:func:`recnb.data.bundles.make_pairs`); shuffled with a seeded generator when ``shuffle``."""
    missing = {"anchor", "candidate", "target"} - set(pairs.columns)
    if missing:
        raise ValueError(f"pairs lack the column(s) {sorted(missing)}; expected anchor, candidate, target")
    data = TensorDataset(torch.as_tensor(pairs["anchor"].to_numpy(np.int64)),
                         torch.as_tensor(pairs["candidate"].to_numpy(np.int64)),
                         torch.as_tensor(pairs["target"].to_numpy(np.float32)))

    def collate(rows: list[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
        a, c, y = (torch.stack(col) for col in zip(*rows))
        return {"anchor": a, "candidate": c, "target": y}

    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


@dataclass
class FitResult:
    """What :func:`fit_bundle_scorer` reports: the ``history`` of logged metrics (one row per
    step), ``val_losses`` (one per validation run, in order), ``best_check`` (index into
    ``val_losses`` of the checkpoint restored), ``best_val_loss``, ``stopped_epoch`` (the epoch
    early stopping stopped at, or ``None`` when it never triggered), ``epochs_run``."""

    history: pd.DataFrame
    val_losses: list[float]
    best_check: int
    best_val_loss: float
    stopped_epoch: int | None
    epochs_run: int


class _ValLosses(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []
        self.steps: list[int] = []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics["val_loss"]))
            self.steps.append(int(trainer.global_step))


def fit_bundle_scorer(
    model: BundleScorer,
    train: pd.DataFrame,
    val: pd.DataFrame,
    max_epochs: int = 3,
    batch_size: int = 32,
    patience: int = 1,
    val_check_interval: float | int = 1.0,
    seed: int = 0,
    progress: bool = False,
    threads: int | None = 1,
) -> FitResult:
    """Train ``model`` on ``train`` pairs, validating on ``val`` every ``val_check_interval``
    (a share of an epoch, or a number of batches); stop when the validation MSE has not improved
    for ``patience`` validations (``EarlyStopping``); keep the best weights (``ModelCheckpoint``
    into a temporary directory, loaded back at the end). Returns a :class:`FitResult`.
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"train and val need at least one pair each, got {len(train)} and {len(val)}")
    logger = HistoryLogger()
    val_losses = _ValLosses()
    with scoped_fit_state(), tempfile.TemporaryDirectory(prefix="recnb-bundle-") as folder:
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")  # the frozen parts, on purpose
        checkpoint = ModelCheckpoint(dirpath=folder, monitor="val_loss", mode="min", save_top_k=1,
                                     save_weights_only=True, filename="best")
        stopping = EarlyStopping(monitor="val_loss", mode="min", patience=patience, check_on_train_epoch_end=False)
        trainer = make_trainer(max_epochs, seed=seed, progress=progress, logger=logger, threads=threads,
                               callbacks=[val_losses, checkpoint, stopping], enable_checkpointing=True,
                               val_check_interval=val_check_interval)
        trainer.fit(model, pair_loader(train, batch_size, shuffle=True, seed=seed), pair_loader(val, batch_size))
        best = torch.load(checkpoint.best_model_path, weights_only=True, map_location="cpu")
        model.load_state_dict(best["state_dict"])
    model._cache = None
    model.eval()
    best_check = int(np.argmin(val_losses.values))
    return FitResult(
        history=logger.history,
        val_losses=val_losses.values,
        best_check=best_check,
        best_val_loss=float(val_losses.values[best_check]),
        stopped_epoch=int(stopping.stopped_epoch) if stopping.stopped_epoch else None,
        epochs_run=int(trainer.current_epoch),
    )


@torch.no_grad()
def pair_mse(model: BundleScorer, pairs: pd.DataFrame, batch_size: int = 256) -> float:
    """Mean squared error of ``model`` on a pair frame (eval mode, no gradient)."""
    was_training = model.training
    model.eval()
    a, c = torch.as_tensor(pairs["anchor"].to_numpy(np.int64)), torch.as_tensor(pairs["candidate"].to_numpy(np.int64))
    y = torch.as_tensor(pairs["target"].to_numpy(np.float32))
    try:
        pred = torch.cat([model(a[s : s + batch_size], c[s : s + batch_size]) for s in range(0, len(a), batch_size)])
    finally:
        model.train(was_training)
    return float(torch.nn.functional.mse_loss(pred, y))
