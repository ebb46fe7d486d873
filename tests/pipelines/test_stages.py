"""The Dagster assets follow the stage list of detectors/stages.py, declared once."""

from __future__ import annotations

import pytest

from detectors.stages import STAGE_NAMES, STAGES
from pipelines.definitions import defs
from pipelines.stages import STAGE_TAG, stage_tags


def _stages_by_asset() -> tuple[dict, dict]:
    graph = defs.resolve_asset_graph()
    tagged, parents = {}, {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        parents[key] = set(node.parent_keys)
        if STAGE_TAG in node.tags:
            tagged[key] = [STAGE_NAMES.index(s) for s in node.tags[STAGE_TAG].split(".")]
    return tagged, parents


def _ancestors(key, parents: dict) -> set:
    seen, todo = set(), list(parents.get(key, ()))
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(parents.get(k, ()))
    return seen


def test_every_stage_is_run_by_some_asset():
    tagged, _ = _stages_by_asset()
    covered = {STAGE_NAMES[i] for stages in tagged.values() for i in stages}
    assert covered == set(STAGE_NAMES)


def test_no_asset_runs_a_stage_before_one_listed_earlier():
    tagged, parents = _stages_by_asset()
    backwards = [
        (up.to_user_string(), down.to_user_string())
        for down, down_stages in tagged.items()
        for up in _ancestors(down, parents)
        if up in tagged and max(tagged[up]) > min(down_stages)
    ]
    assert backwards == []


def test_the_stage_order_is_the_documented_one():
    assert STAGE_NAMES == (
        "derive",
        "rules",
        "score",
        "flag",
        "rank",
        "recommend",
        "export",
        "publish",
    )
    assert list(STAGES) == list(STAGE_NAMES)


def test_stage_tags_name_stages_in_list_order_and_refuse_unknown_ones():
    assert stage_tags("export", "rank") == {STAGE_TAG: "rank.export"}
    with pytest.raises(ValueError, match="unknown stage"):
        stage_tags("rank", "score_everything")
