"""Cell ids and the typed plan: made and parsed in one place each, exact round trips, clear refusals."""

from __future__ import annotations

import json

import pytest

from ttsload.bench.cells import CellKey, file_safe
from ttsload.bench.plan import Phase, Plan, PlanError
from ttsload.bench.scenario import loading


@pytest.mark.parametrize("model", ["vits", "/models/a|b/100%", "%7C", "x|y|z", "we ird/pa th"])
def test_cell_id_round_trips_any_model_name(model: str) -> None:
    key = CellKey("worker+mmap", model, "workers@n4", 2)
    assert key.id.count("|") == 3
    assert CellKey.parse(key.id) == key


def test_cell_id_parse_refuses_what_is_not_an_id() -> None:
    with pytest.raises(ValueError, match="not a cell id"):
        CellKey.parse("naive|vits|single")


def test_file_safe_names_differ_when_ids_differ() -> None:
    a, b = CellKey("s", "a|b", "single", 0).id, CellKey("s", "a_b", "single", 0).id
    assert file_safe(a) != file_safe(b)
    assert "/" not in file_safe("/models/x|y") and "|" not in file_safe("/models/x|y")


def test_every_builtin_scenario_plan_round_trips_through_json() -> None:
    """What the runner sends a cell process is exactly what the scenario built."""
    for name in loading.available():
        scenario = loading.load(name)
        if scenario.kind == "switch":  # needs real models: covered by the scenario tests
            continue
        for _, fields in scenario.variants():
            plan = scenario.plan(fields, None, None, None, [])
            again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
            assert again == plan, name


def test_plan_refuses_unknown_fields_and_bad_values() -> None:
    with pytest.raises(PlanError, match="unknown field"):
        Plan.from_json({"kind": "pool", "wrokers": 2})
    with pytest.raises(PlanError, match="plan.workers"):
        Plan(kind="pool", workers=0)
    with pytest.raises(PlanError, match="phase.do"):
        Phase(do="sleep")
    with pytest.raises(PlanError, match="plan.models"):
        Plan(kind="switch", lru=1)
