"""Nearest neighbours at scale: exact top-k, an inverted-file index by hand, FAISS and hnswlib.

**Exact top-k.** For queries ``Q`` ``(B, d)`` and items ``X`` ``(n, d)`` the scores are one matrix
product and the answer is :func:`recnb.math.ranking.rank` of each row::

    ip:      s(q, x) = ⟨q, x⟩                      (maximum inner product, MIPS)
    cosine:  s(q, x) = ⟨q/‖q‖, x/‖x‖⟩              (rows normalised, then ip)
    l2:      s(q, x) = −‖q − x‖² = −‖q‖² + 2⟨q, x⟩ − ‖x‖²

(higher is nearer for all three). It costs ``O(B n d)`` per batch of queries: at a million items
every query reads every item.

**Inverted file (IVF).** Cut the item space into ``n_cells`` cells by k-means (:func:`kmeans`:
k-means++ seeding, then Lloyd iterations, trained on a seeded sample of at most
``max_points_per_cell · n_cells`` items, as FAISS does), file each item under its nearest centroid
(squared Euclidean distance), and answer a query by scoring exactly only the items of the
``nprobe`` cells whose centroids score best with the query (in the index's metric). The cost falls
from ``n`` to about ``nprobe · n / n_cells`` items per query; the answer is exact when
``nprobe = n_cells`` and the recall against exact top-k (:func:`recall_at_k`) can only grow with
``nprobe``: the probed cells of a smaller ``nprobe`` are a subset, and an item of the true top-k
that is among the candidates is always in the candidates' top-k.

**MIPS as nearest neighbour** (Bachrach et al. 2014, "Speeding up the Xbox recommender system using
a Euclidean transformation for inner-product spaces"): with ``M = max_i ‖x_i‖``, append
``sqrt(M² − ‖x‖²)`` to every item and ``0`` to every query (:func:`mips_augment`,
:func:`augment_queries`). Every augmented item has norm ``M``, so::

    ‖q̃ − x̃‖² = ‖q‖² + M² − 2⟨q, x⟩        cos(q̃, x̃) = ⟨q, x⟩ / (‖q‖ M)

both monotone in ``⟨q, x⟩``: the L2-nearest and the cosine-nearest augmented items are the
items of largest inner product. An index built for L2 or cosine then answers MIPS.

**Libraries** behind the same interface (:class:`AnnIndex`: ``build(vectors)``,
``search(queries, k) -> Ranking(indices, scores)``, ``memory_bytes()``): :class:`FaissFlat`,
:class:`FaissIVF`, :class:`FaissIVFPQ`, :class:`FaissHNSW` (``faiss-cpu``) and :class:`Hnswlib`,
from the optional extra ``pip install -e ".[ann]"``; :func:`require` imports them when an index is
built and says what to install when one is missing.

**Retrieve then rank.** :class:`RetrieveThenRank` takes a fitted factor model (score ``⟨u, x⟩``),
asks an index for ``n_candidates`` items per user vector, removes the user's training items and
re-ranks the rest with the model's exact scores: a :class:`~recnb.math.ranking.Ranking` to compare
with ``model.recommend``.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any, NamedTuple, Self

import numpy as np
import torch

from recnb.math.ranking import PAD, Ranking, item_indices, rank
from recnb.math.similarity import normalise_rows
from recnb.models.base import Items, Users, as_user_tensor
from recnb.training import torch_threads

METRICS = ("ip", "cosine", "l2")
#: the optional libraries of the ``[ann]`` extra: import name -> pip name
ANN_LIBRARIES = {"faiss": "faiss-cpu", "hnswlib": "hnswlib"}
INITS = ("k-means++", "random")

Vectors = torch.Tensor | np.ndarray


# -- inputs ---------------------------------------------------------------------------------------
def as_vectors(x: Vectors, name: str, dim: int | None = None) -> torch.Tensor:
    """``x`` as a 2-D floating tensor ``(n, d)`` (a numpy array is shared, not copied).

    Raises ``TypeError`` for a non-floating dtype, ``ValueError`` for another number of dimensions,
    an empty matrix or (when ``dim`` is given) rows of another length than ``dim``.
    """
    t = torch.as_tensor(x)
    if not torch.is_floating_point(t):
        raise TypeError(f"{name} must hold floating-point vectors (float32/float64), got dtype {t.dtype}")
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D matrix (n, d) of row vectors, got shape {tuple(t.shape)}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} must have dimension d = {dim} (the index's vectors), got vectors of dimension {t.shape[1]}")
    return t


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def _check_k(k: int, n_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_items:
        raise ValueError(f"k must be an integer in 1..{n_items} (the number of indexed items), got {k!r}")
    return int(k)


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _prepare(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Rows as the metric compares them: unit rows for ``cosine``, unchanged otherwise."""
    return normalise_rows(x) if metric == "cosine" else x


def _scored_as(metric: str) -> str:
    """The metric of :func:`pair_scores` for rows already prepared by :func:`_prepare` (the cosine of unit rows is their ip)."""
    return "ip" if metric == "cosine" else metric


def pair_scores(queries: torch.Tensor, items: torch.Tensor, metric: str) -> torch.Tensor:
    """Scores ``(B, n)`` of queries ``(B, d)`` against items ``(n, d)``, higher = nearer.

    ``ip``: ``Q Xᵀ``; ``cosine``: ``Q̂ X̂ᵀ`` with unit rows; ``l2``: ``−‖q − x‖²`` expanded as
    ``2 Q Xᵀ − ‖q‖² − ‖x‖²`` (one matrix product; clamped at 0 distance).
    """
    _check_metric(metric)
    if metric == "cosine":
        return normalise_rows(queries) @ normalise_rows(items).T
    dots = queries @ items.T
    if metric == "ip":
        return dots
    sq = (queries**2).sum(dim=1, keepdim=True) - 2 * dots + (items**2).sum(dim=1)
    return -sq.clamp_(min=0)


def exact_top_k(queries: Vectors, items: Vectors, k: int, metric: str = "ip", batch_size: int = 1024) -> Ranking:
    """The exact top-``k`` items of each query: :func:`pair_scores` then :func:`rank`, ``batch_size`` queries at a time.

    ``queries`` ``(B, d)``, ``items`` ``(n, d)``; returns a :class:`Ranking` of ``(B, k)`` item
    indices and scores, best first, ties to the lower item index. Peak memory ``batch_size · n`` scores.
    """
    return ExactIndex(metric, batch_size).build(items).search(queries, k)


def recall_at_k(found: torch.Tensor | np.ndarray, exact: torch.Tensor | np.ndarray) -> float:
    """Mean over queries of ``|found_q ∩ exact_q| / |exact_q|``: the share of the true top-k retrieved.

    ``found`` ``(B, k')`` and ``exact`` ``(B, k)`` item indices (``PAD`` entries ignored; usually
    ``k' = k``, the recall@k of an approximate index). A query whose exact list is empty counts 1.
    """
    f, e = torch.as_tensor(np.asarray(found)).long(), torch.as_tensor(np.asarray(exact)).long()
    if f.ndim != 2 or e.ndim != 2 or f.shape[0] != e.shape[0]:
        raise ValueError(f"found and exact must be (B, k) index matrices with the same B, "
                         f"got {tuple(f.shape)} and {tuple(e.shape)}")
    hit = ((e.unsqueeze(2) == f.unsqueeze(1)) & (e != PAD).unsqueeze(2)).any(dim=2).sum(dim=1)
    size = (e != PAD).sum(dim=1)
    return float(torch.where(size > 0, hit / size.clamp(min=1), torch.ones_like(hit, dtype=torch.float)).mean())


# -- MIPS by augmentation -------------------------------------------------------------------------
def mips_augment(items: Vectors, max_norm: float | None = None) -> tuple[torch.Tensor, float]:
    """Items ``(n, d)`` -> ``(n, d + 1)`` rows ``[x, sqrt(M² − ‖x‖²)]``, all of norm ``M``; returns them and ``M``.

    ``M = max_i ‖x_i‖`` unless ``max_norm`` is given (it must be at least that). Pair with
    :func:`augment_queries`: then ``−‖q̃ − x̃‖² = 2⟨q, x⟩ − ‖q‖² − M²``, so L2 (or cosine) top-k of the
    augmented vectors is the inner-product top-k of the originals.
    """
    x = as_vectors(items, "items")
    norms_sq = (x**2).sum(dim=1)
    largest = float(norms_sq.max().sqrt())
    m = largest if max_norm is None else float(max_norm)
    if m < largest * (1 - 1e-6):
        raise ValueError(f"max_norm must be at least the largest item norm {largest:.6g}, got {max_norm!r}")
    extra = (m**2 - norms_sq).clamp(min=0).sqrt()
    return torch.cat([x, extra.unsqueeze(1)], dim=1), m


def augment_queries(queries: Vectors) -> torch.Tensor:
    """Queries ``(B, d)`` -> ``(B, d + 1)`` rows ``[q, 0]`` (the partner of :func:`mips_augment`)."""
    q = as_vectors(queries, "queries")
    return torch.cat([q, q.new_zeros(q.shape[0], 1)], dim=1)


# -- test vectors ---------------------------------------------------------------------------------
def clustered_vectors(n_items: int, n_queries: int, dim: int, seed: int = 0, n_centres: int | None = None,
                      spread: float = 0.35, normalise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded item ``(n_items, dim)`` and query ``(n_queries, dim)`` vectors from one Gaussian mixture, float32.

    ``n_centres`` centres (default ``max(1, n_items // 1000)``) drawn ``N(0, I_d)``; each vector is a
    centre chosen uniformly plus ``N(0, spread² I_d)`` noise; rows then scaled to unit length when
    ``normalise`` (inner product = cosine). Clustered, as trained item embeddings are (around
    categories and tastes): the structure inverted files and graphs exploit. Draw order, from one
    ``torch.Generator`` seeded ``seed``: centres, item centres, item noise, query centres, query noise.
    """
    for name, value in (("n_items", n_items), ("n_queries", n_queries), ("dim", dim)):
        _check_positive(name, value)
    n_centres = max(1, n_items // 1000) if n_centres is None else _check_positive("n_centres", n_centres)
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0 (the noise's standard deviation), got {spread!r}")
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_centres, dim, generator=g)

    def draw(n: int) -> torch.Tensor:
        return centres[torch.randint(n_centres, (n,), generator=g)] + spread * torch.randn(n, dim, generator=g)

    x, q = draw(n_items), draw(n_queries)
    if normalise:
        x, q = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(q, dim=1)
    return x, q


# -- k-means --------------------------------------------------------------------------------------
class KMeans(NamedTuple):
    """Result of :func:`kmeans`: ``centroids`` ``(c, d)``, ``assignment`` ``(n,)`` int64 cell of each point,
    ``inertia`` ``Σ_i ‖x_i − c_{a(i)}‖²`` after the last update, and ``n_iter`` Lloyd iterations run."""

    centroids: torch.Tensor
    assignment: torch.Tensor
    inertia: float
    n_iter: int


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65_536) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``(n,)`` and squared distance ``(n,)`` of each row of ``x`` ``(n, d)`` to its nearest centroid ``(c, d)``.

    ``‖x − c‖² = ‖x‖² − 2⟨x, c⟩ + ‖c‖²``, ``chunk`` rows at a time (peak ``chunk · c`` distances);
    ties go to the lower centroid index.
    """
    c_sq = (centroids**2).sum(dim=1)
    cells, dists = [], []
    for start in range(0, x.shape[0], chunk):
        block = x[start : start + chunk]
        d = (block**2).sum(dim=1, keepdim=True) - 2 * block @ centroids.T + c_sq
        value, index = d.min(dim=1)
        cells.append(index)
        dists.append(value.clamp_(min=0))
    return torch.cat(cells), torch.cat(dists)


def _kmeans_plus_plus(x: torch.Tensor, n_clusters: int, g: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniformly, each next one
    drawn with probability ``D(x)² / Σ D²``, ``D`` the distance to the nearest centre chosen so far."""
    first = int(torch.randint(x.shape[0], (1,), generator=g))
    centres = [first]
    d2 = ((x - x[first]) ** 2).sum(dim=1)
    for _ in range(1, n_clusters):
        total = d2.sum()
        if total <= 0:  # every point sits on a centre: the rest uniformly among the points not chosen
            rest = torch.ones(x.shape[0], dtype=torch.float64)
            rest[centres] = 0
            nxt = int(torch.multinomial(rest, 1, generator=g))
        else:
            nxt = int(torch.multinomial(d2.double() / float(total), 1, generator=g))
        centres.append(nxt)
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(dim=1))
    return x[centres].clone()


def kmeans(
    x: Vectors, n_clusters: int, n_iter: int = 20, seed: int = 0, init: str | torch.Tensor = "k-means++"
) -> KMeans:
    """Lloyd's k-means of the rows of ``x`` ``(n, d)`` into ``n_clusters`` cells, seeded.

    ``init``: ``"k-means++"`` (default; see :func:`_kmeans_plus_plus`), ``"random"`` (``n_clusters``
    distinct rows drawn uniformly) or a ``(n_clusters, d)`` tensor of starting centroids. Each of at
    most ``n_iter`` iterations assigns every point to its nearest centroid (squared Euclidean
    distance, :func:`nearest_centroid`) and moves each centroid to the mean of its points; a cell
    left empty keeps its centroid. Stops early when no assignment changes. The returned assignment
    is that of the final centroids. Everything random is drawn from ``torch.Generator`` seeded ``seed``.
    """
    x = as_vectors(x, "x")
    n_clusters = _check_positive("n_clusters", n_clusters)
    n_iter = _check_positive("n_iter", n_iter)
    if n_clusters > x.shape[0]:
        raise ValueError(f"n_clusters must be at most the number of points {x.shape[0]}, got {n_clusters}")
    g = torch.Generator().manual_seed(seed)
    if isinstance(init, torch.Tensor):
        if init.shape != (n_clusters, x.shape[1]):
            raise ValueError(f"init centroids must have shape {(n_clusters, x.shape[1])}, got {tuple(init.shape)}")
        centroids = init.to(x.dtype).clone()
    elif init == "k-means++":
        centroids = _kmeans_plus_plus(x, n_clusters, g)
    elif init == "random":
        centroids = x[torch.randperm(x.shape[0], generator=g)[:n_clusters]].clone()
    else:
        raise ValueError(f"init must be one of {INITS} or a (n_clusters, d) tensor, got {init!r}")
    assignment, _ = nearest_centroid(x, centroids)
    for done in range(1, n_iter + 1):
        sums = torch.zeros_like(centroids).index_add_(0, assignment, x)
        counts = torch.bincount(assignment, minlength=n_clusters)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).to(x.dtype)
        new, dist = nearest_centroid(x, centroids)  # the assignment to, and distances from, the moved centroids
        changed = bool((new != assignment).any())
        assignment = new
        if not changed:
            break
    return KMeans(centroids, assignment, float(dist.sum()), done)


# -- the interface --------------------------------------------------------------------------------
class AnnIndex(ABC):
    """A nearest-neighbour index over item vectors: ``build(vectors)``, ``search(queries, k)``, ``memory_bytes()``.

    ``metric`` is one of :data:`METRICS`; ``search`` returns a :class:`Ranking` ``(B, k)`` of item
    indices (rows of the built ``vectors``) and their scores in that metric (``ip``: ``⟨q, x⟩``;
    ``cosine``: the cosine; ``l2``: ``−‖q − x‖²``), best first, ``PAD`` where an index found fewer
    than ``k``. Searching before ``build``, with vectors of another dimension or with ``k`` outside
    ``1..n_items`` raises a clear error.
    """

    def __init__(self, metric: str = "ip") -> None:
        self.metric = _check_metric(metric)
        self.dim_: int | None = None
        self.n_items_: int | None = None

    def build(self, vectors: Vectors) -> Self:
        """Index the rows of ``vectors`` ``(n, d)``; returns ``self``."""
        x = as_vectors(vectors, "vectors")
        self._build(x)
        self.dim_, self.n_items_ = x.shape[1], x.shape[0]  # built only once _build succeeded
        return self

    def search(self, queries: Vectors, k: int) -> Ranking:
        """The (approximate) top-``k`` items of each query ``(B, d)``: ``Ranking((B, k), (B, k))``."""
        if self.dim_ is None:
            raise RuntimeError(f"{type(self).__name__} is not built yet: call .build(vectors) before .search(queries, k)")
        q = as_vectors(queries, "queries", self.dim_)
        return self._search(q, _check_k(k, self.n_items_))

    @abstractmethod
    def _build(self, x: torch.Tensor) -> None: ...

    @abstractmethod
    def _search(self, q: torch.Tensor, k: int) -> Ranking: ...

    @abstractmethod
    def memory_bytes(self) -> int:
        """Bytes the built index holds (vectors or codes, and its own structure)."""

    def _check_built(self) -> None:
        if self.dim_ is None:
            raise RuntimeError(f"{type(self).__name__} is not built yet: call .build(vectors) first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(metric={self.metric!r})"


class ExactIndex(AnnIndex):
    """Brute force: every query scored against every item (:func:`pair_scores`), then :func:`rank`.

    ``batch_size`` queries at a time (peak ``batch_size · n_items`` scores). The baseline every
    approximate index is measured against; ties to the lower item index.
    """

    def __init__(self, metric: str = "ip", batch_size: int = 1024) -> None:
        super().__init__(metric)
        self.batch_size = _check_positive("batch_size", batch_size)

    def _build(self, x: torch.Tensor) -> None:
        self.vectors_ = _prepare(x, self.metric)

    def _search(self, q: torch.Tensor, k: int) -> Ranking:
        q = _prepare(q.to(self.vectors_.dtype), self.metric)
        parts = [rank(pair_scores(q[s : s + self.batch_size], self.vectors_, _scored_as(self.metric)), k=k, in_place=True)
                 for s in range(0, q.shape[0], self.batch_size)]
        return Ranking(torch.cat([p.indices for p in parts]), torch.cat([p.scores for p in parts]))

    def memory_bytes(self) -> int:
        self._check_built()
        return self.vectors_.nbytes


class IVFIndex(AnnIndex):
    """An inverted-file index by hand: k-means cells, each query scores the items of its ``nprobe`` best cells.

    ``n_cells`` centroids from :func:`kmeans` (``init`` ``"k-means++"`` by default, ``n_iter`` Lloyd
    iterations, ``seed``) trained on at most ``max_points_per_cell · n_cells`` items drawn without
    replacement (FAISS's default is 256); every item is filed under its nearest centroid (squared
    Euclidean distance, on unit rows for ``cosine``). The items are stored sorted by cell (then by
    item index), so a cell is a contiguous block ``vectors_[offsets_[c]:offsets_[c + 1]]``.

    ``search``: the query's cells are the ``nprobe`` centroids of highest :func:`pair_scores` with
    it (``⟨q, c⟩`` for ``ip``, ``−‖q − c‖²`` for ``l2``, cosine for ``cosine``); each probed cell's
    items are scored exactly (one matrix product per cell for all the batch's queries that probe
    it) and the candidates merged by :func:`rank` (ties to the lower item index). ``nprobe =
    n_cells`` is exact top-k. When the probed cells hold fewer than ``k`` items the tail is ``PAD``.
    ``nprobe`` may be changed between searches. ``search`` runs on ``threads`` torch threads (restored
    after): its many small per-cell products gain nothing from more, and lose much when the cores are
    shared (1,000 queries, 100k items, nprobe 8, on a busy 2-core machine: 0.24 s on one thread, 3.4 s on two).
    """

    def __init__(self, n_cells: int, nprobe: int = 1, metric: str = "ip", n_iter: int = 20, seed: int = 0,
                 init: str = "k-means++", max_points_per_cell: int = 256, batch_size: int = 1024,
                 threads: int = 1) -> None:
        super().__init__(metric)
        self.threads = _check_positive("threads", threads)
        self.n_cells = _check_positive("n_cells", n_cells)
        self.nprobe = _check_positive("nprobe", nprobe)
        self.n_iter = _check_positive("n_iter", n_iter)
        self.max_points_per_cell = _check_positive("max_points_per_cell", max_points_per_cell)
        self.batch_size = _check_positive("batch_size", batch_size)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.init, self.seed = init, seed

    def _build(self, x: torch.Tensor) -> None:
        if self.n_cells > x.shape[0]:
            raise ValueError(f"n_cells must be at most the number of vectors {x.shape[0]}, got {self.n_cells}")
        x = _prepare(x, self.metric)
        g = torch.Generator().manual_seed(self.seed)
        n_train = min(x.shape[0], self.max_points_per_cell * self.n_cells)
        train = x if n_train == x.shape[0] else x[torch.randperm(x.shape[0], generator=g)[:n_train]]
        self.centroids_ = kmeans(train, self.n_cells, self.n_iter, self.seed, self.init).centroids
        self.cell_of_, _ = nearest_centroid(x, self.centroids_)
        self.order_ = torch.sort(self.cell_of_, stable=True).indices  # item indices, cell by cell
        self.vectors_ = x[self.order_]
        sizes = torch.bincount(self.cell_of_, minlength=self.n_cells)
        self.offsets_ = torch.cat([sizes.new_zeros(1), torch.cumsum(sizes, 0)])

    def cell_sizes(self) -> torch.Tensor:
        """Items per cell ``(n_cells,)``."""
        self._check_built()
        return torch.diff(self.offsets_)

    def _search(self, q: torch.Tensor, k: int) -> Ranking:
        nprobe = self.nprobe
        if isinstance(nprobe, bool) or not isinstance(nprobe, int | np.integer) or not 1 <= nprobe <= self.n_cells:
            raise ValueError(f"nprobe must be an integer in 1..{self.n_cells} (n_cells), got {nprobe!r}")
        q = _prepare(q.to(self.vectors_.dtype), self.metric)  # unit rows for cosine: then scored as ip
        with torch_threads(self.threads):
            parts = [self._search_batch(q[s : s + self.batch_size], k, int(nprobe))
                     for s in range(0, q.shape[0], self.batch_size)]
        return Ranking(torch.cat([p.indices for p in parts]), torch.cat([p.scores for p in parts]))

    def _search_batch(self, q: torch.Tensor, k: int, nprobe: int) -> Ranking:
        """One batch: probe cells, score each probed cell once for its queries, merge ``(B, nprobe · k)``."""
        b = q.shape[0]
        probe = torch.topk(pair_scores(q, self.centroids_, self.metric), nprobe, dim=1).indices  # (B, nprobe)
        flat = probe.reshape(-1)
        by_cell = torch.sort(flat, stable=True).indices  # (query, slot) pairs grouped by cell
        cells, counts = torch.unique_consecutive(flat[by_cell], return_counts=True)
        slots, found, scores = [], [], []  # per cell: flat (query, slot, j) positions, item indices, scores
        start = 0
        for cell, count in zip(cells.tolist(), counts.tolist()):
            pairs = by_cell[start : start + count]
            start += count
            lo, hi = int(self.offsets_[cell]), int(self.offsets_[cell + 1])
            if hi == lo:
                continue
            kk = min(k, hi - lo)
            top = rank(pair_scores(q[pairs // nprobe], self.vectors_[lo:hi], _scored_as(self.metric)), k=kk, in_place=True)
            slots.append((pairs.unsqueeze(1) * k + torch.arange(kk)).reshape(-1))
            found.append(self.order_[lo + top.indices].reshape(-1))
            scores.append(top.scores.reshape(-1))
        cand_idx = torch.full((b * nprobe * k,), PAD, dtype=torch.long)
        cand_s = torch.full((b * nprobe * k,), -torch.inf, dtype=q.dtype)
        if slots:
            where = torch.cat(slots)
            cand_idx[where], cand_s[where] = torch.cat(found), torch.cat(scores)
        return _merge(cand_idx.reshape(b, -1), cand_s.reshape(b, -1), k)

    def memory_bytes(self) -> int:
        self._check_built()
        return self.vectors_.nbytes + self.order_.nbytes + self.centroids_.nbytes + self.offsets_.nbytes

    def __repr__(self) -> str:
        return f"IVFIndex(n_cells={self.n_cells}, nprobe={self.nprobe}, metric={self.metric!r})"


def _merge(indices: torch.Tensor, scores: torch.Tensor, k: int) -> Ranking:
    """Top-``k`` of candidate lists ``(B, c)`` (``PAD`` = no candidate, score ``-inf``), ties to the lower item index.

    Only each row's ``k + 1`` best candidates (``torch.topk``) are ordered by item index and ranked:
    they hold the answer unless the ``(k+1)``-th score ties with a finite ``k``-th (a tie the
    boundary cuts), and only such rows are merged from all their candidates.
    """
    if not 0 < k < scores.shape[1] - 1:
        return _merge_all(indices, scores, k)
    vals, pos = torch.topk(scores, k + 1, dim=1)
    top = _merge_all(torch.gather(indices, 1, pos), vals, k)
    cut = (vals[:, k] == vals[:, k - 1]) & (vals[:, k - 1] > -torch.inf)
    if cut.any():
        redo = _merge_all(indices[cut], scores[cut], k)
        top.indices[cut], top.scores[cut] = redo.indices, redo.scores
    return top


def _merge_all(indices: torch.Tensor, scores: torch.Tensor, k: int) -> Ranking:
    """:func:`_merge` over every candidate: sort by item index, then :func:`rank` (ties to the lower position)."""
    order = torch.sort(indices, dim=1, stable=True).indices  # ascending item index: rank breaks ties by position
    indices, scores = torch.gather(indices, 1, order), torch.gather(scores, 1, order)
    top = rank(scores, k=min(k, scores.shape[1]), in_place=True)
    picked = torch.gather(indices, 1, top.indices.clamp(min=0))
    picked = picked.masked_fill(top.indices == PAD, PAD)
    if picked.shape[1] < k:  # fewer candidate slots than k: pad
        pad = k - picked.shape[1]
        picked = torch.cat([picked, picked.new_full((picked.shape[0], pad), PAD)], dim=1)
        return Ranking(picked, torch.cat([top.scores, top.scores.new_full((picked.shape[0], pad), -torch.inf)], dim=1))
    return Ranking(picked, top.scores)


# -- FAISS and hnswlib ----------------------------------------------------------------------------
def available(library: str) -> bool:
    """Whether the optional ANN library ``library`` (``"faiss"`` or ``"hnswlib"``) can be imported."""
    if library not in ANN_LIBRARIES:
        raise ValueError(f"library must be one of {tuple(ANN_LIBRARIES)}, got {library!r}")
    return importlib.util.find_spec(library) is not None


def require(library: str) -> ModuleType:
    """Import the optional ANN library ``library``; ``ImportError`` saying how to install it when missing."""
    if not available(library):
        raise ImportError(f"{library} is not installed: it comes with recnb's optional [ann] extra "
                          f"({ANN_LIBRARIES[library]}); install it with pip install -e \".[ann]\" (or make setup)")
    return importlib.import_module(library)


def _float32(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)


class _FaissIndex(AnnIndex):
    """Shared part of the FAISS adapters: metric mapping, search, serialised size.

    ``ip`` and ``cosine`` use ``METRIC_INNER_PRODUCT`` (``cosine`` on unit rows), ``l2`` uses
    ``METRIC_L2`` (FAISS returns ``‖q − x‖²``; the score is its negative). FAISS runs on OpenMP's
    threads (``faiss.omp_set_num_threads``).
    """

    def _faiss_metric(self, faiss: ModuleType) -> int:
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _build(self, x: torch.Tensor) -> None:
        faiss = require("faiss")
        data = _float32(_prepare(x, self.metric))
        self.index_ = self._make(faiss, data.shape[1])
        if not self.index_.is_trained:
            self.index_.train(data)
        self.index_.add(data)

    @abstractmethod
    def _make(self, faiss: ModuleType, d: int) -> Any: ...

    def _tune(self, k: int) -> None:
        """Set search-time parameters before a search (``nprobe``, ``efSearch``)."""

    def _search(self, q: torch.Tensor, k: int) -> Ranking:
        self._tune(k)
        dist, labels = self.index_.search(_float32(_prepare(q, self.metric)), k)
        indices = torch.from_numpy(labels.astype(np.int64))
        scores = torch.from_numpy(-dist if self.metric == "l2" else dist)
        return Ranking(indices, scores.masked_fill(indices == PAD, -torch.inf))  # FAISS marks "none" with label -1

    def memory_bytes(self) -> int:
        """The size of the index as FAISS serialises it (``faiss.serialize_index``)."""
        self._check_built()
        return int(require("faiss").serialize_index(self.index_).nbytes)


class FaissFlat(_FaissIndex):
    """``faiss.IndexFlatIP`` (``IndexFlatL2`` for ``l2``): exact search, FAISS's brute force."""

    def _make(self, faiss: ModuleType, d: int) -> Any:
        return faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)


class FaissIVF(_FaissIndex):
    """``faiss.IndexIVFFlat(quantizer, d, nlist, metric)``: ``nlist`` k-means cells (FAISS's k-means,
    ``cp.seed = seed``), raw vectors in the inverted lists, ``nprobe`` cells visited per query."""

    def __init__(self, nlist: int, nprobe: int = 1, metric: str = "ip", seed: int = 0) -> None:
        super().__init__(metric)
        self.nlist = _check_positive("nlist", nlist)
        self.nprobe = _check_positive("nprobe", nprobe)
        self.seed = seed

    def _make(self, faiss: ModuleType, d: int) -> Any:
        quantizer = faiss.IndexFlatL2(d) if self.metric == "l2" else faiss.IndexFlatIP(d)
        index = self._ivf(faiss, quantizer, d)
        index.cp.seed = self.seed
        self.quantizer_ = quantizer  # the IVF index does not own it: keep it alive
        return index

    def _ivf(self, faiss: ModuleType, quantizer: Any, d: int) -> Any:
        return faiss.IndexIVFFlat(quantizer, d, self.nlist, self._faiss_metric(faiss))

    def _tune(self, k: int) -> None:
        nprobe = self.nprobe
        if isinstance(nprobe, bool) or not isinstance(nprobe, int | np.integer) or not 1 <= nprobe <= self.nlist:
            raise ValueError(f"nprobe must be an integer in 1..{self.nlist} (nlist), got {nprobe!r}")
        self.index_.nprobe = int(nprobe)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nlist={self.nlist}, nprobe={self.nprobe}, metric={self.metric!r})"


class FaissIVFPQ(FaissIVF):
    """``faiss.IndexIVFPQ(quantizer, d, nlist, m, nbits, metric)``: IVF cells whose residuals ``x − c``
    are product-quantised into ``m`` sub-vectors of ``d / m`` dimensions, each coded on ``nbits`` bits
    (``m · nbits / 8`` bytes per item instead of ``4 d``); scores are approximate (asymmetric distances
    to the codes). ``m`` must divide ``d``. Each sub-quantizer's k-means runs ``pq_n_iter`` iterations
    on at most ``pq_max_points_per_centroid · 2^nbits`` of the training residuals (FAISS's defaults
    25 and 256; the k-means of 2-D sub-vectors is slow in FAISS, and fewer of both train faster)."""

    def __init__(self, nlist: int, m: int, nbits: int = 8, nprobe: int = 1, metric: str = "ip", seed: int = 0,
                 pq_n_iter: int = 25, pq_max_points_per_centroid: int = 256) -> None:
        super().__init__(nlist, nprobe, metric, seed)
        self.m = _check_positive("m", m)
        self.nbits = _check_positive("nbits", nbits)
        self.pq_n_iter = _check_positive("pq_n_iter", pq_n_iter)
        self.pq_max_points_per_centroid = _check_positive("pq_max_points_per_centroid", pq_max_points_per_centroid)

    def _ivf(self, faiss: ModuleType, quantizer: Any, d: int) -> Any:
        if d % self.m:
            raise ValueError(f"m (PQ sub-vectors) must divide the dimension d = {d}, got m = {self.m}")
        index = faiss.IndexIVFPQ(quantizer, d, self.nlist, self.m, self.nbits, self._faiss_metric(faiss))
        index.pq.cp.seed = self.seed
        index.pq.cp.niter = self.pq_n_iter
        index.pq.cp.max_points_per_centroid = self.pq_max_points_per_centroid
        return index

    def __repr__(self) -> str:
        return f"FaissIVFPQ(nlist={self.nlist}, m={self.m}, nbits={self.nbits}, nprobe={self.nprobe}, metric={self.metric!r})"


class FaissHNSW(_FaissIndex):
    """``faiss.IndexHNSWFlat(d, M, metric)``: a hierarchical navigable small-world graph (Malkov &
    Yashunin 2018) with ``M`` neighbours per node (``2 M`` on the base layer), built with
    ``hnsw.efConstruction = ef_construction`` and searched with ``hnsw.efSearch = max(ef_search, k)``
    (the size of the candidate list; FAISS's defaults are 40 and 16)."""

    def __init__(self, M: int = 32, ef_construction: int = 40, ef_search: int = 16, metric: str = "ip") -> None:
        super().__init__(metric)
        self.M = _check_positive("M", M)
        self.ef_construction = _check_positive("ef_construction", ef_construction)
        self.ef_search = _check_positive("ef_search", ef_search)

    def _make(self, faiss: ModuleType, d: int) -> Any:
        index = faiss.IndexHNSWFlat(d, self.M, self._faiss_metric(faiss))
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _tune(self, k: int) -> None:
        self.index_.hnsw.efSearch = max(_check_positive("ef_search", self.ef_search), k)

    def __repr__(self) -> str:
        return (f"FaissHNSW(M={self.M}, ef_construction={self.ef_construction}, ef_search={self.ef_search}, "
                f"metric={self.metric!r})")


class Hnswlib(AnnIndex):
    """``hnswlib.Index(space, dim)`` with ``init_index(max_elements=n, M, ef_construction, random_seed=seed)``,
    searched with ``ef = max(ef_search, k)`` (hnswlib needs ``ef ≥ k``; its defaults are ``M = 16``,
    ``ef_construction = 200``, ``ef = 10``). hnswlib's spaces give distances: ``ip`` ``1 − ⟨q, x⟩``,
    ``cosine`` ``1 − cos``, ``l2`` ``‖q − x‖²``; the scores returned are ``1 − distance`` and ``−distance``.
    ``threads`` (``-1``: all cores) is passed to ``add_items`` and ``knn_query``."""

    def __init__(self, M: int = 16, ef_construction: int = 200, ef_search: int = 10, metric: str = "ip",
                 seed: int = 100, threads: int = -1) -> None:
        super().__init__(metric)
        self.M = _check_positive("M", M)
        self.ef_construction = _check_positive("ef_construction", ef_construction)
        self.ef_search = _check_positive("ef_search", ef_search)
        self.seed, self.threads = seed, threads

    def _build(self, x: torch.Tensor) -> None:
        hnswlib = require("hnswlib")
        self.index_ = hnswlib.Index(space=self.metric, dim=x.shape[1])
        self.index_.init_index(max_elements=x.shape[0], M=self.M, ef_construction=self.ef_construction, random_seed=self.seed)
        self.index_.add_items(_float32(x), np.arange(x.shape[0]), num_threads=self.threads)

    def _search(self, q: torch.Tensor, k: int) -> Ranking:
        self.index_.set_ef(max(_check_positive("ef_search", self.ef_search), k))
        labels, dist = self.index_.knn_query(_float32(q), k=k, num_threads=self.threads)
        d = torch.from_numpy(np.asarray(dist, dtype=np.float32))
        return Ranking(torch.from_numpy(labels.astype(np.int64)), -d if self.metric == "l2" else 1 - d)

    def memory_bytes(self) -> int:
        """hnswlib's own count of the index's bytes (``index_file_size``: vectors, links, labels)."""
        self._check_built()
        return int(self.index_.index_file_size())

    def __repr__(self) -> str:
        return (f"Hnswlib(M={self.M}, ef_construction={self.ef_construction}, ef_search={self.ef_search}, "
                f"metric={self.metric!r})")


# -- retrieve then rank ---------------------------------------------------------------------------
def factor_tables(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """User vectors ``(n_users, d')`` and item vectors ``(n_items, d')`` whose products are the model's scores.

    :class:`~recnb.models.embedding.EmbeddingRecommender`: its ``user_embedding`` / ``item_embedding``
    weights, with an item bias ``b`` folded in as one more dimension (``[e_u, 1] · [e_g, b_g] =
    ⟨e_u, e_g⟩ + b_g``); a model with ``user_factors_`` / ``item_factors_`` (ALS): those tables.
    Raises ``TypeError`` for any other model, ``RuntimeError`` for one not fitted.
    """
    if hasattr(model, "user_embedding") and hasattr(model, "item_embedding"):
        if model.user_embedding is None:
            raise RuntimeError(f"{type(model).__name__} is not fitted yet: call .fit(split) first")
        users, items = model.user_embedding.weight.detach(), model.item_embedding.weight.detach()
        bias = getattr(model, "item_bias", None)
        if isinstance(bias, torch.nn.Embedding):
            users = torch.cat([users, users.new_ones(users.shape[0], 1)], dim=1)
            items = torch.cat([items, bias.weight.detach()], dim=1)
        return users, items
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        if model.user_factors_ is None:
            raise RuntimeError(f"{type(model).__name__} is not fitted yet: call .fit(split) first")
        return torch.as_tensor(model.user_factors_), torch.as_tensor(model.item_factors_)
    raise TypeError(f"model must be a factor model with user_embedding/item_embedding (EmbeddingRecommender) or "
                    f"user_factors_/item_factors_ (ALS), got {type(model).__name__}")


class RetrieveThenRank:
    """A fitted factor model answered through an index: candidates first, then exact re-ranking.

    For each user vector ``u`` (:func:`factor_tables`), ``index.search(u, c)`` retrieves ``c``
    candidates, the user's training items are removed, and the rest are ranked by the model's
    exact score ``⟨u, x⟩`` (:func:`rank`, ties to the lower item index as in ``model.recommend``).
    The index is asked for ``n_candidates + (the batch's largest number of training items)`` (plus
    the banned items) when ``exclude_seen``; after the seen and banned ones are removed, each user's
    first ``n_candidates`` in the index's own order reach the re-ranking, so ``n_candidates`` is the
    re-ranking budget per user whatever the history lengths; items the index misses or ranks below
    that budget are the only loss. An ``ip`` index gets the raw vectors; an ``l2`` or ``cosine`` index gets them
    through :func:`mips_augment` / :func:`augment_queries`, which make its nearest neighbours the
    largest inner products. :meth:`fit` builds the index; :meth:`recommend` has the signature and
    output of :meth:`recnb.models.base.Recommender.recommend`.
    """

    def __init__(self, model: Any, index: AnnIndex, n_candidates: int = 100) -> None:
        self.model, self.index = model, index
        self.n_candidates = _check_positive("n_candidates", n_candidates)
        self.user_vectors_: torch.Tensor | None = None

    def fit(self) -> Self:
        """Read the model's tables and build the index on its item vectors (augmented unless ``ip``)."""
        self.user_vectors_, self.item_vectors_ = factor_tables(self.model)
        items = self.item_vectors_ if self.index.metric == "ip" else mips_augment(self.item_vectors_)[0]
        self.index.build(items)
        self.seen_ = self.model.seen_
        return self

    def recommend(self, users: Users = None, k: int = 10, *, items: Items | None = None, filter_items: Items | None = None,
                  exclude_seen: bool = True, threshold: float | None = None, batch_size: int = 1024) -> Ranking:
        """Top-``k`` items per user from the index's candidates, re-ranked exactly: a ``(U, k)`` :class:`Ranking`.

        The keywords of ``model.recommend``: ``filter_items`` are removed from every list (the index
        is asked for that many more candidates), ``exclude_seen`` removes the user's training items,
        ``threshold`` drops items scoring below it. ``items`` (a restricted candidate set) must be
        ``None``: the index retrieves from the whole catalogue (rank a shelf with ``model.recommend(items=...)``).
        """
        if self.user_vectors_ is None:
            raise RuntimeError("RetrieveThenRank is not fitted yet: call .fit() first")
        if items is not None:
            raise ValueError("items must be None: RetrieveThenRank retrieves from the whole catalogue; "
                             "rank a restricted set with model.recommend(users, k, items=...)")
        n_users, n_items = self.seen_.shape
        if k > self.n_candidates:
            raise ValueError(f"k must be at most n_candidates = {self.n_candidates}, got {k}")
        batch_size = _check_positive("batch_size", batch_size)
        banned = None if filter_items is None else torch.unique(item_indices(filter_items, n_items, "filter_items"))
        u = as_user_tensor(users, n_users)
        if len(u) == 0:
            return Ranking(torch.empty(0, k, dtype=torch.long), torch.empty(0, k, dtype=self.item_vectors_.dtype))
        parts = [self._batch(u[s : s + batch_size], k, banned, exclude_seen, threshold) for s in range(0, len(u), batch_size)]
        return Ranking(torch.cat([p.indices for p in parts]), torch.cat([p.scores for p in parts]))

    def _batch(self, users: torch.Tensor, k: int, banned: torch.Tensor | None, exclude_seen: bool,
               threshold: float | None) -> Ranking:
        n_items = self.seen_.shape[1]
        seen = self.seen_[users.numpy()]
        extra = int(np.diff(seen.indptr).max()) if exclude_seen else 0
        extra += 0 if banned is None else len(banned)
        c = min(n_items, self.n_candidates + extra)
        q = self.user_vectors_[users]
        found = self.index.search(q if self.index.metric == "ip" else augment_queries(q), c).indices
        scores = torch.einsum("bd,bcd->bc", q, self.item_vectors_[found.clamp(min=0)])
        drop = found == PAD
        if banned is not None:
            drop |= torch.isin(found, banned)
        if exclude_seen and seen.nnz:
            rows = np.repeat(np.arange(len(users)), np.diff(seen.indptr))
            seen_keys = torch.from_numpy(rows * n_items + seen.indices.astype(np.int64))
            keys = torch.arange(len(users)).unsqueeze(1) * n_items + found
            drop |= torch.isin(keys, seen_keys)
        drop |= torch.cumsum(~drop, dim=1) > self.n_candidates  # the budget: the first n_candidates left
        scores = scores.masked_fill(drop, -torch.inf)
        if threshold is not None:
            scores = scores.masked_fill(scores < threshold, -torch.inf)
        return _merge(found.masked_fill(drop, PAD), scores, k)

    def __repr__(self) -> str:
        return f"RetrieveThenRank({self.index!r}, n_candidates={self.n_candidates})"
