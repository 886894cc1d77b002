"""The Faust table of weekly totals, recovered so that a stale write cannot win.

Faust rebuilds a table from its changelog by keeping the last record of each key. Without
Kafka transactions a worker that was stalled (SIGSTOP, a long GC pause, a frozen VM) may
fold a record it fetched before losing its partitions and write that stale value after the
new owner's: the next recovery would then bring back old counts. Each table value carries
its per-source positions, so recovery keeps the newest state instead (see
:func:`aggregations.totals.is_stale`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import faust
import orjson

from aggregations.totals import is_stale


class WeeklyTable(faust.Table[str, bytes]):
    """A table of orjson-encoded table values whose recovery skips stale records."""

    stale_records_skipped = 0

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        """Apply changelog records in order, except values older than the one held."""
        store = self.data
        # The memory store tracks each recovered key's partition so that keys of partitions
        # this worker did not keep are dropped once recovery completes.
        key_partition = getattr(store, "_key_partition", {})
        for event in batch:
            key = self._to_key(event.key)
            raw = event.message.value
            if raw is None:
                store.data.pop(key, None)
                key_partition.pop(key, None)
                continue
            value = event.value
            held = store.data.get(key)
            if held is not None and is_stale(orjson.loads(value), orjson.loads(held)):
                WeeklyTable.stale_records_skipped += 1
                continue
            store.data[key] = value
            key_partition[key] = event.message.partition
