"""The synthetic shop: a deterministic e-commerce data set whose true preferences are known.

Generative model (all draws from ``numpy.random.default_rng(seed)``):

- **Categories** come in complementary pairs (``phones`` + ``phone cases``, ``laptops`` +
  ``laptop bags``, ...): category ``2k`` and ``2k + 1`` are complements.
- **Users** have a taste ``theta_u ~ Dirichlet(taste_concentration * 1_C)`` over the ``C``
  categories, a price sensitivity ``beta_u ~ Gamma(2, 0.5)`` and an activity level
  ``a_u ~ LogNormal(0, 1)`` (how many sessions they start).
- **Items** have a category, a brand, a price ``p_i = base_c * LogNormal(0, 0.35)``, a quality
  ``q_i ~ N(0, 0.5)`` and a long-tailed popularity ``pi_i = exp(q_i + popularity_sigma * z_i)``, ``z_i ~ N(0, 1)``.
  Titles and descriptions are written from per-category vocabularies plus generic shop words, so
  a text encoder can recover the category from ``text`` alone.
- **Affinity** of user ``u`` for item ``i`` in category ``c``:
  ``s_ui = clip(log(C theta_uc), -4, 2) - beta_u * log(p_i / median_c) + q_i``.
- **Sessions**: a user (``P(u) ∝ a_u``; every user has at least one session) picks a category
  ``c ~ theta_u`` and views ``1 + Poisson(2)`` items of it drawn with
  ``P(i | u, c) ∝ pi_i * exp(-beta_u * log(p_i / median_c))`` (popularity times price fit).
- **Funnel**: each view becomes a click with probability ``sigmoid(s_ui - 1.5)``, a click a cart
  with ``sigmoid(s_ui - 1.5)``, a cart a purchase with ``0.5``. A purchase carries a 1..5 star
  ``rating = clip(round(3 + 1.2 z + N(0, 0.6)), 1, 5)`` with ``z`` the standardised affinity.
  With probability ``bundle_rate`` a purchase is followed, in the same session, by the purchase
  of an item of the complementary category (a bundle).

``truth`` holds ``user_taste`` ``(n_users, C)`` (users row order), ``price_sensitivity``
``(n_users,)``, ``item_category`` ``(n_items,)`` category codes (items row order),
``categories`` (names), ``complement`` (``(C,)`` code of each category's complement, -1 if none),
``item_popularity``, ``item_quality``, ``item_log_price_ratio`` ``(n_items,)`` (``log(p_i / median_c)``),
``item_attributes`` ``(n_items, 3)`` (the codes of the item's adjective and of its two features in
:data:`CATEGORY_WORDS` of its category: what its text says, read off the same draws, no new draw)
and, with dirt, ``dirt`` (what was added, by kind) and ``bot_users`` (ids). Bot users are appended
after the ``n_users`` real users, so the per-user truth arrays cover the first ``n_users`` rows of
``users``. The affinity matrix is never stored (it is ``n_users x n_items``):
:func:`true_affinity` computes the rows of a batch of users on demand.

**Sampling at scale.** Nothing of size ``n_users x n_items`` is built. The funnel needs ``s_ui``
only for the viewed pairs, computed pairwise. Items are drawn from ``P(i | u, c)`` by exact
rejection sampling (:func:`_sample_items`): the price factor depends on the user only through
``beta_u``, so views are grouped by category and by a narrow bin ``[b w, (b + 1) w)`` of ``beta``;
a proposal is drawn by inverse CDF from the group's table ``∝ pi_i exp(-b w r_i)`` (``r_i`` the
log price ratio) and accepted with probability ``exp(-(beta_u - b w)(r_i - min_c r))`` <= 1, which
turns the proposal into the exact target; ``w`` is chosen so that at least ``exp(-1/4)`` ≈ 78% of
proposals are accepted. Memory is ``O(n_interactions + n_bins * n_items)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, RATING, SESSION, TIME, USER, RecData
from recnb.data.validation import check_seed

# name, product nouns, category adjectives, feature phrases, base price
_CATALOGUE: list[tuple[str, list[str], list[str], list[str], float]] = [
    ("phones", ["smartphone", "5G phone", "mobile phone"], ["unlocked", "dual-SIM", "slim"],
     ["an OLED display", "a triple camera", "fast charging", "a long-lasting battery", "128 GB storage"], 420.0),
    ("phone cases", ["phone case", "bumper case", "folio cover"], ["shockproof", "clear", "silicone"],
     ["raised edges to protect the screen", "a magnetic clasp", "a soft-touch finish", "a card slot", "drop protection"], 18.0),
    ("laptops", ["laptop", "notebook computer", "ultrabook"], ["thin", "high-performance", "touchscreen"],
     ["a 14-inch display", "16 GB of RAM", "a backlit keyboard", "an SSD drive", "all-day battery life"], 900.0),
    ("laptop bags", ["laptop bag", "laptop backpack", "laptop sleeve"], ["padded", "water-resistant", "leather"],
     ["a padded laptop compartment", "adjustable shoulder straps", "zip pockets", "a trolley strap", "a water-resistant lining"], 45.0),
    ("running shoes", ["running shoes", "trail running shoes", "road running shoes"], ["breathable", "cushioned", "lightweight"],
     ["breathable mesh", "a grippy rubber outsole", "responsive foam cushioning", "reflective details", "a heel counter for stability"], 95.0),
    ("sports socks", ["running socks", "sports socks", "ankle socks"], ["moisture-wicking", "cushioned", "seamless"],
     ["arch support", "a moisture-wicking knit", "a seamless toe", "blister protection", "a cushioned heel"], 12.0),
    ("coffee makers", ["coffee maker", "espresso machine", "drip coffee machine"], ["programmable", "automatic", "stainless"],
     ["a 15-bar pump", "a milk frother", "a glass carafe", "a programmable timer", "a built-in grinder"], 130.0),
    ("coffee beans", ["coffee beans", "ground coffee", "espresso roast"], ["single-origin", "dark-roast", "organic"],
     ["notes of chocolate and caramel", "a medium roast profile", "fair-trade arabica beans", "a resealable bag", "freshly roasted beans"], 14.0),
    ("cameras", ["mirrorless camera", "digital camera", "action camera"], ["4K", "compact", "weather-sealed"],
     ["a 24-megapixel sensor", "image stabilisation", "4K video recording", "a flip-out screen", "fast autofocus"], 650.0),
    ("memory cards", ["memory card", "microSD card", "SD card"], ["high-speed", "128 GB", "rugged"],
     ["read speeds up to 170 MB/s", "an SD adapter", "4K video support", "a lifetime warranty", "waterproof construction"], 22.0),
    ("tents", ["camping tent", "backpacking tent", "dome tent"], ["two-person", "waterproof", "ultralight"],
     ["aluminium poles", "a rainfly", "a vestibule for gear", "quick pitch setup", "a waterproof floor"], 160.0),
    ("sleeping bags", ["sleeping bag", "mummy sleeping bag", "down sleeping bag"], ["three-season", "insulated", "packable"],
     ["a comfort rating of 5 degrees", "a compression sack", "a draft collar", "synthetic insulation", "a two-way zip"], 70.0),
    ("yoga mats", ["yoga mat", "exercise mat", "pilates mat"], ["non-slip", "extra-thick", "eco-friendly"],
     ["a non-slip textured surface", "a carrying strap", "alignment lines", "6 mm cushioning", "natural rubber"], 30.0),
    ("water bottles", ["water bottle", "insulated bottle", "sports bottle"], ["insulated", "leak-proof", "BPA-free"],
     ["double-wall insulation", "a leak-proof lid", "a wide mouth", "cold drinks for 24 hours", "a carry loop"], 20.0),
    ("headphones", ["wireless headphones", "earbuds", "over-ear headphones"], ["noise-cancelling", "bluetooth", "foldable"],
     ["active noise cancellation", "30-hour battery life", "a built-in microphone", "deep bass", "soft ear cushions"], 120.0),
    ("chargers", ["USB-C charger", "wall charger", "charging cable"], ["fast", "braided", "multi-port"],
     ["65 W fast charging", "a braided nylon cable", "two USB-C ports", "overheat protection", "a foldable plug"], 25.0),
]
_BRANDS = [
    ["Voltix", "Nexa", "Orbit", "Kairo"],
    ["Lumetra", "Corvia", "Zentro", "Axiom"],
    ["Stride", "Pacer", "Trailon", "Fleetfoot"],
    ["Brewster", "Crema", "Roastly", "Moka"],
    ["Optik", "Lensa", "Shutterly", "Pixon"],
    ["Northpeak", "Campa", "Ridgeway", "Wildfern"],
    ["Zenfit", "Flowa", "Aqualo", "Hydra"],
    ["Sonique", "Tempo", "Wavely", "Ampera"],
]
_GENERIC_ADJECTIVES = ["premium", "classic", "compact", "durable", "new", "everyday", "essential", "stylish"]
_GENERIC_SENTENCES = [
    "Free shipping and 30-day returns.",
    "A great gift idea.",
    "Backed by a two-year warranty.",
    "Customers love its value for money.",
    "Available in several colours.",
    "Designed for everyday use.",
]
_REGIONS = ["north", "south", "east", "west", "central"]
_EVENTS = ("view", "click", "cart", "purchase")

#: the categories make_shop can use, in code order
CATEGORIES: tuple[str, ...] = tuple(c[0] for c in _CATALOGUE)
#: the words items of each category are written from, in code order: ``nouns`` (product nouns),
#: ``adjectives`` (one per item, ``truth["item_attributes"][:, 0]``) and ``features`` (two per
#: item, ``truth["item_attributes"][:, 1:]``); brands are ``brands`` (shared by a complementary pair)
CATEGORY_WORDS: tuple[dict[str, tuple[str, ...]], ...] = tuple(
    {"nouns": tuple(nouns), "adjectives": tuple(adjectives), "features": tuple(features), "brands": tuple(_BRANDS[c // 2])}
    for c, (_, nouns, adjectives, features, _) in enumerate(_CATALOGUE)
)
#: dirt kinds make_shop understands, and what each adds
DIRT_KINDS: dict[str, str] = {
    "duplicates": "exact copies of interaction rows",
    "missing": "missing values (user id, timestamp, event; item title, category, price; user region)",
    "unknown_ids": "interactions whose user or item id is in neither the users nor the items table",
    "bad_timestamps": "timestamps in 1970 or in 2099",
    "bad_prices": "negative item prices",
    "bad_ratings": "ratings outside 1..5",
    "bots": "bot users: hundreds of random views within minutes",
}


def make_shop(
    n_users: int = 2000,
    n_items: int = 1000,
    n_categories: int = 10,
    n_interactions: int = 100_000,
    seed: int = 0,
    dirt: float | dict[str, float] | None = None,
    start: str = "2024-01-01",
    days: int = 90,
    taste_concentration: float = 0.3,
    popularity_sigma: float = 1.2,
    bundle_rate: float = 0.3,
) -> RecData:
    """A deterministic synthetic shop (see the module docstring for the model).

    ``n_interactions`` is a target: whole sessions are kept until the number of event rows first
    reaches it (so the result has about that many rows, before dirt). ``dirt`` adds dirt: a rate
    applied to every kind in :data:`DIRT_KINDS`, or a dict ``{kind: rate}``; rates are fractions
    of interaction rows (of items for ``bad_prices`` and ``missing`` item fields, of users for
    ``bots``). User and item ids are ``1..n``. Interactions are sorted by time.
    """
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_interactions", n_interactions),
                        ("n_categories", n_categories), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if not 1 <= n_categories <= len(_CATALOGUE):
        raise ValueError(f"n_categories must lie in 1..{len(_CATALOGUE)}, got {n_categories}")
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_interactions", n_interactions), ("days", days)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if n_items < n_categories:
        raise ValueError(f"n_items ({n_items}) must be at least n_categories ({n_categories})")
    rates = _dirt_rates(dirt)
    rng = np.random.default_rng(check_seed(seed))
    try:
        t0 = pd.Timestamp(start)
    except (TypeError, ValueError):
        t0 = pd.NaT
    if t0 is pd.NaT:
        raise ValueError(f"start must be a date such as '2024-01-01', got {start!r}")

    items, item_cat, quality, popularity, rel_price, attributes = _make_items(rng, n_items, n_categories, popularity_sigma)
    taste = rng.dirichlet(np.full(n_categories, taste_concentration), size=n_users)
    beta = rng.gamma(2.0, 0.5, size=n_users)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    users = pd.DataFrame(
        {
            USER: np.arange(1, n_users + 1, dtype=np.int64),
            "region": rng.choice(_REGIONS, size=n_users),
            "signup": t0 - pd.to_timedelta(rng.integers(0, 720, size=n_users), unit="D"),
        }
    )
    complement = np.array([c ^ 1 if (c ^ 1) < n_categories else -1 for c in range(n_categories)])
    interactions = _make_interactions(
        rng, n_interactions, taste, beta, activity, item_cat, quality, popularity, rel_price, complement,
        bundle_rate, t0, days,
    )
    truth: dict[str, Any] = {
        "user_taste": taste,
        "price_sensitivity": beta,
        "user_activity": activity,
        "item_category": item_cat,
        "categories": list(CATEGORIES[:n_categories]),
        "complement": complement,
        "item_popularity": popularity,
        "item_quality": quality,
        "item_log_price_ratio": rel_price,
        "item_attributes": attributes,
    }
    data = RecData("synthetic", interactions, items, users, truth)
    if any(rates.values()):
        data = _add_dirt(data, rates, rng, t0, days)
    return data


def _dirt_rates(dirt: float | dict[str, float] | None) -> dict[str, float]:
    if dirt is None:
        return dict.fromkeys(DIRT_KINDS, 0.0)
    if isinstance(dirt, (int, float)):
        rates = dict.fromkeys(DIRT_KINDS, float(dirt))
    else:
        unknown = sorted(set(dirt) - set(DIRT_KINDS))
        if unknown:
            raise ValueError(f"unknown dirt kind(s) {unknown}: expected some of {sorted(DIRT_KINDS)}")
        rates = {k: float(dirt.get(k, 0.0)) for k in DIRT_KINDS}
    bad = {k: v for k, v in rates.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"dirt rates must lie in [0, 1], got {bad}")
    return rates


def _make_items(rng: np.random.Generator, n_items: int, n_categories: int, popularity_sigma: float):
    # every category gets at least one item; the rest are spread at random
    item_cat = rng.permutation(np.concatenate([np.arange(n_categories), rng.integers(0, n_categories, n_items - n_categories)]))
    base = np.array([c[4] for c in _CATALOGUE[:n_categories]])
    price = np.round(base[item_cat] * rng.lognormal(0.0, 0.35, n_items)) - 0.01
    price = np.maximum(price, 0.99)
    quality = rng.normal(0.0, 0.5, n_items)
    # words, drawn for all items at once: brand, noun, adjective, generic adjective, two distinct
    # features, a closing sentence and a model code
    draw = rng.integers(0, 2**31, size=(n_items, 8))
    titles, descriptions, brands, attributes = [], [], [], []
    for i, c in enumerate(item_cat.tolist()):
        _, nouns, adjectives, features, _ = _CATALOGUE[c]
        d = draw[i].tolist()
        brand_list = _BRANDS[c // 2]
        brand, noun, adj = brand_list[d[0] % len(brand_list)], nouns[d[1] % len(nouns)], adjectives[d[2] % len(adjectives)]
        generic = _GENERIC_ADJECTIVES[d[3] % len(_GENERIC_ADJECTIVES)]
        f1 = d[4] % len(features)
        f2 = (f1 + 1 + d[5] % (len(features) - 1)) % len(features)  # uniform over the other features
        sentence = _GENERIC_SENTENCES[d[6] % len(_GENERIC_SENTENCES)]
        model = f"{chr(65 + d[7] % 26)}{1 + d[7] // 26 % 9}"
        titles.append(f"{brand} {adj} {noun} {model}")
        descriptions.append(f"{generic.capitalize()} {adj} {noun} with {features[f1]} and {features[f2]}. {sentence}")
        brands.append(brand)
        attributes.append((d[2] % len(adjectives), f1, f2))  # read off the draws above: no new draw
    names = np.array(CATEGORIES)[item_cat]
    median = pd.Series(price).groupby(item_cat).transform("median").to_numpy()
    rel_price = np.log(price / median)
    popularity = np.exp(quality + popularity_sigma * rng.normal(0.0, 1.0, n_items))
    items = pd.DataFrame(
        {
            ITEM: np.arange(1, n_items + 1, dtype=np.int64),
            "title": titles,
            "category": names,
            "text": [f"{t}. {d}" for t, d in zip(titles, descriptions)],
            "brand": brands,
            "price": price,
            "description": descriptions,
        }
    )
    return items, item_cat, quality, popularity, rel_price, np.array(attributes, dtype=np.int64).reshape(-1, 3)


def true_affinity(truth: dict[str, Any], users: Any) -> np.ndarray:
    """The true affinity ``s_ui`` of a batch of users for every item: ``(len(users), n_items)`` float32.

    ``s_ui = clip(log(C theta_uc), -4, 2) - beta_u log(p_i / median_c) + q_i`` (module docstring),
    computed from ``truth`` (``user_taste``, ``price_sensitivity``, ``item_category``,
    ``item_log_price_ratio``, ``item_quality``). ``users`` are *row positions* in ``users`` order
    (``user_id - 1`` for the shop's real users), integers in ``0..n_users-1``; memory is
    ``len(users) x n_items``, so score large shops a batch of users at a time.
    """
    missing = [k for k in ("user_taste", "price_sensitivity", "item_category", "item_log_price_ratio", "item_quality")
               if k not in truth]
    if missing:
        raise ValueError(f"truth lacks {missing}: pass the truth of a shop made by make_shop")
    u = np.asarray(users)
    if u.dtype == bool or not np.issubdtype(u.dtype, np.integer):
        raise ValueError(f"users must be integer user positions (0..n_users-1), got dtype {u.dtype}")
    u = u.reshape(-1).astype(np.int64)
    n_users = len(truth["user_taste"])
    if u.size and (u.min() < 0 or u.max() >= n_users):
        raise ValueError(f"users must lie in 0..{n_users - 1} (the shop's real users), got {u.min()}..{u.max()}")
    taste, beta = truth["user_taste"][u], truth["price_sensitivity"][u]
    cat, C = truth["item_category"], truth["user_taste"].shape[1]
    return _affinity(C, taste[:, cat], beta[:, None], truth["item_log_price_ratio"][None, :], truth["item_quality"][None, :])


def _affinity(n_categories: int, taste: np.ndarray, beta: np.ndarray, rel_price: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """``s = clip(log(C θ), -4, 2) - β r + q`` elementwise (numpy broadcasting), as float32: the one
    place the affinity formula is written. ``taste`` is ``θ_{u, c_i}``, ``rel_price`` is ``log(p_i / median_c)``."""
    return (np.clip(np.log(n_categories * taste + 1e-12), -4.0, 2.0) - beta * rel_price + quality).astype(np.float32)


def _pair_affinity(taste, beta, item_cat, quality, rel_price, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``s_ui`` of paired ``users`` and ``items`` ``(n,)`` (the entries :func:`true_affinity` would give)."""
    return _affinity(taste.shape[1], taste[users, item_cat[items]], beta[users], rel_price[items], quality[items])


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row of ``weights`` (R, K), drawn with probability ∝ the row."""
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), weights.shape[1] - 1)


#: the rejection sampler's lowest acceptance probability is exp(-_ACCEPT_LOSS)
_ACCEPT_LOSS = 0.25


def _sample_items(
    rng: np.random.Generator, users: np.ndarray, cats: np.ndarray, beta: np.ndarray, item_cat: np.ndarray,
    popularity: np.ndarray, rel_price: np.ndarray,
) -> np.ndarray:
    """One item per request ``(users[k], cats[k])``, drawn from ``P(i | u, c) ∝ pi_i exp(-beta_u r_i)``, i in c.

    Exact rejection sampling, vectorised (see the module docstring): requests are grouped by
    category and by the bin ``b = floor(beta_u / w)``; a proposal comes from the group's inverse
    CDF ``∝ pi_i exp(-b w r_i)`` (one ``searchsorted`` over the concatenated tables of all groups)
    and is accepted with probability ``exp(-(beta_u - b w)(r_i - min_c r)) <= 1``. Rejected
    requests are drawn again until none is left.
    """
    n = len(users)
    out = np.empty(n, dtype=np.int64)
    if n == 0:
        return out
    n_categories = int(item_cat.max()) + 1
    by_cat = np.argsort(item_cat, kind="stable")  # item indices grouped by category
    size = np.bincount(item_cat, minlength=n_categories)
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    r_sorted = rel_price[by_cat]
    r_min = np.minimum.reduceat(r_sorted, first)  # every category has an item
    spread = float(np.max(np.maximum.reduceat(r_sorted, first) - r_min))
    width = _ACCEPT_LOSS / spread if spread > 0 else 1.0  # no spread: every proposal is accepted
    b = np.floor(beta[users] / width).astype(np.int64)
    key = b * n_categories + cats
    groups = np.flatnonzero(np.bincount(key))  # the (bin, category) groups that occur, ascending
    group_of = np.searchsorted(groups, key).astype(np.uint16 if len(groups) < 2**16 else np.int64)
    g_cat = groups % n_categories
    g_beta = (groups // n_categories) * width  # the bin's lower edge
    g_size = size[g_cat]
    g_end = np.cumsum(g_size)
    g_start = g_end - g_size
    member = by_cat[np.repeat(first[g_cat] - g_start, g_size) + np.arange(g_end[-1])]
    w = popularity[member] * np.exp(-np.repeat(g_beta, g_size) * rel_price[member])
    cdf = np.cumsum(w / np.repeat(np.add.reduceat(w, g_start), g_size))  # group g spans about (g, g + 1]
    lo = np.where(g_start > 0, cdf[np.maximum(g_start - 1, 0)], 0.0)
    hi = cdf[g_end - 1]
    # requests in group order (a radix sort of small keys): each search stays in one group's table,
    # which is cache-friendly and several times faster than searching the whole table at random
    pending = np.argsort(group_of, kind="stable")
    while pending.size:
        g = group_of[pending]
        pos = np.searchsorted(cdf, lo[g] + rng.random(len(g)) * (hi[g] - lo[g]), side="right")
        item = member[np.clip(pos, g_start[g], g_end[g] - 1)]
        accept_p = np.exp(-(beta[users[pending]] - g_beta[g]) * (rel_price[item] - r_min[cats[pending]]))
        ok = rng.random(len(g)) < accept_p
        out[pending[ok]] = item[ok]
        pending = pending[~ok]
    return out


def _make_interactions(
    rng, n_interactions, taste, beta, activity, item_cat, quality, popularity, rel_price, complement,
    bundle_rate, t0, days,
) -> pd.DataFrame:
    n_users, n_categories = taste.shape
    # about 7 rows per session: draw more sessions than needed and keep them in draw order until
    # n_interactions rows; the first n_users sessions are one per user, so every user is active
    n_sessions = n_users + int(n_interactions / 4.0) + 50
    s_user = np.concatenate(
        [rng.permutation(n_users), rng.choice(n_users, n_sessions - n_users, p=activity / activity.sum())]
    )
    s_cat = _sample_rows(rng, taste[s_user])
    s_views = 1 + rng.poisson(2.0, n_sessions)
    # session start: a day (slow growth plus a weekend bump), then an hour (evening peak)
    day_w = (1.0 + 0.5 * np.arange(days) / days) * np.where((pd.Timestamp(t0).dayofweek + np.arange(days)) % 7 >= 5, 1.3, 1.0)
    hour_w = 0.3 + np.exp(-0.5 * ((np.arange(24) - 20) / 3.0) ** 2)
    s_start = (
        t0.value
        + rng.choice(days, n_sessions, p=day_w / day_w.sum()) * 86_400 * 10**9
        + rng.choice(24, n_sessions, p=hour_w / hour_w.sum()) * 3_600 * 10**9
        + rng.integers(0, 3_600, n_sessions) * 10**9
    )
    s_start = np.minimum(s_start, t0.value + (days * 86_400 - 3 * 3_600) * 10**9)  # sessions end inside the window

    v_session = np.repeat(np.arange(n_sessions), s_views)
    v_user, v_cat = s_user[v_session], s_cat[v_session]
    v_item = _sample_items(rng, v_user, v_cat, beta, item_cat, popularity, rel_price)
    v_affinity = _pair_affinity(taste, beta, item_cat, quality, rel_price, v_user, v_item)

    def funnel(s):
        click = rng.random(len(s)) < 1 / (1 + np.exp(-(s - 1.5)))
        cart = click & (rng.random(len(s)) < 1 / (1 + np.exp(-(s - 1.5))))
        buy = cart & (rng.random(len(s)) < 0.5)
        return click, cart, buy

    click, cart, buy = funnel(v_affinity)
    # bundles: after a purchase, buy an item of the complementary category in the same session
    bought = np.flatnonzero(buy & (complement[v_cat] >= 0) & (rng.random(len(buy)) < bundle_rate))
    b_session, b_user, b_cat = v_session[bought], v_user[bought], complement[v_cat[bought]]
    b_item = _sample_items(rng, b_user, b_cat, beta, item_cat, popularity, rel_price)
    b_affinity = _pair_affinity(taste, beta, item_cat, quality, rel_price, b_user, b_item)
    ones = np.ones(len(bought), bool)

    session = np.concatenate([v_session, b_session])
    user = np.concatenate([v_user, b_user])
    item = np.concatenate([v_item, b_item])
    affinity = np.concatenate([v_affinity, b_affinity])
    stage = np.stack([np.ones(len(session), bool), np.concatenate([click, ones]),
                      np.concatenate([cart, ones]), np.concatenate([buy, ones])], axis=1)
    # order within a session: the views in draw order, bundles after their purchase
    order_key = np.concatenate([np.arange(len(v_session)), bought + 0.5])
    order = np.lexsort((order_key, session))
    session, user, item, stage, affinity = session[order], user[order], item[order], stage[order], affinity[order]

    # keep whole sessions, in draw order, until n_interactions rows are reached
    rows_per_session = np.bincount(session, weights=stage.sum(axis=1), minlength=n_sessions)
    cum = np.cumsum(rows_per_session)
    last = int(np.searchsorted(cum, n_interactions))
    keep = session <= last
    session, user, item, stage, affinity = session[keep], user[keep], item[keep], stage[keep], affinity[keep]

    ev_row, ev_stage = np.nonzero(stage)
    n = len(ev_row)
    # each step in a session takes 5..120 s
    gaps = rng.integers(5, 120, n) * 10**9
    sess = session[ev_row]
    first = np.r_[True, sess[1:] != sess[:-1]]
    cum_gap = np.cumsum(gaps)
    start_of = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    offset = cum_gap - cum_gap[start_of]
    ts = s_start[sess] + offset

    ev_user, ev_item = user[ev_row], item[ev_row]
    rating = np.full(n, np.nan)
    is_buy = ev_stage == 3
    s = affinity[ev_row[is_buy]].astype(float)
    z = (s - s.mean()) / (s.std() + 1e-12) if len(s) > 1 else np.zeros_like(s)
    rating[is_buy] = np.clip(np.round(3.0 + 1.2 * z + rng.normal(0.0, 0.6, len(s))), 1, 5)
    # session ids numbered by start time
    sess_rank = np.argsort(np.argsort(s_start[: last + 1], kind="stable"), kind="stable")
    session_id = sess_rank[sess].astype(np.int64) + 1
    order = np.lexsort((session_id, ts))  # by time, then session; stable
    return pd.DataFrame(
        {
            USER: ev_user[order].astype(np.int64) + 1,
            ITEM: ev_item[order].astype(np.int64) + 1,
            TIME: pd.to_datetime(ts[order], unit="ns"),
            EVENT: np.array(_EVENTS, dtype=object)[ev_stage[order]],
            RATING: rating[order],
            SESSION: session_id[order],
        }
    )


def _add_dirt(data: RecData, rates: dict[str, float], rng: np.random.Generator, t0: pd.Timestamp, days: int) -> RecData:
    inter, items, users = data.interactions.copy(), data.items.copy(), data.users.copy()
    n = len(inter)
    added: dict[str, int] = {}

    # every interaction row gets at most one kind of dirt: rows are drawn from a shrinking pool
    pool = np.ones(n, bool)

    def pick_rows(rate: float, among: np.ndarray | None = None) -> np.ndarray:
        free = np.flatnonzero(pool if among is None else pool & among)
        rows = rng.choice(free, size=min(int(round(rate * (n if among is None else among.sum()))), len(free)),
                          replace=False)
        pool[rows] = False
        return np.sort(rows)

    def pick(count_of: int, rate: float) -> np.ndarray:
        return rng.choice(count_of, size=min(int(round(rate * count_of)), count_of), replace=False)

    if rates["unknown_ids"]:
        rows = pick_rows(rates["unknown_ids"])
        half = len(rows) // 2
        inter.loc[rows[:half], USER] = 900_000 + rng.integers(0, 1000, half)
        inter.loc[rows[half:], ITEM] = 900_000 + rng.integers(0, 1000, len(rows) - half)
        added["unknown_ids"] = len(rows)
    if rates["bad_timestamps"]:
        rows = pick_rows(rates["bad_timestamps"])
        future = pd.Timestamp(year=2099, month=1, day=1)
        bad = np.where(rng.random(len(rows)) < 0.5, pd.Timestamp("1970-01-01").value, future.value)
        inter.loc[rows, TIME] = pd.to_datetime(bad + rng.integers(0, 86_400, len(rows)) * 10**9, unit="ns")
        added["bad_timestamps"] = len(rows)
    if rates["bad_ratings"]:
        rows = pick_rows(rates["bad_ratings"], among=inter[RATING].notna().to_numpy())
        inter.loc[rows, RATING] = rng.choice([0.0, 6.0, 10.0, -1.0], len(rows))
        added["bad_ratings"] = len(rows)
    if rates["missing"]:
        inter[USER] = inter[USER].astype("Int64")
        for col in (USER, TIME, EVENT):
            rows = pick_rows(rates["missing"] / 3)
            inter.loc[rows, col] = None
            added[f"missing_{col}"] = len(rows)
        for col in ("title", "category", "price"):
            rows = pick(len(items), rates["missing"])
            items.loc[rows, col] = None if col != "price" else np.nan
            added[f"missing_item_{col}"] = len(rows)
        rows = pick(len(users), rates["missing"])
        users.loc[rows, "region"] = None
        added["missing_user_region"] = len(rows)
    if rates["bad_prices"]:
        rows = pick(len(items), rates["bad_prices"])
        items.loc[rows, "price"] = -items.loc[rows, "price"].abs().to_numpy()
        added["bad_prices"] = int(np.sum(items.loc[rows, "price"] < 0))
    if rates["duplicates"]:
        rows = pick_rows(rates["duplicates"])
        inter = pd.concat([inter, inter.iloc[rows]], ignore_index=True)
        added["duplicates"] = len(rows)
    bots: list[int] = []
    if rates["bots"]:
        n_bots = max(1, int(round(rates["bots"] * len(users))))
        first_id = int(data.users[USER].max()) + 1
        bots = list(range(first_id, first_id + n_bots))
        first_session = int(data.interactions[SESSION].max()) + 1
        rows = []
        for b in bots:
            k = int(rng.integers(300, 600))
            start = t0.value + int(rng.integers(0, days * 86_400)) * 10**9
            rows.append(pd.DataFrame({
                USER: b, ITEM: rng.integers(1, len(items) + 1, k),
                TIME: pd.to_datetime(start + np.cumsum(rng.integers(1, 4, k)) * 10**9, unit="ns"),
                EVENT: "view", RATING: np.nan, SESSION: first_session + len(rows),
            }))
        users = pd.concat([users, pd.DataFrame({USER: bots, "region": rng.choice(_REGIONS, n_bots),
                                                "signup": t0})], ignore_index=True)
        inter = pd.concat([inter] + rows, ignore_index=True)
        added["bots"] = n_bots
        added["bot_rows"] = int(sum(len(r) for r in rows))
    truth = dict(data.truth, dirt=added, bot_users=np.array(bots, dtype=np.int64))
    return RecData(data.name, inter, items, users, truth)
