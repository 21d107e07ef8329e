"""Inference FLOPs from the model config alone, for what this study actually runs.

* a generated token at context c: 2·N_matmul + 4·L·d·c (Kaplan et al. 2020, Table 1: the matmuls plus QKᵀ and AV
  over the cached context);
* a prefill of T prompt tokens: T·(2·N_matmul − 2·V·d) + 2·V·d + 4·L·d·T² — every position runs the blocks
  with full (unmasked-count) attention, and only the last position runs the output layer, as generation does;
* prefill is **not** shared across samples here: ``generate(num_return_sequences=k)`` repeats the prompt k times;
* a verifier score of a sequence of T tokens: T·2·N_v + 4·L_v·d_v·T² (the trunk and its head, no output layer);
* beam search pays each step's prefill of the whole beam prefix again (no cache is kept between steps).

A test cross-checks ``generation_flops`` against ``torch.utils.flop_counter.FlopCounterMode`` on a real generate
call.
"""

from __future__ import annotations

from scaling.config import ModelConfig
from scaling.flops import count_params, inference_flops_per_token, matmul_params


def prefill_flops(m: ModelConfig, prompt_len: int) -> float:
    output_layer = 2.0 * m.vocab_size * m.d_model
    return (prompt_len * (2.0 * matmul_params(m) - output_layer) + output_layer
            + 4.0 * m.num_layers * m.d_model * prompt_len**2)


def generation_flops(m: ModelConfig, prompt_len: int, new_tokens: int, sequences: int) -> float:
    """``sequences`` independent generations of ``new_tokens`` after a ``prompt_len``-token prompt."""
    decode = sum(inference_flops_per_token(m, prompt_len + j + 1) for j in range(new_tokens - 1))
    return sequences * (prefill_flops(m, prompt_len) + decode)


def verifier_flops(v: ModelConfig, seq_len: int, sequences: int) -> float:
    per_sequence = (seq_len * 2.0 * (count_params(v).non_embedding + v.d_model)
                    + 4.0 * v.num_layers * v.d_model * seq_len**2)
    return sequences * per_sequence
