"""Sampling from a trained run through its transformers export (``runs/<id>/hf``), batched by problem length:
every problem of one length has the same layout, so a batch needs no padding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from scaling.testtime.task import Problem, check


def _byte_of_symbol() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's printable stand-ins for the 256 bytes) back to byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for b in range(256):
        if b in printable:
            symbols[chr(b)] = b
        else:
            symbols[chr(256 + extra)] = b
            extra += 1
    return symbols


@dataclass(frozen=True)
class Policy:
    model: torch.nn.Module
    tokenizer: object
    run_dir: Path
    chars: list[str]
    """One character per token id: its byte if ASCII, else "?" — a completion keeps one character per token, so
    every sample of a problem keeps the problem's layout (a non-ASCII byte is simply a wrong character)."""

    @classmethod
    def load(cls, run_dir: Path) -> "Policy":
        transformers.utils.logging.disable_progress_bar()
        model = AutoModelForCausalLM.from_pretrained(run_dir / "hf").eval()
        tokenizer = AutoTokenizer.from_pretrained(run_dir / "hf")
        byte_of = _byte_of_symbol()
        chars = ["?"] * len(tokenizer)
        for symbol, token_id in tokenizer.get_vocab().items():
            b = byte_of.get(symbol, -1)
            chars[token_id] = chr(b) if 0 <= b < 128 else "?"
        return cls(model=model, tokenizer=tokenizer, run_dir=run_dir, chars=chars)

    def encode(self, texts: list[str]) -> torch.Tensor:
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if len({len(i) for i in ids}) != 1:
            raise ValueError("a batch must hold texts of one layout (one length)")
        return torch.tensor(ids)

    def decode(self, ids: torch.Tensor) -> list[str]:
        return ["".join(self.chars[i] for i in row.tolist()) for row in ids]

    @torch.no_grad()
    def continue_texts(self, texts: list[str], new_chars: int, num_samples: int, temperature: float,
                       seed: int) -> list[list[str]]:
        """``num_samples`` sampled continuations of ``new_chars`` tokens for each text (bytes: one char each)."""
        torch.manual_seed(seed)
        inputs = self.encode(texts)
        out = self.model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=True,
                                  temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=new_chars,
                                  min_new_tokens=new_chars, num_return_sequences=num_samples, pad_token_id=0,
                                  eos_token_id=None)
        continuations = self.decode(out[:, inputs.shape[1]:])
        return [continuations[i * num_samples:(i + 1) * num_samples] for i in range(len(texts))]


def sample_problems(policy: Policy, problems: list[Problem], num_samples: int, temperature: float,
                    seed: int) -> list[dict]:
    """``num_samples`` full solutions per problem, checked exactly; each row names the problem it answers."""
    rows: list[dict] = []
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(problems):
        by_length.setdefault(p.length, []).append(i)
    for length, indices in sorted(by_length.items()):
        prompts = [problems[i].prompt for i in indices]
        completions = policy.continue_texts(prompts, problems[indices[0]].completion_chars, num_samples, temperature,
                                            seed + length)
        for i, samples in zip(indices, completions):
            for j, completion in enumerate(samples):
                checked = check(problems[i], completion)
                rows.append({"problem": i, "prompt": problems[i].prompt, "sample": j, "completion": completion,
                             "answer": checked.answer, "correct": checked.correct,
                             "step_correct": list(checked.step_correct), "length": length})
    return rows
