"""C as a function of N and D under the fit's FLOP convention: C = FLOPs-per-token(N) · D.

Compute-optimal allocations solve min L(N, D) subject to C = f(N)·D. Only under C = 6ND is f(N) = 6N and the
closed form of Hoffmann et al. 2022 (eq. 4) exact; under a convention that also counts attention or the output layer
(``6n_attention``, ``chinchilla``), or with total rather than non-embedding N, f(N) is 6N plus a term that grows more
slowly than N (or minus one: an untied output layer counted in total N but run as a matmul only once). That term is
fitted from the runs themselves as a power law, f(N) = 6N + k·N^γ with γ < 1, so the allocation is solved under the
convention the runs' C is counted in and extrapolates with its leading 6N term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIX_N_RTOL = 1e-6  # runs whose C/D is 6N within this are treated as exactly C = 6ND


@dataclass(frozen=True)
class FlopsPerToken:
    """f(N) = 6N + k·N^γ FLOPs per token (k = 0: C = 6ND exactly)."""

    k: float = 0.0
    gamma: float = 0.0

    def smallest_n(self) -> float:
        """The smallest N where the form holds (6N above twice a negative term), 1 otherwise."""
        return (-self.k / 3.0) ** (1.0 / (1.0 - self.gamma)) if self.k < 0 else 1.0

    def __call__(self, n: np.ndarray) -> np.ndarray:
        n = np.asarray(n, float)
        return 6.0 * n + self.k * n**self.gamma

    @property
    def is_6nd(self) -> bool:
        return self.k == 0.0

    def describe(self) -> str:
        return "C = 6·N·D" if self.is_6nd else f"C = (6·N + {self.k:.4g}·N^{self.gamma:.3f})·D, fitted on the runs"

    def as_dict(self) -> dict:
        return {"k": self.k, "gamma": self.gamma, "form": self.describe()}


def fit_flops_per_token(n: np.ndarray, d: np.ndarray, c: np.ndarray) -> FlopsPerToken:
    """f(N) from the runs' own (N, C/D). The term beside 6N may be negative (an untied output layer counted in N
    but not in C's matmuls); it must have one sign across the runs and grow more slowly than N."""
    n, per_token = np.asarray(n, float), np.asarray(c, float) / np.asarray(d, float)
    extra = per_token - 6.0 * n
    if np.all(np.abs(extra) <= SIX_N_RTOL * per_token):
        return FlopsPerToken()
    sign = np.sign(extra)
    if not (np.all(sign > 0) or np.all(sign < 0)):
        raise ValueError("C/D - 6N changes sign across the runs: the FLOP and parameter conventions do not fit "
                         "C = (6N + k·N^γ)·D; pick another pair (e.g. --params total --flops 6n)")
    log_n, log_extra = np.log(n), np.log(np.abs(extra))
    if np.ptp(log_n) < 1e-9:
        return FlopsPerToken(k=float(sign[0] * np.exp(log_extra.mean())), gamma=0.0)
    gamma, log_k = np.polyfit(log_n, log_extra, 1)
    if gamma >= 1:
        raise ValueError(f"C/D - 6N grows as N^{gamma:.2f}, faster than N: the conventions do not describe one model "
                         "family's compute; pick another pair")
    return FlopsPerToken(k=float(sign[0] * np.exp(log_k)), gamma=float(gamma))
