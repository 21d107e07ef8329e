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
from scaling.testtime.report import NO_PAIR
from scaling.testtime.strategies import make_subsets, pass_at_k, select, subset_accuracy
from scaling.testtime.task import BLANK, Problem, check, generate, held_out_problems, training_documents


def test_task_is_deterministic_checkable_and_disjoint():
    tests = held_out_problems(modulus=13, max_steps=8, per_length=10, seed=0)
    assert tests == held_out_problems(modulus=13, max_steps=8, per_length=10, seed=0)
    assert sorted({p.length for p in tests}) == list(range(1, 9))
    train = training_documents(13, 1, 6, 2000, seed=0, held_out=tests)
    assert not {d["text"] for d in train} & {p.prompt + p.solution for p in tests}
    p = tests[-1]
    assert check(p, p.solution).process_correct and all(check(p, p.solution).step_correct)
    assert len(p.solution) == len(p.template) == p.completion_chars
    assert all(t == s or t == BLANK for t, s in zip(p.template, p.solution))
    broken = "z" + p.solution[1:]  # a wrong first line taints every later step
    assert not any(check(p, broken).step_correct)


def test_a_lucky_answer_is_answer_correct_but_not_process_correct():
    p = Problem(start=3, ops=(("+", 4), ("*", 2)), modulus=13)  # 3+4=7, 7*2=1
    assert p.solution == "3+4=7\n7*2=1\nA:1\n"
    lucky = check(p, "3+4=8\n8*2=1\nA:1\n")  # the first step is wrong, the answer right
    assert lucky.correct and not lucky.process_correct and lucky.step_correct == (False, False)
    assert check(p, "3+4=7\n7*2=1\nA:2\n").step_correct == (True, True)
    assert not check(p, "3+4=7\n7*2=1\nA:2\n").process_correct
    with pytest.raises(ValueError, match="modulus"):
        generate(1, 1, 2, 37, 0)


@pytest.mark.parametrize("override,field,words", [
    ("testtime.temperature=0", "testtime.temperature", "needs a positive temperature"),
    ("testtime.temperature=-1", "testtime.temperature", "needs a positive temperature"),
    ("testtime.subsets=0", "testtime.subsets", "below 1"),
    ("testtime.samples_per_problem=0", "testtime.samples_per_problem", "below 1"),
    ("testtime.budgets=[0,2]", "testtime.budgets", "1 or more"),
    ("testtime.budgets=[64]", "testtime.budgets", "exceeds samples_per_problem"),
    ("testtime.search.budgets=[3]", "testtime.search.budgets", "perfect square"),
    ("testtime.revisions.budgets=[3]", "testtime.revisions.budgets", "non-power of two"),
    ("testtime.verifier.perturbed=2", "testtime.verifier.perturbed", "not in [0, 1]"),
    ("testtime.verifier.steps=0", "testtime.verifier.steps", "below 1"),
    ("testtime.verifier.lr=-1", "testtime.verifier.lr", "must be positive"),
    ("testtime.verifier.added_layers=-1", "testtime.verifier.added_layers", "below 0"),
    ("testtime.search.lookahead=[0]", "testtime.search.lookahead", "depth below 1"),
    ("testtime.revisions.steps=0", "testtime.revisions.steps", "below 1"),
    ("testtime.revisions.lr=0", "testtime.revisions.lr", "must be positive"),
    ("testtime.device=foo", "testtime.device", "unknown device"),
    ("testtime.exchange_ratios=[-1]", "testtime.exchange_ratios", "0 or below"),
    ("testtime.seed=-1", "testtime.seed", "not in [0, 2^64)"),
])
def test_a_bad_test_time_setting_is_named_before_any_model_trains(override, field, words):
    """Caught when the sweep's config is read; a temperature of 0 used to surface after the policies had trained,
    as a ValueError from sampling, a device 'foo' as torch's RuntimeError, and a subset count of 0 averaged over
    no subsets."""
    from scaling.config import ConfigError, parse
    from scaling.testtime.study import TestTimeConfig
    from tests.conftest import compose_raw

    raw = compose_raw(["experiment=testtime", "sweep.name=t", override], config_name="sweep")
    with pytest.raises(ConfigError) as err:
        parse(TestTimeConfig, raw["testtime"], "testtime.")
    assert err.value.field_path == field and words in str(err.value) and "fix:" in str(err.value)


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
        process = (answers == truth) & (rng.random(n) < 0.5)  # half the right answers come from a right chain
        oracle = process.astype(float)
        answer_acc, process_acc = subset_accuracy(answers, oracle, answers == truth, process, k, "best_of_n", subsets)
        covered = np.mean([process[s[:k]].any() for s in subsets])
        assert process_acc == pytest.approx(covered) and answer_acc >= process_acc


def test_pass_at_k_equals_brute_force_over_all_subsets():
    from itertools import combinations

    for n, c in [(8, 0), (8, 1), (8, 3), (8, 8), (7, 5)]:
        ok = np.r_[np.ones(c, bool), np.zeros(n - c, bool)]
        for k in range(1, n + 1):
            brute = np.mean([ok[list(s)].any() for s in combinations(range(n), k)])
            assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_majority_presents_a_sample_of_the_voted_answer():
    answers, scores = np.array([3, 5, 5, -1, 5, 3]), np.array([0.9, 0.1, 0.2, 1.0, 0.3, 0.8])
    assert answers[select(answers, scores, "majority")] == 5
    assert select(answers, scores, "weighted") == 0  # 3 holds 1.7 of score, 5 holds 0.6; its best sample is 0
    assert select(answers, scores, "best_of_n") == 0  # a malformed sample (-1) is never picked
    assert select(np.array([-1, -1]), scores[:2], "majority") is None


def test_cross_validation_does_not_select_noise():
    """Strategies that are pure noise (the same Bernoulli rate) must not beat the fixed baseline out of sample;
    the same choice made in sample does, which is the bias cross-validation removes."""
    rng = np.random.default_rng(0)
    gains, in_sample = [], []
    for trial in range(200):
        acc = {f"s{i}": (rng.random(100) < 0.4).astype(float) for i in range(6)}
        bins = analysis.difficulty_bins(rng.random(100))
        folds = rng.permutation(100) % 2
        policy, fixed, _ = analysis.cross_validated_policy(acc, bins, folds)
        gains.append(policy.mean() - fixed.mean())
        best_per_bin = sum(max(v[bins == b].sum() for v in acc.values()) for b in range(1, 6)) / 100
        in_sample.append(best_per_bin - max(v.mean() for v in acc.values()))
    standard_error = np.std(gains) / np.sqrt(len(gains))
    assert abs(np.mean(gains)) < 3 * standard_error + 0.005
    assert np.mean(in_sample) > 0.05  # choosing per bin on the data it is scored on looks like a gain


def test_difficulty_bins_come_from_an_independent_draw():
    """Two identical models: every problem has the same true rate, so no bin may look easier than another on the
    scoring draw when the bins come from a separate draw."""
    rng = np.random.default_rng(3)
    problems, n = 400, 8
    scoring = (rng.random((problems, n)) < 0.5).astype(float)
    model = _synthetic_model(scoring, bin_pass1=(rng.random((problems, 16)) < 0.5).mean(1))
    result = analysis.analyse_model(model, _CFG, 1)
    per_bin = result["per_bin"]["oracle"]["coverage"]["1"]
    assert max(per_bin) - min(per_bin) < 0.1, per_bin
    # binned on the scoring draw itself, the same data shows a spurious gradient from easiest to hardest
    same_draw = analysis.difficulty_bins(scoring.mean(1))
    spurious = [scoring.mean(1)[same_draw == b].mean() for b in range(1, 6)]
    assert spurious[0] - spurious[-1] > 0.3


def test_exchange_charges_verifier_costs_only_where_a_verifier_is_used():
    small = _synthetic_model((np.random.default_rng(0).random((50, 4)) < 0.5).astype(float), params=1e3,
                             pretrain=6e3 * 1e4, verifier_train=1e9)
    large = _synthetic_model(np.zeros((50, 4)), params=1e4, pretrain=6e4 * 1e4)
    cfg = _CFG
    bins, folds = analysis.difficulty_bins(small["bin_pass1"]), np.arange(50) % 2
    questions = 0.16 * small["tokens"] / small["tokens_per_question"]
    charged = analysis._exchange_row(small, large, 0.16, questions, "search", True, bins, folds, cfg)
    free = analysis._exchange_row(small, large, 0.16, questions, "search", False, bins, folds, cfg)
    # the verifier's training (1e9 FLOPs) is more than the whole surplus: charged, only majority is affordable
    assert charged["affordable"] and all(s.startswith("majority@") for s in charged["affordable"])
    assert any(s.startswith("weighted_prm@") for s in free["affordable"])
    budget = max(int(s.split("@")[1]) for s in charged["affordable"])
    afford = large["greedy"]["flops"] + (large["pretrain_flops"] - small["pretrain_flops"]) / questions
    assert small["flops"]["majority"][budget] <= afford
    assert budget == max(cfg.budgets) or small["flops"]["majority"][budget * 2] > afford


class _Cfg:
    seed = 0
    budgets = [1, 2, 4]
    exchange_ratios = [0.16]

    class revisions:
        budgets = [1, 2]


_CFG = _Cfg()


def _synthetic_model(scoring: np.ndarray, bin_pass1=None, params=1e3, pretrain=1e8, verifier_train=0.0) -> dict:
    """A model's study record with given per-sample process correctness (answers right exactly when the process
    is) and a cost of ``params`` FLOPs per generated token."""
    problems, n = scoring.shape
    subsets = make_subsets(n, 8, 0)
    acc: dict = {"process": {"coverage": {}}, "answer": {"coverage": {}}}
    flops: dict = {}
    for k in _CFG.budgets:
        for kind in ("process", "answer"):
            acc[kind]["coverage"][k] = np.array([pass_at_k(n, int(c), k) for c in scoring.sum(1)])
    for name in ("majority", "weighted_prm"):
        for kind in ("process", "answer"):
            acc[kind][name] = {k: np.array([np.mean([scoring[i][s[:k]].max() for s in subsets])
                                            for i in range(problems)]) for k in _CFG.budgets}
        flops[name] = {k: 10 * params * k * (2 if name == "weighted_prm" else 1) for k in _CFG.budgets}
    flops["coverage"] = flops["majority"]
    splits = {(1, 1), (2, 1), (2, 2)}  # (N, s)
    revisions = {"acc": {"process": {}, "answer": {}}, "flops": {}, "pass1_by_attempt": [0.5], "train_flops": 0.0,
                 "chains": 0}
    for selection in ("seq_majority", "seq_weighted_prm", "seq_hierarchical_prm"):
        for n, s in splits:
            revisions["acc"]["process"].setdefault(f"{selection}_s{s}", {})[str(n)] = scoring[:, :n].max(1)
            revisions["flops"].setdefault(f"{selection}_s{s}", {})[str(n)] = 10 * params * n
    return {"run_id": f"m{int(params)}", "params_matmul": params, "params_non_embedding": params, "tokens": 1e4,
            "pretrain_flops": pretrain, "tokens_per_question": 10.0,
            "verifier": {"train_flops_by_kind": {"orm": verifier_train, "prm": verifier_train}},
            "acc": acc, "flops": flops, "revisions": revisions,
            "greedy": {"process": scoring[:, 0], "answer": scoring[:, 0], "flops": 10 * params},
            "bin_pass1": scoring.mean(1) if bin_pass1 is None else bin_pass1,
            "bin_predicted": scoring.mean(1) if bin_pass1 is None else bin_pass1,
            "lengths": np.ones(problems, int)}


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


def _random_policy(tmp_path):
    """An untrained model behind the real sampler: it fills blanks with near-uniform residues."""
    from scaling.data import train_tokenizer
    from scaling.export import save_transformers
    from scaling.model import GPT
    from scaling.testtime.sampling import Policy

    torch.manual_seed(0)
    train_tokenizer([], "bytes", 256).save(str(tmp_path / "tokenizer.json"))
    save_transformers(GPT(TINY), tmp_path / "tokenizer.json", None, tmp_path / "hf")
    return Policy.load(tmp_path)


TINY = ModelConfig(arch="llama", num_layers=1, d_model=16, num_heads=2, d_ff=None, ffn_ratio=8 / 3, seq_len=128,
                   vocab_size=256, tie_embeddings=True, init_std=0.02, norm_eps=1e-5, rope_theta=1e4,
                   mup_base_width=None)


def _fits(p: Problem, completion: str) -> bool:
    """The completion (or a prefix of it) keeps the problem's given characters and fills blanks with residues."""
    return all(t == c or (t == BLANK and c in p.alphabet) for t, c in zip(p.template, completion))


def _oracle(record: list):
    """Perfect step scores: 1 while every line so far is right; records every full solution it judges."""
    def score(problems, texts):
        out = []
        for p, text in zip(problems, texts):
            completion = text[len(p.prompt):]
            assert _fits(p, completion), (p.template, completion)  # each candidate extends its own problem
            lines = completion.count("\n")
            checked = check(p, completion)
            ok = all(checked.step_correct[:lines]) and (lines <= p.length or checked.process_correct)
            if lines == p.length + 1:
                record.append((p, checked.process_correct))
            out.append(float(ok))
        return np.array(out)

    return score


@pytest.mark.parametrize("damage,words", [
    (lambda hf: (hf / "model.safetensors").unlink(), "OSError: Error no file named model.safetensors"),
    (lambda hf: (hf / "model.safetensors").write_bytes(b"\xff" * 64), "SafetensorError: Error while deserializing"),
    (lambda hf: (hf / "config.json").write_text("{"), "is not a valid JSON file"),
    (lambda hf: (hf / "tokenizer.json").write_text("{"), "JSONDecodeError"),
])
def test_a_damaged_export_is_one_line_naming_the_run_and_the_fix(tmp_path, damage, words):
    # A finished run's hf/ is its only copy of the model; a damaged one was a traceback from inside transformers.
    from scaling.io import CorruptFile
    from scaling.testtime.sampling import Policy

    _random_policy(tmp_path)
    damage(tmp_path / "hf")
    with pytest.raises(CorruptFile) as err:
        Policy.load(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'hf'}: the run's model cannot be loaded") and words in message
    assert f"(fix: delete {tmp_path} and run the sweep again" in message and "\n" not in message


@pytest.mark.parametrize("kind,lookahead", [("beam", 0), ("dvts", 0), ("lookahead", 1)])
def test_search_with_an_oracle_prm_reaches_the_coverage_of_what_it_explored(tmp_path, kind, lookahead):
    from scaling.testtime.search import Search, search

    policy = _random_policy(tmp_path)
    problems = held_out_problems(modulus=2, max_steps=3, per_length=8, seed=1)
    problems = [p for p in problems if p.length == 3]
    record: list = []
    plan = Search(kind, 16, 4, lookahead)
    rows, flops = search(plan, policy, _oracle(record), problems, 1.0, 0, TINY, TINY)
    solved = [r["process_correct"] for r in rows]
    explored = [any(ok for q, ok in record if q == p) for p in problems]
    assert solved == explored == [r["explored_process_correct"] for r in rows]
    assert 0 < sum(solved) < len(problems)  # the case is not trivial
    assert flops > 0


def test_template_sampling_keeps_the_layout_and_greedy_is_deterministic(tmp_path):
    from scaling.testtime.sampling import sample_problems

    policy = _random_policy(tmp_path)
    problems = held_out_problems(modulus=5, max_steps=3, per_length=2, seed=0)
    rows = sample_problems(policy, problems, 3, 1.0, 0)
    for r in rows:
        assert _fits(problems[r["problem"]], r["completion"])
    greedy = [r["completion"] for r in sample_problems(policy, problems, 1, 0.0, 0)]
    assert greedy == [r["completion"] for r in sample_problems(policy, problems, 1, 0.0, 5)]


def test_labels_for_puts_each_step_label_at_its_line_end(tmp_path):
    from scaling.testtime.verifier import labels_for

    policy = _random_policy(tmp_path)
    p = Problem(start=3, ops=(("+", 4), ("*", 2)), modulus=13)
    wrong = "3+4=8\n8*2=3\nA:3\n"
    rows = [{**_row(p, p.solution)}, {**_row(p, wrong)}]
    ids = policy.encode([p.prompt + r["completion"] for r in rows])
    prm = labels_for(ids, rows, "prm")
    ends = [i for i, c in enumerate(p.prompt + p.solution) if c == "\n" and i >= len(p.prompt)]
    assert ends == [9, 15, 19]
    assert prm[0, ends].tolist() == [1.0, 1.0, 1.0] and prm[1, ends].tolist() == [0.0, 0.0, 0.0]
    assert torch.isnan(prm[:, [i for i in range(ids.shape[1]) if i not in ends]]).all()
    lucky = _row(p, "3+4=8\n8*2=1\nA:1\n")  # right answer, wrong chain: the ORM says right, the PRM wrong
    ids = policy.encode([p.prompt + lucky["completion"]])
    assert labels_for(ids, [lucky], "orm")[0, -1] == 1.0
    assert labels_for(ids, [lucky], "prm")[0, ends].tolist() == [0.0, 0.0, 0.0]


def test_verifier_trunks_start_from_the_policy_or_at_a_fraction_of_it(tmp_path):
    from scaling.flops import count_params
    from scaling.testtime.verifier import initial_trunk

    policy = _random_policy(tmp_path)
    ids = torch.randint(0, 256, (2, 12))
    trunk, cfg = initial_trunk(policy.model, TINY, "policy", 0.5, 2)
    assert cfg.num_layers == TINY.num_layers + 2
    with torch.no_grad():  # the added blocks start as the identity: the policy's own features
        torch.testing.assert_close(trunk(input_ids=ids).last_hidden_state,
                                   policy.model.base_model(input_ids=ids).last_hidden_state)
    trunk, cfg = initial_trunk(policy.model, TINY, "scratch", 0.25, 2)
    assert cfg.num_layers == TINY.num_layers and cfg.d_model == 8
    blocks = sum(p.numel() for p in trunk.parameters()) - trunk.embed_tokens.weight.numel()
    assert blocks == count_params(cfg).non_embedding


def _row(p: Problem, completion: str) -> dict:
    from scaling.testtime.sampling import checked_row

    return checked_row(p, 0, 0, completion)


def test_revision_chains_sample_each_problem_with_its_own_template(tmp_path):
    from scaling.testtime.revision import sample_chains

    problems = [p for p in held_out_problems(modulus=5, max_steps=2, per_length=4, seed=0) if p.length == 2]
    pool = sample_chains(_random_policy(tmp_path), problems, 2, 3, 2, 1.0, 0)
    assert [len(chains) for chains in pool] == [2] * len(problems)
    for p, chains in zip(problems, pool):
        assert all(len(chain) == 3 and all(_fits(p, a) and len(a) == p.completion_chars for a in chain)
                   for chain in chains)


def test_selection_in_chains_within_then_across():
    from scaling.testtime.revision import select_in_chains

    answers = np.array([[1, 2, 2], [3, 3, 1], [-1, -1, -1]])
    scores = np.array([[0.9, 0.2, 0.3], [0.4, 0.4, 0.5], [1.0, 1.0, 1.0]])
    assert select_in_chains(answers, scores, "weighted") == (0, 0)  # 1 holds 1.4 in all, 3 holds 0.8, 2 holds 0.5
    assert answers[select_in_chains(answers, scores, "majority")] in (1, 2, 3)
    # within: chain 0 picks 1 (0.9 > 0.5), chain 1 picks 3 (0.8 > 0.5); across: 1 (0.9) beats 3 (0.4)
    assert select_in_chains(answers, scores, "hierarchical") == (0, 0)
    assert select_in_chains(answers[2:], scores[2:], "hierarchical") is None


def test_revision_chains_end_in_a_right_attempt_after_ever_closer_wrong_ones():
    from scaling.testtime.revision import edit_distance, revision_chains

    p = Problem(start=3, ops=(("+", 4), ("*", 2)), modulus=13)
    wrong = ["3+4=8\n8*2=3\nA:3\n", "3+4=7\n7*2=2\nA:2\n", "9+4=1\n1*2=2\nA:2\n"]
    rows = [_row(p, c) for c in [p.solution, *wrong]]
    chains = revision_chains([p] * 20, [{**r, "problem": i} for i in range(20) for r in rows], 3, seed=0)
    assert len(chains) == 20 and {len(w) for _, w, _ in chains} == {0, 1, 2, 3}
    solved_only = [{**_row(p, p.solution), "problem": 0}]
    assert revision_chains([p], solved_only, 3, seed=0) == []  # nothing to revise
    for _, context, target in chains:
        assert target == p.solution and set(context) <= set(wrong)
        distances = [edit_distance(w, target) for w in context]
        assert distances == sorted(distances, reverse=True)
    assert edit_distance("kitten", "sitting") == 3


SMALL_STUDY = ["experiment=testtime", "grid.sizes=[{name: null, num_layers: 1, d_model: 32, num_heads: 2}]",
               "grid.budgets_tokens=[200000]", "data.task.num_train=6000", "data.task.test_max_steps=3",
               "data.task.max_steps=3", "data.task.test_per_length=5", "testtime.samples_per_problem=8",
               "testtime.bin_samples=4", "testtime.budgets=[1,2,4,8]", "testtime.subsets=4",
               "testtime.verifier.steps=20", "testtime.verifier.train_problems=40", "testtime.search.budgets=[4]",
               "testtime.search.lookahead=[1]", "testtime.revisions.budgets=[1,2]", "testtime.revisions.steps=10",
               "sweep.fit=false", "launcher.workers=1"]


def test_small_real_study_end_to_end(tmp_path):
    from tests.conftest import run_cli

    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=tt", *SMALL_STUDY)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "tt" / "testtime"
    results = json.loads((out / "results.json").read_text())
    problems = held_out_problems(13, 3, 5, 0)
    (model,) = results["models"]
    samples = [json.loads(line) for line in (out / f"samples-{model['run_id']}.jsonl").read_text().splitlines()]
    assert len(samples) == len(problems) * 8
    for row in samples:  # every stored sample maps to the problem it was generated from
        p = problems[row["problem"]]
        assert row["prompt"] == p.prompt and len(row["completion"]) == p.completion_chars
        assert check(p, row["completion"]).process_correct == row["process_correct"]
        assert len(row["prm_lines"]) == p.length + 1
    curves = model["curves"]["process"]
    assert {"majority", "weighted_prm", "weighted_prm_min", "best_of_n_orm", "beam_w2", "lookahead1_w2",
            "dvts_w2"} <= set(curves)
    assert {"seq_majority_s1", "seq_majority_s2", "seq_weighted_prm_s2"} <= set(model["revisions"]["curves"])
    for s in curves:  # process-correct never exceeds answer-correct
        for k, v in curves[s].items():
            assert v <= model["curves"]["answer"][s][k] + 1e-9
    assert model["verifier"]["train_flops"] > 0 and model["verifier"]["params_fraction"] > 2  # 1 layer + 2 added
    assert {r["family"] for r in results["exchange"]} <= {"search", "revisions"}
    report = (out / "report.md").read_text()
    assert "Exchange" in report and "Paper:" in report and "This run:" in report
    # One model has no pair to exchange: said in the table and the finding, not "no pair could afford a generation"
    # with an empty table, nor matplotlib's warning of a legend with nothing in it.
    assert results["exchange"] == [] and report.count(NO_PAIR) == 2 and "No artists" not in result.stderr
    for figure in ("accuracy_vs_generations", "accuracy_vs_flops", "per_bin_oracle", "per_bin_predicted",
                   "beam_vs_best_of_n", "compute_optimal", "prm_aggregation", "verifier_quality", "revision_steps",
                   "revisions_vs_parallel", "revision_ratios", "exchange", "coverage_fits"):
        assert (out / "figures" / f"{figure}.png").exists(), figure


def test_models_studied_side_by_side_give_the_records_of_one_after_another(tmp_path):
    """On CPU the study runs its models in single-threaded processes side by side (as many as the sweep's local
    workers); each model's study is seeded on its own, so its samples, verifier scores and curves are those of the
    same models studied one after another in one process."""
    from scaling import sweepdir
    from scaling.config import TaskConfig, parse
    from scaling.testtime import study
    from tests.conftest import compose_raw, run_cli

    sizes = "grid.sizes=[{name: null, num_layers: 1, d_model: 16, num_heads: 2}, " \
            "{name: null, num_layers: 1, d_model: 32, num_heads: 2}]"
    overrides = [SMALL_STUDY[0], sizes, *SMALL_STUDY[2:]]
    training = ["data=worksheet", "grid=testtime", *(o for o in overrides[1:] if not o.startswith("testtime."))]
    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=tt", *training)  # no study: no testtime
    assert result.returncode == 0, result.stderr[-3000:]
    raw = compose_raw([*overrides, "sweep.name=tt"], config_name="sweep")
    cfg, task = parse(study.TestTimeConfig, raw["testtime"], "testtime."), parse(TaskConfig, raw["data"]["task"],
                                                                               "data.task.")
    sweep_dir = tmp_path / "tt"
    runs = [sweepdir.run_dir(sweep_dir, p["id"]) for p in sweepdir.read_manifest(sweep_dir)["points"]]
    problems, pool = study.problem_sets(cfg, task)

    def without_timings(value):
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items() if "seconds" not in str(k)}
        if isinstance(value, (list, tuple, np.ndarray)):
            return [without_timings(v) for v in value]
        return value.item() if isinstance(value, np.generic) else value

    records, samples = {}, {}
    for workers in (2, 1):
        out = tmp_path / f"workers{workers}"
        out.mkdir()
        records[workers] = without_timings(study.measured_all(runs, problems, pool, cfg, task, out, "cpu", workers))
        samples[workers] = [(out / f"samples-{r.name}.jsonl").read_text() for r in runs]
    assert samples[2] == samples[1] and records[2] == records[1]


@pytest.mark.slow
def test_default_study_trains_policies_worth_searching(tmp_path):
    """The default CPU study (training included, ≤ 20 minutes): policies that do the task, an ordered family, every
    part of the study present, and verifiers that beat majority voting on the policies that can do the task (Snell
    et al. 2024, Fig. 3). Its other findings are stated in the report, not asserted.

    The verifier's ranking is checked on the training lengths, where the policy does the task: at the unseen lengths
    7-8 a policy can fail in ways its verifier never saw (one draw's 60K policy: process pass@1 0.43 at length 8, PRM
    AUC 0.61). Weighted voting must beat majority voting on average over N >= 2; at one N the two can sit within a
    few problems of each other (that draw: 0.918 vs 0.920 at N = 16, level at N = 32)."""
    from tests.conftest import run_cli

    result = run_cli("sweep.py", f"sweep.out_dir={tmp_path}", "sweep.name=tt", "experiment=testtime", timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "tt" / "testtime" / "results.json").read_text())
    models = sorted(results["models"], key=lambda m: m["params_non_embedding"])
    assert len(models) == 3
    train_max_length = int(results["test_set"]["train_lengths"].split("..")[1])
    assert models[-1]["pass1_train_lengths"] >= 0.3
    assert models[0]["pass1_train_lengths"] < models[-1]["pass1_train_lengths"] - 0.2
    for m in models:
        for s, curve in m["curves"]["process"].items():
            assert all(v <= m["curves"]["answer"][s][k] + 1e-9 for k, v in curve.items())
        assert len(m["revisions"]["pass1_by_attempt"]) == 8
        if m["pass1_train_lengths"] >= 0.5:  # a policy that does the task: its verifier ranks, and weighs votes
            assert all(q["prm_last"]["auc"] is None or q["prm_last"]["auc"] >= 0.9 for q in m["verifier"]["quality"]
                       if q["length"] <= train_max_length), m["verifier"]["quality"]
            curves = m["curves"]["process"]
            gains = [curves["weighted_prm"][k] - curves["majority"][k] for k in curves["majority"] if k != "1"]
            assert sum(gains) > 0, curves
    assert {(r["family"], r["charged"]) for r in results["exchange"]} == {
        (f, c) for f in ("search", "revisions") for c in (True, False)}


def test_a_verifier_that_reads_the_likelihood_learns_what_the_policy_thought_unlikely(tmp_path):
    """The label is "the last token was likely under the policy": a verifier that reads the policy's per-token
    log-probabilities learns it in a few steps; one that reads only the text is the same model without them."""
    from scaling.testtime.verifier import initial_trunk, token_logprobs, train_verifier

    policy = _random_policy(tmp_path)
    with torch.no_grad():
        policy.model.model.norm.weight.mul_(200.0)  # sharp predictions: log-probabilities spread over nats
    ids = torch.randint(40, 60, (512, 10), generator=torch.Generator().manual_seed(0))
    logp = token_logprobs(policy.model, ids)
    with torch.no_grad():  # the feature is the policy's log-softmax at the previous position
        expected = torch.log_softmax(policy.model(input_ids=ids).logits, -1)[0, 3, ids[0, 4]]
    assert logp[0, 4] == pytest.approx(float(expected), abs=1e-5) and (logp[:, 0] == 0).all()
    likely = logp[:, -1] > logp[:, -1].median()
    target = torch.full(ids.shape, float("nan"))
    target[:, -1] = likely.float()
    train, held_out = [(ids[i:i + 64], target[i:i + 64]) for i in range(0, 384, 64)], ids[384:]
    aucs = {}
    for reads in (False, True):
        trunk, cfg = initial_trunk(policy.model, TINY, "policy", 0.5, 2)
        verifier = train_verifier("orm", train, trunk, cfg, policy.model, reads, 150, 1e-2, 0)
        aucs[reads] = analysis.auc(verifier.score(held_out).numpy(), likely[384:].numpy())
    assert aucs[True] > 0.9 and aucs[True] > aucs[False] + 0.2, aucs


def test_perturbed_samples_go_wrong_at_one_blank_and_are_checked(tmp_path):
    from scaling.testtime.sampling import perturbed_samples, sample_problems

    policy = _random_policy(tmp_path)
    problems = held_out_problems(modulus=5, max_steps=3, per_length=3, seed=0)
    rows = sample_problems(policy, problems, 2, 1.0, 0)
    assert perturbed_samples(policy, rows, problems, 0.0, 1.0, 0) == []
    twins = perturbed_samples(policy, rows, problems, 1.0, 1.0, 0)
    assert len(twins) == len(rows)
    sources = {(r["problem"], r["sample"]): r for r in rows}
    for twin in twins:
        p, source = problems[twin["problem"]], sources[twin["problem"], twin["sample"]]["completion"]
        assert _fits(p, twin["completion"]) and len(twin["completion"]) == p.completion_chars
        cut = next(i for i, (a, b) in enumerate(zip(source, twin["completion"])) if a != b)
        assert p.template[cut] == BLANK  # the first difference is the perturbed blank
        assert check(p, twin["completion"]).process_correct == twin["process_correct"]
    assert not all(t["process_correct"] for t in twins)


def test_reading_the_likelihood_costs_only_the_prompts_output_layer():
    from scaling.testtime.cost import scoring_flops

    verifier = ModelConfig(**{**TINY.__dict__, "num_layers": 3})
    extra = scoring_flops(verifier, 4, 20, 8, TINY) - scoring_flops(verifier, 4, 20, 8, None)
    assert extra == 2 * TINY.vocab_size * TINY.d_model * 3
