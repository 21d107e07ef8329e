"""A task with checkable steps and controllable difficulty: a worksheet of L arithmetic operations modulo p.

The problem gives a start value and one operation per line; the solver copies the previous value into the line,
computes the result, and finally states the answer. Every residue is one character (0-9, then a-z: p ≤ 36), so a
problem of L steps has a fixed layout and every line can be checked exactly (p = 13)::

    Q:c          the start value, 12 (the prompt)
    c-0=c        one line per step: previous value (the solver's), operator and operand (given), result (the solver's)
    c-8=4
    4-6=b
    A:b          the final answer (the solver's)

Training text is whole worksheets. At test time the given characters are fixed and the model writes only the blanks
(``template``: "_" marks a residue the model writes), as constrained decoding from the problem would. A line needs
only itself and the line before, so the task measures how reliably a model computes; difficulty grows with L, since
one wrong step spoils every later one.

A step is right when its line is and every earlier line is; an answer is *process-correct* when every step is right
and the answer line repeats the last result, and *answer-correct* when only the final value is right (a wrong chain
lands on the right value by chance, 1/p for a uniform guess). Problems are seeded and deterministic; test problems
are drawn first and excluded from training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scaling.config import TaskConfig

OPS = "+-*"
SYMBOLS = "0123456789abcdefghijklmnopqrstuvwxyz"
"""Residues 0..p−1 as one character each (10 = "a", 35 = "z")."""
MAX_MODULUS = len(SYMBOLS)
BLANK = "_"
"""A residue the model writes, in a template."""


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]
    modulus: int

    @property
    def length(self) -> int:
        return len(self.ops)

    @property
    def key(self) -> str:
        """The problem's identity (prompts repeat across problems: they hold only the start value)."""
        return self.prompt + self.template

    def number(self, value: int) -> str:
        return SYMBOLS[value]

    @property
    def alphabet(self) -> str:
        """The characters a blank may take."""
        return SYMBOLS[: self.modulus]

    @property
    def prompt(self) -> str:
        return f"Q:{self.number(self.start)}\n"

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

    def step_line(self, i: int, blank: str | None = None) -> str:
        """Step i (0-based) with its newline; ``blank`` replaces the previous value and the result."""
        op, b = self.ops[i]
        before = self.values()[i - 1] if i else self.start
        if blank is not None:
            return f"{blank}{op}{self.number(b)}={blank}\n"
        return f"{self.number(before)}{op}{self.number(b)}={self.number(self.values()[i])}\n"

    def answer_line(self, value: str | None = None) -> str:
        return f"A:{self.number(self.answer) if value is None else value}\n"

    @property
    def solution(self) -> str:
        return "".join(self.step_line(i) for i in range(self.length)) + self.answer_line()

    def step_template(self, i: int) -> str:
        return self.step_line(i, BLANK)

    @property
    def answer_template(self) -> str:
        return self.answer_line(BLANK)

    @property
    def template(self) -> str:
        """The completion with every digit the model writes blanked."""
        return "".join(self.step_template(i) for i in range(self.length)) + self.answer_template

    @property
    def completion_chars(self) -> int:
        return len(self.template)


def apply(a: int, op: str, b: int, modulus: int) -> int:
    return (a + b if op == "+" else a - b if op == "-" else a * b) % modulus


def generate(count: int, min_steps: int, max_steps: int, modulus: int, seed: int,
             exclude: frozenset[str] = frozenset()) -> list[Problem]:
    """``count`` distinct problems with lengths uniform in [min_steps, max_steps], none of whose keys is in
    ``exclude``."""
    if not 2 <= modulus <= MAX_MODULUS:
        raise ValueError(f"modulus must be in [2, {MAX_MODULUS}], got {modulus}")
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
        if problem.key not in seen:
            seen.add(problem.key)
            out.append(problem)
    return out


@dataclass(frozen=True)
class Checked:
    answer: int | None
    """The parsed final answer (None when the answer line is malformed)."""
    correct: bool
    """Answer-correct: the final value is right, whatever the steps say."""
    step_correct: tuple[bool, ...]
    """Per step line: correct and preceded only by correct lines (a process label)."""

    @property
    def process_correct(self) -> bool:
        """Every step right and the right answer: the primary metric."""
        return self.correct and all(self.step_correct)


def check(problem: Problem, completion: str) -> Checked:
    """Check a completion line by line against the exact computation."""
    lines = completion.split("\n")
    ok, steps = True, []
    for i in range(problem.length):
        ok = ok and i < len(lines) and lines[i] + "\n" == problem.step_line(i)
        steps.append(ok)
    answer = None
    if len(lines) > problem.length and lines[problem.length].startswith("A:"):
        text = lines[problem.length][2:]
        answer = SYMBOLS.index(text) if len(text) == 1 and text in problem.alphabet else None
    return Checked(answer=answer, correct=answer == problem.answer, step_correct=tuple(steps))


def held_out_problems(modulus: int, max_steps: int, per_length: int, seed: int) -> list[Problem]:
    """The fixed test set: ``per_length`` problems of every length 1..max_steps."""
    out: list[Problem] = []
    for length in range(1, max_steps + 1):
        out += generate(per_length, length, length, modulus, seed=seed * 1000 + length,
                        exclude=frozenset(p.key for p in out))
    return out


def training_documents(modulus: int, min_steps: int, max_steps: int, count: int, seed: int,
                       held_out: list[Problem]) -> list[dict[str, str]]:
    """Training text: problems with worked solutions, none of them in ``held_out``."""
    problems = generate(count, min_steps, max_steps, modulus, seed=seed,
                        exclude=frozenset(p.key for p in held_out))
    return [{"text": p.prompt + p.solution} for p in problems]


def training_corpus(task: TaskConfig) -> list[dict[str, str]]:
    """The task's training documents, disjoint from its held-out test problems."""
    held_out = held_out_problems(task.modulus, task.test_max_steps, task.test_per_length, task.seed)
    return training_documents(task.modulus, task.min_steps, task.max_steps, task.num_train, task.seed + 1, held_out)


def register() -> None:
    """Make this task's corpus known to the data layer (data.source=task, data.task.name=worksheet)."""
    from scaling.data import register_task

    register_task("worksheet", training_corpus)
