"""Inference FLOPs from the model config alone, for what this study runs, under one convention: a KV cache.

* every token a sequence feeds costs 2·N_matmul + 4·L·d·c at context c (Kaplan et al. 2020, Table 1: the matmuls
  plus QKᵀ and AV over the cached context), written or given alike — a template's given characters are fed too;
* a prompt is prefilled once per problem and its cache shared by all the problem's samples:
  T·(2·N_matmul − 2·V·d) + 2·V·d + 4·L·d·T² (every position runs the blocks, only the last the output layer);
* a search keeps each candidate's cache, so a line is paid once however long its prefix;
* a verifier token costs 2·(N_v + d) + 4·L_v·d_v·c (its blocks and its scalar head, no output layer), and a PRM
  that scores a candidate extends its parent's cache;
* a verifier that reads the policy's log-probabilities takes them from the sampler, which computed the output layer
  at every completion position; only the prompt's positions before its last add 2·V·d each, once per problem.

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


def decode_flops(m: ModelConfig, context: int, new_tokens: int, sequences: int) -> float:
    """``sequences`` sequences each feeding ``new_tokens`` tokens after ``context`` cached ones."""
    return sequences * sum(inference_flops_per_token(m, context + j) for j in range(1, new_tokens + 1))


def generation_flops(m: ModelConfig, prompt_len: int, new_tokens: int, sequences: int) -> float:
    """``sequences`` independent generate calls of ``new_tokens`` after a ``prompt_len``-token prompt (the last
    token is written, not fed)."""
    return sequences * (prefill_flops(m, prompt_len) + decode_flops(m, prompt_len, new_tokens - 1, 1))


def score_flops(v: ModelConfig, context: int, new_tokens: int, sequences: int) -> float:
    """A verifier reading ``new_tokens`` tokens after ``context`` cached ones, for ``sequences`` sequences."""
    per_token = 2.0 * (count_params(v).non_embedding + v.d_model)
    return sequences * sum(per_token + 4.0 * v.num_layers * v.d_model * (context + j)
                           for j in range(1, new_tokens + 1))


def sampling_flops(m: ModelConfig, prompt_len: int, completion_len: int, samples: int) -> float:
    """``samples`` full solutions of one problem: one prefill, then every completion token fed once."""
    return prefill_flops(m, prompt_len) + decode_flops(m, prompt_len, completion_len, samples)


def scoring_flops(v: ModelConfig, prompt_len: int, completion_len: int, samples: int,
                  likelihood_of: ModelConfig | None) -> float:
    """A verifier judging ``samples`` full solutions of one problem (the prompt read once); ``likelihood_of``: the
    policy whose log-probabilities it reads, if it does."""
    prompt_logprobs = 0.0 if likelihood_of is None else (
        2.0 * likelihood_of.vocab_size * likelihood_of.d_model * (prompt_len - 1))
    return score_flops(v, 0, prompt_len, 1) + score_flops(v, prompt_len, completion_len, samples) + prompt_logprobs
