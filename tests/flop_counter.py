"""Measured FLOPs: make ``torch.utils.flop_counter.FlopCounterMode`` see attention on CPU.

CPU ``scaled_dot_product_attention`` dispatches to ``aten._scaled_dot_product_flash_attention_for_cpu``, which has no
entry in the counter's registry, so attention FLOPs are silently dropped. This registers the standard SDPA formulas
for it and its backward (idempotent).
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import register_flop_formula, sdpa_backward_flop_count, sdpa_flop_count

_registered = False


def register_cpu_sdpa_flops() -> None:
    global _registered
    if _registered:
        return

    @register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, get_raw=True)
    def _forward(query, key, value, *args, **kwargs) -> int:
        return sdpa_flop_count(query.shape, key.shape, value.shape)

    @register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward, get_raw=True)
    def _backward(grad_out, query, key, value, *args, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)

    _registered = True
