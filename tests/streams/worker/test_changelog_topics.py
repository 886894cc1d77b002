"""The worker's Faust changelogs are among the topics tokenboard creates before Faust starts."""

from __future__ import annotations

from streams.settings import Settings
from streams.topics import topic_specs
from streams.worker.worker import build_app


def test_every_table_changelog_is_created_with_the_other_topics() -> None:
    """Each Faust table's changelog is in topic_specs, compacted, with the table's partitions.

    A changelog Faust made itself at start could be missing from a node's metadata on a
    cluster, and the fold agent then fails for good (RELIABILITY.md, bug 21).
    """
    settings = Settings().replace(app_id="changelog-names", partitions=6)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    tables = list(build_app(settings, None).app.tables.values())
    assert len(tables) == 2
    for table in tables:
        name = table.changelog_topic.get_topic_name()
        assert name in specs, name
        assert specs[name].partitions == table.partitions == 6
        assert specs[name].config == {"cleanup.policy": "compact"}
