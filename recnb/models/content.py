"""Content-based filtering: recommend items whose *text* resembles what the user already chose.

Documented in 001 §4.2.2. Each item ``i`` has a feature vector ``F_i`` (here: the encoding of its
``text`` by all-MiniLM-L6-v2 or TF-IDF, see :mod:`recnb.models.text_encoder`), and

.. math::

    \\operatorname{sim}(i, j) = \\frac{F_i \\cdot F_j}{\\lVert F_i \\rVert \\lVert F_j \\rVert},
    \\qquad
    \\operatorname{score}(u, i) = \\frac{1}{Z_u(i)} \\sum_{j \\in N_u} \\operatorname{sim}(i, j) \\, R_{uj},

with ``N_u`` the user's training items and ``R_uj`` their value (1, or the rating). The document
stops at the raw sum (``Z = 1``); ``normalise`` picks ``Z``:

- ``"none"``: ``Z = 1``, the document's formula;
- ``"count"`` (default): ``Z = |N_u|``, the mean similarity to the user's items. Per user it is a
  constant, so the ranking equals the document's, but scores of different users become comparable
  (binary ``R``: ``score ∈ [-1, 1]``), which blending with other models needs;
- ``"similarity"``: ``Z = Σ_{j∈N_u} |sim(i, j)|``, the classic item-kNN *rating* prediction (a
  similarity-weighted mean of the user's ratings). With binary ``R`` and positive similarities it
  is 1 for every item, so use it with ``values="rating"`` only.

``neighbours=k`` keeps, for each item ``i``, only its ``k`` most similar *other* items (ties to the
lower index; :func:`recnb.math.ranking.keep_top_k_per_row`): ``sim(i, j) = 0`` for the rest.
``method="profile"`` scores with a user profile instead, ``score(u, i) = cos(p_u, F_i)`` with
``p_u = Σ_j R_uj F_j``; for unit-norm ``F`` that is the ``"count"`` score times ``|N_u| / ‖p_u‖``
-- the same ranking, for ``O(d)`` per item instead of ``O(|N_u|)``.

No interaction data is needed about item ``i`` itself: an item nobody has bought yet is scored
from its text alone, which is what collaborative filtering cannot do (the cold-start item).
"""

from __future__ import annotations

from typing import Literal, Self, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recnb.data.schema import Split, SplitLike, as_split, dense_rows
from recnb.math.ranking import item_indices, rank
from recnb.math.similarity import all_vs_all, normalise_rows
from recnb.models.base import ItemVectors, Users, as_user_tensor, clone_param
from recnb.models.text_encoder import Encoder, TextEncoder, TfidfEncoder
from recnb.data.categories import category_distribution
from recnb.models.knn import keep_top_k_sparse

Normalise = Literal["none", "count", "similarity"]
#: the encoders :func:`make_encoder` builds by name
ENCODERS = ("minilm", "tfidf")


def make_encoder(encoder: str | Encoder) -> Encoder:
    """``"minilm"`` -> :class:`TextEncoder`, ``"tfidf"`` -> :class:`TfidfEncoder`; an object with
    ``encode(texts)`` is returned as it is."""
    if isinstance(encoder, str):
        if encoder == "minilm":
            return TextEncoder()
        if encoder == "tfidf":
            return TfidfEncoder()
        raise ValueError(f"encoder must be 'minilm', 'tfidf' or an object with encode(texts), got {encoder!r}")
    if not callable(getattr(encoder, "encode", None)):
        raise TypeError(f"encoder {encoder!r} has no encode(texts) method")
    return encoder


def item_texts(split: Split, column: str = "text") -> list[str]:
    """The ``column`` of ``split.items_frame`` as a list of strings, in item-index order.

    Raises ``ValueError`` naming the item ids whose text is missing or not a string, or when
    every text is empty.
    """
    frame = split.items_frame
    if column not in frame.columns:
        raise ValueError(f"items_frame has no column {column!r} (columns: {list(frame.columns)})")
    if len(frame) != split.n_items:
        raise ValueError(f"items_frame has {len(frame)} rows but the split indexes {split.n_items} items")
    values = frame[column].tolist()
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        ids = frame["item_id"].to_numpy()[bad[:5]].tolist() if "item_id" in frame.columns else bad[:5]
        raise ValueError(
            f"items_frame column {column!r} must hold strings; {len(bad)} rows do not, e.g. item ids {ids}"
        )
    if values and not any(v.strip() for v in values):
        raise ValueError(f"every item's {column!r} is empty: a content model needs item texts, and a bare "
                         "user-item matrix (Split.from_matrix) has none")
    return values


#: item rows whose similarities are computed at once by :func:`pruned_cosine`
SIMILARITY_BLOCK = 1024


def pruned_cosine(embeddings: torch.Tensor, neighbours: int, block: int = SIMILARITY_BLOCK) -> sp.csr_matrix:
    """``keep_top_k_per_row(all_vs_all(E, E), neighbours)`` as a float32 CSR, ``block`` rows at a time.

    ``embeddings``: ``(n, d)``. Each block of rows is one ``(block, n)`` cosine product, pruned at
    once to its ``neighbours`` largest off-diagonal entries (ties to the lower index) by
    :func:`recnb.models.knn.keep_top_k_sparse`: memory ``block x n``, never ``n x n``.
    """
    n = embeddings.shape[0]
    parts = []
    for lo in range(0, n, block):
        sim = all_vs_all(embeddings[lo : lo + block], embeddings).numpy()
        parts.append(keep_top_k_sparse(sp.csr_matrix(sim), neighbours, row_offset=lo))
    out = sp.vstack(parts, format="csr").astype(np.float32) if parts else sp.csr_matrix((n, n), dtype=np.float32)
    out.sort_indices()
    return out


class ContentRecommender(ItemVectors):
    """Item-item content similarity (001 §4.2.2) over text embeddings; see the module docstring.

    ``encoder``: ``"minilm"``, ``"tfidf"`` or any object with ``encode(texts) -> (n, d)``, kept as
    given (the parameter); ``fit`` builds the encoder from a name (:func:`make_encoder`) into
    ``encoder_``, which scoring does not need (it is neither saved nor pickled).
    ``neighbours``: keep each item's ``k`` most similar other items (``None``: all).
    ``normalise``: ``"count"``, ``"none"`` or ``"similarity"`` (the ``Z_u(i)`` above).
    ``values``: ``"binary"`` or ``"rating"``: what ``R_uj`` is. ``method``: ``"item"`` (the
    formula) or ``"profile"`` (cosine with the user's summed item vectors; ignores
    ``neighbours``/``normalise``). ``text_column``: the ``items_frame`` column to encode.

    After :meth:`fit`: ``item_embeddings_`` ``(n_items, d)`` (unit rows), ``similarity_``
    ``(n_items, n_items)`` (cosine, after the neighbour cut), ``ratings_`` ``(n_users, n_items)``
    (``R``, sparse CSR). With ``neighbours`` set, ``similarity_`` is a ``scipy.sparse`` CSR matrix
    with at most ``neighbours`` entries per row, computed :data:`SIMILARITY_BLOCK` rows at a time
    (memory ``block x n_items``, never ``n_items²``); with ``neighbours=None`` it is the dense
    ``(n_items, n_items)`` tensor, fine for catalogues of a few thousand items.
    """

    def __init__(
        self,
        encoder: str | Encoder = "minilm",
        neighbours: int | None = None,
        normalise: Normalise = "count",
        values: Literal["binary", "rating"] = "binary",
        method: Literal["item", "profile"] = "item",
        text_column: str = "text",
    ) -> None:
        if normalise not in ("none", "count", "similarity"):
            raise ValueError(f"normalise must be 'none', 'count' or 'similarity', got {normalise!r}")
        if values not in ("binary", "rating"):
            raise ValueError(f"values must be 'binary' or 'rating', got {values!r}")
        if method not in ("item", "profile"):
            raise ValueError(f"method must be 'item' or 'profile', got {method!r}")
        if neighbours is not None and neighbours < 1:
            raise ValueError(f"neighbours must be None or >= 1, got {neighbours}")
        if isinstance(encoder, str) and encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS} or an object with encode(texts), got {encoder!r}")
        if not isinstance(encoder, str) and not callable(getattr(encoder, "encode", None)):
            raise TypeError(f"encoder {encoder!r} has no encode(texts) method")
        self.encoder = encoder
        self.neighbours, self.normalise, self.values, self.method = neighbours, normalise, values, method
        self.text_column = text_column
        self.item_embeddings_: torch.Tensor | None = None
        self.similarity_: torch.Tensor | None = None
        self.ratings_: torch.Tensor | None = None

    #: the encoder ``fit`` built (from a name) or used: not needed to score, so neither saved nor pickled
    _transient_attributes = ("encoder_",)

    def __repr__(self) -> str:
        spec = self.encoder if isinstance(self.encoder, str) else type(self.encoder).__name__
        return (
            f"ContentRecommender(encoder={spec!r}, neighbours={self.neighbours}, "
            f"normalise={self.normalise!r}, values={self.values!r}, method={self.method!r})"
        )

    def fit(self, split: SplitLike) -> Self:
        """Encode every item's text (cold items included) and build the item-item similarity.

        An encoder that learns from the corpus (one with a ``fit`` method, such as
        :class:`TfidfEncoder`) is copied and the copy fitted on this split's catalogue, so the
        encoder passed in (a parameter) is never changed; a pretrained one is used as it is.
        """
        split = as_split(split)
        self.remember_split(split)
        texts = item_texts(split, self.text_column)
        self.encoder_ = make_encoder(self.encoder)
        if callable(getattr(self.encoder_, "fit", None)):  # one that learns: fit a copy, never the object passed in
            self.encoder_ = clone_param(self.encoder_)
            self.encoder_.fit(texts)
        emb = self.encoder_.encode(texts).to(torch.float32)
        self.item_embeddings_ = normalise_rows(emb)
        if self.neighbours is None:
            self.similarity_ = all_vs_all(self.item_embeddings_, self.item_embeddings_)
        else:
            self.similarity_ = pruned_cosine(self.item_embeddings_, self.neighbours)
        self.ratings_ = split.train_csr(self.values)
        self._after_load()
        return self

    def _after_load(self) -> None:
        """``S^T`` as CSR for a pruned (sparse) similarity: scores are ``R_batch S^T``."""
        if sp.issparse(self.similarity_):
            self._similarity_t = self.similarity_.T.tocsr()

    def score(self, users: Users = None) -> torch.Tensor:
        """``(len(users), n_items)`` content scores; users with no training item get all zeros."""
        self._check_fitted()
        u = as_user_tensor(users, self.n_users_)
        if self.method == "profile":
            r = dense_rows(self.ratings_, u, torch.float32)  # (U, n)
            return all_vs_all(r @ self.item_embeddings_, self.item_embeddings_)
        if sp.issparse(self.similarity_):
            rows = self.ratings_[u.numpy()]
            observed = rows.copy()
            observed.data = (observed.data != 0).astype(np.float32)
            raw = torch.from_numpy((rows @ self._similarity_t).toarray())  # (U, n): Σ_j R_uj sim(i, j)
            n_u = torch.from_numpy(np.asarray(observed.sum(axis=1), dtype=np.float32))
            z = None if self.normalise != "similarity" else torch.from_numpy((observed @ abs(self._similarity_t)).toarray())
        else:
            r = dense_rows(self.ratings_, u, torch.float32)  # (U, n)
            raw = r @ self.similarity_.T  # (U, n): Σ_j R_uj sim(i, j)
            n_u = (r != 0).sum(dim=1, keepdim=True).float()
            z = (r != 0).to(torch.float32) @ self.similarity_.abs().T if self.normalise == "similarity" else None
        if self.normalise == "none":
            return raw
        if self.normalise == "count":
            return raw / n_u.clamp(min=1)
        # z = Σ_{j∈N_u} |sim(i, j)|
        return torch.where(z > 0, raw / torch.where(z > 0, z, torch.ones_like(z)), torch.zeros_like(raw))

    def contributions(self, user: int, items: Sequence[int] | np.ndarray | torch.Tensor) -> pd.DataFrame:
        """The terms of ``score(user)[i]`` for each ``i`` in ``items`` (``method="item"``): they add up to the score.

        ``score(u, i) = Σ_{j∈N_u} sim(i, j) R_uj / Z_u(i)``: one term ``sim(i, j) R_uj / Z_u(i)``
        per training item ``j`` of the user with ``sim(i, j) ≠ 0``. ``method="profile"`` is a
        cosine, not a sum over the user's items, and is refused. Returns a frame with one row per
        term: ``item``, ``source`` (``"item"``), ``contributor`` (``j``), ``similarity``
        (``sim(i, j)``), ``value`` (``R_uj``) and ``contribution``.
        """
        self._check_fitted()
        if self.method != "item":
            raise ValueError("only ContentRecommender(method='item') is a sum over the user's items; method='profile' is a cosine")
        user = int(as_user_tensor([user], self.n_users_)[0])
        idx = item_indices(items, self.n_items_, "items").numpy()
        sim = self.similarity_[idx] if sp.issparse(self.similarity_) else self.similarity_[torch.from_numpy(idx)].numpy()
        sim = sp.coo_matrix(sim, dtype=np.float64)  # (len(items), n_items): sim(i, j), row by row
        r = self.ratings_[user].toarray().ravel().astype(np.float64)  # R_uj
        keep = (sim.data != 0) & (r[sim.col] != 0)
        slot, j, s = sim.row[keep], sim.col[keep], sim.data[keep]
        if self.normalise == "none":
            z = np.ones(len(idx))
        elif self.normalise == "count":
            z = np.full(len(idx), max(int((r != 0).sum()), 1), dtype=np.float64)
        else:  # Σ_{j∈N_u} |sim(i, j)|, > 0 wherever a term exists
            z = np.bincount(slot, weights=np.abs(s), minlength=len(idx))
        return pd.DataFrame({"item": idx[slot], "source": "item", "contributor": j, "similarity": s,
                             "value": r[j], "contribution": s * r[j] / z[slot]})

    def item_vectors(self) -> torch.Tensor:
        """``item_embeddings_`` ``(n_items, d)``, unit rows: :meth:`similar_items` ranks their cosine
        (before any ``neighbours`` cut, so every other item is a candidate)."""
        return self.item_embeddings_


def intra_inter_cosine(embeddings: torch.Tensor, labels: np.ndarray | list) -> tuple[float, float]:
    """Mean cosine of distinct same-label pairs and of different-label pairs: ``(intra, inter)``.

    ``embeddings``: ``(n, d)``; ``labels``: ``n`` category labels; a mean over no pair is NaN. Good item features for
    recommendation put items of one category closer together than items of different ones.
    """
    sim = all_vs_all(embeddings.float(), embeddings.float())
    lab = np.asarray(labels)
    same = torch.as_tensor(lab[:, None] == lab[None, :])
    off = ~torch.eye(len(lab), dtype=torch.bool)
    return sim[same & off].mean().item(), sim[~same].mean().item()


def category_cosine(embeddings: torch.Tensor, labels: np.ndarray | list) -> pd.DataFrame:
    """Mean cosine between the items of every pair of categories: a ``(C, C)`` frame.

    Entry ``(a, b)`` is the mean of ``sim(i, j)`` over items ``i`` of category ``a`` and ``j`` of
    ``b``, ``i != j`` (the diagonal leaves out each item's similarity with itself, NaN for a
    category of one item). Rows and columns are the sorted category names.
    """
    sim = all_vs_all(embeddings.float(), embeddings.float())
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    onehot = category_distribution(codes, len(names)).to(sim.dtype)  # (n, C): 1[c_i = c]
    off = sim - torch.diag(torch.diagonal(sim))  # drop i == j
    sums = onehot.T @ off @ onehot  # (C, C): sums of similarities between categories
    sizes = onehot.sum(dim=0)
    pairs = sizes[:, None] * sizes[None, :] - torch.diag(sizes)
    return pd.DataFrame((sums / pairs).numpy(), index=names, columns=names)


def knn_category_accuracy(embeddings: torch.Tensor, labels: np.ndarray | list, k: int = 5) -> float:
    """Leave-one-out ``k``-nearest-neighbour accuracy at predicting each item's label.

    Each item's ``k`` most cosine-similar *other* items vote for their label; a tie goes to the
    tied label whose best neighbour is nearest. Returns the fraction of items whose vote matches
    their own label.
    """
    lab = np.asarray(labels)
    n = len(lab)
    if not 1 <= k < n:
        raise ValueError(f"k must lie in 1..{n - 1} for {n} items, got {k}")
    sim = all_vs_all(embeddings.float(), embeddings.float())
    nn = rank(sim, k=k, exclude=torch.eye(n, dtype=torch.bool)).indices.numpy()  # (n, k), nearest first
    correct = 0
    for row in range(n):
        votes = lab[nn[row]]
        names, first, counts = np.unique(votes, return_index=True, return_counts=True)
        best = counts == counts.max()
        correct += names[best][np.argmin(first[best])] == lab[row]
    return correct / n
