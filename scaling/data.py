"""Text → tokenizer → memory-mapped token files, built once per data config and shared by every run.

Pipeline (all deterministic): documents are loaded through ``datasets`` (the embedded corpus, local
text/json/parquet files, or a hub dataset), cut into blocks of about ``BLOCK_CHARS`` characters at paragraph or
line boundaries, and each block goes to the validation split when a hash of its text falls below
``val_fraction`` — so the split is a fixed function of the text, identical for every run with the same data
config. A byte-level BPE (or the raw bytes) is trained on the training blocks only (at most
``TOKENIZER_SAMPLE_CHARS`` of them), both splits are tokenized once into token files (uint16) of at most
``SHARD_TOKENS`` tokens each (``train-00000.bin``, ``train-00001.bin``, …, ``val-00000.bin``), which a run maps
into memory and reads as one sequence (:class:`TokenShards`), the source of every validation token span is
recorded in ``val_sources.json`` (the corpus's top-level sources, e.g. shakespeare / kjv / austen), and
``meta.json`` is written last to mark the cache complete.

A corpus larger than memory streams: blocks go to staging files on disk as they are read, and ``data.num_proc``
worker processes encode them chunk by chunk, in order, straight into the token files, with a progress bar.

The evaluation set is a fixed, seeded sample of whole sequences drawn across the entire validation split
(:func:`eval_sequences`), the same for every run of a data config, so it represents the mixture the runs train on.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from filelock import FileLock

from scaling.config import DataConfig, TaskConfig
from scaling.errors import UserError
from scaling.io import CorruptFile, atomic_write_json, atomic_write_text, files_fingerprint, read_json

log = logging.getLogger(__name__)

BLOCK_CHARS = 4096
TOKENIZER_SAMPLE_CHARS = 2**28  # the BPE learns from at most 256M characters of training text (all the default corpus)
ENCODE_CHUNK_BLOCKS = 256  # blocks per unit of work of an encoding process (about 1 MB of text)
EOT = "<|endoftext|>"
FORMATS = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SHARD_TOKENS = 2**28  # tokens per token file (512 MB): a large corpus's files copy, stage and stream in parts
CACHE_FORMAT = 3
EVAL_SEED = 0  # the evaluation sample is a function of the validation split alone: identical across runs


class DataError(UserError, RuntimeError):
    """A data problem the user can fix; the message names the field and the fix."""


TaskCorpus = Callable[[TaskConfig], list[dict[str, str]]]
TASK_CORPORA: dict[str, TaskCorpus] = {}
"""Generated corpora (data.source=task) by task name. An experiment registers its task here before data is
prepared (:func:`register_task`): the generic data layer never imports an experiment."""


def register_task(name: str, corpus: TaskCorpus) -> None:
    """Make ``corpus(task_config)`` -> training documents ({"text": ...}) the corpus of task ``name``."""
    TASK_CORPORA[name] = corpus


class TokenShards:
    """One split's token files read as one sequence of tokens: its length, and slices across file boundaries."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def size(self) -> int:
        return len(self)

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("token shards are read in contiguous slices")
        pieces = []
        part = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < stop:
            offset = start - int(self.starts[part])
            piece = self.parts[part][offset: offset + stop - start]
            pieces.append(piece)
            start, part = start + len(piece), part + 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        whole = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.uint16)
        return whole if dtype is None else whole.astype(dtype)


@dataclass(frozen=True)
class TokenData:
    directory: Path
    train: TokenShards
    val: TokenShards
    vocab_size: int
    tokenizer_file: Path
    eos_token: str | None
    val_sources: list[tuple[str, int]]
    """(source name, first validation token) of each contiguous span of one source, in order."""


# ------------------------------------------------------------------------------------------------ loading


def local_files(paths: list[str]) -> tuple[str, list[str]]:
    """The format and the files that ``paths`` (files or glob patterns) name; checks they exist, are not all empty,
    are of one format, and (text and JSON) are UTF-8 text."""
    files: list[str] = []
    for pattern in paths:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise DataError(f"data.paths: no file matches {pattern!r} (fix: point data.paths at existing files)")
        files += matches
    if folders := [f for f in files if os.path.isdir(f)]:
        raise DataError(f"data.paths: {folders[0]} is a directory (fix: name its files, e.g. "
                        f"data.paths=[{os.path.join(folders[0], '*.txt')}])")
    if all(os.path.getsize(f) == 0 for f in files):
        raise DataError(f"data.paths: every file is empty ({files[:3]}) (fix: point data.paths at text)")
    kinds = {FORMATS.get(Path(f).suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        raise DataError(f"data.paths: files must all be one of {sorted(FORMATS)} (got {files[:3]}...) "
                        "(fix: list files of a single format)")
    kind = kinds.pop()
    if kind != "parquet":
        for f in files:
            _require_utf8(f)
    return kind, files


def _require_utf8(path: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                raise DataError(f"data.paths: {path} is not UTF-8 text (byte {offset + e.start} cannot be decoded) "
                                "(fix: convert it to UTF-8, e.g. with iconv, or remove it from data.paths)") from None
            offset += len(chunk)


def content_fingerprint(cfg: DataConfig) -> str | None:
    """The hash of a files source's contents, or of a task's generated corpus (None for the other sources): a
    changed file or task generator changes the cache key and the run ids."""
    if cfg.source == "files":
        return files_fingerprint(local_files(cfg.paths)[1])
    if cfg.source == "task":
        documents = task_corpus(cfg)(cfg.task)
        return hashlib.sha256(json.dumps(documents).encode()).hexdigest()[:16]
    return None


def task_corpus(cfg: DataConfig) -> TaskCorpus:
    corpus = TASK_CORPORA.get(cfg.task.name)
    if corpus is None:
        raise DataError(f"data.task.name={cfg.task.name!r}: no task of that name is registered (known: "
                        f"{', '.join(sorted(TASK_CORPORA)) or 'none'}) (fix: run it through train.py or sweep.py, "
                        "which register the project's tasks, or call scaling.testtime.task.register())")
    return corpus


def load_documents(cfg: DataConfig, cache_dir: Path) -> tuple[Iterable[dict], str, bool]:
    """Records of the configured source, the field that holds their text, and whether each record is a whole
    document (json/parquet/hub) rather than one line of a running text (the `text` loader)."""
    import datasets

    datasets.disable_progress_bars()
    if cfg.source == "classics":
        from scaling.corpus import build_classics

        path = build_classics(cache_dir / "corpora" / "classics.jsonl")
        return datasets.load_dataset("json", data_files=str(path), split="train"), "text", True
    if cfg.source == "task":
        corpus = task_corpus(cfg)
        path = cache_dir / "corpora" / f"{cfg.task.name}-{cache_key(cfg)}.jsonl"
        if not path.exists():
            atomic_write_text(path, "".join(json.dumps(d) + "\n" for d in corpus(cfg.task)))
        return datasets.load_dataset("json", data_files=str(path), split="train"), "text", True
    if cfg.source == "files":
        kind, files = local_files(cfg.paths)
        try:
            ds = datasets.load_dataset(kind, data_files=files, split="train")
        except Exception as e:  # malformed JSON/parquet surfaces as many exception types inside datasets
            raise DataError(f"data.paths: cannot read {files[:3]} as {kind} ({type(e).__name__}: {e}) "
                            "(fix: check the files' format)") from None
        field = "text" if kind == "text" else cfg.text_field
        if field not in ds.column_names:
            raise DataError(f"data.text_field: column {field!r} not found; columns are {ds.column_names} "
                            "(fix: set data.text_field to one of them)")
        return ds, field, kind != "text"
    if cfg.offline:
        raise DataError(f"data.hub_name={cfg.hub_name!r}: the hub is unreachable in offline mode "
                        "(fix: set data.offline=false on a machine with internet, or use data.source=files)")
    try:
        ds = datasets.load_dataset(cfg.hub_name, cfg.hub_subset, split=cfg.hub_split, streaming=True)
    except Exception as e:  # the hub raises many types; the user needs the name and the reason
        raise DataError(f"data.hub_name={cfg.hub_name!r}: could not load ({type(e).__name__}: {e}) "
                        "(fix: check the name, subset and split, and the network)") from None
    if cfg.hub_max_docs is not None:
        ds = ds.take(cfg.hub_max_docs)
    return ds, cfg.text_field, True


def split_blocks(records: Iterable[dict], field: str, val_fraction: float,
                 whole_docs: bool) -> Iterator[tuple[str, bool, bool, str]]:
    """Yield (block_text, ends_document, is_val, source); see :func:`load_documents` for ``whole_docs``. The source
    is the top level of a record's ``source`` field ("kjv" of "kjv/Genesis"), or "all" where records have none."""
    threshold = int(val_fraction * 2**32)
    buffer: list[str] = []
    size = 0
    source = "all"

    def emit(ends_doc: bool) -> tuple[str, bool, bool, str]:
        text = ("\n\n" if whole_docs else "\n").join(buffer)
        is_val = int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big") < threshold
        return text, ends_doc, is_val, source

    for record in records:
        source = str(record.get("source") or "all").split("/")[0]
        text = record[field]
        if not isinstance(text, str):
            raise DataError(f"data.text_field: {field!r} holds {type(text).__name__}, not text "
                            "(fix: choose a text column)")
        pieces = text.split("\n\n") if whole_docs else [text]
        for piece in pieces:
            buffer.append(piece)
            size += len(piece)
            if size >= BLOCK_CHARS:
                yield emit(False)
                buffer, size = [], 0
        if whole_docs and buffer:
            yield emit(True)
            buffer, size = [], 0
    if buffer:
        yield emit(True)


# ------------------------------------------------------------------------------------------------ tokenizer


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # `bytes` is a BPE with no merges over the 256-symbol byte alphabet: the same code path, exactly 256 ids.
    trainer = trainers.BpeTrainer(
        vocab_size=256 if kind == "bytes" else vocab_size,
        special_tokens=[] if kind == "bytes" else [EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


# ------------------------------------------------------------------------------------------------ cache


def cache_key(cfg: DataConfig) -> str:
    semantic = {k: v for k, v in cfg.__dict__.items() if k not in ("cache_dir", "on_repeat", "num_proc")}
    semantic["fingerprint"] = cfg.fingerprint or content_fingerprint(cfg)  # the files' contents, not their names
    semantic["tokenizer"] = cfg.tokenizer.__dict__
    semantic["task"] = cfg.task.__dict__ if cfg.task is not None else None
    semantic["block_chars"], semantic["format"] = BLOCK_CHARS, CACHE_FORMAT
    return hashlib.sha256(json.dumps(semantic, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare(cfg: DataConfig) -> TokenData:
    """Return the token files for ``cfg``, building them once (under a lock shared by parallel runs)."""
    current = content_fingerprint(cfg)
    if cfg.fingerprint is not None and current != cfg.fingerprint:
        what = "the task's generated corpus" if cfg.source == "task" else "the files"
        raise DataError(f"data.fingerprint: {what} changed since this config was resolved (content {cfg.fingerprint}, "
                        f"now {current}) (fix: restore them, or start the run or sweep again so that a new config, "
                        "and new runs, are made from the data as it is)")
    root = Path(cfg.cache_dir).expanduser()
    directory = root / f"tokens-{cache_key(cfg)}"
    if not (directory / "meta.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory) + ".lock"):
            if not (directory / "meta.json").exists():
                _build(cfg, root, directory)
    return _open(directory)


def _build(cfg: DataConfig, root: Path, directory: Path) -> None:
    log.info("building token cache %s (once per data config)", directory)
    records, field, whole_docs = load_documents(cfg, root)
    eot = "" if cfg.tokenizer.kind == "bytes" else EOT
    directory.mkdir(parents=True, exist_ok=True)
    staging = {split: directory / f".{split}-blocks.jsonl" for split in ("train", "val")}
    chars = {"train": 0, "val": 0}
    sample: list[str] = []
    val_block_sources: list[str] = []
    with open(staging["train"], "w", encoding="utf-8") as train, open(staging["val"], "w", encoding="utf-8") as val:
        for text, ends_doc, is_val, source in split_blocks(records, field, cfg.val_fraction, whole_docs):
            block = text + (eot if ends_doc and eot else "\n")
            (val if is_val else train).write(json.dumps(block) + "\n")
            chars["val" if is_val else "train"] += len(block)
            if is_val:
                val_block_sources.append(source)
            elif chars["train"] <= TOKENIZER_SAMPLE_CHARS:
                sample.append(block)
    if chars["train"] == 0:
        raise DataError(f"data.source={cfg.source}: the corpus is empty (fix: point the config at non-empty text)")
    if not val_block_sources:
        raise DataError(f"data.val_fraction={cfg.val_fraction}: the corpus is too small for a validation split "
                        "(fix: add text or raise data.val_fraction)")
    tokenizer = train_tokenizer(sample, cfg.tokenizer.kind, cfg.tokenizer.vocab_size)
    del sample
    tokenizer.save(str(directory / "tokenizer.json"))
    counts, shards = {}, {}
    for split in ("train", "val"):
        lengths, shards[split] = encode_blocks(staging[split], directory / "tokenizer.json", directory / split,
                                               cfg.num_proc or os.cpu_count() or 1, chars[split],
                                               desc=f"tokenizing {split}")
        counts[split] = int(sum(lengths))
        staging[split].unlink()
        if split == "val":
            atomic_write_json(directory / "val_sources.json", _source_spans(val_block_sources, lengths))
    atomic_write_json(directory / "meta.json", {
        "format": CACHE_FORMAT, "vocab_size": tokenizer.get_vocab_size(), "dtype": "uint16",
        "eos_token": eot or None, "num_tokens": counts, "shards": shards, "source": cfg.source,
    })
    log.info("token cache ready: %d train / %d val tokens, vocab %d", counts["train"], counts["val"],
             tokenizer.get_vocab_size())


def _source_spans(block_sources: list[str], block_tokens: list[int]) -> list[tuple[str, int]]:
    """(source, first token) of each run of consecutive validation blocks from one source."""
    spans: list[tuple[str, int]] = []
    start = 0
    for source, length in zip(block_sources, block_tokens):
        if not spans or spans[-1][0] != source:
            spans.append((source, start))
        start += length
    return spans


def _chunks(blocks_file: Path) -> Iterator[list[str]]:
    with open(blocks_file, encoding="utf-8") as f:
        chunk: list[str] = []
        for line in f:
            chunk.append(json.loads(line))
            if len(chunk) == ENCODE_CHUNK_BLOCKS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


_worker_tokenizer = None


def _load_tokenizer(tokenizer_file: str, one_thread: bool = True) -> None:
    """The tokenizer :func:`_encode_chunk` uses in this process; a worker's is single-threaded (the processes are
    the parallelism), the builder's own keeps the tokenizer's threads."""
    global _worker_tokenizer
    if one_thread:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    _worker_tokenizer = Tokenizer.from_file(tokenizer_file)


def _encode_chunk(blocks: list[str]) -> tuple[bytes, list[int], int]:
    encoded = [e.ids for e in _worker_tokenizer.encode_batch(blocks)]
    ids = np.fromiter((i for ids in encoded for i in ids), dtype=np.uint16)
    return ids.tobytes(), [len(ids) for ids in encoded], sum(map(len, blocks))


class _ShardWriter:
    """Token bytes into ``<prefix>-00000.bin``, ``<prefix>-00001.bin``, … of ``SHARD_TOKENS`` tokens each (the last
    shorter), each fsynced when full."""

    def __init__(self, prefix: Path) -> None:
        self.prefix, self.names, self.file, self.filled = prefix, [], None, 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            if self.file is None or self.filled == SHARD_TOKENS:
                self._next()
            take = min(len(view) // 2, SHARD_TOKENS - self.filled)
            self.file.write(view[: 2 * take])
            self.filled, view = self.filled + take, view[2 * take:]

    def _next(self) -> None:
        self.close()
        self.names.append(f"{self.prefix.name}-{len(self.names):05d}.bin")
        self.file, self.filled = open(self.prefix.parent / self.names[-1], "wb"), 0

    def close(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None


def encode_blocks(blocks_file: Path, tokenizer_file: Path, out_prefix: Path, num_proc: int, total_chars: int,
                  desc: str = "tokenizing") -> tuple[list[int], list[str]]:
    """Encode the blocks of ``blocks_file`` (one JSON string per line) with ``num_proc`` processes, chunk by chunk
    and in order, into token files ``<out_prefix>-NNNNN.bin`` (uint16; the cache's ``meta.json``, written after,
    marks them complete); returns each block's token count and the files' names. Memory holds a few chunks
    whatever the corpus's size."""
    import multiprocessing

    from tqdm import tqdm

    lengths: list[int] = []
    bar = tqdm(total=total_chars, unit="char", unit_scale=True, desc=desc, mininterval=0.5 if os.isatty(2) else 10.0,
               disable=total_chars < 2**24)  # a bar for corpora that take a while (16M characters and up)
    out = _ShardWriter(out_prefix)
    if num_proc == 1:
        _load_tokenizer(str(tokenizer_file), one_thread=False)
        results = map(_encode_chunk, _chunks(blocks_file))
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(num_proc, _load_tokenizer, (str(tokenizer_file),))
        results = pool.imap(_encode_chunk, _chunks(blocks_file), chunksize=1)
    try:
        for data, block_lengths, chars in results:
            out.write(data)
            lengths.extend(block_lengths)
            bar.update(chars)
    finally:
        out.close()
        if pool is not None:
            pool.terminate()
    bar.close()
    return lengths, out.names


def _open(directory: Path) -> TokenData:
    """The cache in ``directory``, or a DataError if any part of it was edited or removed since it was built: a
    missing tokenizer would otherwise surface only at the export, after the run has trained."""
    rebuild = "delete the directory to rebuild it"
    try:
        meta = read_json(directory / "meta.json", fix=rebuild)
        if meta.get("format") != CACHE_FORMAT:
            raise DataError(f"{directory}: token cache format {meta.get('format')} is not {CACHE_FORMAT} "
                            f"(fix: {rebuild})")
        needed = ["tokenizer.json", "val_sources.json", *meta["shards"]["train"], *meta["shards"]["val"]]
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            raise DataError(f"{directory}: the token cache lacks {', '.join(missing)} (fix: {rebuild})")
        spans = [(str(name), int(start)) for name, start in read_json(directory / "val_sources.json", fix=rebuild)]
    except CorruptFile:  # not valid JSON: its message names the file and the fix
        raise
    except (KeyError, TypeError, ValueError) as e:  # valid JSON of another shape than the builder writes
        raise DataError(f"{directory}: the token cache's records are not as built ({e!r}) (fix: {rebuild})") from None
    train, val = (TokenShards([np.memmap(directory / name, dtype=np.uint16, mode="r") for name in meta["shards"][s]])
                  for s in ("train", "val"))
    for split, tokens in (("train", train), ("val", val)):
        if len(tokens) != meta["num_tokens"][split]:
            raise DataError(f"{directory}: the {split} token files are truncated ({len(tokens)} of "
                            f"{meta['num_tokens'][split]} tokens) (fix: {rebuild})")
    return TokenData(directory=directory, train=train, val=val, vocab_size=int(meta["vocab_size"]),
                     tokenizer_file=directory / "tokenizer.json", eos_token=meta["eos_token"], val_sources=spans)


# ------------------------------------------------------------------------------------------------ batches


class BatchSampler:
    """Deterministic batches from a seed: sequences of seq_len+1 tokens cut at fixed offsets, visited in a
    seeded permutation per epoch. A batch is a pure function of (seed, first sample index), so a resumed run
    continues with exactly the batches it would have seen."""

    def __init__(self, tokens: np.ndarray, seq_len: int, seed: int) -> None:
        self.tokens, self.seq_len, self.seed = tokens, seq_len, seed
        self.num_sequences = (len(tokens) - 1) // seq_len
        if self.num_sequences < 1:
            raise DataError(f"model.seq_len={seq_len}: the training split has only {len(tokens)} tokens "
                            "(fix: use more text or a shorter seq_len)")
        self._perm_epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_sequences)
            self._perm_epoch = epoch
        return self._perm

    def batch(self, first: int, count: int) -> np.ndarray:
        """Sequences ``first .. first+count-1`` of the stream, as an int64 array (count, seq_len + 1)."""
        rows = []
        for g in range(first, first + count):
            start = int(self._permutation(g // self.num_sequences)[g % self.num_sequences]) * self.seq_len
            rows.append(self.tokens[start : start + self.seq_len + 1])
        return np.stack(rows).astype(np.int64)

    def repeated_tokens(self, sequences_consumed: int) -> int:
        return max(0, sequences_consumed - self.num_sequences) * self.seq_len


@dataclass(frozen=True)
class EvalSet:
    sequences: np.ndarray
    """(count, seq_len + 1) int64 token windows."""
    sources: np.ndarray
    """The source name of each sequence (where its first token lies)."""


def eval_sequences(val: np.ndarray, seq_len: int, num_tokens: int,
                   val_sources: list[tuple[str, int]] = ()) -> EvalSet:
    """The fixed held-out set: ``num_tokens // seq_len`` distinct aligned windows of the validation split, drawn
    uniformly with a fixed seed, so every source of the corpus is represented in proportion to its share."""
    available = (len(val) - 1) // seq_len
    count = min(num_tokens // seq_len, available)
    if count < 1:
        raise DataError(f"the validation split has {len(val)} tokens, less than one sequence of {seq_len} "
                        "(fix: raise data.val_fraction or use more text)")
    if count < num_tokens // seq_len:
        log.warning("eval.tokens=%d is more than the validation split holds: evaluating on all of it, %d sequences "
                    "(%d tokens) (fix: lower eval.tokens, or raise data.val_fraction)", num_tokens, count,
                    count * seq_len)
    starts = np.sort(np.random.default_rng(EVAL_SEED).choice(available, size=count, replace=False)) * seq_len
    sequences = np.stack([val[s : s + seq_len + 1] for s in starts]).astype(np.int64)
    if not val_sources:
        return EvalSet(sequences=sequences, sources=np.full(count, "all"))
    names = np.array([name for name, _ in val_sources])
    first_tokens = np.array([start for _, start in val_sources])
    return EvalSet(sequences=sequences, sources=names[np.searchsorted(first_tokens, starts, side="right") - 1])
