"""Beyond accuracy: coverage, popularity, diversity, exposure, novelty and personalisation of lists.

Every function takes ``ranked`` ``(U, k)`` item indices (``PAD`` slots ignored).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recnb.data.analysis import gini
from recnb.math.ranking import PAD


def catalogue_coverage(ranked: torch.Tensor, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one user's list: ``|∪_u top-k(u)| / n_items``."""
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    items = torch.unique(ranked[ranked != PAD])
    if items.numel() and (items.min() < 0 or items.max() >= n_items):
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1}, got {items.min().item()}..{items.max().item()}")
    return items.numel() / n_items


def mean_popularity(ranked: torch.Tensor, counts: Any, reduce: str = "mean") -> float:
    """Mean (or median) training popularity of the recommended items.

    ``ranked``: ``(U, k)`` item indices, ``PAD`` (-1) slots ignored; ``counts``: ``(n_items,)``
    the training popularity of each item (e.g. ``split.item_counts()``, the number
    of training users). Returns ``reduce`` (``"mean"`` or ``"median"``) of ``counts[i]`` over every
    non-PAD slot ``i`` of every list: an item recommended to many users counts once per list. The
    median of an even number of values is the mean of the middle two (as ``numpy.median``).
    """
    if reduce not in ("mean", "median"):
        raise ValueError(f"reduce must be 'mean' or 'median', got {reduce!r}")
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D (n_items,), got shape {tuple(counts.shape)}")
    ranked = torch.as_tensor(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (U, k), got shape {tuple(ranked.shape)}")
    items = ranked[ranked != PAD].long()
    if items.numel() == 0:
        raise ValueError("ranked holds no item (every slot is PAD): no popularity to average")
    if items.min() < 0 or items.max() >= len(counts):
        raise IndexError(f"ranked item indices must lie in 0..{len(counts) - 1} (or PAD={PAD}), "
                         f"got {items.min().item()}..{items.max().item()}")
    values = counts[items].numpy()
    return float(np.mean(values) if reduce == "mean" else np.median(values))


def _ranked_items(ranked: Any, n_items: int | None = None) -> torch.Tensor:
    """``ranked`` as a 2-D int64 tensor, checked against ``n_items`` when given."""
    ranked = torch.as_tensor(ranked)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be (U, k) item indices, got shape {tuple(ranked.shape)}")
    if ranked.dtype == torch.bool or torch.is_floating_point(ranked):
        raise TypeError(f"ranked must hold integer item indices, got dtype {ranked.dtype}")
    ranked = ranked.long()
    if ranked.numel() and ranked.min() < PAD:
        raise IndexError(f"ranked item indices must be >= 0 (or PAD={PAD}), got {ranked.min().item()}")
    if n_items is not None and ranked.numel() and ranked.max() >= n_items:
        raise IndexError(f"ranked item indices must lie in 0..{n_items - 1} (or PAD={PAD}), got {ranked.max().item()}")
    return ranked


def intra_list_diversity(ranked: torch.Tensor, item_repr: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean pairwise distance between the items of each list: ``(U,)`` float64.

    ``ILD_u = 1 / (m (m - 1)) · Σ_{i ≠ j ∈ L_u} d(i, j)`` over the ``m`` non-PAD items of list ``L_u``
    (``NaN`` when ``m < 2``). ``item_repr`` decides the distance:

    - 1-D integer ``(n_items,)`` category codes: ``d(i, j) = 1[c_i ≠ c_j]`` (the share of pairs
      from different categories);
    - 2-D float ``(n_items, d)`` embeddings: ``d(i, j) = 1 − cos(e_i, e_j)`` (a zero vector has
      cosine 0 with everything, as in :mod:`recnb.math.similarity`).

    Memory ``O(U k²)``; embeddings are gathered a chunk of users at a time (``O(chunk · k · d)``).
    """
    rep = torch.as_tensor(np.asarray(item_repr) if not isinstance(item_repr, torch.Tensor) else item_repr)
    if rep.ndim not in (1, 2):
        raise ValueError(f"item_repr must be 1-D category codes or 2-D (n_items, d) embeddings, got shape {tuple(rep.shape)}")
    if rep.ndim == 1 and (torch.is_floating_point(rep) or rep.dtype == torch.bool):
        raise TypeError(f"1-D item_repr must hold integer category codes, got dtype {rep.dtype}")
    ranked = _ranked_items(ranked, rep.shape[0])
    valid = ranked != PAD
    idx = ranked.clamp(min=0)
    if rep.ndim == 1:
        c = rep.long()[idx]
        dist = (c[:, :, None] != c[:, None, :]).double()
    else:
        e = rep.double()
        e = e / e.norm(dim=1, keepdim=True).clamp(min=1e-12)
        step = max(1, 2**22 // max(1, idx.shape[1] * e.shape[1]))  # users per chunk: ~4M gathered values
        dist = torch.cat([1.0 - torch.bmm(v, v.transpose(1, 2)) for v in (e[b] for b in idx.split(step))])
    k = ranked.shape[1]
    pair = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool)
    n_pairs = pair.sum(dim=(1, 2))
    out = (dist * pair).sum(dim=(1, 2)) / n_pairs.clamp(min=1)
    return out.masked_fill(n_pairs == 0, float("nan"))


def exposure_counts(ranked: torch.Tensor, n_items: int) -> torch.Tensor:
    """``(n_items,)`` int64: how many lists each catalogue item appears in (PAD slots ignored)."""
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    ranked = _ranked_items(ranked, n_items)
    return torch.bincount(ranked[ranked != PAD], minlength=n_items)


def exposure_gini(ranked: torch.Tensor, n_items: int) -> float:
    """Gini coefficient of the exposure of the catalogue's items in the lists ``ranked``.

    With ``x_i`` = :func:`exposure_counts` (items never recommended included, as zeros), sorted
    ascending, ``G = Σ_i (2i − n − 1) x_(i) / (n Σ_i x_i)`` (:func:`recnb.data.analysis.gini`):
    0 when every item is shown equally often, ``1 − 1/n`` when one item takes every slot.
    """
    counts = exposure_counts(ranked, n_items)
    if counts.sum() == 0:
        raise ValueError("ranked holds no item (every slot is PAD): no exposure to measure")
    return gini(counts.numpy())


def novelty(ranked: torch.Tensor, counts: Any, n_users: int) -> torch.Tensor:
    """Mean self-information of each user's recommended items: ``(U,)`` float64.

    ``novelty_u = 1/|L_u| · Σ_{i∈L_u} −log2(p_i)``, ``p_i = max(counts_i, 1) / n_users``, the share
    of (training) users who have item ``i``. The count is clipped to at least 1 so that an item
    nobody has gets a finite ``log2(n_users)`` bits instead of ``+inf``. Higher = less popular
    items. ``counts``: ``(n_items,)`` e.g. ``split.item_counts()``; PAD slots are ignored; ``NaN``
    for an empty list.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    if counts.ndim != 1:
        raise ValueError(f"counts must be 1-D (n_items,), got shape {tuple(counts.shape)}")
    if (counts < 0).any():
        raise ValueError("counts must be non-negative")
    if n_users <= 0 or counts.max() > n_users:
        raise ValueError(f"n_users must be positive and at least every count, got {n_users} (max count {counts.max().item():g})")
    ranked = _ranked_items(ranked, len(counts))
    valid = ranked != PAD
    info = -torch.log2(counts.clamp(min=1) / n_users)[ranked.clamp(min=0)]
    m = valid.sum(dim=1)
    return ((info * valid).sum(dim=1) / m.clamp(min=1)).masked_fill(m == 0, float("nan"))


def personalisation(ranked: torch.Tensor) -> float:
    """``1 −`` the mean overlap ``|L_u ∩ L_v| / k`` over all pairs of users ``u < v``.

    0 when every user gets the same list, 1 when no two lists share an item. ``k = ranked.shape[1]``
    (PAD slots hold no item). With the incidence matrix ``M`` (``M_ui = 1`` if ``i ∈ L_u``) the
    overlaps are ``M Mᵀ``, and their sum over all ordered pairs is ``1ᵀ M Mᵀ 1 = Σ_i c_i²`` with
    ``c_i = Σ_u M_ui`` the exposure of item ``i``; removing the diagonal (``Σ_u |L_u|``) and halving::

        Σ_{u<v} |L_u ∩ L_v| = (Σ_i c_i² − Σ_u |L_u|) / 2

    so the ``U × U`` product is never formed: ``O(U k)`` time and memory. A list must not repeat
    an item.
    """
    ranked = _ranked_items(ranked)
    n_users, k = ranked.shape
    if n_users < 2:
        raise ValueError(f"personalisation compares lists of pairs of users; got {n_users} list(s)")
    if k == 0:
        raise ValueError("ranked has k = 0 columns")
    s = torch.sort(ranked, dim=1).values
    if ((s[:, 1:] == s[:, :-1]) & (s[:, 1:] != PAD)).any():
        raise ValueError("a list in ranked repeats an item; each list must hold distinct items")
    items = ranked[ranked != PAD]
    c = torch.bincount(items).double() if items.numel() else torch.zeros(1, dtype=torch.float64)
    overlap_sum = ((c**2).sum() - items.numel()) / 2
    n_pairs = n_users * (n_users - 1) / 2
    return float(1.0 - overlap_sum / (n_pairs * k))


def mean_jaccard(ranked: torch.Tensor) -> float:
    """Homogenisation: the mean Jaccard similarity ``|L_u ∩ L_v| / |L_u ∪ L_v|`` over all pairs ``u < v``.

    Chaney, Stewart & Engelhardt (RecSys 2018) measure how a feedback loop makes users' lists alike
    this way. 0 when no two lists share an item, 1 when every user gets the same set of items.
    ``ranked``: ``(U, k)`` item indices, ``PAD`` slots hold no item; a list must not repeat an item.
    The overlaps are ``M Mᵀ`` of the sparse ``(U, n_items)`` incidence matrix ``M`` and
    ``|L_u ∪ L_v| = |L_u| + |L_v| − |L_u ∩ L_v|``, so memory is ``O(U²)`` for the ``U × U``
    overlaps (one feedback-loop round, or a sample of users; not every user of a large shop). A pair
    of two empty lists counts as 0.
    """
    ranked = _ranked_items(ranked)
    n_users = ranked.shape[0]
    if n_users < 2:
        raise ValueError(f"mean_jaccard compares lists of pairs of users; got {n_users} list(s)")
    keep = (ranked != PAD).numpy()
    rows = np.repeat(np.arange(n_users), keep.sum(axis=1))
    cols = ranked.numpy()[keep]
    m = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n_users, int(cols.max()) + 1 if len(cols) else 1))
    if m.max() > 1:
        raise ValueError("a list in ranked repeats an item; each list must hold distinct items")
    inter = (m @ m.T).toarray()
    sizes = keep.sum(axis=1).astype(np.float64)
    union = sizes[:, None] + sizes[None, :] - inter
    upper = np.triu_indices(n_users, k=1)
    jac = np.divide(inter[upper], union[upper], out=np.zeros(len(upper[0])), where=union[upper] > 0)
    return float(jac.mean())
