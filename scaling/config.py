"""The typed schema of a training run.

Values live in YAML under ``configs/``; this module only says what each field means, which values are legal,
and turns a plain mapping (what Hydra composed) into frozen dataclasses. Every mistake is reported as a
:class:`ConfigError` that names the field and the fix, before any compute starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping

from scaling.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration mistake: ``field`` is the dotted path, the message says what to do."""

    def __init__(self, field_path: str, problem: str, fix: str) -> None:
        self.field_path, self.problem, self.fix = field_path, problem, fix
        super().__init__(f"{field_path}: {problem} (fix: {fix})")


def _require(ok: bool, field_path: str, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(field_path, problem, fix)


def check_at_least(field: str, value: float | None, low: float, fix: str) -> None:
    """``value`` is ``low`` or more (None: not set, which the field's own type allows or refuses)."""
    _require(value is None or value >= low, field, f"{value} is below {low:g}", fix)


def check_lr(lr: float, field: str) -> None:
    _require(lr > 0, field, f"learning rate must be positive, got {lr}", f"e.g. {field}=3e-3")


def check_seed(seed: int, field: str) -> None:
    """numpy's generators refuse a negative seed, torch.manual_seed one of 2^64 or more."""
    _require(0 <= seed < 2**64, field, f"{seed} is not in [0, 2^64)", "use a non-negative integer, e.g. 0")


def check_device(name: str, field: str) -> None:
    """A device setting is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``: anything else is named before torch sees it."""
    _require(re.fullmatch(r"auto|cpu|cuda(:\d+)?", name) is not None, field, f"unknown device {name!r}",
             "use auto, cpu, cuda or cuda:N")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    arch: Literal["llama", "gpt2"]
    """`llama`: RMSNorm, SwiGLU, RoPE, no biases (exports to LlamaForCausalLM).
    `gpt2`: LayerNorm, GELU, learned positions, biases (exports to GPT2LMHeadModel)."""
    num_layers: int
    d_model: int
    num_heads: int
    d_ff: int | None
    """Hidden width of the MLP; null derives it from `ffn_ratio`."""
    ffn_ratio: float
    """d_ff = floor(ffn_ratio * d_model) rounded up to a multiple of 16, used when `d_ff` is null."""
    seq_len: int
    """Context length in tokens of every training and evaluation sequence."""
    vocab_size: int
    tie_embeddings: bool
    """Share the token embedding with the output projection."""
    init_std: float
    """Std of the normal init of every matrix; residual projections get init_std / sqrt(2 * num_layers)."""
    norm_eps: float
    rope_theta: float
    """RoPE base frequency (llama only)."""
    mup_base_width: int | None
    """null: standard parametrization. A width: the Maximal Update Parametrization (Yang et al. 2022, "Tensor
    Programs V") with this d_model as its base, where it equals the standard one; learning rate and init tuned at
    the base width then hold at other widths (scaling.model, scaling.optim). Widths compared this way keep
    num_heads fixed (heads widen with the model)."""

    def __post_init__(self) -> None:
        for name in ("num_layers", "d_model", "num_heads", "seq_len", "vocab_size"):
            _require(getattr(self, name) > 0, f"model.{name}", f"must be positive, got {getattr(self, name)}",
                     "set a positive integer")
        _require(self.d_model % self.num_heads == 0, "model.d_model",
                 f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}",
                 "choose num_heads that divides d_model")
        if self.arch == "llama":
            _require(self.head_dim % 2 == 0, "model.num_heads",
                     f"RoPE needs an even head dimension, got d_model/num_heads={self.head_dim}",
                     "choose num_heads so that d_model/num_heads is even")
            # θ_j = rope_theta^(-2j/head_dim) falls from 1 only for a base above 1; 0 gives infinite angles (NaN).
            _require(self.rope_theta > 1, "model.rope_theta", f"the RoPE base must be above 1, got {self.rope_theta}",
                     "e.g. 10000.0 (Llama 2) or 500000.0 (Llama 3)")
        _require(self.norm_eps >= 0, "model.norm_eps", f"negative: {self.norm_eps} (a NaN wherever mean(x²) < "
                 f"{-self.norm_eps:g})", "e.g. 1e-5")
        _require(self.d_ff is None or self.d_ff > 0, "model.d_ff", f"must be positive, got {self.d_ff}",
                 "set a positive integer or null to use ffn_ratio")
        _require(self.ffn_ratio > 0, "model.ffn_ratio", f"must be positive, got {self.ffn_ratio}", "e.g. 4.0")
        _require(self.init_std > 0, "model.init_std", f"must be positive, got {self.init_std}", "e.g. 0.02")
        _require(self.vocab_size <= 2**32, "model.vocab_size", "too large", "use a vocabulary below 2^32")
        _require(self.mup_base_width is None or self.mup_base_width > 0, "model.mup_base_width",
                 f"must be positive, got {self.mup_base_width}", "the d_model you tuned at, or null")

    @property
    def width_mult(self) -> float:
        """d_model / mup_base_width under μP, 1 under the standard parametrization."""
        return 1.0 if self.mup_base_width is None else self.d_model / self.mup_base_width

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def ffn_dim(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        # Floor first, then round up, as Llama's reference FeedForward does (int(2 * 4d / 3), then up to a multiple):
        # the configs write 8/3 as 2.6667, which lies just above it and would otherwise add 16 hidden units wherever
        # 8/3 * d_model is a multiple of 16.
        return 16 * math.ceil(math.floor(self.ffn_ratio * self.d_model) / 16)


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    kind: Literal["bpe", "bytes"]
    """`bpe`: byte-level BPE trained on the training split; `bytes`: the 256 raw bytes."""
    vocab_size: int
    """Size of the trained BPE vocabulary; 256 for `bytes`."""

    def __post_init__(self) -> None:
        if self.kind == "bpe":
            _require(257 <= self.vocab_size <= 65536, "data.tokenizer.vocab_size",
                     f"{self.vocab_size} is outside [257, 65536] for a byte-level BPE",
                     "pick e.g. 4096, or data=classics_bytes")
        else:
            _require(self.vocab_size == 256, "data.tokenizer.vocab_size",
                     f"bytes have 256 ids, got {self.vocab_size}", "set data.tokenizer.vocab_size=256")


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """A generated task with checkable steps (scaling.testtime.task): worksheets of arithmetic mod `modulus`."""
    name: Literal["worksheet"]
    modulus: int
    min_steps: int
    max_steps: int
    """Training problems have min_steps..max_steps steps."""
    num_train: int
    test_max_steps: int
    """Test problems have 1..test_max_steps steps (beyond max_steps: the "nearly impossible" bin)."""
    test_per_length: int
    seed: int

    def __post_init__(self) -> None:
        _require(2 <= self.modulus <= 36, "data.task.modulus", f"{self.modulus} is not in [2, 36]",
                 "use a modulus whose residues are one character each (0-9, a-z), e.g. 13")
        _require(1 <= self.min_steps <= self.max_steps <= self.test_max_steps, "data.task.max_steps",
                 "needs 1 <= min_steps <= max_steps <= test_max_steps", "order the step counts")
        _require(self.num_train > 0 and self.test_per_length > 0, "data.task.num_train", "counts must be positive",
                 "e.g. num_train=50000, test_per_length=25")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    source: Literal["classics", "files", "hub", "task"]
    """`classics`: the embedded default corpus (built offline from installed packages);
    `files`: local text/json/jsonl/parquet files in `paths`; `hub`: a dataset on the Hugging Face hub;
    `task`: problems with worked solutions generated from `task`."""
    paths: list[str]
    """Local files or glob patterns (source=files)."""
    text_field: str
    """Column holding the text (json/parquet/hub)."""
    hub_name: str | None
    hub_subset: str | None
    hub_split: str
    hub_max_docs: int | None
    """Stop streaming a hub dataset after this many documents (null: the whole split)."""
    offline: bool
    """Refuse to reach the hub (the default): a hub source then fails at once with a one-line error."""
    val_fraction: float
    """Fraction of text blocks held out for validation; the split is a fixed function of the text."""
    task: TaskConfig | None
    """The generated task (source=task)."""
    tokenizer: TokenizerConfig
    cache_dir: str
    """Where tokenizers and memory-mapped token files live, shared by every run with the same data config."""
    num_proc: int | None
    """Processes that encode the corpus when its token files are built (once per data config); null: one per CPU
    core. The tokens do not depend on it."""
    fingerprint: str | None
    """source=files: a hash of the files' contents, filled in when the config is resolved (leave null). It is part
    of the run id and of the token cache's key, so replacing a file's text makes new tokens and new runs, and a
    frozen config whose files have changed since is refused."""
    on_repeat: Literal["warn", "error"]
    """What to do when a budget needs more tokens than the training split has."""

    def __post_init__(self) -> None:
        _require(0.0 < self.val_fraction < 0.5, "data.val_fraction", f"{self.val_fraction} is not in (0, 0.5)",
                 "use e.g. 0.02")
        _require(self.num_proc is None or self.num_proc > 0, "data.num_proc", f"must be positive, got {self.num_proc}",
                 "use null (one per core) or a positive count")
        if self.source == "files":
            _require(len(self.paths) > 0, "data.paths", "source=files needs at least one path",
                     "set data.paths=[/path/to/corpus.txt]")
        if self.source == "hub":
            _require(bool(self.hub_name), "data.hub_name", "source=hub needs a dataset name",
                     "set data.hub_name=<owner/name>")
            check_at_least("data.hub_max_docs", self.hub_max_docs, 1, "a positive count, or null for the whole split")
        if self.source == "task":
            _require(self.task is not None, "data.task", "source=task needs a task", "use data=worksheet")
            _require(self.tokenizer.kind == "bytes", "data.tokenizer.kind", "the task's checker reads characters",
                     "use the bytes tokenizer (data=worksheet sets it)")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    lr: float
    """Peak learning rate."""
    min_lr_ratio: float
    """Floor of the decay as a fraction of the peak."""
    schedule: Literal["cosine", "constant", "wsd"]
    """`cosine`: warmup then cosine over the run's own budget (Chinchilla); `constant`: warmup then flat;
    `wsd`: warmup, stable, then a decay over the last `decay_fraction` of steps, shaped by `decay_shape`."""
    warmup_steps: int
    """Steps of linear warmup. One the run cannot hold (as long as the run, or past a wsd decay's start) is cut to
    fit, with a warning (scaling.optim.schedule_cut_short)."""
    decay_fraction: float
    """Fraction of steps spent decaying (wsd only)."""
    decay_shape: Literal["linear", "1-sqrt"]
    """Shape of the wsd decay from the peak to the floor: `linear` (Hu et al. 2024, "MiniCPM") or `1-sqrt`,
    lr = floor + (peak − floor)·(1 − sqrt(progress)) (Hägele et al. 2024, §3: matches cosine at the same length)."""
    weight_decay: float
    """Applied to matrices only (not to norms, biases or embeddings)."""
    beta1: float
    beta2: float
    eps: float
    """Added to Adam's denominator sqrt(v); it must be positive: wherever a parameter's gradient has always been 0
    (the input embedding of a token never seen), v is 0 and the update 0/0."""
    grad_clip: float
    """Max global gradient norm; 0 disables clipping."""

    def __post_init__(self) -> None:
        check_lr(self.lr, "optim.lr")
        _require(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", f"{self.min_lr_ratio} not in [0, 1]", "e.g. 0.1")
        _require(self.warmup_steps >= 0, "optim.warmup_steps", f"negative: {self.warmup_steps}", "use 0 or more")
        _require(0 < self.decay_fraction <= 1, "optim.decay_fraction", f"{self.decay_fraction} not in (0, 1]",
                 "e.g. 0.2")
        _require(self.weight_decay >= 0, "optim.weight_decay", f"negative: {self.weight_decay}", "use 0 or more")
        for name in ("beta1", "beta2"):
            _require(0 <= getattr(self, name) < 1, f"optim.{name}", f"{getattr(self, name)} not in [0, 1)",
                     "e.g. 0.9 / 0.95")
        _require(self.eps > 0, "optim.eps", f"must be positive, got {self.eps}", "e.g. 1e-8")
        _require(self.grad_clip >= 0, "optim.grad_clip", f"negative: {self.grad_clip}", "use 0 to disable")

    def decay_start(self, num_steps: int) -> int:
        """First step of a wsd run's decay: where a cooldown branch leaves a longer run of the same config."""
        return num_steps - max(1, round(self.decay_fraction * num_steps))


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    tokens: int
    """Training tokens: the run's length. Steps = round(tokens / batch_tokens)."""
    batch_tokens: int
    """Tokens per optimizer step, independent of the micro-batch (gradient accumulation makes up the rest)."""
    micro_batch_size: int
    """Sequences per forward/backward pass; lower it to save memory, the batch stays the same."""

    def __post_init__(self) -> None:
        _require(self.tokens > 0, "budget.tokens", f"must be a positive integer, got {self.tokens}",
                 "e.g. budget.tokens=2000000")
        _require(self.batch_tokens > 0, "budget.batch_tokens", f"must be positive, got {self.batch_tokens}",
                 "e.g. 8192")
        _require(self.micro_batch_size > 0, "budget.micro_batch_size", f"must be positive, got {self.micro_batch_size}",
                 "e.g. 8")
        _require(self.tokens >= self.batch_tokens, "budget.tokens",
                 f"budget of {self.tokens} tokens is smaller than one batch ({self.batch_tokens} tokens)",
                 "raise budget.tokens or lower budget.batch_tokens")


@dataclass(frozen=True, kw_only=True)
class PrecisionConfig:
    dtype: Literal["fp32", "bf16", "fp16", "auto"]
    """Autocast compute dtype; parameters and optimizer state stay fp32. fp16 needs CUDA (it uses a GradScaler).
    auto: bf16 where this device runs the model faster in it, else fp32 (scaling.precision); the command line
    writes the chosen dtype into the config before the run id is computed."""
    tf32: bool
    """Allow TF32 matmuls on CUDA (ignored on CPU)."""


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    interval_steps: int
    """Evaluate on the held-out split every this many steps (and always at the end); 0: only at the end."""
    tokens: int
    """Held-out tokens per evaluation (the same fixed sequences every time and for every run); more than the
    validation split holds evaluates on all of it, with a warning."""

    def __post_init__(self) -> None:
        _require(self.interval_steps >= 0, "eval.interval_steps", "negative", "use 0 (end only) or more")
        _require(self.tokens > 0, "eval.tokens", f"must be positive, got {self.tokens}", "e.g. 65536")


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    interval_steps: int
    """Save a resumable checkpoint every this many steps; 0 disables periodic checkpoints."""
    interval_minutes: float
    """Also save when this many minutes passed since the last checkpoint; 0 disables."""
    keep_last: int
    """How many complete checkpoints to keep."""
    branch_steps: list[int]
    """Also checkpoint at these steps and keep those checkpoints after the run ends (under `branch_points/`): the
    states cooldown branches start from (see `branch`)."""

    def __post_init__(self) -> None:
        _require(self.interval_steps >= 0, "checkpoint.interval_steps", "negative", "use 0 to disable")
        _require(all(s > 0 for s in self.branch_steps), "checkpoint.branch_steps", "steps must be positive",
                 "list steps such as [120, 240]")
        _require(self.interval_minutes >= 0, "checkpoint.interval_minutes", "negative", "use 0 to disable")
        _require(self.keep_last >= 1, "checkpoint.keep_last", f"must be at least 1, got {self.keep_last}", "e.g. 2")


@dataclass(frozen=True, kw_only=True)
class BranchConfig:
    """Start from another run's kept checkpoint (its `checkpoint.branch_steps`) instead of from step 0. With a wsd
    schedule whose decay starts at that step, the branch is the same computation as training from scratch (a
    shorter run of the same config), at the cost of its cooldown only (Hägele et al. 2024, §4)."""
    trunk: str | None
    """Run id of the run to branch from, in the same `run.out_dir`; null: an ordinary run."""
    step: int
    """The trunk's step to start from: the first step of this run's decay."""

    def __post_init__(self) -> None:
        _require(self.trunk is None or self.step > 0, "branch.step", f"{self.step} is not positive",
                 "set the trunk step the branch starts from")
        # Without a trunk the step would be ignored: the run would train from scratch, not branch as asked.
        _require(self.trunk is not None or self.step == 0, "branch.step", f"{self.step} is set without branch.trunk",
                 "set branch.trunk to the run id to branch from, or leave branch.step at 0")
        _require(self.trunk is None or RUN_ID.fullmatch(self.trunk) is not None, "branch.trunk",
                 f"{self.trunk!r} is not a run id (12 hex digits)", "the trunk's run directory name, or null")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    out_dir: str
    """Parent directory: the run writes into `<out_dir>/<run_id>/`."""
    device: str
    """`auto` (cuda if present, else cpu), `cpu`, `cuda` or `cuda:N`."""
    num_threads: int | None
    """CPU threads for this process; null: SLURM_CPUS_PER_TASK inside Slurm, else 1 (fastest per process on a
    shared box; run grid points side by side instead)."""
    cpu_peak_flops_per_s: float | None
    """Peak used for MFU on CPU; null measures a matmul at start-up."""
    compile: bool
    """torch.compile the model."""
    parallel: Literal["ddp", "fsdp"]
    """How a run started on several ranks (torchrun) splits the work: `ddp` replicates the model on every rank
    (DistributedDataParallel; for models that fit on one device), `fsdp` shards parameters, gradients and optimizer
    state (FSDP2 `fully_shard` per block; mixed precision by its own policy). One rank: ignored."""
    log_interval_steps: int
    progress: bool
    """Show a live progress bar."""
    export_hf: bool
    """Save the final model in transformers format under `hf/`."""
    divergence_factor: float | None
    """Stop and mark the run `diverged` when a step's loss exceeds this multiple of the best loss so far
    (NaN/inf always stops it); null: only NaN/inf."""

    def __post_init__(self) -> None:
        check_device(self.device, "run.device")
        _require(self.cpu_peak_flops_per_s is None or self.cpu_peak_flops_per_s > 0, "run.cpu_peak_flops_per_s",
                 f"must be positive, got {self.cpu_peak_flops_per_s} (it divides every MFU)",
                 "null to measure the peak at start-up, or the CPU's FLOP/s, e.g. 1e11")
        _require(self.num_threads is None or self.num_threads > 0, "run.num_threads", "must be positive",
                 "use null or a positive integer")
        _require(self.log_interval_steps > 0, "run.log_interval_steps", "must be positive", "e.g. 10")
        _require(self.divergence_factor is None or self.divergence_factor > 1, "run.divergence_factor",
                 f"must be above 1, got {self.divergence_factor}", "e.g. 3.0, or null")


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    mode: Literal["off", "offline", "online"]
    """wandb mirror of metrics.jsonl: `offline` needs no account; local files stay the source of truth."""
    project: str
    group: str | None
    """Runs of one sweep share a group (the sweep sets it)."""
    redact: bool
    """Send wandb the metrics and the config only: no system metadata (hostname, environment variables such as
    SLURM_*, program path, git remote), no system stats, no code; paths in the config relative to the working
    directory."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    seed: int
    """Seeds model init and batch order."""
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    budget: BudgetConfig
    precision: PrecisionConfig
    eval: EvalConfig
    checkpoint: CheckpointConfig
    run: RunConfig
    tracking: TrackingConfig
    branch: BranchConfig

    def __post_init__(self) -> None:
        check_seed(self.seed, "seed")
        _require(self.model.vocab_size == self.data.tokenizer.vocab_size, "model.vocab_size",
                 f"model.vocab_size={self.model.vocab_size} but the tokenizer has "
                 f"{self.data.tokenizer.vocab_size} tokens",
                 "leave model.vocab_size at ${data.tokenizer.vocab_size} or set both to the same value")
        _require(self.budget.batch_tokens % (self.budget.micro_batch_size * self.model.seq_len) == 0,
                 "budget.batch_tokens",
                 f"{self.budget.batch_tokens} is not a multiple of micro_batch_size*seq_len = "
                 f"{self.budget.micro_batch_size}*{self.model.seq_len}",
                 "make batch_tokens a multiple of micro_batch_size * model.seq_len")
        _require(self.eval.tokens >= self.model.seq_len, "eval.tokens",
                 f"{self.eval.tokens} is less than one sequence ({self.model.seq_len})", "raise eval.tokens")
        late = [s for s in self.checkpoint.branch_steps if s > self.num_steps]
        _require(not late, "checkpoint.branch_steps", f"{late} lie beyond the run's last step ({self.num_steps}): no "
                 "branch point would be kept there", "list steps of this run, or raise budget.tokens")
        if self.branch.trunk is not None:
            _require(self.optim.schedule == "wsd", "branch.trunk",
                     f"a branch needs a schedule that is flat until its decay, not {self.optim.schedule!r}",
                     "optim=adamw_wsd")
            start = self.optim.decay_start(self.num_steps)
            _require(self.branch.step == start, "branch.step",
                     f"step {self.branch.step} is not where this run's decay starts ({start}): the branch would "
                     "not be the run it stands for", f"branch.step={start}")

    @property
    def grad_accum_steps(self) -> int:
        return self.budget.batch_tokens // (self.budget.micro_batch_size * self.model.seq_len)

    @property
    def num_steps(self) -> int:
        return max(1, round(self.budget.tokens / self.budget.batch_tokens))


# Fields that change where or how a run is observed, never what it computes: left out of the run id.
NON_SEMANTIC_FIELDS: frozenset[str] = frozenset(
    {"run.out_dir", "run.num_threads", "run.progress", "run.log_interval_steps", "run.export_hf",
     "run.cpu_peak_flops_per_s", "run.divergence_factor", "run.parallel", "tracking", "checkpoint", "data.cache_dir",
     "data.num_proc",
     "branch"}
)
"""``branch`` is among them: a branch computes exactly what a run from step 0 computes (a test checks it)."""


RUN_ID = re.compile(r"[0-9a-f]{12}")
"""What run_id gives: a run's directory name, so nothing else names a run (a path cannot pass for one)."""


def run_id(cfg: TrainConfig) -> str:
    """Content hash of the semantic config: equal ids mean the same computation."""
    return hashlib.sha256(json.dumps(semantic(to_dict(cfg)), sort_keys=True).encode()).hexdigest()[:12]


def semantic(raw: dict[str, Any]) -> dict[str, Any]:
    """A config mapping without NON_SEMANTIC_FIELDS: what decides the computation, which the run id hashes."""
    return _drop(raw, NON_SEMANTIC_FIELDS)


def _drop(tree: dict[str, Any], dotted: frozenset[str], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if path in dotted:
            continue
        out[key] = _drop(value, dotted, path + ".") if isinstance(value, dict) else value
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


# --------------------------------------------------------------------------------------------- parsing


def parse(cls: type, raw: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain mapping, checking names and types field by field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix.rstrip(".") or "<root>", f"expected a mapping, got {type(raw).__name__}",
                          "check the YAML structure")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", "unknown field",
                          f"remove it or use one of: {', '.join(sorted(known))}")
    values = {}
    for f in fields(cls):
        path = f"{prefix}{f.name}"
        if f.name not in raw:
            raise ConfigError(path, "missing", "add it to the config (see configs/ for defaults)")
        values[f.name] = _coerce(hints[f.name], raw[f.name], path)
    return cls(**values)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """``value`` checked against the schema type ``tp``, or a ConfigError naming ``path`` and the fix."""
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _optional(typing.get_args(tp), value, path)
    if origin is Literal:
        return _choice(typing.get_args(tp), value, path)
    if origin is list:
        return _list(typing.get_args(tp)[0], value, path)
    if tp in _SCALARS:
        return _SCALARS[tp](value, path)
    raise TypeError(f"unsupported schema type {tp} at {path}")


def _optional(options: tuple[Any, ...], value: Any, path: str) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(path, "must not be null", "set a value")
    inner = [o for o in options if o is not type(None)]
    return _coerce(inner[0], value, path)


def _choice(allowed: tuple[Any, ...], value: Any, path: str) -> Any:
    if value not in allowed:
        raise ConfigError(path, f"unknown value {value!r}", f"use one of: {', '.join(map(str, allowed))}")
    return value


def _list(item: Any, value: Any, path: str) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expected a list, got {value!r}", "write it as [a, b]")
    return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"expected true/false, got {value!r}", "write true or false")
    return value


def _int(value: Any, path: str) -> int:
    # Hydra and YAML read 1e6 as a float: accept floats that are whole numbers.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise ConfigError(path, f"expected an integer, got {value!r}", "write a whole number such as 1000000")
    return int(value)


def _float(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(path, f"expected a finite number, got {value!r}", "write a number such as 3e-4")
    return float(value)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a string, got {value!r}", "quote the value")
    return value


_SCALARS = {bool: _bool, int: _int, float: _float, str: _str}


def load_train_config(raw: Mapping[str, Any]) -> TrainConfig:
    return parse(TrainConfig, raw)


__all__ = ["ConfigError", "TrainConfig", "ModelConfig", "load_train_config", "run_id", "to_dict", "parse"]
