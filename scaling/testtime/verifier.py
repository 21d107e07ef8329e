"""Learned verifiers: a small transformer (the project's GPT trunk) with a scalar head, trained on the policy's own
samples of training problems with labels from the exact checker.

* ORM (outcome reward model): one label per sample, "the final answer is right", read at the last token;
* PRM (process reward model): one label per step line, "every step so far is right" (Lightman et al. 2023;
  Snell et al. 2024 §5 use Monte-Carlo rollouts where exact step checks do not exist), read at each line's newline.

A sample's PRM score is the prediction at its last step (Snell et al. 2024, App. D: "last step" aggregation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from scaling.config import ModelConfig
from scaling.flops import count_params
from scaling.model import GPT

NEWLINE = 10  # byte id of "\n": every step and the answer line end with one


class Verifier(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.trunk = GPT(cfg)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """A logit per position, shape (batch, seq)."""
        return self.head(self.trunk.hidden(ids)).squeeze(-1)


@dataclass
class TrainedVerifier:
    kind: str
    model: Verifier
    train_flops: float
    train_seconds: float
    train_tokens: int

    @torch.no_grad()
    def score(self, ids: torch.Tensor) -> torch.Tensor:
        """Probability of "correct" at the last position of each row (the end of its last complete line)."""
        self.model.eval()
        return torch.sigmoid(self.model(ids)[:, -1])


def labels_for(ids: torch.Tensor, prompt_len: int, rows: list[dict], kind: str) -> torch.Tensor:
    """Per-position targets (NaN where unlabelled): ORM at the last token; PRM at each line end of the completion."""
    target = torch.full(ids.shape, float("nan"))
    for r, row in enumerate(rows):
        if kind == "orm":
            target[r, -1] = float(row["correct"])
            continue
        ends = (ids[r, prompt_len:] == NEWLINE).nonzero().flatten() + prompt_len
        for i, position in enumerate(ends[: len(row["step_correct"]) + 1]):
            label = row["step_correct"][i] if i < len(row["step_correct"]) else row["correct"]
            target[r, position] = float(label)
    return target


def train_verifier(kind: str, batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: ModelConfig, steps: int,
                   lr: float, seed: int) -> TrainedVerifier:
    """Train on (ids, targets) batches (one layout each), cycling through them for ``steps`` steps."""
    torch.manual_seed(seed)
    model = Verifier(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    start, tokens = time.perf_counter(), 0
    order = torch.randperm(len(batches))
    for step in range(steps):
        ids, target = batches[int(order[step % len(batches)])]
        mask = ~torch.isnan(target)
        logits = model(ids)
        loss = F.binary_cross_entropy_with_logits(logits[mask], target[mask])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += ids.numel()
    # Training cost under the 6·N convention (forward + backward); N = the trunk's blocks and the scalar head (the
    # verifier never runs the language-model head).
    flops = 6.0 * (count_params(cfg).non_embedding + cfg.d_model) * tokens
    return TrainedVerifier(kind=kind, model=model.eval(), train_flops=flops,
                           train_seconds=time.perf_counter() - start, train_tokens=tokens)
