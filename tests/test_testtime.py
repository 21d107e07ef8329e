"""Test-time compute: the task, the estimators, the exchange calculator, FLOP accounting, and a small real study."""

from __future__ import annotations

import json
from math import comb

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scaling.config import ModelConfig
from tests.flop_counter import register_cpu_sdpa_flops
from scaling.testtime import analysis
from scaling.testtime.cost import generation_flops
from scaling.testtime.strategies import make_subsets, pass_at_k, select, subset_accuracy
from scaling.testtime.task import check, held_out_problems, training_documents


def test_task_is_deterministic_checkable_and_disjoint():
    tests = held_out_problems(modulus=7, max_steps=8, per_length=10, seed=0)
    assert tests == held_out_problems(modulus=7, max_steps=8, per_length=10, seed=0)
    assert sorted({p.length for p in tests}) == list(range(1, 9))
    train = training_documents(7, 1, 6, 2000, seed=0, held_out=tests)
    prompts = {d["text"].split("\n")[0] + "\n" for d in train}
    assert not prompts & {p.prompt for p in tests}
    p = tests[-1]
    assert check(p, p.solution).correct and all(check(p, p.solution).step_correct)
    broken = p.solution.replace("\n", "X", 1)
    result = check(p, broken)
    assert not any(result.step_correct)  # an error in the first line taints every later step
    assert len(p.solution) == p.completion_chars


def test_pass_at_k_matches_the_closed_form():
    for n, c, k in [(10, 3, 1), (10, 3, 5), (32, 0, 4), (32, 31, 2), (16, 16, 8)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_weighted_best_of_n_with_constant_scores_is_majority_vote():
    rng = np.random.default_rng(0)
    for _ in range(200):
        answers = rng.integers(-1, 5, 9)
        assert select(answers, np.full(9, 0.3), "weighted") == select(answers, np.ones(9), "majority")


def test_best_of_n_with_oracle_scores_is_coverage():
    rng = np.random.default_rng(1)
    n, k, truth = 16, 4, 2
    subsets = make_subsets(n, 64, 0)
    for _ in range(50):
        answers = rng.integers(0, 4, n)
        oracle = (answers == truth).astype(float)
        best_of_n = subset_accuracy(answers, oracle, truth, k, "best_of_n", subsets)
        covered = np.mean([(answers[s[:k]] == truth).any() for s in subsets])
        assert best_of_n == pytest.approx(covered)


def test_exchange_multiplier():
    assert analysis.exchange_multiplier(1.0, 1.0, 14.0, 1.0, 0.16) == pytest.approx(257.75)
    # generalised: a larger model trained on more tokens costs more, so the small model may sample more
    assert analysis.exchange_multiplier(1.0, 1.0, 14.0, 2.0, 0.16) > 257.75


def test_coverage_law_recovers_its_parameters():
    ks = np.array([1, 2, 4, 8, 16, 32])
    fit = analysis.fit_coverage(ks, np.exp(-0.9 * ks**-0.4))
    assert fit["a"] == pytest.approx(-0.9) and fit["b"] == pytest.approx(-0.4) and fit["r2"] == pytest.approx(1.0)


def test_generation_flops_match_the_flop_counter():
    from transformers import LlamaForCausalLM

    from scaling.export import to_transformers
    from scaling.model import GPT

    register_cpu_sdpa_flops()
    cfg = ModelConfig(arch="llama", num_layers=2, d_model=64, num_heads=2, d_ff=None, ffn_ratio=8 / 3, seq_len=128,
                      vocab_size=256, tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4,
                      mup_base_width=None)
    hf = to_transformers(GPT(cfg), None)
    assert isinstance(hf, LlamaForCausalLM)
    prompt = torch.randint(0, 256, (3, 20))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=30,
                    min_new_tokens=30, pad_token_id=0, eos_token_id=None)
    predicted = generation_flops(cfg, 20, 30, 3)
    assert abs(counter.get_total_flops() / predicted - 1) < 0.05, (counter.get_total_flops(), predicted)


def test_policy_ci_and_bins():
    score = np.linspace(0, 1, 50)
    bins = analysis.difficulty_bins(score)
    assert sorted(np.bincount(bins)[1:]) == [10] * 5 and bins[-1] == 1 and bins[0] == 5
    acc = {"a": np.r_[np.ones(25), np.zeros(25)], "b": np.r_[np.zeros(25), np.ones(25)]}
    policy, fixed, _ = analysis.cross_validated_policy(acc, np.r_[np.ones(25, int), np.full(25, 2)],
                                                       np.arange(50) % 2)
    assert policy.mean() == 1.0 and 0.4 <= fixed.mean() <= 0.6  # one strategy cannot serve both bins


SMALL_STUDY = ["experiment=testtime", "grid.sizes=[{name: null, num_layers: 1, d_model: 32, num_heads: 2}]",
               "grid.budgets_tokens=[200000]", "data.task.num_train=6000", "data.task.test_max_steps=4",
               "data.task.max_steps=3", "data.task.test_per_length=4", "testtime.samples_per_problem=8",
               "testtime.budgets=[1,2,4,8]", "testtime.subsets=4", "testtime.verifier.steps=30",
               "testtime.verifier.train_problems=40", "testtime.beam_budgets=[4]", "testtime.beam_widths=[2]",
               "sweep.fit=false", "launcher.workers=1"]


def test_small_real_study_end_to_end(tmp_path):
    from scaling.testtime.task import held_out_problems
    from tests.conftest import run_cli

    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=tt", *SMALL_STUDY)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "tt" / "testtime"
    results = json.loads((out / "results.json").read_text())
    problems = held_out_problems(7, 4, 4, 0)
    (model,) = results["models"]
    samples = [json.loads(line) for line in (out / f"samples-{model['run_id']}.jsonl").read_text().splitlines()]
    assert len(samples) == len(problems) * 8
    for row in samples:  # every stored sample maps to the prompt it was generated from
        assert row["prompt"] == problems[row["problem"]].prompt
        assert len(row["completion"]) == problems[row["problem"]].completion_chars
    coverage = [model["curves"]["coverage"][str(k)] for k in (1, 2, 4, 8)]
    assert coverage == sorted(coverage)
    assert {"majority", "weighted_prm", "best_of_n_orm", "beam_prm_w2"} <= set(model["curves"])
    assert model["verifier"]["prm"]["train_flops"] > 0
    report = (out / "report.md").read_text()
    assert "Exchange" in report and "Checks" in report
    for figure in ("accuracy_vs_generations", "accuracy_vs_flops", "per_bin", "compute_optimal", "exchange",
                   "coverage_fits"):
        assert (out / "figures" / f"{figure}.png").exists()


@pytest.mark.slow
def test_default_study_shows_the_expected_patterns(tmp_path):
    """The default CPU study (training included, ≤ 20 minutes): the qualitative checks of the issue."""
    from tests.conftest import run_cli

    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=tt", "experiment=testtime", timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "tt" / "testtime" / "results.json").read_text())
    assert len(results["models"]) == 3
    for m in results["models"]:
        c = m["curves"]
        cov = [c["coverage"][k] for k in sorted(c["coverage"], key=int)]
        assert all(b >= a - 1e-12 for a, b in zip(cov, cov[1:]))
        assert c["majority"]["32"] < c["coverage"]["32"]
        assert c["coverage"]["32"] >= c["weighted_prm"]["32"] - 0.02 >= c["majority"]["32"] - 0.07
        for row in m["policy"]:  # never worse than the best fixed strategy beyond noise
            assert row["policy"] - row["fixed"] >= -0.02 and row["policy_minus_fixed_ci95"][1] >= -0.01
        assert m["hardest_bin_gain"] <= 0.1  # the hardest bin barely improves with k
