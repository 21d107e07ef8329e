"""The model's loss under autocast: fp32 cross-entropy in chunks (no full fp32 copy of the logits) equals the plain
one, and RoPE stays in the activations' dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scaling import model as model_module
from scaling.export import half_split_rows
from scaling.model import GPT, adjacent_pair_rows
from tests.conftest import make_config


def test_chunked_low_precision_loss_equals_the_plain_fp32_loss(tmp_path, monkeypatch):
    cfg, _ = make_config(tmp_path)
    torch.manual_seed(0)
    net = GPT(cfg.model)
    batch = torch.randint(0, cfg.model.vocab_size, (4, cfg.model.seq_len + 1))
    monkeypatch.setattr(model_module, "LOSS_CHUNK_ROWS", 50)  # several chunks and a ragged last one
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chunked = net(batch[:, :-1], batch[:, 1:])
        logits = net(batch[:, :-1])
    assert logits.dtype == torch.bfloat16
    plain = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    assert torch.allclose(chunked, plain, rtol=1e-5)
    chunked.backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(batch[:, :-1])
    F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).backward()
    for name, p in net.named_parameters():
        assert torch.allclose(grads[name], p.grad, rtol=1e-3, atol=1e-6), name


def test_rope_keeps_the_activation_dtype(tmp_path, monkeypatch):
    cfg, _ = make_config(tmp_path)
    net = GPT(cfg.model)
    seen = []
    rope = model_module.apply_rope

    def recording(x, freqs):
        out = rope(x, freqs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(model_module, "apply_rope", recording)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randint(0, cfg.model.vocab_size, (2, cfg.model.seq_len)))
    assert seen and set(seen) == {torch.bfloat16}  # fp32 tables would have upcast q and k to fp32


def test_q_k_rows_move_between_the_two_rotary_layouts_and_back():
    w = torch.randn(2 * 8, 5)  # two heads of eight dimensions
    assert torch.equal(half_split_rows(adjacent_pair_rows(w, 2), 2), w)
    assert torch.equal(adjacent_pair_rows(w, 2)[1], w[4])  # pair 0's second element: row head_dim/2 in transformers'


def test_the_compiled_rotation_is_the_eager_one(monkeypatch):
    x, freqs = torch.randn(2, 6, 2, 3, 8), model_module.rope_frequencies(8, 6, 1e4)
    eager = model_module.apply_rope(x, freqs)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the real-arithmetic path inductor fuses
    assert torch.allclose(model_module.apply_rope(x, freqs), eager, atol=1e-6)


def test_the_fused_rotation_turns_q_and_k_and_leaves_v_exactly(monkeypatch):
    freqs, heads = model_module.rope_frequencies(8, 6, 1e4), 3
    qkv = torch.randn(2, 6, 3, heads, 8)
    fused = model_module.apply_rope(qkv, model_module.qkv_frequencies(freqs, heads))
    # q and k as the per-tensor rotation gives them (a vectorised loop may round the last bit differently); v exact.
    assert torch.allclose(fused[:, :, :2], model_module.apply_rope(qkv[:, :, :2], freqs), rtol=0, atol=1e-6)
    assert torch.equal(fused[:, :, 2], qkv[:, :, 2])
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert torch.allclose(model_module.apply_rope(qkv, model_module.qkv_frequencies(freqs, heads)), fused, atol=1e-6)
