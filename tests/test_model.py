"""The model's loss under autocast: fp32 cross-entropy in chunks (no full fp32 copy of the logits) equals the plain
one, and RoPE stays in the activations' dtype."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scaling import model as model_module
from scaling.config import ModelConfig
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


def test_the_fused_rotation_turns_q_and_k_and_passes_v_exactly():
    freqs, heads = model_module.rope_frequencies(8, 6, 1e4), 3
    qkv = torch.randn(2, 6, 3, heads, 8)
    q, k, v = model_module.rotary_qkv(qkv, model_module.qk_frequencies(freqs, heads))
    for part, got in ((0, q), (1, k)):  # as the per-tensor rotation gives them, in attention's layout
        assert torch.allclose(got, model_module.apply_rope(qkv[:, :, part], freqs).transpose(1, 2), rtol=0, atol=1e-6)
    assert torch.equal(v, qkv[:, :, 2].transpose(1, 2))


@pytest.mark.parametrize("seq", [64, 200, 256, 300])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_causal_attention_in_query_blocks_is_one_causal_call(monkeypatch, seq, dtype):
    """On CPU the queries go in blocks, each against the keys up to its last row: outputs and gradients are those of
    one causal call, for ragged last blocks and a custom scale too."""
    torch.manual_seed(0)
    qkv = torch.randn(3, 2, 3, seq, 16, dtype=dtype, requires_grad=True)  # q, k, v: (batch, heads, seq, 16)
    grad_out = torch.randn(2, seq, 3, 16, dtype=dtype)  # (batch, seq, heads, 16): the layout attention returns
    one_call = F.scaled_dot_product_attention(*qkv.unbind(0), is_causal=True, scale=0.3).transpose(1, 2)
    (expected_grad,) = torch.autograd.grad(one_call, qkv, grad_out)
    query_rows, one_kernel_call = [], model_module._flash

    def recording(q, *args, **kwargs):
        query_rows.append(q.shape[2])
        return one_kernel_call(q, *args, **kwargs)

    monkeypatch.setattr(model_module, "_flash", recording)
    blocked = model_module.causal_attention(*qkv.unbind(0), 0.3)
    (grad,) = torch.autograd.grad(blocked, qkv, grad_out)
    rows = max(64, seq // 4)
    assert query_rows == ([] if seq <= rows else [min(rows, seq - start) for start in range(0, seq, rows)])
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    assert blocked.shape == one_call.shape and blocked.dtype == dtype
    assert torch.allclose(blocked, one_call, **tolerance)
    assert torch.allclose(grad, expected_grad, **tolerance)


@pytest.mark.parametrize("d_model,seq", [(12, 128), (16, 128), (32, 128), (48, 128), (64, 256), (48, 200)])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_the_attention_blocks_backward_is_autograds_to_the_bit(monkeypatch, d_model, seq, dtype):
    """The blocks' own backward gives a model's gradients bit for bit as autograd's backward of the same blocks does
    (the default study's runs must not change with it), at head sizes where a gradient's memory layout changes how
    the rotation's backward rounds (6, 8 and 24; 16 and 32 round alike either way)."""
    cfg = ModelConfig(arch="llama", num_layers=2, d_model=d_model, num_heads=2, d_ff=None, ffn_ratio=2.6667,
                      seq_len=seq, vocab_size=256, tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4,
                      mup_base_width=None)
    torch.manual_seed(0)
    net, batch = GPT(cfg), torch.randint(0, 256, (2, seq + 1))

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = net(batch[:, :-1], batch[:, 1:])
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters()]

    loss, grads = loss_and_grads()
    monkeypatch.setattr(model_module._CausalBlocks, "apply", model_module._blocks_by_autograd)
    autograd_loss, autograd_grads = loss_and_grads()
    assert torch.equal(loss, autograd_loss)
    assert all(torch.equal(a, b) for a, b in zip(grads, autograd_grads))


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_the_hand_written_backwards_give_autograds_gradients(tmp_path, monkeypatch, dtype):
    """Rotary q/k/v, SwiGLU and RMSNorm have backward passes of their own in eager mode; under torch.compile the model
    uses plain ops that autograd differentiates. Both give one model the same loss and gradients."""
    cfg, _ = make_config(tmp_path)
    assert cfg.model.arch == "llama"
    torch.manual_seed(0)
    net = GPT(cfg.model)
    with torch.no_grad():  # non-trivial norm gains
        for name, p in net.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    batch = torch.randint(0, cfg.model.vocab_size, (4, cfg.model.seq_len + 1))

    def loss_and_grads() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        net.zero_grad()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = net(batch[:, :-1], batch[:, 1:])
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}

    loss, grads = loss_and_grads()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    autograd_loss, autograd_grads = loss_and_grads()
    tolerance = {"rtol": 1e-4, "atol": 1e-6} if dtype is None else {"rtol": 2e-2, "atol": 1e-4}
    assert torch.allclose(loss, autograd_loss, **tolerance)
    for name, grad in grads.items():
        assert torch.allclose(grad, autograd_grads[name], **tolerance), name


def test_rms_norm_of_bf16_activations_is_computed_in_fp32_and_returned_in_bf16():
    """Under FSDP2's bf16 parameters the residual stream itself is bf16: the statistic stays fp32, as
    F.rms_norm and transformers compute it."""
    torch.manual_seed(0)
    norm = model_module.RMSNorm(16, 1e-5).to(torch.bfloat16)
    x = (torch.randn(3, 5, 16) * 40).to(torch.bfloat16).requires_grad_()
    out = norm(x)
    assert out.dtype == torch.bfloat16
    reference = F.rms_norm(x.detach().float(), (16,), norm.weight.detach().float(), 1e-5)
    assert torch.allclose(out.float(), reference, rtol=1e-2, atol=1e-2)
    out.float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and norm.weight.grad.dtype == torch.bfloat16
