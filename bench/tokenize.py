"""Tokenization throughput on the default corpus's training text: the cache builder's encoder (scaling.data:
blocks streamed from disk to worker processes, in order, into the token file) with one process (whose batches use
the tokenizer's Rust threads on every core) and with one single-threaded process per core, against the tokenizer's
own batch encoding of the same blocks held in memory (Rust threads on every core). Rounds alternate."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from scaling.cli import resolve_data
from scaling.config import DataConfig, parse
from scaling.data import encode_blocks, load_documents, prepare, split_blocks

ROUNDS = 3


def _default_data() -> DataConfig:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scaling.cli import CONFIGS

    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        raw = OmegaConf.to_container(compose(config_name="train"), resolve=True)
    resolve_data(raw)
    return parse(DataConfig, raw["data"], "data.")


def run() -> dict:
    cfg = _default_data()
    tokenizer_file = prepare(cfg).tokenizer_file
    records, field, whole_docs = load_documents(cfg, Path(cfg.cache_dir).expanduser())
    blocks = [text for text, _, is_val, _ in split_blocks(records, field, cfg.val_fraction, whole_docs) if not is_val]
    megabytes = sum(len(b.encode()) for b in blocks) / 1e6
    cores = os.cpu_count() or 1
    times: dict[str, list[float]] = {"encoder_1_process": [], f"encoder_{cores}_processes": [], "encode_batch": []}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "blocks.jsonl"
        staged.write_text("".join(json.dumps(b) + "\n" for b in blocks))
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        for _ in range(ROUNDS):
            for procs in (1, cores):
                start = time.perf_counter()
                encode_blocks(staged, tokenizer_file, Path(tmp) / "out", procs, 0)
                times[f"encoder_{procs}_process{'es' if procs > 1 else ''}"].append(time.perf_counter() - start)
            start = time.perf_counter()
            tokenizer.encode_batch(blocks)
            times["encode_batch"].append(time.perf_counter() - start)
    rates = {k: megabytes / statistics.median(v) for k, v in times.items()}
    used = dict.fromkeys(rates, cores)  # every path keeps every core busy
    return {"megabytes": megabytes, "cores": cores, "rounds": ROUNDS,
            "mb_per_s": rates, "mb_per_s_per_core": {k: rates[k] / used[k] for k in rates},
            "ratio_encoder_vs_encode_batch": rates[f"encoder_{cores}_processes"] / rates["encode_batch"]}
