"""The Redis key schema (documented in ARCHITECTURE.md), in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one prefix."""

    prefix: str

    def leaderboard(self, dimension: str, week: str) -> str:
        """Sorted set member -> tokens of one dimension and week."""
        return f"{self.prefix}:lb:{dimension}:{week}"

    def spend_board(self, dimension: str, week: str) -> str:
        """Sorted set member -> cost in micro-dollars of one dimension and week: the members
        some of whose tokens had a price (a member without any has an unknown cost)."""
        return f"{self.prefix}:spend:{dimension}:{week}"

    def member(self, dimension: str, week: str, member: str) -> str:
        """Hash with the details of one member in one week."""
        return f"{self.prefix}:m:{dimension}:{week}:{member}"

    def total(self, week: str) -> str:
        """Hash with the global counts of one week."""
        return f"{self.prefix}:total:{week}"

    def daily(self, dimension: str, day: str) -> str:
        """Sorted set member -> tokens of one UTC day."""
        return f"{self.prefix}:day:{dimension}:{day}"

    def published(self, dimension: str, week: str) -> str:
        """JSON of the top N last published to the rankings topic."""
        return f"{self.prefix}:published:{dimension}:{week}"

    @property
    def weeks(self) -> str:
        """Sorted set week -> start ms of every week with data."""
        return f"{self.prefix}:weeks"

    @property
    def closed_weeks(self) -> str:
        """Sorted set week -> start ms of closed weeks."""
        return f"{self.prefix}:weeks:closed"

    @property
    def current_week(self) -> str:
        """String: the week of the event-time watermark."""
        return f"{self.prefix}:week:current"

    @property
    def watermark(self) -> str:
        """String: event-time watermark in ms."""
        return f"{self.prefix}:watermark"

    @property
    def progress(self) -> str:
        """Hash "X:p" -> largest watermark (ms) of usage partition p folded from partials
        partition X and written to Redis; the ranker closes weeks on the minimum."""
        return f"{self.prefix}:progress"

    @property
    def snapshot_at(self) -> str:
        """String: wall time (ms) of the last snapshot that changed something."""
        return f"{self.prefix}:snapshot:at"

    @property
    def ranked(self) -> str:
        """Hash week -> fingerprint of the data the rank fields were computed from."""
        return f"{self.prefix}:ranked"

    @property
    def late_alerted(self) -> str:
        """Hash week -> late-event count already reported in an alert."""
        return f"{self.prefix}:late:alerted"

    @property
    def finalized(self) -> str:
        """Set of weeks whose final ranking changes and alerts were published."""
        return f"{self.prefix}:finalized"

    @property
    def ranker_marker(self) -> str:
        """String: which load and version of the ranker's state Redis mirrors; missing after
        FLUSHALL or an empty restart."""
        return f"{self.prefix}:ranker:mirror"

    @property
    def snapshot_partitions(self) -> str:
        """Set of partials partitions fully rewritten since Redis last lost its state."""
        return f"{self.prefix}:snapshot:partitions"

    def writer_marker(self, worker_id: str) -> str:
        """Set while a worker's snapshot is complete; missing after FLUSHALL or restart."""
        return f"{self.prefix}:writer:{worker_id}"
