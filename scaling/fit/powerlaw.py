"""Power laws y = k·x^p fitted as straight lines in log-log space, with a t-based 95% interval on p."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PowerLaw:
    exponent: float
    coefficient: float
    ci95: tuple[float, float]
    r2: float
    n_points: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.coefficient * np.asarray(x, float) ** self.exponent

    def as_dict(self) -> dict:
        return {"exponent": self.exponent, "coefficient": self.coefficient, "ci95": list(self.ci95), "r2": self.r2,
                "n_points": self.n_points}


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """Ordinary least squares of log y on log x (needs 2 points; the interval needs 3)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if len(lx) < 2:
        raise ValueError(f"a power law needs at least 2 points, got {len(lx)}")
    res = stats.linregress(lx, ly)
    if len(lx) > 2:
        half = stats.t.ppf(0.975, len(lx) - 2) * res.stderr
        ci = (float(res.slope - half), float(res.slope + half))
    else:
        ci = (float("nan"), float("nan"))
    return PowerLaw(exponent=float(res.slope), coefficient=float(np.exp(res.intercept)), ci95=ci,
                    r2=float(res.rvalue**2), n_points=len(lx))
