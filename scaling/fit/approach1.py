"""Chinchilla approach 1: the lower envelope of training curves (Hoffmann et al. 2022, §3.1).

Every run's eval curve is interpolated in (log C, log L); at each of a log-spaced set of FLOP values, from the end
of the shortest run to the end of the longest, the run (or its seeds' mean, below) with the lowest loss is on the
envelope, giving N_opt(C) (that run's size) and D_opt(C) = its tokens at C. Power laws N_opt ∝ C^a and D_opt ∝ C^b
are fitted by log-log regression over the envelope points where the winner changes size at least once. Below the
shortest run's end every point is a checkpoint in mid-schedule (in warmup, or at a learning rate not yet annealed),
and the envelope there is whichever small model was early: read there, it pulls a down. Runs with fewer than two
evaluations are left out: they have no curve.

``late_share`` is the share of envelope points that lie within the last 15% of their run's tokens. Hoffmann et al.
found all of theirs there (§3.1, note 4): four horizons per size end at C values spread across the range. The runs
of an IsoFLOP grid end at its few budgets, so between budgets the envelope can only come from checkpoints in
mid-schedule, read before their learning rate annealed (with budgets 2x apart, about three quarters of it); its a then
reflects how those checkpoints differ from finished runs as well as the law.

Runs of one size and one length (the same N and final D: seeds of one grid point) are replicates, and the envelope
is taken over their mean curve (mean log-loss, as for Kaplan's laws). The lowest of several replicates is a lucky
draw, and luck is not spread evenly: short runs (the largest sizes of a budget) scatter most between seeds, so a
minimum over seeds favours them at small budgets and pulls a down, a bias approaches 2 and 3, which fit every run,
do not have. Bootstrap: resample runs with replacement, average each configuration's drawn replicates and recompute
the envelope.
"""

from __future__ import annotations

import numpy as np

from scaling.fit.approach3 import NotIdentifiable
from scaling.fit.powerlaw import fit_power_law

NUM_GRID = 200
MIN_SIZES = 3
MIN_EVALS_PER_RUN = 2
MIN_SPAN = 2.0  # the runs' ends must span this factor in C: one budget's ends differ only by step rounding
# Hoffmann et al. 2022, §3.1 note 4: every point of their envelope lay within the last 15% of its run's training.
LATE_IN_RUN = 0.85


def _interpolated(curves: dict[str, tuple[float, np.ndarray, np.ndarray, np.ndarray]], grid: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss and tokens of every run at every grid FLOP value (NaN outside the run's range)."""
    losses = np.full((len(curves), len(grid)), np.nan)
    tokens = np.full_like(losses, np.nan)
    sizes = np.empty(len(curves))
    lg = np.log(grid)
    for i, (n, c, d, loss) in enumerate(curves.values()):
        order = np.argsort(c)
        lc = np.log(c[order])
        inside = (lg >= lc[0]) & (lg <= lc[-1])
        losses[i, inside] = np.exp(np.interp(lg[inside], lc, np.log(loss[order])))
        tokens[i, inside] = np.exp(np.interp(lg[inside], lc, np.log(d[order])))
        sizes[i] = n
    return losses, tokens, sizes


def fit_approach1(run_ids: np.ndarray, n: np.ndarray, d: np.ndarray, c: np.ndarray, loss: np.ndarray,
                  bootstrap: int = 0, seed: int = 0) -> dict:
    run_ids = np.asarray(run_ids)
    curves = {}
    for rid in np.unique(run_ids):
        m = run_ids == rid
        if m.sum() >= MIN_EVALS_PER_RUN:  # a one-point "curve" says nothing about the envelope between budgets
            curves[rid] = (float(np.asarray(n)[m][0]), np.asarray(c, float)[m], np.asarray(d, float)[m],
                           np.asarray(loss, float)[m])
    if not curves:
        raise NotIdentifiable(f"approach 1 needs training curves: at least {MIN_EVALS_PER_RUN} evaluations per "
                              "run, and every run has one (a sweep's runs log evals every eval.interval_steps; a table "
                              "needs a run column with several rows per run, --run-col)")
    if len({v[0] for v in curves.values()}) < MIN_SIZES:
        raise NotIdentifiable(f"approach 1 needs curves of at least {MIN_SIZES} sizes (with {MIN_EVALS_PER_RUN}+ "
                              "evaluations each)")
    run_ends = [float(v[1].max()) for v in curves.values()]
    if max(run_ends) < MIN_SPAN * min(run_ends):
        raise NotIdentifiable(f"approach 1 reads the envelope between the runs' ends, which span only a factor of "
                              f"{max(run_ends) / min(run_ends):.2f} in C (needs {MIN_SPAN:g}): the runs end at one "
                              "budget; add budgets")
    grid = np.geomspace(min(run_ends), max(run_ends), NUM_GRID)
    losses, tokens, sizes = _interpolated(curves, grid)
    # Replicates share a size and a final token count; tokens at a given C are then the same for all of them.
    keys = [(n, float(np.max(d))) for n, _, d, _ in curves.values()]
    config_keys, config = np.unique(np.array(keys), axis=0, return_inverse=True)
    config, config_final_tokens = config.ravel(), config_keys[:, 1]
    num_configs = len(config_keys)
    config_sizes, config_tokens = np.empty(num_configs), np.empty((num_configs, len(grid)))
    config_sizes[config], config_tokens[config] = sizes, tokens

    def envelope(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        drawn = np.log(losses[rows])
        totals, counts = np.zeros((num_configs, len(grid))), np.zeros((num_configs, len(grid)))
        np.add.at(totals, config[rows], np.nan_to_num(drawn))
        np.add.at(counts, config[rows], ~np.isnan(drawn))
        mean_log = np.divide(totals, counts, out=np.full_like(totals, np.inf), where=counts > 0)
        covered = np.isfinite(mean_log).any(axis=0)
        cols = np.flatnonzero(covered)
        winner = np.argmin(mean_log[:, covered], axis=0)
        return (grid[covered], config_sizes[winner], config_tokens[winner, cols], np.exp(mean_log[winner, cols]),
                config_final_tokens[winner])

    cs, n_opt, d_opt, l_opt, final_tokens = envelope(np.arange(len(curves)))
    if len(np.unique(n_opt)) < 2:
        raise ValueError("approach 1: one size wins at every FLOP value; the grid does not bracket the optimum")
    n_law, d_law = fit_power_law(cs, n_opt), fit_power_law(cs, d_opt)
    out = {"a": n_law.exponent, "b": d_law.exponent, "n_law": n_law.as_dict(), "d_law": d_law.as_dict(),
           "ci95": {"a": list(n_law.ci95), "b": list(d_law.ci95)}, "n_runs": len(curves), "n_configs": num_configs,
           "late_share": float(np.mean(d_opt >= LATE_IN_RUN * final_tokens)),
           "frontier": {"C": cs.tolist(), "N": n_opt.tolist(), "D": d_opt.tolist(), "loss": l_opt.tolist()}}
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        a_s, b_s = [], []
        for _ in range(bootstrap):
            rows = rng.integers(0, len(curves), len(curves))
            bc, bn, bd, _, _ = envelope(rows)
            if len(np.unique(bn)) >= 2:
                a_s.append(fit_power_law(bc, bn).exponent)
                b_s.append(fit_power_law(bc, bd).exponent)
        if a_s:
            out["ci95"] = {"a": np.percentile(a_s, [2.5, 97.5]).tolist(), "b": np.percentile(b_s, [2.5, 97.5]).tolist()}
            out["bootstrap"] = len(a_s)
    return out
