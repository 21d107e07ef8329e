"""Save a trained :class:`scaling.model.GPT` in transformers format (``save_pretrained``).

The mapping is exact: ``AutoModelForCausalLM.from_pretrained(path)`` reproduces the logits of the training module
(a test checks fp32 max |Δ| ≤ 1e-4). Fused weights are split back into transformers' separate projections,
the rotary pairs of q and k are reordered into transformers' layout, and GPT-2's ``Conv1D`` stores weights
transposed. A μP model's multipliers are folded into weights, so that the exported model is a standard one: the
attention scale's extra 1/sqrt(width_mult) into q (scores are bilinear in q and k), the logits' 1/width_mult into
the output layer, which is then stored untied from the embedding.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel,
                          PreTrainedTokenizerFast)

from scaling.config import ModelConfig
from scaling.model import GPT


def tied_on_export(m: ModelConfig) -> bool:
    """Whether the exported output layer is the embedding: not under μP, whose logit multiplier is folded into it."""
    return m.tie_embeddings and m.mup_base_width is None


def hf_config(m: ModelConfig, eos_token_id: int | None) -> LlamaConfig | GPT2Config:
    common = dict(vocab_size=m.vocab_size, tie_word_embeddings=tied_on_export(m), bos_token_id=eos_token_id,
                  eos_token_id=eos_token_id, pad_token_id=None)
    if m.arch == "llama":
        return LlamaConfig(hidden_size=m.d_model, intermediate_size=m.ffn_dim, num_hidden_layers=m.num_layers,
                           num_attention_heads=m.num_heads, num_key_value_heads=m.num_heads,
                           max_position_embeddings=m.seq_len, rms_norm_eps=m.norm_eps,
                           rope_parameters={"rope_type": "default", "rope_theta": m.rope_theta},
                           attention_bias=False, mlp_bias=False, hidden_act="silu", **common)
    return GPT2Config(n_positions=m.seq_len, n_embd=m.d_model, n_layer=m.num_layers, n_head=m.num_heads,
                      n_inner=m.ffn_dim, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, layer_norm_epsilon=m.norm_eps, **common)


def half_split_rows(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """q or k rows from the adjacent rotary pairs of scaling.model ((2j, 2j+1) in each head) to transformers'
    Llama layout (j, j + head_dim/2)."""
    rows, cols = weight.shape
    return weight.view(num_heads, rows // num_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def hf_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our parameter names and layouts → transformers'."""
    m, sd = model.cfg, {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    q_scale = math.sqrt(1 / m.width_mult)  # μP's attention scale beyond transformers' 1/sqrt(head_dim); 1 otherwise
    out: dict[str, torch.Tensor] = {}
    if m.arch == "llama":
        out["model.embed_tokens.weight"] = sd["tok_emb.weight"]
        out["model.norm.weight"] = sd["norm.weight"]
        for i in range(m.num_layers):
            src, dst = f"blocks.{i}.", f"model.layers.{i}."
            q, k, v = sd[src + "attn.qkv.weight"].chunk(3, dim=0)
            q, k = half_split_rows(q, m.num_heads) * q_scale, half_split_rows(k, m.num_heads)
            gate, up = sd[src + "mlp.up.weight"].chunk(2, dim=0)
            out |= {
                dst + "input_layernorm.weight": sd[src + "norm1.weight"],
                dst + "post_attention_layernorm.weight": sd[src + "norm2.weight"],
                dst + "self_attn.q_proj.weight": q, dst + "self_attn.k_proj.weight": k,
                dst + "self_attn.v_proj.weight": v, dst + "self_attn.o_proj.weight": sd[src + "attn.proj.weight"],
                dst + "mlp.gate_proj.weight": gate, dst + "mlp.up_proj.weight": up,
                dst + "mlp.down_proj.weight": sd[src + "mlp.down.weight"],
            }
    else:
        out["transformer.wte.weight"] = sd["tok_emb.weight"]
        out["transformer.wpe.weight"] = sd["pos_emb.weight"]
        out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = sd["norm.weight"], sd["norm.bias"]
        pairs = {"norm1": "ln_1", "norm2": "ln_2"}
        linears = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "mlp.up": "mlp.c_fc",
                   "mlp.down": "mlp.c_proj"}
        for i in range(m.num_layers):
            src, dst = f"blocks.{i}.", f"transformer.h.{i}."
            for ours, theirs in pairs.items():
                out[dst + theirs + ".weight"] = sd[src + ours + ".weight"]
                out[dst + theirs + ".bias"] = sd[src + ours + ".bias"]
            for ours, theirs in linears.items():
                out[dst + theirs + ".weight"] = sd[src + ours + ".weight"].t().contiguous()  # Conv1D is (in, out)
                out[dst + theirs + ".bias"] = sd[src + ours + ".bias"]
            q_rows = slice(0, m.d_model)  # c_attn's outputs are [q, k, v]
            out[dst + "attn.c_attn.weight"][:, q_rows] *= q_scale
            out[dst + "attn.c_attn.bias"][q_rows] *= q_scale
    out["lm_head.weight"] = sd["lm_head.weight"] / m.width_mult
    return out


def to_transformers(model: GPT, eos_token_id: int | None) -> PreTrainedModel:
    config = hf_config(model.cfg, eos_token_id)
    hf = (LlamaForCausalLM if model.cfg.arch == "llama" else GPT2LMHeadModel)(config)
    missing, unexpected = hf.load_state_dict(hf_state_dict(model), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and tied_on_export(model.cfg))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping is incomplete: missing={missing} unexpected={unexpected}")
    if tied_on_export(model.cfg):
        hf.tie_weights()
    return hf.eval()


def save_transformers(model: GPT, tokenizer_file: Path, eos_token: str | None, out_dir: Path) -> Path:
    """Write model and tokenizer so that the Auto* classes load both from ``out_dir``."""
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), eos_token=eos_token)
    hf = to_transformers(model, tokenizer.eos_token_id)
    hf.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
