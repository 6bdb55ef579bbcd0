import numpy as np
import pandas as pd
import pytest

from recnb.studies.privacy.anonymity import age_band, class_sizes, generalisation_table, k_anonymity, unique_share, zip_prefix

# a tiny table worked by hand: on (age, zip) the classes are
# {(23, 85711) x2}, {(24, 85711)}, {(35, 94043) x3}, {(61, None)}
TABLE = pd.DataFrame({
    "age": [23, 23, 24, 35, 35, 35, 61],
    "zip_code": ["85711", "85711", "85711", "94043", "94043", "94043", None],
    "gender": ["M", "F", "M", "F", "F", "F", "M"],
})


def test_class_sizes_and_k_by_hand():
    assert class_sizes(TABLE, ["age", "zip_code"]).tolist() == [2, 2, 1, 3, 3, 3, 1]
    assert k_anonymity(TABLE, ["age", "zip_code"]) == 1
    assert unique_share(TABLE, ["age", "zip_code"]) == pytest.approx(2 / 7)
    # adding gender splits the first class: 23/M and 23/F are alone now
    assert unique_share(TABLE, ["age", "zip_code", "gender"]) == pytest.approx(4 / 7)
    # generalising age to decades merges 23 and 24: classes 3, 3, 1 -> still k = 1 (the 61-year-old)
    t = TABLE.assign(age=age_band(TABLE["age"], 10))
    assert class_sizes(t, ["age", "zip_code"]).tolist() == [3, 3, 3, 3, 3, 3, 1]
    assert k_anonymity(t.iloc[:6], ["age", "zip_code"]) == 3


def test_unique_share_matches_a_pandas_groupby():
    rng = np.random.default_rng(0)
    t = pd.DataFrame({"a": rng.integers(0, 6, 300), "b": rng.choice(list("xyz"), 300), "c": rng.integers(0, 4, 300)})
    counts = t.groupby(["a", "b", "c"]).size()
    assert unique_share(t, ["a", "b", "c"]) == pytest.approx((counts == 1).sum() / len(t))
    assert k_anonymity(t, ["a", "b", "c"]) == counts.min()


def test_generalisers():
    assert age_band(pd.Series([0, 9, 10, 57, None]), 10).tolist() == ["0-9", "0-9", "10-19", "50-59", None]
    assert age_band(pd.Series([23]), 5).tolist() == ["20-24"]
    assert zip_prefix(pd.Series(["85711", "T8H1N", None]), 3).tolist() == ["857**", "T8H**", None]
    assert zip_prefix(pd.Series(["85711"]), 0).tolist() == ["*****"]


def test_generalisation_table_gets_coarser():
    grid = generalisation_table(TABLE, ["age", "zip_code"], {"age": [1, 100], "zip_code": [5, 0]})
    assert grid.loc[(grid.age == 1) & (grid.zip_code == 5), "classes"].item() == 4
    # everyone in one age band, zip fully masked: the None zip still forms its own class
    coarse = grid.loc[(grid.age == 100) & (grid.zip_code == 0)]
    assert coarse[["k", "classes"]].values.tolist() == [[1, 2]]


def test_bad_input():
    with pytest.raises(KeyError, match="zip"):
        k_anonymity(TABLE[["age"]], ["age", "zip"])
    with pytest.raises(ValueError, match="width"):
        age_band(TABLE["age"], 0)
