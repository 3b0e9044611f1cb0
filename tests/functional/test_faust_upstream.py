"""Upstream Faust behaviour that app.stream.automations.NamedChangelogGlobalTable works around.

faust-streaming 0.15.3: a table given ``changelog_topic=`` reads and writes that
topic, and the consumer subscribes to it, but ``Collection._changelog_topic_name()``
still returns the default ``<app id>-<table>-changelog``. The partition assignor's
``PartitionAssignor._global_table_standby_assignments`` (called by
``_perform_assignment`` on the group leader, after ``partitions_by_topic`` was built
from the subscribed topics) looks each global table's changelog up by that default
name, so ``partitions_by_topic[...]`` raises ``KeyError``: the leader's assignment
fails and the group never settles. ``NamedChangelogGlobalTable`` (the worker's
``GlobalTable=`` app setting) returns the actual changelog topic's name.

The assignor method is called directly with the mapping ``_perform_assignment`` would
pass it (the subscribed changelog, 1 partition) and one member: the cheapest honest
call, with no cluster metadata to fake. If the first test starts failing, Faust
fixed the bug and the workaround can go.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import faust
import pytest
from faust.assignor.client_assignment import ClientAssignment
from faust.assignor.partition_assignor import PartitionAssignor

from app.core.matching import AutomationIndex
from app.stream.automations import (
    AUTOMATIONS_TABLE,
    NamedChangelogGlobalTable,
    RuleBook,
    define_automations_table,
)
from tests.support import offline_app

TOPIC = "hookstream.automations"
MEMBERS = ("member-a", "member-b")


def automations_table(global_table_class: type | None) -> tuple[Any, Any]:
    """A faust.App (no broker contacted) and its automations table, as the worker defines it."""
    settings: dict[str, Any] = {}
    if global_table_class is not None:
        settings["GlobalTable"] = global_table_class
    app = offline_app("hookstream-upstream", **settings)
    table = define_automations_table(app, TOPIC, RuleBook(AutomationIndex()))
    return app, table


def assign(app: Any) -> MutableMapping[str, ClientAssignment]:
    """Run the assignor's global-table step for two members over the subscribed topic."""
    assignments = {m: ClientAssignment(actives={}, standbys={}) for m in MEMBERS}
    # What _perform_assignment builds: subscribed topics -> partition count.
    partitions_by_topic = {TOPIC: 1}
    return PartitionAssignor(app)._global_table_standby_assignments(
        assignments, partitions_by_topic
    )


def test_stock_global_table_names_the_default_changelog_in_the_assignor() -> None:
    """Stock GlobalTable: the assignor's name differs from the changelog, and it KeyErrors."""
    app, table = automations_table(None)
    assert type(table) is faust.GlobalTable
    assert table.changelog_topic.get_topic_name() == TOPIC
    default_name = f"{app.conf.id}-{AUTOMATIONS_TABLE}-changelog"
    assert table._changelog_topic_name() == default_name
    with pytest.raises(KeyError) as info:
        assign(app)
    assert info.value.args == (default_name,)


def test_named_changelog_global_table_is_assigned_its_topic_as_standby() -> None:
    """NamedChangelogGlobalTable: each member gets the real topic, active and standby."""
    app, table = automations_table(NamedChangelogGlobalTable)
    assert isinstance(table, NamedChangelogGlobalTable)
    assert table._changelog_topic_name() == table.changelog_topic.get_topic_name() == TOPIC
    result = assign(app)
    assert set(result) == set(MEMBERS)
    for assignment in result.values():
        assert assignment.actives == {TOPIC: [0]}
        # synchronize_all_active_partitions: standby too, so it keeps reading after recovery.
        assert assignment.standbys == {TOPIC: [0]}
