"""Learned verifiers: a transformer trunk with a scalar head (by default the policy's own, fine-tuned, with blocks
added on top; or a narrower model of the policy's depth trained from scratch), trained on the policy's own samples of
training problems (disjoint from the test problems) with labels from the exact checker.

* ORM (outcome reward model): one label per sample, "the final answer is right", read at the last token;
* PRM (process reward model): one label per line, "every step so far is right" (Lightman et al. 2023; Snell et al.
  2024 §5 use Monte-Carlo rollouts where exact step checks do not exist), read at each line's newline; the answer
  line's label is "process-correct".

The PRM scores every line; a sample's score aggregates them by the last line, the minimum or the product (Snell et
al. 2024, App. D, found "last" best for their PRM).

A verifier may also read, with each token, the log-probability the policy gave it (``likelihood``). A policy's errors
at a temperature above 0 are mostly characters it thought unlikely, and the sampler has computed each token's
probability anyway; a verifier that sees only the text must relearn the policy's computation to tell, which at the
default study's sizes it does not (measured in the README's test-time section).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.flops import count_params
from scaling.export import to_transformers
from scaling.model import GPT

AGGREGATIONS = ("last", "min", "prod")


def verifier_model(policy: ModelConfig, params_fraction: float) -> ModelConfig:
    """The policy's shape with its width scaled so the blocks hold about ``params_fraction`` of its non-embedding
    parameters (a multiple of 2·heads, so rotary halves stay whole)."""
    step = 2 * policy.num_heads
    width = max(step, step * round(policy.d_model * math.sqrt(params_fraction) / step))
    return dataclasses.replace(policy, d_model=width, d_ff=None, mup_base_width=None)


def aggregate(step_scores: np.ndarray, how: str) -> np.ndarray:
    """One score per sample from its per-line PRM scores (rows × lines)."""
    if how == "last":
        return step_scores[:, -1]
    return step_scores.min(1) if how == "min" else step_scores.prod(1)


def initial_trunk(policy: nn.Module, policy_cfg: ModelConfig, init: str, params_fraction: float,
                  added_layers: int) -> tuple[nn.Module, ModelConfig]:
    """The verifier's starting trunk (a transformers base model) and its shape.

    * ``policy``: the policy's own trunk, as Snell et al. fine-tune their verifiers from the base model, with
      ``added_layers`` blocks on top that start as the identity (their output projections zero). To judge a line
      the verifier compares the result written with the one the policy's last layer predicts one position
      earlier; a block above the policy's own is where that comparison can happen.
    * ``scratch``: a fresh model of the policy's depth, its width scaled to ``params_fraction`` of the parameters.
    """
    cfg = verifier_shape(policy_cfg, init, params_fraction, added_layers)
    if init == "scratch":
        return to_transformers(GPT(cfg), None).base_model, cfg
    trunk = copy.deepcopy(policy.base_model)
    for _ in range(added_layers):
        block = copy.deepcopy(trunk.layers[-1])
        nn.init.zeros_(block.self_attn.o_proj.weight)
        nn.init.zeros_(block.mlp.down_proj.weight)
        block.self_attn.layer_idx = len(trunk.layers)
        trunk.layers.append(block)
        trunk.config.num_hidden_layers += 1
    return trunk, cfg


def verifier_shape(policy_cfg: ModelConfig, init: str, params_fraction: float, added_layers: int) -> ModelConfig:
    """The shape ``initial_trunk`` gives the verifier (what its FLOPs are counted for)."""
    if init == "scratch":
        return verifier_model(policy_cfg, params_fraction)
    return dataclasses.replace(policy_cfg, num_layers=policy_cfg.num_layers + added_layers)


@torch.no_grad()
def token_logprobs(policy: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """log p(token t | tokens before t) under the policy at every position (0 at the first, which nothing
    predicts): what the sampler computed as it wrote or fed each token."""
    logp = torch.log_softmax(policy(input_ids=ids).logits.float(), -1)
    out = torch.zeros(ids.shape, device=ids.device)
    out[:, 1:] = logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    return out


class Verifier(nn.Module):
    def __init__(self, trunk: nn.Module, d_model: int, likelihood: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(d_model, 1)
        # Each token's embedding gains its log-probability under the policy times this vector; zero at the start,
        # so the trunk begins as it was.
        self.likelihood = nn.Parameter(torch.zeros(d_model)) if likelihood else None

    def forward(self, ids: torch.Tensor, logprobs: torch.Tensor | None) -> torch.Tensor:
        """A logit per position, shape (batch, seq); ``logprobs`` from ``token_logprobs`` when the verifier reads
        the policy's likelihood."""
        x = self.trunk.get_input_embeddings()(ids)
        if self.likelihood is not None:
            x = x + logprobs[..., None] * self.likelihood
        return self.head(self.trunk(inputs_embeds=x).last_hidden_state).squeeze(-1)


@dataclass
class TrainedVerifier:
    kind: str
    model: Verifier
    policy: nn.Module
    """The language model whose samples the verifier judges (the source of their log-probabilities)."""
    train_flops: float
    train_seconds: float

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        ids = ids.to(self.device)
        reads = self.model.likelihood is not None
        return self.model(ids, token_logprobs(self.policy, ids) if reads else None)

    def score(self, ids: torch.Tensor) -> torch.Tensor:
        """Probability of "correct" at the last position of each row (the end of its last complete line)."""
        return torch.sigmoid(self.logits(ids)[:, -1]).float().cpu()

    def line_scores(self, ids: torch.Tensor, text: str) -> torch.Tensor:
        """Probability of "correct so far" at every line end of the completion (rows of one layout, ``text`` one
        of them: prompt + completion)."""
        return torch.sigmoid(self.logits(ids)[:, line_ends(text)]).float().cpu()


def line_ends(text: str) -> list[int]:
    """Token positions of the newlines that end the completion's lines (one token per character; the prompt's
    own newline is its last character and labels nothing)."""
    return [i for i, c in enumerate(text) if c == "\n"][1:]


def labels_for(ids: torch.Tensor, rows: list[dict], kind: str) -> torch.Tensor:
    """Per-position targets (NaN where unlabelled): ORM at the last token; PRM at each line end of the completion."""
    target = torch.full(ids.shape, float("nan"))
    for r, row in enumerate(rows):
        if kind == "orm":
            target[r, -1] = float(row["correct"])
            continue
        for i, position in enumerate(line_ends(row["prompt"] + row["completion"])):
            label = row["step_correct"][i] if i < len(row["step_correct"]) else row["process_correct"]
            target[r, position] = float(label)
    return target


def train_verifier(kind: str, batches: list[tuple[torch.Tensor, torch.Tensor]], trunk: nn.Module, cfg: ModelConfig,
                   policy: nn.Module, likelihood: bool, steps: int, lr: float, seed: int,
                   device: str = "cpu") -> TrainedVerifier:
    """Train ``trunk`` (of shape ``cfg``) and a fresh head on (ids, targets) batches (one layout each) of
    ``policy``'s samples, cycling through them for ``steps`` steps; with ``likelihood`` the verifier also reads
    each token's log-probability under ``policy``."""
    torch.manual_seed(seed)
    model = Verifier(trunk, cfg.d_model, likelihood).to(device)
    batches = [(ids.to(device), target.to(device)) for ids, target in batches]
    logprobs = [token_logprobs(policy, ids) if likelihood else None for ids, _ in batches]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    start, tokens = time.perf_counter(), 0
    order = torch.randperm(len(batches))
    for step in range(steps):
        b = int(order[step % len(batches)])
        (ids, target), mask = batches[b], ~torch.isnan(batches[b][1])
        logits = model(ids, logprobs[b])
        loss = F.binary_cross_entropy_with_logits(logits[mask], target[mask])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += ids.numel()
    # Training cost under the 6·N convention (forward + backward); N = the trunk's blocks and the scalar head (the
    # verifier never runs the language-model head). The log-probabilities are the sampler's, computed as it wrote.
    flops = 6.0 * (count_params(cfg).non_embedding + cfg.d_model) * tokens
    return TrainedVerifier(kind=kind, model=model.eval(), policy=policy, train_flops=flops,
                           train_seconds=time.perf_counter() - start)
