"""Parameter and FLOP counts from the model config alone (no model is built, no torch imported).

Every scaling law is only as good as the N and C it was fitted on, and papers disagree on both. This module
records all the common conventions so a fit can name the one it used:

* parameters: ``embedding`` (token + learned position tables), ``non_embedding`` (transformer blocks and final
  norm: Kaplan et al.'s N), ``lm_head`` (the output projection when it is *not* tied; 0 when tied), ``total``.
* training FLOPs per token (forward + backward):

  ``kaplan``       6 · N_non-embedding                         Kaplan et al. 2020, §2.1 (C ≈ 6N)
  ``6n``           6 · N_total                                 the "standard" 6N with every parameter
  ``6n_attention`` 6 · N_matmul + 12 · L · d_model · seq_len   PaLM (Chowdhery et al. 2022), App. B; OLMo
  ``chinchilla``   3 × the forward count of App. F            Hoffmann et al. 2022, Appendix F

  where N_matmul = non-embedding params + vocab · d_model (the output projection runs whether or not it is tied;
  the input embedding is a lookup, not a matmul). ``6n_attention`` counts every matmul the model defines, so it is
  used for MFU (PaLM's definition).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from scaling.config import ModelConfig

FLOP_CONVENTIONS: tuple[str, ...] = ("kaplan", "6n", "6n_attention", "chinchilla")
PARAM_CONVENTIONS: tuple[str, ...] = ("non_embedding", "total", "embedding", "lm_head")


@dataclass(frozen=True)
class ParamCounts:
    embedding: int
    non_embedding: int
    lm_head: int
    total: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def count_params(m: ModelConfig) -> ParamCounts:
    """Exact parameter counts of :class:`scaling.model.GPT` built from ``m`` (a test checks this)."""
    d, ff = m.d_model, m.ffn_dim
    if m.arch == "llama":
        attn = 3 * d * d + d * d  # fused q/k/v, output projection; no biases
        mlp = 3 * d * ff  # gate, up, down (SwiGLU)
        norms = 2 * d  # two RMSNorm weights
        final_norm = d
        embedding = m.vocab_size * d
    else:
        attn = (3 * d * d + 3 * d) + (d * d + d)
        mlp = (d * ff + ff) + (ff * d + d)
        norms = 2 * 2 * d  # two LayerNorms with weight and bias
        final_norm = 2 * d
        embedding = m.vocab_size * d + m.seq_len * d
    non_embedding = m.num_layers * (attn + mlp + norms) + final_norm
    lm_head = 0 if m.tie_embeddings else m.vocab_size * d
    return ParamCounts(embedding=embedding, non_embedding=non_embedding, lm_head=lm_head,
                       total=embedding + non_embedding + lm_head)


def matmul_params(m: ModelConfig) -> int:
    """Weights that take part in a matmul per token: blocks, final norm and the output projection."""
    return count_params(m).non_embedding + m.vocab_size * m.d_model


def _chinchilla_forward_flops_per_sequence(m: ModelConfig) -> float:
    """Hoffmann et al. 2022, Appendix F, with the MLP term generalised to SwiGLU's three matrices."""
    s, d, v, h = m.seq_len, m.d_model, m.vocab_size, m.num_heads
    attn_width = m.head_dim * h
    embeddings = 2 * s * v * d
    attention = (
        2 * 3 * s * d * attn_width  # key, query and value projections
        + 2 * s * s * attn_width  # key @ query logits
        + 3 * h * s * s  # softmax
        + 2 * s * s * attn_width  # softmax @ value reduction
        + 2 * s * attn_width * d  # final linear
    )
    num_mlp_matrices = 3 if m.arch == "llama" else 2
    dense = 2 * s * num_mlp_matrices * d * m.ffn_dim
    logits = 2 * s * d * v
    return embeddings + m.num_layers * (attention + dense) + logits


def flops_per_token(m: ModelConfig, convention: str) -> float:
    """Training FLOPs (forward + backward) per token under ``convention`` (see the module docstring)."""
    p = count_params(m)
    if convention == "kaplan":
        return 6.0 * p.non_embedding
    if convention == "6n":
        return 6.0 * p.total
    if convention == "6n_attention":
        # PaLM App. B: 6N + 12·L·H·Q·T, with H·Q = d_model; the causal mask's unused half is counted, as PaLM's
        # MFU and the FLOP counter count it, whether or not a kernel skips it (scaling.model.causal_attention skips
        # part of it on CPU).
        return 6.0 * matmul_params(m) + 12.0 * m.num_layers * m.head_dim * m.num_heads * m.seq_len
    if convention == "chinchilla":
        return 3.0 * _chinchilla_forward_flops_per_sequence(m) / m.seq_len
    raise ValueError(f"unknown FLOP convention {convention!r}; use one of {', '.join(FLOP_CONVENTIONS)}")


def all_flops_per_token(m: ModelConfig) -> dict[str, float]:
    return {c: flops_per_token(m, c) for c in FLOP_CONVENTIONS}


def inference_flops_per_token(m: ModelConfig, context_len: int) -> float:
    """Forward FLOPs of one generated token at a given context length: 2·N_matmul + 4·L·d_model·context
    (QKᵀ and AV over the cached context), following Kaplan et al. 2020, Table 1."""
    return 2.0 * matmul_params(m) + 4.0 * m.num_layers * m.d_model * context_len
