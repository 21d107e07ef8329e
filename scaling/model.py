"""A small pre-norm decoder-only transformer with an exact weight mapping onto transformers.

Two variants share one module: ``llama`` (RMSNorm, SwiGLU, rotary positions, no biases) and ``gpt2`` (LayerNorm,
GELU, learned positions, biases). The module is written for speed (fused q/k/v and gate/up projections,
``scaled_dot_product_attention``, on CPU in query blocks that skip most of the causal mask, rotary positions as one
complex product over q and k together, and backward passes written by hand for the rotation, SwiGLU, RMSNorm and the
query blocks, so each writes its gradient once instead of assembling it from pieces) and is exported to
``LlamaForCausalLM`` / ``GPT2LMHeadModel`` by :mod:`scaling.export`, which splits the fused weights back out.

Initialisation (seeded by the caller): every weight matrix and embedding ~ N(0, init_std²); the two residual
projections of each block (attention output, MLP down) ~ N(0, (init_std / sqrt(2·num_layers))²) so the residual
stream's variance does not grow with depth (GPT-2, Radford et al. 2019, §2.3); biases 0, norm gains 1.

μP (``mup_base_width`` set; Yang et al. 2022, "Tensor Programs V", Table 3 and §D for transformers), with
m = d_model / mup_base_width: the matrices inside the blocks start with std / sqrt(m) (variance ∝ 1/fan_in);
embeddings keep theirs; the logits are multiplied by 1/m (the output layer's multiplier, so the output layer and
the embedding it may share keep one init and learning rate); attention scores are scaled by 1/(sqrt(head_dim)·
sqrt(m)), i.e. ∝ 1/head_dim as widths grow at a fixed head count. The per-tensor learning rates are in
scaling.optim. At m = 1 the model is the standard one.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from scaling.config import ModelConfig


def rope_frequencies(head_dim: int, seq_len: int, theta: float) -> torch.Tensor:
    """e^{i·m·θ_j} for position m and pair j, θ_j = theta^(−2j/head_dim) (Su et al. 2021, RoFormer eq. 34), stored
    as real (seq_len, head_dim/2, 2) so that casting the module's dtype cannot drop the imaginary part."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return torch.view_as_real(torch.polar(torch.ones_like(angles), angles))


def qk_frequencies(freqs: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(seq_len, head_dim/2, 2) rotations as (seq_len, 2, num_heads, head_dim/2, 2) for the q and k parts of a fused
    (batch, seq, 3, heads, head_dim) projection. Stored for every head: a product that broadcasts only over the batch
    runs on contiguous rows (about 1.7x faster here than broadcasting over heads)."""
    return freqs.unsqueeze(1).unsqueeze(2).expand(-1, 2, num_heads, -1, -1).contiguous()


def adjacent_pair_rows(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """q or k rows from transformers' Llama layout (rotary pair j with j + head_dim/2 in each head) to the adjacent
    pairs (2j, 2j+1) this module rotates; scaling.export.half_split_rows is its inverse."""
    rows, cols = weight.shape
    return weight.view(num_heads, 2, rows // num_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (2j, 2j+1) of the last dimension of ``x`` (batch, seq, ..., head_dim) by its position's
    angle: one complex multiplication, in fp32, returned in the activations' dtype.

    The pairs are adjacent here; transformers' Llama pairs j with j + head_dim/2. The two layouts differ by a
    permutation of each head's q and k rows, which leaves every q·k unchanged: scaling.export applies it."""
    freqs = freqs.float()[: x.shape[1]]
    if freqs.dim() != x.dim():  # (seq, head_dim/2, 2): the same rotation for every dimension in between
        freqs = freqs.view(freqs.shape[0], *(1,) * (x.dim() - 3), *freqs.shape[1:])
    pairs = x.float().unflatten(-1, (-1, 2))
    if torch.compiler.is_compiling():  # inductor fuses real arithmetic into one kernel; it has no complex codegen
        re, im, cos, sin = pairs[..., 0], pairs[..., 1], freqs[..., 0], freqs[..., 1]
        rotated = torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1)
    else:
        rotated = torch.view_as_real(torch.view_as_complex(pairs) * torch.view_as_complex(freqs))
    return rotated.flatten(-2).to(x.dtype)


def rotary_qkv(qkv: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q and k of a fused (batch, seq, 3, heads, head_dim) projection rotated by ``freqs`` (from qk_frequencies), and
    v, each as (batch, heads, seq, head_dim) for scaled_dot_product_attention."""
    if torch.compiler.is_compiling():  # inductor fuses the rotation and autograd's backward of it
        return _split_rotated(qkv, freqs)
    return _RotaryQKV.apply(qkv, freqs)


def _split_rotated(qkv: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k = apply_rope(qkv[:, :, :2], freqs).permute(2, 0, 3, 1, 4)
    return q, k, qkv[:, :, 2].transpose(1, 2)


class _RotaryQKV(torch.autograd.Function):
    """Backward writes the three gradients into one tensor of the projection's layout. Autograd's own backward of the
    same forward stacks q's and k's gradients, rotates them and copies the result back beside v's (three passes over
    the projection's activations instead of one)."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, freqs: torch.Tensor):  # type: ignore[override]
        ctx.save_for_backward(freqs)
        ctx.qkv_shape = qkv.shape
        return _split_rotated(qkv, freqs)

    @staticmethod
    def backward(ctx, grad_q: torch.Tensor, grad_k: torch.Tensor, grad_v: torch.Tensor):  # type: ignore[override]
        (freqs,) = ctx.saved_tensors
        inverse = freqs * freqs.new_tensor([1.0, -1.0])  # the conjugate rotation undoes it
        grad = grad_v.new_empty(ctx.qkv_shape)
        grad[:, :, 0] = apply_rope(grad_q.transpose(1, 2), inverse[:, 0])
        grad[:, :, 1] = apply_rope(grad_k.transpose(1, 2), inverse[:, 1])
        grad[:, :, 2] = grad_v.transpose(1, 2)
        return grad, None


def attention_scale(cfg: ModelConfig) -> float:
    """Scale of the attention scores: 1/sqrt(head_dim), and under μP a further 1/sqrt(width_mult)."""
    return 1.0 / math.sqrt(cfg.head_dim * cfg.width_mult)


def is_hidden_matrix(name: str, p: torch.Tensor) -> bool:
    """A weight matrix inside the blocks: both its dimensions grow with width (μP's "hidden weights")."""
    return p.dim() >= 2 and name.startswith("blocks.")


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Causal scaled_dot_product_attention of (batch, heads, seq, head_dim) tensors, returned as (batch, seq, heads,
    head_dim): the layout the output projection reads, so its reshape copies nothing.

    On CPU the queries go in blocks of a quarter of the sequence (64 rows at least), each against the keys up to its
    own last row. The CPU flash kernel reads keys in blocks of up to 512 and computes every key of a block, masked or
    not: in one call at sequence 256 it computes the masked half of the scores too, forward and backward."""
    seq = q.shape[2]
    rows = max(64, seq // 4)
    if q.device.type != "cpu" or seq <= rows:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale).transpose(1, 2)
    spans = [(start, min(start + rows, seq)) for start in range(0, seq, rows)]
    if torch.compiler.is_compiling():  # inductor traces the blocks and autograd's backward of them
        return _blocks_by_autograd(q, k, v, scale, spans)
    return _CausalBlocks.apply(q, k, v, scale, spans)


def _blocks_by_autograd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,
                        spans: list[tuple[int, int]]) -> torch.Tensor:
    """The query blocks as plain ops, differentiated by autograd: what torch.compile traces, and the reference
    _CausalBlocks must equal bit for bit (tests/test_model.py)."""
    blocks = [F.scaled_dot_product_attention(q[:, :, start:end], k[:, :, :end], v[:, :, :end],
                                             attn_mask=_visible(start, end, q.device) if start else None,
                                             is_causal=start == 0, scale=scale) for start, end in spans]
    return torch.cat([block.transpose(1, 2) for block in blocks], dim=1)


def _visible(start: int, end: int, device: torch.device) -> torch.Tensor:
    """Row i of the query block [start, end) is query start + i: it sees keys 0..start + i."""
    return torch.ones(end - start, end, dtype=torch.bool, device=device).tril(start)


@functools.lru_cache(maxsize=64)
def _additive_mask(start: int, end: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """_visible as the additive mask scaled_dot_product_attention makes of a boolean one (0 or -inf in the queries'
    dtype), made once per block shape instead of once per call."""
    return torch.where(_visible(start, end, device), 0.0, float("-inf")).to(dtype)


_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default


class _CausalBlocks(torch.autograd.Function):
    """The query blocks as calls of the flash kernel that scaled_dot_product_attention makes on CPU, and its backward,
    with the same arguments: the same outputs and gradients to the bit. Backward writes q's gradient into one tensor
    and adds each block's k and v gradients into the last block's, over the keys that block saw, in the order
    autograd would; autograd's own backward pads every block's k and v gradients with zeros to the whole sequence
    first (a zeroed copy per block and layer) and joins q's with a concatenation."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None,  # type: ignore[override]
                spans: list[tuple[int, int]]) -> torch.Tensor:
        batch, heads, seq, head_dim = q.shape
        out = q.new_empty(batch, seq, heads, head_dim)
        per_block = []
        for start, end in spans:
            mask = _additive_mask(start, end, q.dtype, q.device) if start else None
            block, logsumexp = _flash(q[:, :, start:end], k[:, :, :end], v[:, :, :end], 0.0, start == 0,
                                      attn_mask=mask, scale=scale)
            out[:, start:end] = block.transpose(1, 2)
            per_block += [block, logsumexp]
        ctx.save_for_backward(q, k, v, *per_block)
        ctx.scale, ctx.spans = scale, spans
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        q, k, v, *per_block = ctx.saved_tensors
        # Contiguous, as autograd's concatenation makes it: the rotation's backward rounds by its input's layout.
        grad_q, grad_k, grad_v = q.new_empty(q.shape), None, None
        # Autograd runs the blocks' backward from the last block to the first and adds their gradients in that order.
        for i, (start, end) in reversed(list(enumerate(ctx.spans))):
            mask = _additive_mask(start, end, q.dtype, q.device) if start else None
            block_q, block_k, block_v = _flash_backward(
                grad_out[:, start:end].transpose(1, 2), q[:, :, start:end], k[:, :, :end], v[:, :, :end],
                per_block[2 * i], per_block[2 * i + 1], 0.0, start == 0, attn_mask=mask, scale=ctx.scale)
            grad_q[:, :, start:end] = block_q
            if grad_k is None:  # the last block saw every key
                grad_k, grad_v = block_k, block_v
            else:
                grad_k[:, :, :end] += block_k
                grad_v[:, :, :end] += block_v
        return grad_q, grad_k, grad_v, None, None


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        bias = cfg.arch == "gpt2"
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        # μP: q·k grows with head_dim once q and k correlate, so scores scale as 1/head_dim (None: sdpa's default).
        self.scale = None if cfg.mup_base_width is None else attention_scale(cfg)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=bias)

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None) -> torch.Tensor:
        batch, seq, width = x.shape
        qkv = self.qkv(x).view(batch, seq, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4) if rope is None else rotary_qkv(qkv, rope)
        return self.proj(causal_attention(q, k, v, self.scale).reshape(batch, seq, width))


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
        if not self.swiglu:
            return self.down(F.gelu(h))
        if torch.compiler.is_compiling():  # inductor fuses autograd's backward
            gate, up = h.chunk(2, dim=-1)
            return self.down(F.silu(gate) * up)
        return self.down(_SwiGLU.apply(h))


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up of the fused (..., 2·hidden) projection, gate first. Backward writes both halves of the
    gradient into one tensor; autograd's backward of ``chunk`` concatenates them, a copy of the widest activation."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        gate, up = h.chunk(2, dim=-1)
        silu_gate = F.silu(gate)
        ctx.save_for_backward(h, silu_gate)
        return silu_gate * up

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h, silu_gate = ctx.saved_tensors
        gate, up = h.chunk(2, dim=-1)
        grad = torch.empty_like(h)
        grad_gate, grad_up = grad.chunk(2, dim=-1)
        torch.mul(grad_out, silu_gate, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad_out * up, gate, grad_input=grad_gate)
        return grad


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # inductor fuses F.rms_norm's composite ops
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return _RMSNorm.apply(x, self.weight, self.eps)


class _RMSNorm(torch.autograd.Function):
    """x · rsqrt(mean(x²) + eps) · weight (Zhang & Sennrich 2019, eq. 4) in fp32, returned in x's dtype, as
    transformers' LlamaRMSNorm computes it. On CPU ``F.rms_norm`` is a composite whose autograd backward takes about
    twice as many passes over the activations; here mean(x²) is one norm reduction, and backward's two reductions are
    matrix-vector products over one product g·x."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        x32 = x.float()
        mean_square = torch.linalg.vector_norm(x32, dim=-1, keepdim=True).square_().div_(x.shape[-1])
        rstd = torch.rsqrt(mean_square.add_(eps))
        ctx.save_for_backward(x, weight, rstd)
        return torch.mul(x32, rstd).mul_(weight).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight, rstd = ctx.saved_tensors
        x32, grad32, weight32 = x.float(), grad_out.float(), weight.float()
        # y = x̂·w with x̂ = x·r, r = rsqrt(mean(x²) + eps): dL/dx = r·g·w − x·r³·mean(g·w·x), dL/dw = Σ g·x̂.
        grad_times_x = (grad32 * x32).flatten(0, -2)
        row_dot = (grad_times_x @ weight32).view_as(rstd)  # Σ_j g·w·x per row
        grad_weight = grad_times_x.T @ rstd.flatten()  # Σ_rows g·x·r
        grad_x = (grad32 * weight32).mul_(rstd).addcmul_(x32, row_dot * rstd.pow(3) / -x.shape[-1])
        return grad_x.to(x.dtype), grad_weight.to(weight.dtype), None


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.arch == "llama" else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), Attention(cfg)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None) -> torch.Tensor:
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
            rope = rope_frequencies(cfg.head_dim, cfg.seq_len, cfg.rope_theta)
            self.register_buffer("rope", qk_frequencies(rope, cfg.num_heads), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        hidden_std = std / math.sqrt(self.cfg.width_mult)
        residual_std = hidden_std / math.sqrt(2 * self.cfg.num_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                (nn.init.ones_ if name.endswith("norm1.weight") or name.endswith("norm2.weight")
                 or name == "norm.weight" else nn.init.zeros_)(p)
            elif name.endswith("attn.proj.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(p, 0.0, residual_std)
            else:
                nn.init.normal_(p, 0.0, hidden_std if is_hidden_matrix(name, p) else std)
        if self.cfg.arch == "llama":
            # Drawn in transformers' layout and reordered, so a seed gives the same model whichever layout is used.
            for block in self.blocks:
                q, k, v = block.attn.qkv.weight.chunk(3, dim=0)
                heads = self.cfg.num_heads
                block.attn.qkv.weight.copy_(torch.cat([adjacent_pair_rows(q, heads), adjacent_pair_rows(k, heads), v]))

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final normalised hidden states, shape (batch, seq, d_model)."""
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb.weight[: idx.shape[1]]
        rope = self.rope if self.cfg.arch == "llama" else None
        for block in self.blocks:
            x = block(x, rope)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of shape (batch, seq, vocab), or the mean cross-entropy when ``targets`` is given."""
        logits = self.lm_head(self.hidden(idx))
        if self.cfg.mup_base_width is not None:
            logits = logits / self.cfg.width_mult
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
