"""PRM-guided beam search over solution steps (Snell et al. 2024, §5.2).

With a generation budget N and beam width M: sample N first steps, keep the N/M the PRM scores highest, expand each
with M sampled next steps (N candidates again), and repeat until the last step; each surviving beam then writes its
answer line and the beam the PRM scores highest gives the answer. Problems of one length share every call.
"""

from __future__ import annotations

import numpy as np

from scaling.testtime.cost import generation_flops, verifier_flops
from scaling.testtime.sampling import Policy
from scaling.testtime.task import STEP_CHARS, Problem, check
from scaling.testtime.verifier import TrainedVerifier


def beam_search(policy: Policy, prm: TrainedVerifier, problems: list[Problem], budget: int, width: int,
                temperature: float, seed: int, policy_cfg, prm_cfg) -> tuple[list[dict], float]:
    """One answer per problem (all of one length) and the inference FLOPs spent (policy and PRM)."""
    if budget % width:
        raise ValueError(f"beam budget {budget} must be a multiple of the beam width {width}")
    keep = budget // width
    beams = [[p.prompt] for p in problems]
    flops = 0.0
    length = problems[0].length
    for step in range(length):
        expand = budget if step == 0 else width
        flat = [b for bs in beams for b in bs]
        prompt_len = len(flat[0])
        children = policy.continue_texts(flat, STEP_CHARS, expand, temperature, seed + 7919 * step)
        flops += generation_flops(policy_cfg, prompt_len, STEP_CHARS, len(flat) * expand)
        candidates = [[c for parent, kids in zip(bs, children[i * len(bs):(i + 1) * len(bs)])
                       for c in (parent + kid for kid in kids)] for i, bs in enumerate(beams)]
        all_ids = policy.encode([c for cs in candidates for c in cs])
        scores = prm.score(all_ids).numpy().reshape(len(problems), -1)
        flops += verifier_flops(prm_cfg, all_ids.shape[1], all_ids.shape[0])
        beams = [[cs[j] for j in np.argsort(-s, kind="stable")[:keep]] for cs, s in zip(candidates, scores)]
    flat = [b for bs in beams for b in bs]
    answers = policy.continue_texts(flat, 4, 1, temperature, seed + 104729)
    flops += generation_flops(policy_cfg, len(flat[0]), 4, len(flat))
    finals = [b + a[0] for b, a in zip(flat, answers)]
    ids = policy.encode(finals)
    final_scores = prm.score(ids).numpy().reshape(len(problems), keep)
    flops += verifier_flops(prm_cfg, ids.shape[1], ids.shape[0])
    rows = []
    for i, p in enumerate(problems):
        best = finals[i * keep + int(np.argmax(final_scores[i]))]
        checked = check(p, best[len(p.prompt):])
        rows.append({"answer": checked.answer, "correct": checked.correct})
    return rows, flops / len(problems)



