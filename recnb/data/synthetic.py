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
``item_popularity``, ``item_quality``, ``affinity`` ``(n_users, n_items)`` float32 and, with dirt,
``dirt`` (what was added, by kind) and ``bot_users`` (ids). Bot users are appended after the
``n_users`` real users, so the per-user truth arrays cover the first ``n_users`` rows of ``users``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, ITEM, RATING, SESSION, TIME, USER, RecData

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
    if not 1 <= n_categories <= len(_CATALOGUE):
        raise ValueError(f"n_categories must lie in 1..{len(_CATALOGUE)}, got {n_categories}")
    for name, value in (("n_users", n_users), ("n_items", n_items), ("n_interactions", n_interactions)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if n_items < n_categories:
        raise ValueError(f"n_items ({n_items}) must be at least n_categories ({n_categories})")
    rates = _dirt_rates(dirt)
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)

    items, item_cat, quality, popularity, rel_price = _make_items(rng, n_items, n_categories, popularity_sigma)
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
    affinity = (
        np.clip(np.log(n_categories * taste[:, item_cat] + 1e-12), -4.0, 2.0)
        - beta[:, None] * rel_price[None, :]
        + quality[None, :]
    ).astype(np.float32)
    complement = np.array([c ^ 1 if (c ^ 1) < n_categories else -1 for c in range(n_categories)])
    interactions = _make_interactions(
        rng, n_interactions, taste, beta, activity, item_cat, popularity, rel_price, affinity, complement,
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
        "affinity": affinity,
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
    titles, descriptions, brands = [], [], []
    for i, c in enumerate(item_cat):
        name, nouns, adjectives, features, _ = _CATALOGUE[c]
        brand = _BRANDS[c // 2][rng.integers(len(_BRANDS[c // 2]))]
        noun = nouns[rng.integers(len(nouns))]
        adj = adjectives[rng.integers(len(adjectives))]
        generic = _GENERIC_ADJECTIVES[rng.integers(len(_GENERIC_ADJECTIVES))]
        f1, f2 = rng.choice(len(features), size=2, replace=False)
        sentence = _GENERIC_SENTENCES[rng.integers(len(_GENERIC_SENTENCES))]
        model = f"{chr(65 + rng.integers(26))}{rng.integers(1, 10)}"
        titles.append(f"{brand} {adj} {noun} {model}")
        descriptions.append(f"{generic.capitalize()} {adj} {noun} with {features[f1]} and {features[f2]}. {sentence}")
        brands.append(brand)
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
    return items, item_cat, quality, popularity, rel_price


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One column index per row of ``weights`` (R, K), drawn with probability ∝ the row."""
    cdf = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cdf[:, -1]
    return np.minimum((cdf < u[:, None]).sum(axis=1), weights.shape[1] - 1)


def _make_interactions(
    rng, n_interactions, taste, beta, activity, item_cat, popularity, rel_price, affinity, complement,
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
    v_item = np.empty(len(v_session), dtype=np.int64)
    for c in range(n_categories):
        rows = np.flatnonzero(v_cat == c)
        members = np.flatnonzero(item_cat == c)
        w = popularity[members][None, :] * np.exp(-beta[v_user[rows], None] * rel_price[members][None, :])
        v_item[rows] = members[_sample_rows(rng, w)]

    def funnel(users, items_):
        s = affinity[users, items_]
        click = rng.random(len(s)) < 1 / (1 + np.exp(-(s - 1.5)))
        cart = click & (rng.random(len(s)) < 1 / (1 + np.exp(-(s - 1.5))))
        buy = cart & (rng.random(len(s)) < 0.5)
        return click, cart, buy

    click, cart, buy = funnel(v_user, v_item)
    # bundles: after a purchase, buy an item of the complementary category in the same session
    bought = np.flatnonzero(buy & (complement[v_cat] >= 0) & (rng.random(len(buy)) < bundle_rate))
    b_session, b_user, b_cat = v_session[bought], v_user[bought], complement[v_cat[bought]]
    b_item = np.empty(len(bought), dtype=np.int64)
    for c in np.unique(b_cat):
        rows = np.flatnonzero(b_cat == c)
        members = np.flatnonzero(item_cat == c)
        w = popularity[members][None, :] * np.exp(-beta[b_user[rows], None] * rel_price[members][None, :])
        b_item[rows] = members[_sample_rows(rng, w)]
    ones = np.ones(len(bought), bool)

    session = np.concatenate([v_session, b_session])
    user = np.concatenate([v_user, b_user])
    item = np.concatenate([v_item, b_item])
    stage = np.stack([np.ones(len(session), bool), np.concatenate([click, ones]),
                      np.concatenate([cart, ones]), np.concatenate([buy, ones])], axis=1)
    # order within a session: the views in draw order, bundles after their purchase
    order_key = np.concatenate([np.arange(len(v_session)), bought + 0.5])
    order = np.lexsort((order_key, session))
    session, user, item, stage = session[order], user[order], item[order], stage[order]

    # keep whole sessions, in draw order, until n_interactions rows are reached
    rows_per_session = np.bincount(session, weights=stage.sum(axis=1), minlength=n_sessions)
    cum = np.cumsum(rows_per_session)
    last = int(np.searchsorted(cum, n_interactions))
    keep = session <= last
    session, user, item, stage = session[keep], user[keep], item[keep], stage[keep]

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
    s = affinity[ev_user[is_buy], ev_item[is_buy]].astype(float)
    z = (s - s.mean()) / (s.std() + 1e-12) if len(s) > 1 else np.zeros_like(s)
    rating[is_buy] = np.clip(np.round(3.0 + 1.2 * z + rng.normal(0.0, 0.6, len(s))), 1, 5)
    # session ids numbered by start time
    sess_rank = np.argsort(np.argsort(s_start[: last + 1], kind="stable"), kind="stable")
    frame = pd.DataFrame(
        {
            USER: ev_user.astype(np.int64) + 1,
            ITEM: ev_item.astype(np.int64) + 1,
            TIME: pd.to_datetime(ts, unit="ns"),
            EVENT: np.array(_EVENTS)[ev_stage],
            RATING: rating,
            SESSION: sess_rank[sess].astype(np.int64) + 1,
        }
    )
    return frame.sort_values([TIME, SESSION], kind="stable").reset_index(drop=True)


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
