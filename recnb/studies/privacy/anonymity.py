"""Quasi-identifiers, uniqueness and k-anonymity: why removing names is not anonymisation.

A *quasi-identifier* is a set of columns that are harmless one by one (age, gender, occupation,
zip code) but together single people out. Rows with equal values on the quasi-identifier columns
form an *equivalence class*; a table is **k-anonymous** on those columns (Sweeney 2002) when every
class has at least ``k`` rows, so

.. math::  k = \\min_{c} |c|, \\qquad \\text{unique share} = \\frac{|\\{r : |c(r)| = 1\\}|}{n}.

*Generalisation* coarsens values so that classes merge: ages into bands, zip codes into prefixes.
Missing values form their own class (they are not dropped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _check_columns(table: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    columns = [columns] if isinstance(columns, str) else list(columns)
    if not columns:
        raise ValueError("columns must name at least one quasi-identifier column")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise KeyError(f"quasi-identifier column(s) {missing} not in the table; it has {list(table.columns)}")
    if table.empty:
        raise ValueError("the table has no rows")
    return columns


def class_sizes(table: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Size of each row's equivalence class on ``columns``: a Series aligned with ``table``'s rows."""
    columns = _check_columns(table, columns)
    return table.groupby(columns, dropna=False, sort=False)[columns[0]].transform("size").rename("class_size")


def k_anonymity(table: pd.DataFrame, columns: Sequence[str]) -> int:
    """The largest ``k`` for which ``table`` is k-anonymous on ``columns``: its smallest class size."""
    return int(class_sizes(table, columns).min())


def unique_share(table: pd.DataFrame, columns: Sequence[str]) -> float:
    """Share of rows that are alone in their class on ``columns`` (re-identifiable by those values)."""
    return float((class_sizes(table, columns) == 1).mean())


def age_band(age: pd.Series, width: int = 10) -> pd.Series:
    """Ages as bands of ``width`` years, e.g. ``"20-29"`` for width 10 (missing stays missing)."""
    if width < 1:
        raise ValueError(f"width must be >= 1 year, got {width}")
    a = pd.to_numeric(age, errors="coerce")
    low = (a // width) * width
    out = low.astype("Int64").astype(str) + "-" + (low + width - 1).astype("Int64").astype(str)
    return out.where(a.notna(), None).rename(age.name)


def zip_prefix(zip_code: pd.Series, digits: int = 3) -> pd.Series:
    """Zip codes cut to their first ``digits`` characters, the rest masked: ``"85711" -> "857**"``."""
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    z = zip_code.astype("string").str.strip()
    return (z.str[:digits] + z.str.len().sub(digits).clip(lower=0).map(lambda n: "*" * int(n) if pd.notna(n) else "")
            ).astype(object).where(z.notna(), None).rename(zip_code.name)


def generalisation_table(table: pd.DataFrame, columns: Sequence[str], levels: dict[str, list]) -> pd.DataFrame:
    """k-anonymity and unique share for each generalisation of the grid ``levels``.

    ``levels``: ``{"age": [1, 5, 10, ...], "zip_code": [5, 3, 1, 0], ...}``: for ``"age"`` band
    widths (1 = exact), for ``"zip_code"`` prefix lengths; other quasi-identifier columns stay
    exact. Returns one row per combination with the levels, ``k``, ``unique_share`` and
    ``classes`` (the number of equivalence classes).
    """
    columns = _check_columns(table, columns)
    unknown = [c for c in levels if c not in ("age", "zip_code")]
    if unknown:
        raise ValueError(f"levels can generalise 'age' and 'zip_code', got {unknown}")
    rows = []
    grid = pd.MultiIndex.from_product(list(levels.values()), names=list(levels)).to_frame(index=False)
    for _, level in grid.iterrows():
        t = table[columns].copy()
        if "age" in level:
            t["age"] = age_band(t["age"], int(level["age"]))
        if "zip_code" in level:
            t["zip_code"] = zip_prefix(t["zip_code"], int(level["zip_code"]))
        sizes = class_sizes(t, columns)
        rows.append({**level.to_dict(), "k": int(sizes.min()), "unique_share": float((sizes == 1).mean()),
                     "classes": int(np.sum(1.0 / sizes.to_numpy()).round())})
    return pd.DataFrame(rows)
