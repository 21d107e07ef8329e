"""Sampling from a trained run through its transformers export (``runs/<id>/hf``), by filling templates.

A worksheet's given characters (operators, operands, "=", newlines, "A:") are fixed by the problem; the model writes
every blank ("_"), a residue. Generation is constrained decoding: a logits processor forces each given character and
limits each blank to the residues, so every sample keeps the problem's layout and batches need no padding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from scaling.io import CorruptFile
from scaling.testtime.task import BLANK, Problem, check


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


class FillTemplate(LogitsProcessor):
    """Forces the given characters of a template and limits its blanks to ``allowed`` token ids."""

    def __init__(self, forced: torch.Tensor, prompt_len: int, allowed: torch.Tensor) -> None:
        self.forced, self.prompt_len, self.allowed = forced, prompt_len, allowed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        column = self.forced[:, input_ids.shape[1] - self.prompt_len]
        keep = torch.zeros_like(scores, dtype=torch.bool)
        blank = column < 0
        keep[blank.nonzero(), self.allowed] = True
        given = (~blank).nonzero().flatten()
        keep[given, column[given]] = True
        return scores.masked_fill(~keep, float("-inf"))


@dataclass(frozen=True)
class Policy:
    model: torch.nn.Module
    tokenizer: object
    chars: list[str]
    """One character per token id: its byte if ASCII, else "?" (the bytes tokenizer: one token per character)."""

    @classmethod
    def load(cls, run_dir: Path, device: str = "cpu") -> "Policy":
        """The finished run's transformers export (``hf/``, its only copy of the model: the checkpoints are gone)."""
        transformers.utils.logging.disable_progress_bar()
        try:
            model, tokenizer = AutoModelForCausalLM.from_pretrained(run_dir / "hf"), AutoTokenizer.from_pretrained(
                run_dir / "hf")
        except (OSError, ValueError, SafetensorError) as e:  # missing or damaged files: transformers' own errors
            raise CorruptFile(f"{run_dir / 'hf'}: the run's model cannot be loaded ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0]}) (fix: delete {run_dir} and run the sweep again, "
                              "which trains the point again)") from None
        return cls.of(model.to(device).eval(), tokenizer)

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer: object) -> "Policy":
        byte_of = _byte_of_symbol()
        chars = ["?"] * len(tokenizer)
        for symbol, token_id in tokenizer.get_vocab().items():
            b = byte_of.get(symbol, -1)
            chars[token_id] = chr(b) if 0 <= b < 128 else "?"
        return cls(model=model, tokenizer=tokenizer, chars=chars)

    def token(self, char: str) -> int:
        return self.chars.index(char)

    def encode(self, texts: list[str]) -> torch.Tensor:
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if len({len(i) for i in ids}) != 1:
            raise ValueError("a batch must hold texts of one layout (one length)")
        return torch.tensor(ids)

    def decode(self, ids: torch.Tensor) -> list[str]:
        return ["".join(self.chars[i] for i in row.tolist()) for row in ids]

    @torch.no_grad()
    def fill(self, prefixes: list[str], templates: list[str], alphabet: str, num_samples: int, temperature: float,
             seed: int) -> list[list[str]]:
        """``num_samples`` fillings of each prefix's template (all of one layout): given characters kept, each blank
        sampled from ``alphabet`` at ``temperature`` (greedy at 0, one sample)."""
        if temperature == 0 and num_samples != 1:
            raise ValueError("greedy decoding gives one sample per prefix")
        torch.manual_seed(seed)
        device = next(self.model.parameters()).device
        inputs = self.encode(prefixes).to(device)
        width = len(templates[0])
        forced = torch.tensor([[-1 if c == BLANK else self.token(c) for c in t] for t in templates], device=device)
        allowed = torch.tensor([self.token(c) for c in alphabet], device=device)
        processor = FillTemplate(forced.repeat_interleave(num_samples, 0), inputs.shape[1], allowed)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature else {
            "do_sample": False}
        out = self.model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=width,
                                  min_new_tokens=width, num_return_sequences=num_samples, pad_token_id=0,
                                  eos_token_id=None, logits_processor=LogitsProcessorList([processor]), **sampling)
        filled = self.decode(out[:, inputs.shape[1]:].cpu())
        return [filled[i * num_samples:(i + 1) * num_samples] for i in range(len(prefixes))]


def by_length(problems: list[Problem]) -> dict[int, list[int]]:
    """Problem indices grouped by length (one layout per group), in order of length."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault(p.length, []).append(i)
    return dict(sorted(groups.items()))


def checked_row(problem: Problem, index: int, sample: int, completion: str) -> dict:
    checked = check(problem, completion)
    return {"problem": index, "prompt": problem.prompt, "sample": sample, "completion": completion,
            "answer": checked.answer, "correct": checked.correct, "process_correct": checked.process_correct,
            "step_correct": list(checked.step_correct), "length": problem.length}


def sample_problems(policy: Policy, problems: list[Problem], num_samples: int, temperature: float,
                    seed: int) -> list[dict]:
    """``num_samples`` full solutions per problem, checked exactly; each row names the problem it answers."""
    rows: list[dict] = []
    for length, indices in by_length(problems).items():
        chosen = [problems[i] for i in indices]
        completions = policy.fill([p.prompt for p in chosen], [p.template for p in chosen], chosen[0].alphabet,
                                  num_samples, temperature, seed + length)
        for i, samples in zip(indices, completions):
            rows += [checked_row(problems[i], i, j, c) for j, c in enumerate(samples)]
    return rows


def perturbed_samples(policy: Policy, rows: list[dict], problems: list[Problem], fraction: float, temperature: float,
                      seed: int) -> list[dict]:
    """Errors for a verifier to learn from when the policy makes few: for a random ``fraction`` of ``rows`` (samples
    of ``problems``), the same completion up to a random blank, a different residue there, and the policy's own
    continuation from it; checked exactly like any sample."""
    rng = random.Random(seed)
    groups: dict[tuple[int, int], list[tuple[dict, str]]] = {}
    for r in rows:
        if rng.random() >= fraction:
            continue
        p = problems[r["problem"]]
        cut = rng.choice([i for i, c in enumerate(p.template) if c == BLANK])
        wrong = rng.choice([c for c in p.alphabet if c != r["completion"][cut]])
        groups.setdefault((p.length, cut), []).append((r, r["completion"][:cut] + wrong))
    out: list[dict] = []
    for (_, cut), items in sorted(groups.items()):  # one layout per group: same length, same cut
        chosen = [problems[r["problem"]] for r, _ in items]
        rest = policy.fill([p.prompt + head for p, (_, head) in zip(chosen, items)],
                           [p.template[cut + 1:] for p in chosen], chosen[0].alphabet, 1, temperature, seed + cut)
        out += [checked_row(p, r["problem"], r["sample"], head + tail)
                for p, (r, head), (tail,) in zip(chosen, items, rest)]
    return out
