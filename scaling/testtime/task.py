"""A task with checkable steps and controllable difficulty: a chain of L arithmetic operations modulo p.

Every number is one digit (p ≤ 10), so a problem of L steps has a fixed layout and every line can be checked
exactly::

    Q:3+5*2-4          the start value and L (operator, operand) pairs
    3+5=1              one line per step: previous value, operator, operand, result mod p
    1*2=2
    2-4=5
    A:5                the final answer

Difficulty grows with L; lengths beyond the training range form a "nearly impossible" bin. Problems are seeded
and deterministic; test problems are drawn first and excluded from training, so the two sets are disjoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scaling.config import TaskConfig

OPS = "+-*"
STEP_CHARS = 6  # "a?b=c\n"


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]
    modulus: int

    @property
    def length(self) -> int:
        return len(self.ops)

    @property
    def prompt(self) -> str:
        return "Q:" + str(self.start) + "".join(f"{op}{b}" for op, b in self.ops) + "\n"

    def values(self) -> list[int]:
        """Value after each step."""
        out, value = [], self.start
        for op, b in self.ops:
            value = apply(value, op, b, self.modulus)
            out.append(value)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    @property
    def solution(self) -> str:
        lines, value = [], self.start
        for (op, b), result in zip(self.ops, self.values()):
            lines.append(f"{value}{op}{b}={result}\n")
            value = result
        return "".join(lines) + f"A:{self.answer}\n"

    @property
    def completion_chars(self) -> int:
        return STEP_CHARS * self.length + 4


def apply(a: int, op: str, b: int, modulus: int) -> int:
    return (a + b if op == "+" else a - b if op == "-" else a * b) % modulus


def generate(count: int, min_steps: int, max_steps: int, modulus: int, seed: int,
             exclude: frozenset[str] = frozenset()) -> list[Problem]:
    """``count`` distinct problems with lengths uniform in [min_steps, max_steps], none of whose prompts is in
    ``exclude``."""
    if not 2 <= modulus <= 10:
        raise ValueError(f"modulus must be in [2, 10] so every number is one digit, got {modulus}")
    rng = random.Random(seed)
    seen, out = set(exclude), []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"cannot draw {count} distinct problems of {min_steps}..{max_steps} steps mod {modulus}")
        length = rng.randint(min_steps, max_steps)
        problem = Problem(start=rng.randrange(modulus),
                          ops=tuple((rng.choice(OPS), rng.randrange(modulus)) for _ in range(length)),
                          modulus=modulus)
        if problem.prompt not in seen:
            seen.add(problem.prompt)
            out.append(problem)
    return out


@dataclass(frozen=True)
class Checked:
    answer: int | None
    """The parsed final answer (None when the completion is malformed)."""
    correct: bool
    step_correct: tuple[bool, ...]
    """Per step line: correct and preceded only by correct lines (a process label)."""


def check(problem: Problem, completion: str) -> Checked:
    """Check a completion line by line against the exact computation."""
    lines = completion.split("\n")
    value, ok, steps = problem.start, True, []
    for i, (op, b) in enumerate(problem.ops):
        expected = f"{value}{op}{b}={apply(value, op, b, problem.modulus)}"
        ok = ok and i < len(lines) and lines[i] == expected
        steps.append(ok)
        value = apply(value, op, b, problem.modulus)
    answer = None
    if len(lines) > problem.length and lines[problem.length].startswith("A:"):
        text = lines[problem.length][2:]
        answer = int(text) if text.isdigit() else None
    return Checked(answer=answer, correct=answer == problem.answer, step_correct=tuple(steps))


def held_out_problems(modulus: int, max_steps: int, per_length: int, seed: int) -> list[Problem]:
    """The fixed test set: ``per_length`` problems of every length 1..max_steps."""
    out: list[Problem] = []
    for length in range(1, max_steps + 1):
        out += generate(per_length, length, length, modulus, seed=seed * 1000 + length,
                        exclude=frozenset(p.prompt for p in out))
    return out


def training_documents(modulus: int, min_steps: int, max_steps: int, count: int, seed: int,
                       held_out: list[Problem]) -> list[dict[str, str]]:
    """Training text: problems with worked solutions, none of them in ``held_out``."""
    problems = generate(count, min_steps, max_steps, modulus, seed=seed,
                        exclude=frozenset(p.prompt for p in held_out))
    return [{"text": p.prompt + p.solution} for p in problems]


def training_corpus(task: TaskConfig) -> list[dict[str, str]]:
    """The task's training documents, disjoint from its held-out test problems."""
    held_out = held_out_problems(task.modulus, task.test_max_steps, task.test_per_length, task.seed)
    return training_documents(task.modulus, task.min_steps, task.max_steps, task.num_train, task.seed + 1, held_out)


def register() -> None:
    """Make this task's corpus known to the data layer (data.source=task, data.task.name=modchain)."""
    from scaling.data import register_task

    register_task("modchain", training_corpus)
