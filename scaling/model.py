"""A small pre-norm decoder-only transformer with an exact weight mapping onto transformers.

Two variants share one module: ``llama`` (RMSNorm, SwiGLU, rotary positions, no biases) and ``gpt2`` (LayerNorm,
GELU, learned positions, biases). The module is written for speed (fused q/k/v and gate/up projections,
``scaled_dot_product_attention``, fused norm kernels) and is exported to ``LlamaForCausalLM`` /
``GPT2LMHeadModel`` by :mod:`scaling.export`, which splits the fused weights back out.

Initialisation (seeded by the caller): every weight matrix and embedding ~ N(0, init_std²); the two residual
projections of each block (attention output, MLP down) ~ N(0, (init_std / sqrt(2·num_layers))²) so the residual
stream's variance does not grow with depth (GPT-2, Radford et al. 2019, §2.3); biases 0, norm gains 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from scaling.config import ModelConfig


def rope_tables(head_dim: int, seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (seq_len, head_dim) in the half-split layout transformers' Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        bias = cfg.arch == "gpt2"
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=bias)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if rope is not None:  # in the activations' dtype: under autocast, fp32 tables would upcast q and k
            cos, sin = rope[0][:seq].to(q.dtype), rope[1][:seq].to(q.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, seq, width))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.arch == "llama"
        hidden = cfg.ffn_dim
        # SwiGLU keeps gate and up in one matrix (rows [0, hidden) gate, [hidden, 2·hidden) up): one matmul.
        self.up = nn.Linear(cfg.d_model, 2 * hidden if self.swiglu else hidden, bias=not self.swiglu)
        self.down = nn.Linear(hidden, cfg.d_model, bias=not self.swiglu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(h))


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.arch == "llama" else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), Attention(cfg)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.arch == "gpt2" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        if cfg.arch == "llama":
            cos, sin = rope_tables(cfg.head_dim, cfg.seq_len, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.num_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                (nn.init.ones_ if name.endswith("norm1.weight") or name.endswith("norm2.weight")
                 or name == "norm.weight" else nn.init.zeros_)(p)
            elif name.endswith("attn.proj.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(p, 0.0, residual_std)
            else:
                nn.init.normal_(p, 0.0, std)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states, shape (batch, seq, d_model)."""
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[: idx.shape[1]]
        rope = (self.rope_cos, self.rope_sin) if self.cfg.arch == "llama" else None
        for block in self.blocks:
            x = block(x, rope)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape (batch, seq, vocab), or the mean cross-entropy when ``targets`` is given."""
        logits = self.lm_head(self.hidden(idx))
        if targets is None:
            return logits
        logits, targets = logits.view(-1, logits.shape[-1]), targets.reshape(-1)
        if logits.dtype == torch.float32:
            return F.cross_entropy(logits, targets)
        # Low-precision logits: the loss is taken in fp32 one chunk of rows at a time and recomputed in backward, so
        # no fp32 copy of every logit is held (at a 32K vocabulary it outweighs the model's other activations).
        total = sum(checkpoint(_chunk_loss, chunk, chunk_targets, use_reentrant=False)
                    for chunk, chunk_targets in zip(logits.split(LOSS_CHUNK_ROWS), targets.split(LOSS_CHUNK_ROWS)))
        return total / targets.numel()


LOSS_CHUNK_ROWS = 4096


def _chunk_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), targets, reduction="sum")
