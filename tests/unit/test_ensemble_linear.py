"""The linear ensemble member's fast margins equal the design-matrix product they replace (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest

from cxpredict.models.ensemble import NUMERIC, ONE_HOT, SPLINE, BasisColumn, LinearMember

pytestmark = pytest.mark.unit


def _member(outputs: int, seed: int) -> LinearMember:
    rng = np.random.default_rng(seed)
    knots = np.r_[[0.0] * 3, np.linspace(0.0, 10.0, 6), [10.0] * 3]
    columns = [
        BasisColumn(0, SPLINE, knots=knots, degree=3, fill=4.0, missing_column=True),
        BasisColumn(1, ONE_HOT, levels=np.array([0.0, 2.0, 3.0, 7.0]), missing_column=True),
        BasisColumn(2, NUMERIC, fill=-1.5, missing_column=False),
        BasisColumn(3, ONE_HOT, levels=np.zeros(0), missing_column=True),
        BasisColumn(4, SPLINE, knots=knots * 3 - 5, degree=3, fill=0.0, missing_column=False),
    ]
    width = sum(c.width() for c in columns)
    return LinearMember(
        columns=columns,
        mean=rng.normal(size=width),
        scale=rng.uniform(0.5, 2.0, size=width),
        coef=rng.normal(size=(outputs, width)),
        intercept=rng.normal(size=outputs),
        background=np.zeros(width),
        n_features=5,
    )


@pytest.mark.parametrize("outputs", [1, 5])
def test_fast_margins_equal_the_design_matrix_product(outputs: int) -> None:
    rng = np.random.default_rng(outputs)
    n = 2_000
    X = np.column_stack([
        rng.uniform(-3, 13, n),  # beyond both ends of the knots: clipped
        rng.choice([0.0, 2.0, 3.0, 7.0, 5.0, -1.0], n),  # 5 and -1 are levels not seen in training
        rng.normal(size=n),
        rng.choice([0.0, 1.0], n),
        rng.uniform(-10, 30, n),
    ])
    X[rng.random((n, 5)) < 0.1] = np.nan
    X[:5, 0] = [0.0, 10.0, 5.0, 2.0, 8.0]  # the knots themselves, the ends included
    member = _member(outputs, seed=outputs)
    expected = member.design(X) @ member.coef.T + member.intercept
    np.testing.assert_allclose(member.margins(X), expected, rtol=0, atol=1e-9)
    assert np.isfinite(member.margins(X)).all()
