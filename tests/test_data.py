"""Data: local files of each format, a fixed validation split, deterministic batches, offline hub refusal."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from scaling.config import parse, DataConfig
from scaling.data import BatchSampler, DataError, eval_sequences, prepare
from scaling.distributed import Ranks, my_micro_batches
from scaling.errors import UserError
from tests.conftest import CACHE_DIR, compose_raw

TEXT = "\n\n".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog number {i}." * 3 for i in range(400))


def data_config(tmp_path, **overrides) -> DataConfig:
    raw = compose_raw([])["data"]
    raw.update(cache_dir=str(tmp_path / "cache"), **overrides)
    return parse(DataConfig, raw, "data.")


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".parquet"])
def test_local_files_build_once_and_split_deterministically(tmp_path, suffix):
    path = tmp_path / f"corpus{suffix}"
    docs = TEXT.split("\n\n")
    if suffix == ".txt":
        path.write_text(TEXT)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"body": d}) + "\n" for d in docs))
    else:
        import pandas as pd

        pd.DataFrame({"body": docs}).to_parquet(path)
    cfg = data_config(tmp_path, source="files", paths=[str(path)], text_field="body", val_fraction=0.1,
                      tokenizer={"kind": "bpe", "vocab_size": 400})
    data = prepare(cfg)
    assert data.train.size > 0 and data.val.size > 0
    mtime = (data.directory / "train-00000.bin").stat().st_mtime_ns
    again = prepare(cfg)
    assert (again.directory / "train-00000.bin").stat().st_mtime_ns == mtime  # cached, not rebuilt
    assert np.array_equal(again.val, data.val)


def test_bytes_tokenizer_has_256_ids(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(TEXT)
    cfg = data_config(tmp_path, source="files", paths=[str(path)], tokenizer={"kind": "bytes", "vocab_size": 256})
    data = prepare(cfg)
    assert data.vocab_size == 256 and int(np.asarray(data.train).max()) < 256


def test_missing_and_empty_corpus_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="data.paths: no file matches"):
        prepare(data_config(tmp_path, source="files", paths=[str(tmp_path / "nope.txt")]))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty|no file"):
        prepare(data_config(tmp_path, source="files", paths=[str(tmp_path / "empty.jsonl")]))
    (tmp_path / "corpus").mkdir()
    with pytest.raises(DataError, match=r"corpus is a directory \(fix: .*data.paths=\[.*corpus/\*.txt\]"):
        prepare(data_config(tmp_path, source="files", paths=[str(tmp_path / "corpus")]))


@pytest.mark.parametrize("damage,words", [
    # A missing shard or record was a FileNotFoundError traceback, a corrupt record a ValueError traceback, and a
    # missing tokenizer failed only at the export, after the run had trained.
    (lambda d: (d / "val-00000.bin").unlink(), "lacks val-00000.bin"),
    (lambda d: (d / "tokenizer.json").unlink(), "lacks tokenizer.json"),
    (lambda d: (d / "meta.json").write_text('{"format": '), "meta.json is not valid JSON"),
    (lambda d: (d / "val_sources.json").write_text("[[1]]"), "records are not as built"),
    (lambda d: (d / "train-00000.bin").write_bytes(b"\0" * 8), "the train token files are truncated"),
])
def test_a_damaged_token_cache_is_named_with_the_fix(tmp_path, damage, words):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    cfg = data_config(tmp_path, source="files", paths=[str(path)], tokenizer={"kind": "bytes", "vocab_size": 256})
    damage(prepare(cfg).directory)
    with pytest.raises(UserError, match=words) as err:
        prepare(cfg)
    assert "delete the directory to rebuild it" in str(err.value)


def test_hub_dataset_offline_is_refused_at_once(tmp_path):
    with pytest.raises(DataError, match="offline"):
        prepare(data_config(tmp_path, source="hub", hub_name="someone/some-corpus"))


def test_batches_are_a_pure_function_of_seed_and_position():
    tokens = np.arange(10_000, dtype=np.uint16)
    a, b = BatchSampler(tokens, 16, seed=3), BatchSampler(tokens, 16, seed=3)
    assert np.array_equal(a.batch(40, 8), b.batch(40, 8))
    assert not np.array_equal(a.batch(0, 8), BatchSampler(tokens, 16, seed=4).batch(0, 8))
    # one epoch visits every sequence exactly once
    epoch = a.batch(0, a.num_sequences)
    assert len({int(r[0]) for r in epoch}) == a.num_sequences
    assert a.repeated_tokens(a.num_sequences + 5) == 5 * 16


def test_eval_set_represents_every_source_of_the_validation_split():
    raw = compose_raw(["data=classics_bytes"])["data"]
    raw["cache_dir"] = str(CACHE_DIR)
    data = prepare(parse(DataConfig, raw, "data."))
    names = [name for name, _ in data.val_sources]
    assert set(names) == {"shakespeare", "kjv", "austen"}
    starts = [start for _, start in data.val_sources] + [len(data.val)]
    token_share = {n: 0 for n in names}
    for name, a, b in zip(names, starts, starts[1:]):
        token_share[name] += (b - a) / len(data.val)
    eval_set = eval_sequences(data.val, 128, 131072, data.val_sources)
    assert len(eval_set.sequences) == 1024
    for name, share in token_share.items():  # a uniform sample: each source near its share of the split
        assert abs((eval_set.sources == name).mean() - share) < 0.05, (name, share)
    again = eval_sequences(data.val, 128, 131072, data.val_sources)
    assert np.array_equal(again.sequences, eval_set.sequences)  # the same for every run of this data config


def test_an_eval_set_larger_than_the_validation_split_is_all_of_it_and_says_so(caplog):
    val = np.arange(1000, dtype=np.uint16)
    with caplog.at_level(logging.WARNING, logger="scaling.data"):
        assert len(eval_sequences(val, 100, 500).sequences) == 5 and not caplog.text
        assert len(eval_sequences(val, 100, 10**9).sequences) == 9  # every whole window with its next token
    assert "eval.tokens=1000000000 is more than the validation split holds" in caplog.text
    assert "all of it, 9 sequences" in caplog.text


def test_parallel_encoding_writes_the_tokens_one_process_writes(tmp_path, monkeypatch):
    import scaling.data as data_module
    from tokenizers import Tokenizer

    monkeypatch.setattr(data_module, "ENCODE_CHUNK_BLOCKS", 7)  # many chunks, so order across processes matters
    path = tmp_path / "c.txt"
    path.write_text(TEXT * 3)
    built = {}
    for procs in (1, 2):
        cfg = data_config(tmp_path / f"p{procs}", source="files", paths=[str(path)], num_proc=procs,
                          val_fraction=0.1, tokenizer={"kind": "bpe", "vocab_size": 400})
        built[procs] = prepare(cfg)
    one, two = built[1], built[2]
    assert one.directory.name == two.directory.name  # num_proc is not part of the cache key
    assert np.array_equal(one.train, two.train) and np.array_equal(one.val, two.val)
    assert one.val_sources == two.val_sources
    assert not list(two.directory.glob(".*-blocks.jsonl"))  # the staging files are gone
    # The tokens are the tokenizer's own: the blocks, re-read and encoded in one call, give the same ids.
    tokenizer = Tokenizer.from_file(str(two.directory / "tokenizer.json"))
    assert tokenizer.decode(list(map(int, two.val[:200]))) in TEXT * 3


def test_token_files_in_shards_read_as_one_sequence(tmp_path, monkeypatch):
    import scaling.data as data_module

    path = tmp_path / "c.txt"
    path.write_text(TEXT * 3)
    built = {}
    for shard_tokens in (2**28, 997):  # one file per split, or many (997: windows straddle file boundaries)
        monkeypatch.setattr(data_module, "SHARD_TOKENS", shard_tokens)
        cfg = data_config(tmp_path / str(shard_tokens), source="files", paths=[str(path)], num_proc=2,
                          val_fraction=0.1, tokenizer={"kind": "bpe", "vocab_size": 400})
        built[shard_tokens] = prepare(cfg)
    whole, sharded = built[2**28], built[997]
    files = sorted(p.name for p in sharded.directory.glob("train-*.bin"))
    assert len(files) == -(-len(whole.train) // 997) > 2 and len(list(whole.directory.glob("train-*.bin"))) == 1
    assert all((sharded.directory / f).stat().st_size == 2 * 997 for f in files[:-1])
    assert np.array_equal(whole.train, sharded.train) and np.array_equal(whole.val, sharded.val)
    a, b = (BatchSampler(d.train, 64, seed=3) for d in (whole, sharded))
    assert np.array_equal(a.batch(0, 40), b.batch(0, 40))
    assert np.array_equal(*(eval_sequences(d.val, 32, 2048).sequences for d in (whole, sharded)))
    assert np.array_equal(sharded.train[990:1010], np.asarray(whole.train)[990:1010])  # across a file boundary


def test_ranks_read_disjoint_micro_batches_that_together_are_the_one_rank_batch():
    tokens = np.arange(50_000, dtype=np.uint16)
    sampler, accum, micro, step = BatchSampler(tokens, 16, seed=1), 4, 8, 5
    first = step * accum * micro
    whole = [sampler.batch(first + i * micro, micro) for i in range(accum)]
    by_rank = {rank: [whole[i] for i in my_micro_batches(Ranks(rank=rank, world=2, local_rank=rank), accum)]
               for rank in (0, 1)}
    starts = [{int(r[0]) for b in batches for r in b} for batches in by_rank.values()]
    assert not starts[0] & starts[1] and len(starts[0] | starts[1]) == accum * micro


def test_a_changed_task_generator_changes_the_fingerprint_and_is_refused_under_the_old_one(tmp_path, monkeypatch):
    """Task text is generated, not read: the config fingerprints what the generator makes, so a changed generator
    cannot train (or be skipped as finished) under a run id made for the old text."""
    from scaling import data
    from scaling.cli import register_tasks, resolve_data

    register_tasks()
    raw = compose_raw(["data=worksheet"])
    raw["data"].update(cache_dir=str(tmp_path / "cache"), task={**raw["data"]["task"], "num_train": 50})
    resolve_data(raw)
    cfg = parse(DataConfig, raw["data"], "data.")
    assert cfg.fingerprint == data.content_fingerprint(cfg)
    original = data.TASK_CORPORA["worksheet"]
    monkeypatch.setitem(data.TASK_CORPORA, "worksheet", lambda task: original(task)[1:])
    assert data.content_fingerprint(cfg) != cfg.fingerprint
    with pytest.raises(DataError, match="data.fingerprint: the task's generated corpus changed"):
        prepare(cfg)
