"""Sequential revisions (Snell et al. 2024, §6): a revision model fine-tuned from the policy on its own attempts, and
chains of revisions sampled from it.

Training chains follow the paper's recipe: for a training problem the policy both solved and failed at least once,
one of its correct attempts is the target and 0..C of its wrong attempts (drawn with replacement, so a problem failed
once still teaches long contexts) precede it, ordered so that the one closest to the target (by edit distance) comes
last. Each attempt in context is written under its own copy of the question, so a revision reads the start value
right above it, as the first attempt does. Only the target's tokens are trained on. A chain at test time starts
from the prompt and revises with the last C attempts in context; a budget of N generations is N/s parallel chains of
s revisions each.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from scaling.config import ModelConfig
from scaling.flops import matmul_params
from scaling.testtime.cost import decode_flops, prefill_flops
from scaling.testtime.sampling import Policy
from scaling.testtime.strategies import select
from scaling.testtime.task import Problem

SELECTIONS = {"majority": "seq_majority", "weighted": "seq_weighted_prm", "hierarchical": "seq_hierarchical_prm"}
"""How an answer is chosen from N/s chains of s attempts (Snell et al. 2024, §6.2): majority over every attempt,
weighted best-of-N (PRM) over every attempt, or weighted within each chain, then across the chains' choices."""


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def revision_chains(problems: list[Problem], rows: list[dict], context_attempts: int, seed: int,
                    reference: bool = False) -> list[tuple[Problem, list[str], str]]:
    """(problem, wrong attempts in context order, correct target) from the policy's samples of training problems:
    the problems it both solved and failed, or with ``reference`` every problem it failed, its worked solution the
    target."""
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(problems):
        mine = [r for r in rows if r["problem"] == i]
        right = [p.solution] if reference else [r["completion"] for r in mine if r["process_correct"]]
        wrong = sorted({r["completion"] for r in mine if not r["process_correct"]})
        if not right or not wrong:
            continue
        target = right[int(rng.integers(len(right)))]
        count = int(rng.integers(0, context_attempts + 1))
        chosen = [wrong[j] for j in rng.integers(0, len(wrong), size=count)]
        chosen.sort(key=lambda w: -edit_distance(w, target))
        out.append((p, chosen, target))
    return out


@dataclass
class RevisionModel:
    policy: Policy
    train_flops: float
    train_seconds: float


def fine_tune(policy: Policy, chains: list[tuple[Problem, list[str], str]], steps: int, lr: float, batch_size: int,
              model_cfg: ModelConfig, seed: int) -> RevisionModel:
    """A copy of the policy trained on the chains' targets (the tokens of the last attempt only)."""
    torch.manual_seed(seed)
    model = copy.deepcopy(policy.model).train()
    layouts: dict[tuple[int, int], list[str]] = {}
    for p, wrong, target in chains:
        layouts.setdefault((p.completion_chars, len(wrong)), []).append(in_context(p.prompt, wrong) + target)
    batches = []
    for (target_len, _), texts in sorted(layouts.items()):
        ids = policy.encode(texts)
        for start in range(0, len(texts), batch_size):
            batches.append((ids[start:start + batch_size], ids.shape[1] - target_len))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order = torch.randperm(len(batches))
    start_time, tokens = time.perf_counter(), 0
    for step in range(steps):
        ids, first = batches[int(order[step % len(batches)])]
        ids = ids.to(next(model.parameters()).device)
        logits = model(input_ids=ids).logits[:, first - 1:-1]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, first:].reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += ids.numel()
    # trained at these lengths, the model may read them (transformers warns beyond this)
    model.config.max_position_embeddings = max(model.config.max_position_embeddings,
                                               max(ids.shape[1] for ids, _ in batches))
    return RevisionModel(policy=Policy.of(model.eval(), policy.tokenizer),
                         train_flops=6.0 * matmul_params(model_cfg) * tokens,
                         train_seconds=time.perf_counter() - start_time)


def sample_chains(reviser: Policy, problems: list[Problem], chains: int, attempts: int, context_attempts: int,
                  temperature: float, seed: int) -> list[list[list[str]]]:
    """``chains`` chains of ``attempts`` revisions per problem (all of one length): [problem][chain][attempt]. An
    attempt reads the prompt and the chain's last ``context_attempts`` attempts."""
    prompts = [p.prompt for p in problems for _ in range(chains)]
    templates = [p.template for p in problems for _ in range(chains)]
    pool: list[list[str]] = [[] for _ in prompts]
    for j in range(attempts):
        window = [in_context(prompt, done[len(done) - min(len(done), context_attempts):])
                  for prompt, done in zip(prompts, pool)]
        filled = reviser.fill(window, templates, problems[0].alphabet, 1, temperature, seed + 104729 * j)
        for done, f in zip(pool, filled):
            done.append(f[0])
    return [pool[i * chains:(i + 1) * chains] for i in range(len(problems))]


def in_context(prompt: str, attempts: list[str]) -> str:
    """The text a revision continues: each earlier attempt under the question, then the question again."""
    return "".join(prompt + a for a in attempts) + prompt


def chain_flops(m: ModelConfig, prompt_len: int, completion_len: int, attempts: int, context_attempts: int) -> float:
    """One chain of ``attempts`` revisions: while the window of earlier attempts only grows the cache is kept;
    once it slides, the window is prefilled again before each attempt."""
    flops = prefill_flops(m, prompt_len)
    for j in range(attempts):
        context = prompt_len + (prompt_len + completion_len) * min(j, context_attempts)
        if j > context_attempts:
            flops += prefill_flops(m, context)
        flops += decode_flops(m, context, completion_len, 1)
    return flops


def select_in_chains(answers: np.ndarray, scores: np.ndarray, how: str) -> tuple[int, int] | None:
    """The (chain, attempt) presented among chains × attempts (``answers`` −1 where malformed)."""
    if how != "hierarchical":
        picked = select(answers.ravel(), scores.ravel(), how)
        return None if picked is None else divmod(picked, answers.shape[1])
    best = [select(a, s, "weighted") for a, s in zip(answers, scores)]
    chains = [c for c, b in enumerate(best) if b is not None]
    if not chains:
        return None
    finals = np.array([answers[c, best[c]] for c in chains])
    chosen = chains[select(finals, np.array([scores[c, best[c]] for c in chains]), "weighted")]
    return chosen, best[chosen]
