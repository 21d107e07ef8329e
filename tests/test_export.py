"""transformers interop: the exported model loads with the Auto classes and gives the same logits."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from scaling.config import ModelConfig
from scaling.data import train_tokenizer
from scaling.export import save_transformers
from scaling.model import GPT

BASE = ModelConfig(arch="llama", num_layers=2, d_model=64, num_heads=4, d_ff=None, ffn_ratio=8 / 3, seq_len=32,
                   vocab_size=300, tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4,
                   mup_base_width=None)


# μP at 4x its base width: its attention and logit multipliers are folded into the exported weights.
@pytest.mark.parametrize("arch,tied,mup_base_width", [("llama", True, None), ("llama", False, None),
                                                      ("gpt2", True, None), ("gpt2", False, None),
                                                      ("llama", True, 16), ("gpt2", True, 16), ("llama", False, 16)])
def test_round_trip_gives_identical_logits(tmp_path, arch, tied, mup_base_width):
    cfg = dataclasses.replace(BASE, arch=arch, tie_embeddings=tied, ffn_ratio=4.0 if arch == "gpt2" else 8 / 3,
                              mup_base_width=mup_base_width)
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    with torch.no_grad():  # non-trivial norm gains and biases, so the mapping of each is exercised
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    tokenizer = train_tokenizer(["hello world, a small corpus for a test. " * 50], "bpe", cfg.vocab_size)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    out = save_transformers(model, tmp_path / "tokenizer.json", "<|endoftext|>", tmp_path / "hf")

    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    batch = torch.randint(0, cfg.vocab_size, (3, cfg.seq_len))
    with torch.no_grad():
        ours, theirs = model(batch), loaded(batch).logits
    assert (ours - theirs).abs().max().item() <= 1e-4

    hf_tokenizer = AutoTokenizer.from_pretrained(out)
    ids = hf_tokenizer("hello world")["input_ids"]
    assert hf_tokenizer.decode(ids) == "hello world"
    assert hf_tokenizer.eos_token == "<|endoftext|>"
