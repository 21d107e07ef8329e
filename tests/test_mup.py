"""μP (Yang et al. 2022): a coordinate check across widths, and μP at its base width is the standard model."""

from __future__ import annotations

import pytest
import torch

from scaling.config import ModelConfig, OptimConfig
from scaling.model import GPT
from scaling.optim import build_optimizer

WIDTHS = (32, 64, 128, 256)
OPTIM = OptimConfig(lr=1e-2, min_lr_ratio=0.1, schedule="constant", warmup_steps=0, decay_fraction=0.2,
                    decay_shape="linear", weight_decay=0.0, beta1=0.9, beta2=0.95, eps=1e-8, grad_clip=0.0)
LAYERS = [f"blocks.{i}{part}" for i in range(2) for part in (".attn", ".mlp", "")]


def model_at(width: int, arch: str, mup_base_width: int | None) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(arch=arch, num_layers=2, d_model=width, num_heads=2, d_ff=None, ffn_ratio=4.0,
                           seq_len=64, vocab_size=256, tie_embeddings=True, init_std=0.02, norm_eps=1e-5,
                           rope_theta=1e4, mup_base_width=mup_base_width))


def activation_change(width: int, arch: str, mup_base_width: int | None, steps: int = 4) -> dict[str, float]:
    """Mean |Δx| of every block's attention, MLP and output, and of the logits, after ``steps`` Adam steps on one
    fixed batch: the coordinate check of Yang et al. (2022, §7 and Fig. 5)."""
    model = model_at(width, arch, mup_base_width)
    optimizer = build_optimizer(model, OPTIM, torch.device("cpu"))
    for group in optimizer.param_groups:
        group["lr"] = OPTIM.lr * group["lr_scale"]
    batch = torch.randint(0, 256, (8, 65), generator=torch.Generator().manual_seed(1))
    modules = dict(model.named_modules())

    def activations() -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        hooks = [modules[name].register_forward_hook(lambda m, i, o, name=name: out.__setitem__(name, o.detach()))
                 for name in LAYERS]
        with torch.no_grad():
            out["logits"] = model(batch[:, :-1])
        for hook in hooks:
            hook.remove()
        return out

    before = activations()
    for _ in range(steps):
        model(batch[:, :-1], batch[:, 1:]).backward()
        optimizer.step()
        optimizer.zero_grad()
    after = activations()
    return {k: (after[k] - before[k]).abs().mean().item() for k in before}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_coordinate_check_is_flat_under_mup_and_grows_under_standard(arch):
    mup = {w: activation_change(w, arch, WIDTHS[0]) for w in WIDTHS}
    standard = {w: activation_change(w, arch, None) for w in WIDTHS}
    for layer in [*LAYERS, "logits"]:
        mup_growth = mup[WIDTHS[-1]][layer] / mup[WIDTHS[0]][layer]
        standard_growth = standard[WIDTHS[-1]][layer] / standard[WIDTHS[0]][layer]
        # 8x the width: under μP every layer's update stays of one order; under the standard parametrization
        # Adam's update grows with fan-in (measured here: 30-270x inside the blocks, 5-7x at the logits).
        assert 1 / 3 < mup_growth < 3, (layer, mup_growth)
        assert standard_growth > 3, (layer, standard_growth)


def test_mup_at_its_base_width_is_the_standard_model():
    standard, mup = model_at(64, "llama", None), model_at(64, "llama", 64)
    batch = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(0))
    assert torch.equal(standard(batch), mup(batch))
    assert {g["lr_scale"] for g in build_optimizer(mup, OPTIM, torch.device("cpu")).param_groups} == {1.0}


def test_mup_scales_hidden_learning_rates_only():
    model = model_at(128, "llama", 32)
    groups = build_optimizer(model, OPTIM, torch.device("cpu")).param_groups
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        hidden = name.startswith("blocks.") and p.dim() == 2
        assert scale_of[id(p)] == (0.25 if hidden else 1.0), name
