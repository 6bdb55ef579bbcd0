"""Validation: find *every* problem in a data set and report them all in one error.

A :class:`Problem` names where (file or table, column, rows) and what was expected; a
:class:`DataValidationError` (a ``ValueError``) carries the list in ``.problems`` and prints one
line per problem. Loaders read files as text, let :func:`validate` look at everything, and only
then convert, so a bad file is described completely on the first try.

Checks (canonical columns, see :mod:`recnb.data.schema`):

- every table: required columns present; a single column where several are expected means the
  file was split with the wrong separator;
- ids (``user_id``, ``item_id``): present and integer; unique in ``users`` and ``items``;
- interactions: ``timestamp`` present, parseable and inside ``time_range``; ``event`` present;
  ``rating`` numeric where given and inside ``rating_range``; no row an exact copy of an earlier
  one; every ``user_id`` / ``item_id`` known to the ``users`` / ``items`` tables;
- items: ``title``, ``category``, ``text`` present; ``price`` (if any) numeric, present and >= 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recnb.data.schema import EVENT, INTERACTION_COLUMNS, ITEM, ITEM_COLUMNS, RATING, TIME, USER, RecData

TABLES = ("interactions", "items", "users")
REQUIRED: dict[str, tuple[str, ...]] = {"interactions": INTERACTION_COLUMNS, "items": ITEM_COLUMNS, "users": (USER,)}
#: timestamps before this are impossible for e-commerce or rating logs
EARLIEST = pd.Timestamp("1990-01-01")
_SHOW = 5  # rows and example values shown per problem


@dataclass(frozen=True)
class Problem:
    """One problem: where (``source``, ``column``, ``rows``), what was ``expected``, what was ``found``.

    ``rows`` are the frame's index labels: file line numbers when a loader read the table from a
    file (``unit="line"``), else row labels.
    """

    source: str
    column: str | None
    rows: tuple
    expected: str
    found: str = ""
    unit: str = "row"

    def __str__(self) -> str:
        where = self.source + (f", column {self.column!r}" if self.column else "")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:_SHOW])
            if len(self.rows) > _SHOW:
                shown += f", ... ({len(self.rows)} in all)"
            where += f", {self.unit}{'s' if len(self.rows) > 1 else ''} {shown}"
        return f"{where}: expected {self.expected}" + (f"; found {self.found}" if self.found else "")


class DataValidationError(ValueError):
    """Every problem found in a data set; ``.problems`` is the list of :class:`Problem`."""

    def __init__(self, problems: list[Problem], name: str = "the data") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {name}:\n{lines}")


def coerce_numeric(values: pd.Series) -> pd.Series:
    """``values`` as float64; anything that is not a number becomes NaN.

    Any non-numeric dtype (object, pandas ``"string"``, categorical...) goes through
    ``pd.to_numeric(errors="coerce")``, so bad values become NaN for the checks to report with
    their column and rows instead of raising here.
    """
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values.astype(object), errors="coerce").astype(float)


def time_bounds(time_range: tuple[pd.Timestamp | str | None, pd.Timestamp | str | None]
                ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``time_range`` as two timestamps: ``None`` below is ``Timestamp.min``, ``None`` above is the
    start of tomorrow (today's midnight + 1 day), so every event of today is inside."""
    lo = pd.Timestamp(time_range[0]) if time_range[0] is not None else pd.Timestamp.min
    hi = pd.Timestamp(time_range[1]) if time_range[1] is not None else \
        pd.Timestamp.now().normalize() + pd.Timedelta(days=1)
    return lo, hi


def coerce_time(values: pd.Series) -> pd.Series:
    """``values`` as datetime64[ns]; failures are NaT.

    If at least half the present values are numbers, they are read as Unix seconds (and any text
    is a failure); otherwise the text is parsed as dates.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().sum() * 2 >= values.notna().sum():  # mostly numbers: Unix seconds
        return pd.to_datetime(numbers, unit="s", errors="coerce").astype("datetime64[ns]")
    return pd.to_datetime(values, errors="coerce", format="mixed").astype("datetime64[ns]")


def problems_table(problems: list[Problem]) -> pd.DataFrame:
    """The problems as a table: source, column, number of rows, first rows, expected, found."""
    return pd.DataFrame(
        [
            {"source": p.source, "column": p.column or "", "rows": len(p.rows),
             "first rows": ", ".join(map(str, p.rows[:_SHOW])), "expected": p.expected, "found": p.found}
            for p in problems
        ],
        columns=["source", "column", "rows", "first rows", "expected", "found"],
    )


def _examples(values: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(values):
        return ", ".join(str(v) for v in values.drop_duplicates().head(_SHOW))
    return ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in pd.unique(values)[:_SHOW])


class _Checker:
    def __init__(self, source: str, unit: str) -> None:
        self.source, self.unit = source, unit
        self.problems: list[Problem] = []

    def flag(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str | None, expected: str,
             show: str | None = None) -> None:
        mask = np.asarray(mask, bool)
        if mask.any():
            found = _examples(frame.loc[mask, show]) if show else ""
            self.problems.append(Problem(self.source, column, tuple(frame.index[mask].tolist()), expected, found, self.unit))

    def ids(self, frame: pd.DataFrame, column: str, unique: bool) -> pd.Series:
        raw = frame[column]
        self.flag(frame, raw.isna(), column, "an id (missing here)")
        numbers = coerce_numeric(raw)
        bad = raw.notna() & (numbers.isna() | (numbers % 1 != 0))
        self.flag(frame, bad, column, "an integer id", show=column)
        if unique:
            self.flag(frame, raw.notna() & raw.duplicated(keep="first"), column, "unique ids (duplicate key)",
                      show=column)
        return numbers


def validate(
    data: RecData | Mapping[str, pd.DataFrame | None],
    source: str | Mapping[str, str] | None = None,
    *,
    rating_range: tuple[float, float] = (1.0, 5.0),
    time_range: tuple[pd.Timestamp | str | None, pd.Timestamp | str | None] = (EARLIEST, None),
    formats: Mapping[str, str] | None = None,
    line_numbers: bool = False,
    raise_errors: bool = True,
) -> list[Problem]:
    """Check ``data`` (a :class:`RecData` or ``{"interactions": df, "items": df, "users": df}``).

    ``source`` names where the tables came from: one name, or a file name per table. ``formats``
    describes each file's expected layout (e.g. ``"tab-separated"``) for the wrong-separator
    message. ``line_numbers=True`` says the frames' index labels are file line numbers.
    ``time_range`` bounds plausible timestamps (``None`` as upper bound: now). Returns the list of
    problems, or raises :class:`DataValidationError` with all of them if ``raise_errors``.
    """
    if isinstance(data, RecData):
        tables: dict[str, pd.DataFrame | None] = {"interactions": data.interactions, "items": data.items,
                                                  "users": data.users}
        name = data.name
    else:
        unknown = sorted(set(data) - set(TABLES))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}: expected some of {list(TABLES)}")
        tables, name = dict(data), "the data"
    if source is None and not isinstance(data, RecData):
        sources = {t: t for t in TABLES}
    elif isinstance(source, str) or source is None:
        name = source or name
        sources = {t: f"{name} {t}" for t in TABLES}
    else:
        sources = {t: source.get(t, t) for t in TABLES}
        name = ", ".join(sources[t] for t in TABLES if t in source)
    formats = formats or {}
    unit = "line" if line_numbers else "row"
    lo, hi = time_bounds(time_range)

    problems: list[Problem] = []
    ids: dict[str, pd.Series] = {}
    for table in ("users", "items", "interactions"):
        frame = tables.get(table)
        if frame is None:
            continue
        check = _Checker(sources[table], unit)
        required = REQUIRED[table]
        layout = f"{formats[table]} with columns {', '.join(required)}" if table in formats else \
            f"columns {', '.join(required)}"
        if frame.shape[1] == 1 and len(required) > 1:
            check.problems.append(Problem(sources[table], None, (), layout,
                                          f"a single column {str(frame.columns[0])!r}: wrong separator?", unit))
            problems += check.problems
            continue
        missing = [c for c in required if c not in frame.columns]
        if missing:
            check.problems.append(Problem(sources[table], ", ".join(missing), (), layout,
                                          f"columns {', '.join(map(str, frame.columns))}", unit))
        if table in ("users", "items"):
            key = USER if table == "users" else ITEM
            if key in frame.columns:
                ids[table] = check.ids(frame, key, unique=True)
            for column in ("title", "category", "text") if table == "items" else ():
                if column in frame.columns:
                    empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
                    check.flag(frame, empty, column, "a non-empty text")
            if table == "items" and "price" in frame.columns:
                price = coerce_numeric(frame["price"])
                check.flag(frame, frame["price"].isna(), "price", "a price (missing here)")
                check.flag(frame, frame["price"].notna() & price.isna(), "price", "a number", show="price")
                check.flag(frame, price < 0, "price", "a price >= 0", show="price")
        else:
            known = {}
            for column in (USER, ITEM):
                if column in frame.columns:
                    known[column] = check.ids(frame, column, unique=False)
            if TIME in frame.columns:
                t = coerce_time(frame[TIME])
                check.flag(frame, frame[TIME].isna(), TIME, "a timestamp (missing here)")
                check.flag(frame, frame[TIME].notna() & t.isna(), TIME, "a timestamp (Unix seconds or a date)",
                           show=TIME)
                check.flag(frame, t.notna() & ((t < lo) | (t > hi)), TIME,
                           f"a time between {lo.date()} and {hi.date()}", show=TIME)
            if EVENT in frame.columns:
                check.flag(frame, frame[EVENT].isna(), EVENT, "an event name (missing here)")
            if RATING in frame.columns:
                r = coerce_numeric(frame[RATING])
                check.flag(frame, frame[RATING].notna() & r.isna(), RATING, "a number", show=RATING)
                check.flag(frame, r.notna() & ~r.between(*rating_range), RATING,
                           f"a rating in {rating_range[0]:g}..{rating_range[1]:g}", show=RATING)
            check.flag(frame, frame.duplicated(keep="first"), None, "no exact duplicate of an earlier row")
            for column, table_of in ((USER, "users"), (ITEM, "items")):
                if column in known and table_of in ids:
                    unknown_id = known[column].notna() & ~known[column].isin(ids[table_of].dropna())
                    check.flag(frame, unknown_id, column, f"an id listed in {sources[table_of]}", show=column)
        problems += check.problems
    if problems and raise_errors:
        raise DataValidationError(problems, name)
    return problems


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as a Python int; a ``ValueError`` naming ``name`` unless it is a non-negative integer.

    Booleans, floats (even ``1.0``), strings and ``None`` are refused: one integer seed controls
    every random draw, and ``numpy`` / ``torch`` would otherwise fail deep inside with their own
    messages (or, for ``None``, silently draw fresh entropy).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r} ({type(seed).__name__})")
    return int(seed)
