"""The in-process engine's spill: records written to and read back from its scratch files
exactly, the driver's split loop free of cyclic garbage collections, and the key hash of the
usual key (one text column) equal to the general one. (Spark's own hash and partition are
compared in test_engines.py.)"""

from __future__ import annotations

import gc
import random
from dataclasses import replace
from pathlib import Path

import pytest
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.engine import local
from dynamo_ingest.engine.local import (
    LocalEngineError,
    LocalLoad,
    key_hasher,
    without_cycle_collection,
)
from dynamo_ingest.engine.pipeline import PartitionTask

from benchmarks.worker import partition_task

LATIN1_TEXTS = ["", "a", "é".encode().decode("latin-1"), "😀".encode().decode("latin-1"),
                "\x00\x7f\x80\xff", "ORD-000000001", "x" * 5000]


def _records(count: int) -> list[local.SpilledRecord]:
    rng = random.Random(11)
    return [(rng.choice([-(2**63), -1, 0, 1, 2**63 - 1, rng.getrandbits(64) - 2**63]), number,
             [rng.choice(LATIN1_TEXTS) or None for _ in range(rng.randrange(1, 6))],
             rng.choice([None, "a,\"b\"\r\n" + "é".encode().decode("latin-1")]))
            for number in range(1, count + 1)]


def test_spilled_records_read_back_exactly(tmp_path: Path) -> None:
    records = _records(2_500)
    path = tmp_path / "partition-00000.marshal"
    with open(path, "ab") as handle:
        local._dump_all(records[:1_200], handle)
    with open(path, "ab") as handle:  # the spill appends in bursts
        local._dump_all(records[1_200:], handle)

    chunks = list(local._load_chunks(path))

    assert [record for chunk in chunks for record in chunk] == records
    assert [len(chunk) for chunk in chunks] == [1000, 200, 1000, 300]


def test_a_spill_file_cut_inside_a_chunk_is_an_error_not_fewer_records(tmp_path: Path) -> None:
    path = tmp_path / "partition-00000.marshal"
    with open(path, "wb") as handle:
        local._dump_all(_records(1_500), handle)
    whole = path.read_bytes()
    second_chunk = 4 + int.from_bytes(whole[:4], "little")
    # Inside the second chunk's data, and inside its length.
    for cut in (len(whole) - 10, second_chunk + 2):
        path.write_bytes(whole[:cut])

        with pytest.raises(LocalEngineError, match="ends inside a chunk"):
            list(local._load_chunks(path))


def test_without_cycle_collection_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with without_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), without_cycle_collection():
        raise KeyError("the loop raised")
    assert gc.isenabled()


def _task(partitions: int) -> PartitionTask:
    return replace(partition_task(), partitions=partitions)


def test_the_split_and_spill_loop_runs_no_cyclic_collection(tmp_path: Path) -> None:
    """20,000 records allocate ~60,000 containers: gen-0 collections every 700 of them would
    run ~85 times in the loop; none run while it holds the collector paused."""
    source = tmp_path / "rows.csv"
    lines = ["id,name,note"] + [f"{n},name {n},\"a \"\"quoted\"\", note\"" for n in range(20_000)]
    source.write_text("\n".join(lines) + "\n")
    schema = CsvSchema((Column("id"), Column("name"), Column("note")))
    load = LocalLoad(str(source), schema, (((0,), "S"),), workers=1)
    collections: list[str] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    gc.callbacks.append(count)
    try:
        paths, too_long = local._spill(load, _task(3), tmp_path, local._open_local)
    finally:
        gc.callbacks.remove(count)

    assert too_long == []
    numbers = [[record[1] for record in local._load_all(path)] for path in paths]
    assert sorted(n for partition in numbers for n in partition) == list(range(1, 20_001))
    # In record order within each partition: the sort's stable key relies on it.
    assert all(partition == sorted(partition) for partition in numbers)
    assert len(collections) <= 2  # the few allocations before and after the loop


@pytest.mark.parametrize("texts", [LATIN1_TEXTS, [f"ORD-{n:09d}" for n in range(300)]])
def test_the_one_text_column_hash_equals_the_general_one(texts: list[str]) -> None:
    one_column = key_hasher([((1,), "S")])
    # The same text through a template with an empty literal: the general function.
    general = key_hasher([(("", 1), "S")])
    rng = random.Random(2)
    for _ in range(2_000):
        values = [None, rng.choice(texts) or None, "z"]
        assert one_column(values) == general(values), values
