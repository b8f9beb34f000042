"""Shared NSS primitives: MATLAB's colon and fspecial, and the table look-up of MATLAB's min."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srbench.matlab import colon, fspecial_gaussian
from srbench.metrics import nss


def _matlab_min_index(table: np.ndarray, v: float, squared: bool) -> int:
    """Brute force ``[~, i] = min(d)``: NaNs ignored, first minimum, index 1 (0 here) when all are NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = (table - v) ** 2 if squared else np.abs(table - v)
    return 0 if np.all(np.isnan(d)) else int(np.nanargmin(d))


_tables = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=40, unique=True).map(
    lambda xs: np.array(sorted(xs)))
_values = st.one_of(st.floats(-2e3, 2e3, allow_nan=False), st.just(math.nan), st.just(math.inf),
                    st.just(-math.inf), st.floats(-1e200, 1e200, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(table=_tables, values=st.lists(_values, min_size=1, max_size=20), decreasing=st.booleans(),
       squared=st.booleans(), from_table=st.booleans())
def test_nearest_index_is_matlab_min(table, values, decreasing, squared, from_table):
    if decreasing:
        table = table[::-1].copy()
    vals = np.array(values)
    if from_table:  # exact hits and exact midpoints (ties between neighbours)
        mids = (table[:-1] + table[1:]) / 2 if table.size > 1 else table
        vals = np.concatenate([vals, table, mids])
    got = nss.nearest_index(table, vals, squared=squared)
    assert got.shape == vals.shape and got.dtype.kind == "i"
    assert got.tolist() == [_matlab_min_index(table, v, squared) for v in vals]


def test_nearest_index_ties_and_nan():
    table = np.array([0.0, 1.0, 2.0, 3.0])
    assert nss.nearest_index(table, np.array([0.5, 2.5, np.nan])).tolist() == [0, 2, 0]
    assert nss.nearest_index(table[::-1].copy(), np.array([0.5, 2.5, np.nan])).tolist() == [2, 0, 0]
    # Far outside the table rounding ties several entries: MATLAB's min takes the first of them.
    dense = 1.0 + np.array([0.0, 2.2e-16, 4.4e-16, 6.7e-16, 8.9e-16])
    assert nss.nearest_index(dense, 1e6).item() == _matlab_min_index(dense, 1e6, False)
    assert nss.nearest_index(dense, np.array([[1e6]]), squared=True).shape == (1, 1)


def test_nearest_index_refuses_unsorted_tables():
    with pytest.raises(ValueError, match="strictly"):
        nss.nearest_index(np.array([0.0, 2.0, 1.0]), 1.0)
    with pytest.raises(ValueError, match="strictly"):
        nss.nearest_index(np.array([0.0, 1.0, 1.0]), 1.0)


def test_nearest_index_on_the_shape_tables_matches_a_full_scan():
    grid = nss.shape_grid()
    rng = np.random.default_rng(0)
    for table in (nss.ggd_ratio(grid), nss.aggd_ratio(grid)):
        vals = np.concatenate([rng.uniform(table.min() * 0.9, table.max() * 1.1, 200), table[::97]])
        for squared in (False, True):
            expected = [_matlab_min_index(table, v, squared) for v in vals]
            assert nss.nearest_index(table, vals, squared=squared).tolist() == expected


def test_colon_matlab_facts():
    grid = colon(0.2, 0.001, 10)
    assert grid.size == 9801 and grid[0] == 0.2 and grid[-1] == 10.0 and grid[4900] == (0.2 + 10) / 2
    # Symmetric construction: first half a + k*d, second half b - k*d counted from the end.
    k = np.arange(4900)
    np.testing.assert_array_equal(grid[:4900], 0.2 + k * 0.001)
    np.testing.assert_array_equal(grid[::-1][:4900], 10.0 - k * 0.001)
    # Not linspace: 1774 elements differ (by an ulp or two).
    assert int(np.sum(grid != np.linspace(0.2, 10.0, 9801))) == 1774
    assert colon(0.03, 0.001, 10).size == 9971 and colon(0.03, 0.001, 10)[-1] == 10.0


def test_colon_small_cases():
    np.testing.assert_array_equal(colon(1, 1, 5), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(colon(0, 2, 7), [0, 2, 4, 6])
    np.testing.assert_array_equal(colon(10, -3, 1), [10, 7, 4, 1])
    # 3*0.1 != 0.3 but the end is snapped to b, and the element before it counts back from there.
    np.testing.assert_array_equal(colon(0, 0.1, 0.3), [0, 0.1, 0.3 - 0.1, 0.3])
    tail = colon(0, 0.3, 1)  # b is not reached: the last element is a + n*d
    assert tail.size == 4 and tail[-1] == 3 * 0.3
    assert colon(1, 1, 0).size == 0 and colon(0, 0, 1).size == 0
    assert np.isnan(colon(0, 1, math.inf)).all()


@pytest.mark.parametrize(("size", "sigma"), [(7, 7 / 6), (3, 0.5), (11, 1.5), (4, 1.0), (15, 0.4)])
def test_fspecial_gaussian(size, sigma):
    h = fspecial_gaussian(size, sigma)
    assert h.shape == (size, size) and h.sum() == pytest.approx(1.0, abs=1e-15)
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-r * r / (2 * sigma * sigma))
    g = g / g.sum()
    outer = np.outer(g, g)
    outer[outer < np.finfo(float).eps * outer.max()] = 0  # fspecial's eps*max zeroing
    # Within 1e-16, or an ulp of the entry where the centre tap is large (narrow kernels).
    np.testing.assert_allclose(h, outer / outer.sum(), rtol=np.finfo(float).eps, atol=1e-16)
    np.testing.assert_array_equal(h, h.T)


def test_gaussian_window_is_the_releases():
    w = nss.gaussian_window()
    assert w.shape == (7, 7) and not w.flags.writeable
    h = fspecial_gaussian(7, 7 / 6)
    np.testing.assert_array_equal(w, h / h.sum())


def test_flat_mask_and_mscn_conventions():
    plane = np.zeros((20, 20))
    plane[:, 10:] = 50.0
    # Replicate padding: the all-zero left part is flat too; zero padding with skip_zero leaves it out.
    assert nss.flat_mask(plane, padding="replicate")[:, :5].all()
    assert not nss.flat_mask(plane, padding="zero", skip_zero=True)[:, :5].any()
    out = nss.mscn(plane, padding="replicate", flat_sign=1.0)
    assert (out[:, :5] > 0).all() and (out[:, :5] < 1e-140).all()
