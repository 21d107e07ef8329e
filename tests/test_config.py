"""Every config file composes and validates; each bad input gives one line naming the field and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scaling.cli import HYDRA_FULL_ERROR, config_files_reported, task_environment
from scaling.config import ConfigError, load_train_config
from scaling.errors import EXIT_USER_ERROR
from tests.conftest import CONFIGS, compose_raw, run_cli

GROUPS = ["model", "data", "optim", "precision", "tracking"]
# Options that only make sense with a companion setting (a path, a name, a GPU-sized batch).
COMPANIONS = {
    "files": ["data.paths=[corpus.txt]"],
    "hub": ["data.hub_name=owner/corpus"],
    "llama_124m": ["budget.micro_batch_size=8", "budget.batch_tokens=131072", "budget.tokens=1e9"],
    "llama_1b": ["budget.micro_batch_size=8", "budget.batch_tokens=131072", "budget.tokens=1e9"],
}


@pytest.mark.parametrize("group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))])
def test_every_group_option_composes_and_validates(group, option):
    import yaml

    raw = compose_raw([f"{group}={option}", *COMPANIONS.get(option, [])])
    cfg = load_train_config(raw)
    # Every plain value the option's file sets reaches the validated config (inherited files: their own keys).
    own = yaml.safe_load((CONFIGS / group / f"{option}.yaml").read_text()) or {}
    section = getattr(cfg, group)
    for key, value in own.items():
        mandatory_or_interpolated = str(value) == "???" or str(value).startswith("${")
        if key != "defaults" and not isinstance(value, (dict, list)) and not mandatory_or_interpolated:
            assert getattr(section, key) == value, (group, option, key)


@pytest.mark.parametrize("overrides,field,words", [
    (["model.d_model=65"], "model.d_model", "divisible"),
    (["model.num_heads=0"], "model.num_heads", "positive"),
    (["budget.tokens=0"], "budget.tokens", "positive"),
    (["budget.tokens=1000.5"], "budget.tokens", "integer"),
    (["budget.tokens=100"], "budget.tokens", "smaller than one batch"),
    (["budget.batch_tokens=1000"], "budget.batch_tokens", "multiple"),
    (["precision.dtype=fp8"], "precision.dtype", "unknown value"),
    (["optim.lr=-0.1"], "optim.lr", "positive"),
    (["optim.schedule=linear"], "optim.schedule", "unknown value"),
    (["model.vocab_size=999"], "model.vocab_size", "tokenizer"),
    (["model.num_layers=two"], "model.num_layers", "integer"),
    (["+model.depth=4"], "model.depth", "unknown field"),
    (["run.device=tpu"], "run.device", "unknown device"),
    (["data.val_fraction=0.9"], "data.val_fraction", "fix"),
    (["data.tokenizer.vocab_size=100"], "data.tokenizer.vocab_size", "BPE"),
    (["model.tie_embeddings=maybe"], "model.tie_embeddings", "true/false"),
    (["model.rope_theta=0"], "model.rope_theta", "above 1"),
    (["model.norm_eps=-1"], "model.norm_eps", "negative"),
    (["run.cpu_peak_flops_per_s=-1"], "run.cpu_peak_flops_per_s", "must be positive"),
    (["data=hub", "data.hub_name=someone/corpus", "data.hub_max_docs=0"], "data.hub_max_docs", "0 is below 1"),
    # numpy's generators refuse a negative seed: a ValueError traceback from inside the loader.
    (["seed=-1"], "seed", "not in [0, 2^64)"),
    # torch's AdamW refuses a negative eps (a traceback); 0 makes the untrained rows' update 0/0 (a NaN run).
    (["optim.eps=-1"], "optim.eps", "must be positive"),
    (["optim.eps=0"], "optim.eps", "must be positive"),
    # A branch step past the run's end was never reached: the run finished without the branch point asked for.
    (["checkpoint.branch_steps=[100]"], "checkpoint.branch_steps", "beyond the run's last step (73)"),
    # Without a trunk the step was ignored: a run from scratch where a branch was asked for.
    (["branch.step=5"], "branch.step", "without branch.trunk"),
])
def test_bad_config_is_one_clear_line(overrides, field, words):
    with pytest.raises(ConfigError) as err:
        load_train_config(compose_raw(overrides))
    assert err.value.field_path == field
    assert words in str(err.value) and "fix:" in str(err.value)


@pytest.mark.parametrize("args,words", [
    (["model.d_model=65"], "model.d_model"),
    (["precision=fp16", "run.device=cpu"], "precision.dtype=fp16 needs CUDA"),
    (["data=files", "data.paths=[/no/such/corpus.txt]"], "data.paths: no file matches"),
    (["data=hub", "data.hub_name=someone/corpus"], "offline"),
    (["model=no_such_model"], "no_such_model"),
])
def test_cli_reports_without_traceback_and_writes_nothing(tmp_path, args, words):
    result = run_cli("train.py", f"run.out_dir={tmp_path / 'runs'}", "run.progress=false", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert words in result.stderr
    assert not any(Path(tmp_path / "runs").glob("*/summary.json"))


@pytest.mark.parametrize("script,says", [
    ("train.py", "python train.py (or scaling-train): train one model"),
    ("sweep.py", "python sweep.py (or scaling-sweep): run a grid of training runs"),
])
def test_help_says_what_the_command_does_and_where_its_fields_are_described(script, says):
    # It opened with Hydra's "train is powered by Hydra." and nothing about the command.
    result = run_cli(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(says)
    assert "README.md" in result.stdout and "powered by Hydra" not in result.stdout
    assert "== Configuration groups ==" in result.stdout and "model: gpt2_tiny" in result.stdout


@pytest.mark.parametrize("text,words", [
    (b"model: [", "config.yaml, line 1, column 9 is not valid YAML: expected the node content"),
    (b"model: a\nmodel: b\n", "config.yaml, line 2, column 1 is not valid YAML: found duplicate key model"),
    (b"\xff\xfemodel: a", "config.yaml is not a config file: byte 0 is not UTF-8 text"),
])
@pytest.mark.parametrize("script", ["train.py", "sweep.py"])
def test_a_config_file_that_is_not_yaml_is_one_line_naming_the_file_and_place(tmp_path, script, text, words):
    # Hydra printed a traceback through its own frames for a saved config.yaml or an edited configs/ file.
    (tmp_path / "config.yaml").write_bytes(text)
    result = run_cli(script, "--config-path", str(tmp_path), "--config-name", "config")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_USER_ERROR and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {tmp_path}/") and words in lines[0] and "(fix: " in lines[0]


def test_hydras_own_errors_stay_short_and_the_run_sees_the_users_environment(tmp_path, monkeypatch):
    result = run_cli("train.py", "model=no_such_model")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "no_such_model" in result.stderr
    # HYDRA_FULL_ERROR is set only while Hydra composes: the run, and the points a sweep starts, see the user's.
    monkeypatch.delenv(HYDRA_FULL_ERROR, raising=False)
    seen = []
    with config_files_reported():
        seen.append(os.environ.get(HYDRA_FULL_ERROR))
        with task_environment():
            seen.append(os.environ.get(HYDRA_FULL_ERROR))
        seen.append(os.environ.get(HYDRA_FULL_ERROR))
    assert seen == ["1", None, "1"] and HYDRA_FULL_ERROR not in os.environ


@pytest.mark.parametrize("model", ["llama_tiny", "llama_small", "llama_124m", "llama_1b"])
@pytest.mark.parametrize("d_model", [12, 24, 48, 384, 2048])
def test_llama_mlp_width_is_llamas_eight_thirds_rounded_up_to_16(model, d_model):
    # Llama's reference FeedForward: hidden = int(2 * 4d / 3), then rounded up to a multiple of 16 here.
    raw = compose_raw([f"model={model}", f"model.d_model={d_model}", "model.num_heads=2",
                       *COMPANIONS.get(model, [])])
    expected = 16 * -(-(8 * d_model // 3) // 16)
    assert load_train_config(raw).model.ffn_dim == expected
