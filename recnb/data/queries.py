"""Search queries over the synthetic shop, with graded relevance known from the shop's truth.

Queries are written from what the shop knows about its items (category, the adjective and features
its text was written from, brand, price: ``truth["item_category"]``, ``truth["item_attributes"]``,
the ``brand`` and ``price`` columns), never copied from a title. Each query names one category
``c`` and at most one **constraint** on top of it. :data:`QUERY_TYPES`:

=============  ============================================  ===============================
type           text                                          constraint
=============  ============================================  ===============================
category       a product noun of ``c`` (``espresso machine``)  none
synonym        a word for ``c`` no item text uses              none
               (``sneakers``, ``coffee machine``)
attribute      an adjective or a feature of ``c`` with a head  the item has that adjective
               noun (``4K camera``, ``tent with rainfly``)      / feature
brand          a brand with a head noun (``Crema beans``)      the item's brand
price          a noun and a cap (``coffee beans under 15``)    the item's price <= cap
misspelling    a category, attribute or brand query with one   that query's
               or two seeded character edits                  (``base_type`` says which)
=============  ============================================  ===============================

**Graded relevance** of item ``i`` for query ``q`` (category ``c_q``, constraint ``K_q``)::

    rel(q, i) = 2  if c_i = c_q and K_q holds for i (always, when there is no constraint)
                1  if c_i = c_q and K_q fails for i
                0  otherwise

The head noun of attribute, brand and price queries is the last word of one of the category's
product nouns (``socks``, ``camera``, ``beans``), the brand and attribute are those of a randomly
drawn item of the category (so at least one item has grade 2), and a price cap is a round number
(:func:`round_price`) between the category's 25th and 75th price percentiles. A **misspelling**
edits one or two words of four letters or more, each edit drawn from deletion, insertion and
substitution of a letter and transposition of two neighbours (Damerau's four), the text kept only
if it changed; its ``intended`` text is the query before the edits.

**Personalised queries** (``personalised=True``): each query has an issuing user ``u`` (row
position, ``user_id = u + 1``) drawn in proportion to ``truth["user_activity"]``, and its category
is drawn from the user's taste ``θ_u``; otherwise categories are uniform and ``user_id`` is ``<NA>``.

**Click log** (:func:`make_click_log`), for learning to rank from clicks: each query is shown once,
as the list a production ranker gives it, and the user clicks rank ``r`` with

.. math::

    P(\\text{click} \\mid u, q, i, r) = \\underbrace{r^{-\\eta}}_{P(\\text{examine } r)} \\cdot
        \\underbrace{\\left(\\varepsilon + (1 - \\varepsilon) \\frac{2^{rel(q, i)} - 1}{3}
        \\sigma(s_{ui})\\right)}_{P(\\text{attractive} \\mid u, q, i)}

the position-based model (Craswell et al. 2008; Joachims et al. 2017 for its use in unbiased
learning to rank): examination depends on the rank alone (``η = 1`` by default), attractiveness on
the item's grade and on the user's true affinity ``s_ui`` (:func:`recnb.data.synthetic.true_affinity`:
taste, price fit, quality), with a small noise-click rate ``ε``. The log records the
examination probability as ``propensity`` (the weight ``1 / propensity`` of inverse propensity
scoring) next to the attractiveness and the click.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recnb.data.schema import ITEM, USER, RecData
from recnb.data.synthetic import CATEGORIES, CATEGORY_WORDS, true_affinity
from recnb.data.validation import check_seed

#: the kinds of query :func:`make_queries` writes, in the order it cycles through them
QUERY_TYPES: tuple[str, ...] = ("category", "synonym", "attribute", "brand", "price", "misspelling")

#: words for each category that no item text of the shop uses (the synonym queries)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "phones": ("cellphone", "handset", "cell phone"),
    "phone cases": ("phone cover", "phone protector", "handset cover"),
    "laptops": ("portable computer", "notebook pc", "pc"),
    "laptop bags": ("computer bag", "laptop carrier", "messenger bag"),
    "running shoes": ("sneakers", "trainers", "jogging shoes"),
    "sports socks": ("athletic socks", "gym socks", "hosiery"),
    "coffee makers": ("coffee brewer", "espresso maker", "cafetiere"),
    "coffee beans": ("whole bean coffee", "coffee grounds", "java"),
    "cameras": ("camcorder", "dslr", "photo camera"),
    "memory cards": ("storage card", "flash card", "flash memory"),
    "tents": ("shelter", "canvas shelter", "camping shelter"),
    "sleeping bags": ("sleep sack", "bedroll", "camping blanket"),
    "yoga mats": ("workout mat", "fitness mat", "gym mat"),
    "water bottles": ("drink bottle", "flask", "hydration flask"),
    "headphones": ("headset", "earphones", "cans"),
    "chargers": ("power adapter", "charging brick", "power supply"),
}

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_COLUMNS = ["query_id", "text", "type", "base_type", "intended", "category", "category_code",
            "attribute", "brand", "max_price", USER]


@dataclass(frozen=True)
class Queries:
    """Queries and their graded relevance over the shop's items.

    ``frame``: one row per query, ``query_id`` ``0..Q-1`` (the row), ``text``, ``type`` (one of
    :data:`QUERY_TYPES`), ``base_type`` (the type before misspelling; = ``type`` otherwise),
    ``intended`` (the text before misspelling), ``category`` and ``category_code``, the constraint
    (``attribute``, ``brand`` str or ``""``; ``max_price`` float or NaN) and ``user_id`` (Int64,
    ``<NA>`` unless personalised). ``relevance``: ``(Q, n_items)`` CSR int8 grades 0/1/2 (module
    docstring), columns in the shop's ``items`` row order.
    """

    frame: pd.DataFrame
    relevance: sp.csr_matrix

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def texts(self) -> list[str]:
        """The query strings, in ``query_id`` order."""
        return self.frame["text"].tolist()

    @property
    def types(self) -> np.ndarray:
        """``(Q,)`` the query type of each query."""
        return self.frame["type"].to_numpy()

    def subset(self, rows: Any) -> Queries:
        """The queries at ``rows`` (positions or a bool mask), renumbered ``0..``."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        frame = self.frame.iloc[rows].reset_index(drop=True).assign(query_id=np.arange(len(rows)))
        return Queries(frame, self.relevance[rows])


def round_price(x: float) -> float:
    """A round price near ``x``: to a multiple of 5 under 100, of 10 under 1000, of 50 above (>= 5)."""
    step = 5.0 if x < 100 else 10.0 if x < 1000 else 50.0
    return max(5.0, float(np.round(x / step) * step))


def _strip_article(phrase: str) -> str:
    words = phrase.split()
    return " ".join(words[1:]) if words[0] in ("a", "an") else phrase


def misspell(text: str, rng: np.random.Generator, n_edits: int = 1) -> str:
    """``text`` with ``n_edits`` random character edits (delete, insert, substitute, transpose) on
    words of four letters or more (one word per edit, drawn with replacement); unchanged if none."""
    words = text.split(" ")
    long = [j for j, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return text
    for _ in range(n_edits):
        j = long[int(rng.integers(len(long)))]
        w = words[j]
        p = int(rng.integers(1, len(w) - 1))  # an inner position: the first letter stays
        kind = int(rng.integers(4))
        letter = _LETTERS[int(rng.integers(26))]
        if kind == 0:
            w = w[:p] + w[p + 1:]
        elif kind == 1:
            w = w[:p] + letter + w[p:]
        elif kind == 2:
            w = w[:p] + letter + w[p + 1:]
        else:
            w = w[:p] + w[p + 1] + w[p] + w[p + 2:]
        words[j] = w
    return " ".join(words)


def judge(shop: RecData, category_code: int, attribute: str = "", brand: str = "",
          max_price: float = float("nan")) -> np.ndarray:
    """The grades ``(n_items,)`` int8 of every item for a query (module docstring's rule).

    ``attribute`` is an adjective or a feature phrase of :data:`~recnb.data.synthetic.CATEGORY_WORDS`
    of the category (with or without its article), ``brand`` a brand name, ``max_price`` a cap;
    at most one of them is set (empty / NaN means none).
    """
    cat = shop.truth["item_category"]
    in_cat = cat == category_code
    holds = np.ones(len(cat), dtype=bool)
    words = CATEGORY_WORDS[category_code]
    if attribute:
        attrs = shop.truth["item_attributes"]
        adjectives, features = list(words["adjectives"]), [_strip_article(f) for f in words["features"]]
        if attribute in adjectives:
            holds = attrs[:, 0] == adjectives.index(attribute)
        elif _strip_article(attribute) in features:
            f = features.index(_strip_article(attribute))
            holds = (attrs[:, 1] == f) | (attrs[:, 2] == f)
        else:
            raise ValueError(f"attribute {attribute!r} is neither an adjective nor a feature of {CATEGORIES[category_code]!r}")
    if brand:
        holds = holds & (shop.items["brand"].to_numpy() == brand)
    if not np.isnan(max_price):
        price = shop.items["price"].to_numpy(dtype=float)
        holds = holds & (np.nan_to_num(price, nan=np.inf) <= max_price)
    return (in_cat.astype(np.int8) * (1 + (holds & in_cat))).astype(np.int8)


def make_queries(shop: RecData, n_queries: int = 600, seed: int = 0, types: tuple[str, ...] = QUERY_TYPES,
                 personalised: bool = False, max_edits: int = 2) -> Queries:
    """``n_queries`` queries over ``shop`` (a :func:`~recnb.data.synthetic.make_shop` result), cycling
    through ``types``, with graded relevance; deterministic in ``seed`` (module docstring).

    ``personalised``: draw an issuing user per query and the category from the user's taste.
    ``max_edits``: a misspelling makes 1..max_edits character edits.
    """
    truth = shop.truth
    missing = [key for key in ("item_category", "item_attributes", "categories", "user_taste", "user_activity")
               if key not in truth]
    if missing:
        raise ValueError(f"shop.truth lacks {missing}: pass a shop made by recnb.data.synthetic.make_shop")
    if isinstance(n_queries, bool) or not isinstance(n_queries, int | np.integer) or n_queries < 1:
        raise ValueError(f"n_queries must be a positive integer, got {n_queries!r}")
    unknown = [t for t in types if t not in QUERY_TYPES]
    if unknown or not types:
        raise ValueError(f"types must be a non-empty tuple of {QUERY_TYPES}, got {types!r}")
    if max_edits < 1:
        raise ValueError(f"max_edits must be at least 1, got {max_edits!r}")
    rng = np.random.default_rng(check_seed(seed))
    item_cat = truth["item_category"]
    n_categories = len(truth["categories"])
    members = [np.flatnonzero(item_cat == c) for c in range(n_categories)]
    prices = shop.items["price"].to_numpy(dtype=float)
    taste, activity = truth["user_taste"], truth["user_activity"]

    rows, grades = [], []
    for j in range(n_queries):
        qtype = types[j % len(types)]
        if personalised:
            u = int(rng.choice(len(activity), p=activity / activity.sum()))
            c = int(rng.choice(n_categories, p=taste[u] / taste[u].sum()))
            user: Any = u + 1
        else:
            c, user = int(rng.integers(n_categories)), pd.NA
        base = qtype if qtype != "misspelling" else ("category", "attribute", "brand")[int(rng.integers(3))]
        words = CATEGORY_WORDS[c]
        noun = words["nouns"][int(rng.integers(len(words["nouns"])))]
        head = noun.split()[-1]
        item = int(members[c][int(rng.integers(len(members[c])))])  # an item whose constraint holds
        attribute, brand, cap = "", "", float("nan")
        if base == "category":
            text = noun
        elif base == "synonym":
            options = SYNONYMS[CATEGORIES[c]]
            text = options[int(rng.integers(len(options)))]
        elif base == "attribute":
            which = int(rng.integers(3))  # the adjective or one of the two features
            code = int(truth["item_attributes"][item, which])
            if which == 0:
                attribute = words["adjectives"][code]
                text = f"{attribute} {head}"
            else:
                attribute = _strip_article(words["features"][code])
                text = f"{head} with {attribute}"
        elif base == "brand":
            brand = str(shop.items["brand"].iloc[item])
            text = f"{brand} {head}"
        else:  # price
            lo, hi = np.nanpercentile(prices[members[c]], [25, 75])
            cap = round_price(float(rng.uniform(lo, hi)))
            text = f"{noun} under {cap:g}"
        intended = text
        if qtype == "misspelling":
            for _ in range(10):  # an edit can undo itself (a transposition of equal letters)
                text = misspell(intended, rng, int(rng.integers(1, max_edits + 1)))
                if text != intended:
                    break
        rows.append((j, text, qtype, base, intended, CATEGORIES[c], c, attribute, brand, cap, user))
        grades.append(judge(shop, c, attribute, brand, cap))
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    frame[USER] = frame[USER].astype("Int64")
    relevance = sp.csr_matrix(np.stack(grades))
    return Queries(frame, relevance)


def make_click_log(shop: RecData, queries: Queries, shown: Any, eta: float = 1.0, noise: float = 0.02,
                   seed: int = 0) -> pd.DataFrame:
    """One impression per query of the list ``shown`` ``(Q, k)`` (item row positions, best first;
    ``PAD`` = -1 slots skipped) with clicks from the position-based model of the module docstring.

    ``queries`` must be personalised (every query has a ``user_id``). ``eta > 0`` is the position
    bias, ``noise`` in [0, 1) the noise-click rate ``ε``. Returns one row per shown slot:
    ``query_id``, ``user_id``, ``rank`` (1-based), ``item_idx``, ``item_id``, ``relevance``,
    ``propensity`` (``rank^-η``), ``attractiveness``, ``click`` (bool). Deterministic in ``seed``.
    """
    shown = np.asarray(shown.numpy() if hasattr(shown, "numpy") else shown)
    if shown.ndim != 2 or shown.shape[0] != len(queries):
        raise ValueError(f"shown must be (Q, k) item positions with Q = {len(queries)} queries, got shape {shown.shape}")
    n_items = queries.relevance.shape[1]
    if not np.issubdtype(shown.dtype, np.integer) or (shown.size and (shown.min() < -1 or shown.max() >= n_items)):
        raise ValueError(f"shown must hold integer item positions in 0..{n_items - 1} (or -1 for an empty slot)")
    users = queries.frame[USER]
    if users.isna().any():
        raise ValueError("queries must be personalised (make_queries(..., personalised=True)): "
                         f"{int(users.isna().sum())} of {len(users)} queries have no user_id")
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta!r}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must lie in [0, 1), got {noise!r}")
    rng = np.random.default_rng(check_seed(seed))
    q, slot = np.nonzero(shown >= 0)
    item = shown[q, slot]
    rank = slot + 1
    rel = np.asarray(queries.relevance[q, item]).reshape(-1).astype(np.int64)
    u = users.to_numpy(dtype=np.int64)[q] - 1
    affinity = np.empty(len(q))
    for user in np.unique(u):  # one row of true affinities per distinct user
        at = u == user
        affinity[at] = true_affinity(shop.truth, [user])[0, item[at]]
    propensity = rank.astype(float) ** -eta
    attractive = noise + (1.0 - noise) * (np.exp2(rel) - 1.0) / 3.0 / (1.0 + np.exp(-affinity))
    click = rng.random(len(q)) < propensity * attractive
    return pd.DataFrame({
        "query_id": q, USER: u + 1, "rank": rank, "item_idx": item,
        ITEM: shop.items[ITEM].to_numpy()[item], "relevance": rel, "propensity": propensity,
        "attractiveness": attractive, "click": click,
    })
