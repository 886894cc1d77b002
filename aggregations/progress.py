"""Event-time progress of the sources, as stage 2 saw it: when may a week close?

Every partials record carries the watermark of its source usage partition (the largest
event time that partition had read). Stage 2 keeps, per (partials partition, source), the
largest one it folded; the snapshot writers copy those into Redis after the data they
cover. A week may close once every pair passed its end plus the grace period: the
fastest partition's event time (the maximum) says nothing about what slower partitions
still have to deliver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["closing_watermark", "parse_progress_field", "progress_field"]


def progress_field(partition: int, source: int) -> str:
    """``"X:p"``: the progress of usage partition ``p`` as folded from partials partition X."""
    return f"{partition}:{source}"


def parse_progress_field(field: str) -> tuple[int, int]:
    """Inverse of :func:`progress_field`: ``(partials partition, source partition)``.

    Raises ValueError for anything else.
    """
    partition, sep, source = field.partition(":")
    if not sep:
        raise ValueError(f"invalid progress field {field!r}: expected 'X:p'")
    return int(partition), int(source)


def closing_watermark(progress: Mapping[str, int], partitions: Iterable[int]) -> int | None:
    """The event time up to which every partials partition holds every seen source's data.

    ``progress`` maps ``"X:p"`` to the largest watermark of source ``p`` folded from
    partials partition ``X``; ``partitions`` are the partials partitions. Sources that
    never appear are ignored (a usage partition without events holds nothing back). A
    source seen at some partition but not yet at another counts as 0 there: every flush of
    a source reaches every partition, so the missing one has not folded (or not written
    to Redis) what the others did. Returns None when ``progress`` is empty, so that the
    caller can fall back to another rule (writers of a version without progress).
    """
    if not progress:
        return None
    pairs = {parse_progress_field(field): int(ms) for field, ms in progress.items()}
    sources = {source for _, source in pairs}
    everywhere = set(partitions) | {partition for partition, _ in pairs}
    return min(pairs.get((x, p), 0) for x in everywhere for p in sources)
