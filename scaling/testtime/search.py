"""Verifier-guided search over solution lines (Snell et al. 2024, §5.2; Beeching et al. 2024's open reproduction).

A line is one step (or the answer line). With a generation budget N and beam width M:

* **beam search**: sample N first lines; keep the N/M the PRM scores highest, expand each with M sampled next lines
  (N candidates again), and repeat through the answer line; the N final candidates are then judged by weighted
  best-of-N under the PRM.
* **lookahead search** (k): as beam search, but a candidate's score is the PRM's at the end of a greedy (temperature
  0) rollout of k more lines; the rollout is scored, not kept.
* **diverse verifier tree search** (DVTS): N/M independent subtrees, each a beam of width one: M samples, keep the
  best, expand it with M, ...; the N final candidates are judged by weighted best-of-N.

All problems of one length share every call. FLOPs count the algorithm with a KV cache: each generated or scored
token is paid once at its context and a kept prefix is not recomputed. The sampler itself re-reads each prefix at
every line (transformers' generate keeps no cache between calls), so its wall time is not what the figures count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scaling.config import ModelConfig
from scaling.testtime.cost import decode_flops, score_flops
from scaling.testtime.sampling import Policy
from scaling.testtime.strategies import select
from scaling.testtime.task import Problem, check

Scorer = Callable[[list[Problem], list[str]], np.ndarray]
"""The PRM's "correct so far" probability at the end of each text (prompt + whole lines), one problem per text."""


@dataclass(frozen=True)
class Search:
    kind: str
    """``beam``, ``lookahead`` or ``dvts``."""
    budget: int
    """N: candidates alive at each line."""
    width: int
    """M: children per kept candidate."""
    lookahead: int = 0

    def __post_init__(self) -> None:
        if self.budget % self.width:
            raise ValueError(f"budget {self.budget} must be a multiple of the beam width {self.width}")

    @property
    def name(self) -> str:
        return {"beam": f"beam_w{self.width}", "lookahead": f"lookahead{self.lookahead}_w{self.width}",
                "dvts": f"dvts_w{self.width}"}[self.kind]

    @property
    def groups(self) -> int:
        """Independent subtrees."""
        return self.budget // self.width if self.kind == "dvts" else 1

    @property
    def keep(self) -> int:
        """Candidates each subtree keeps per line."""
        return 1 if self.kind == "dvts" else self.budget // self.width


def lines_of(problem: Problem) -> list[str]:
    """The templates of a solution's lines: every step, then the answer line."""
    return [problem.step_template(i) for i in range(problem.length)] + [problem.answer_template]


def search(search: Search, policy: Policy, score: Scorer, problems: list[Problem], temperature: float, seed: int,
           policy_cfg: ModelConfig, prm_cfg: ModelConfig) -> tuple[list[dict], float]:
    """One presented solution per problem (all of one length) and the inference FLOPs per problem."""
    lines = [lines_of(p) for p in problems]  # per problem: its own operations
    widths = [len(line) for line in lines[0]]
    alphabet = problems[0].alphabet
    n, per_group = search.budget, search.budget // search.groups
    # candidates[i]: problem i's texts; group g owns candidates[i][g * per_group:(g + 1) * per_group]
    candidates = [[p.prompt] for p in problems]
    context = len(problems[0].prompt)
    flops = decode_flops(policy_cfg, 0, context, 1) + score_flops(prm_cfg, 0, context, 1)
    for t, width in enumerate(widths):
        parents = [c for cs in candidates for c in cs]
        templates = [ls[t] for ls, cs in zip(lines, candidates) for _ in cs]
        expand = n // len(candidates[0])
        children = iter(policy.fill(parents, templates, alphabet, expand, temperature, seed + 7919 * t))
        candidates = [[parent + kid for parent in cs for kid in next(children)] for cs in candidates]
        flops += decode_flops(policy_cfg, context, width, n) + score_flops(prm_cfg, context, width, n)
        context += width
        judged, judged_flops = _judged(search, policy, candidates, [ls[t + 1:] for ls in lines], alphabet, context,
                                       policy_cfg, prm_cfg)
        flops += judged_flops
        scores = np.stack([score([p] * n, js) for p, js in zip(problems, judged)])
        if t + 1 < len(widths):
            candidates = [[cs[j] for g in range(search.groups)
                           for j in g * per_group + np.argsort(-s[g * per_group:(g + 1) * per_group],
                                                               kind="stable")[:search.keep]]
                          for cs, s in zip(candidates, scores)]
    rows = []
    for p, cs, s in zip(problems, candidates, scores):
        checked = [check(p, c[len(p.prompt):]) for c in cs]
        answers = np.array([-1 if c.answer is None else c.answer for c in checked])
        picked = select(answers, s, "weighted")
        rows.append({"correct": picked is not None and checked[picked].correct,
                     "process_correct": picked is not None and checked[picked].process_correct,
                     "explored_process_correct": any(c.process_correct for c in checked)})
    return rows, flops


def _chunks(flat: list[str], count: int) -> list[list[str]]:
    size = len(flat) // count
    return [flat[i * size:(i + 1) * size] for i in range(count)]


def _judged(search: Search, policy: Policy, candidates: list[list[str]], rest: list[list[str]], alphabet: str,
            context: int, policy_cfg: ModelConfig, prm_cfg: ModelConfig) -> tuple[list[list[str]], float]:
    """The texts the PRM judges each candidate by: itself, or its greedy rollout of ``lookahead`` more lines
    (``rest``: each problem's remaining line templates)."""
    ahead = ["".join(r[: search.lookahead]) for r in rest]
    if not ahead[0]:
        return candidates, 0.0
    flat = [c for cs in candidates for c in cs]
    rolled = policy.fill(flat, [a for a, cs in zip(ahead, candidates) for _ in cs], alphabet, 1, 0.0, 0)
    per_problem = len(candidates[0])
    flops = (decode_flops(policy_cfg, context, len(ahead[0]), per_problem)
             + score_flops(prm_cfg, context, len(ahead[0]), per_problem))
    texts = [c + r[0] for c, r in zip(flat, rolled)]
    return _chunks(texts, len(candidates)), flops
