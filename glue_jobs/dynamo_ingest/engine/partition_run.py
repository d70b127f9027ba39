"""What every engine builds for one partition: its transport, rate limiter, writer, checkpoint
store and rejects upload around :class:`dynamo_ingest.engine.pipeline.PartitionPipeline`.

Spark-free, so the Spark tasks and the in-process engine run a partition the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dynamo_ingest.control.storage import Storage
from dynamo_ingest.engine.pipeline import (
    ItemWriter,
    PartitionPipeline,
    PartitionResult,
    PartitionTask,
    Row,
    arrow_rows,
)


def run_partition(task: PartitionTask, partition: int, batches: Iterable[Any]) -> PartitionResult:
    """Write one partition's rows (Arrow batches sorted by key hash, then record number)."""
    return run_partition_rows(task, partition,
                              arrow_rows(batches, len(task.columns) + task.trailing_delimiter))


def run_partition_rows(task: PartitionTask, partition: int, rows: Iterable[Row]
                       ) -> PartitionResult:
    """Write one partition's rows, given as (key hash, record number, values, corrupt text)
    tuples sorted by key hash, then record number."""
    from dynamo_ingest.control.checkpoints import checkpoint_store

    pipeline = PartitionPipeline(partition, task, writer_factory(task),
                                 checkpoint_store(task.aws, task.ledger_table, task.source_key,
                                                  task.partitions), Storage(task.aws).put_file)
    return pipeline.run(rows)


def writer_factory(task: PartitionTask) -> Callable[[Callable[[int], None]], ItemWriter]:
    """A partition's writer, paced by its own share of the write budget."""
    from dynamo_ingest.control.budget import SHARE_POLL_S
    from dynamo_ingest.engine.rate import AdaptiveRateLimiter
    from dynamo_ingest.engine.transport import transport_from_config
    from dynamo_ingest.engine.writer import BatchWriter

    # The lean transport: ~8x less CPU per item than botocore (benchmarks/).
    transport = transport_from_config(
        endpoint_url=task.aws.endpoints.get("dynamodb"), region=task.aws.region,
        credentials=task.aws.credentials)
    share = None if task.budget_share is None else task.budget_share.reader(task.aws)
    limiter = AdaptiveRateLimiter(task.rate_per_task, share=share, share_poll_s=SHARE_POLL_S)

    def build(on_ack: Callable[[int], None]) -> ItemWriter:
        if not task.conditional:
            return BatchWriter(transport, task.target_table, policy=task.retry,
                               limiter=limiter, on_acknowledged=on_ack)
        # insert/merge/version guard need a condition: PutItem/UpdateItem, several in
        # flight, paced by the same limiter.
        from dynamo_ingest.engine.conditional_writer import (
            BotocoreConditionalTransport,
            ConditionalWriter,
            RequestBuilder,
        )

        version = task.mapping.version_attribute() if task.mapping else None
        return ConditionalWriter(
            BotocoreConditionalTransport.from_config(task.aws.endpoints.get("dynamodb"),
                                                     task.aws.region, task.aws.credentials),
            RequestBuilder(task.target_table, task.key_schema, task.write_mode, version),
            policy=task.retry, limiter=limiter, on_acknowledged=on_ack)

    return build
