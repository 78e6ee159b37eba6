"""maximum_concurrency (the mapping's ScalingConfig) and reserved_concurrency
(PutFunctionConcurrency): created with the pipeline, planned and updated field by field,
removed when unset, a no-op when unchanged. Checked on the recorded calls."""

from __future__ import annotations

from typing import Any

from pipelinectl import config, engine


def _calls(p: Any, operation: str) -> list[dict[str, Any]]:
    return [c.params for c in p.calls if c.operation == operation]


def test_up_creates_both_settings_and_a_second_plan_is_a_no_op(pipeline: Any) -> None:
    p = pipeline(maximum_concurrency=8, reserved_concurrency=10)
    engine.apply(p.ctx)
    [mapping] = _calls(p, "CreateEventSourceMapping")
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 8}
    assert [c["ReservedConcurrentExecutions"] for c in _calls(p, "PutFunctionConcurrency")] == [10]
    p.fresh()
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}


def test_a_reserved_concurrency_of_zero_is_read_back_as_zero(pipeline: Any) -> None:
    """moto's GetFunction leaves out a reservation of 0; the plan must not see a drift."""
    p = pipeline(reserved_concurrency=0)
    engine.apply(p.ctx)
    p.fresh()
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}
    assert p.client("lambda").get_function_concurrency(
        FunctionName=p.ctx.names.function)["ReservedConcurrentExecutions"] == 0


def test_changing_and_unsetting_make_exactly_their_calls(pipeline: Any) -> None:
    p = pipeline(maximum_concurrency=8, reserved_concurrency=10)
    engine.apply(p.ctx)
    p.fresh(maximum_concurrency=5)
    planned = [(c.kind, c.fields) for c in engine.plan(p.ctx) if c.action != "unchanged"]
    assert planned == [("event source mapping", ("maximum_concurrency",))]
    p.reset_calls()
    engine.apply(p.ctx)
    assert p.mutating() == ["lambda.UpdateEventSourceMapping"]
    assert _calls(p, "UpdateEventSourceMapping")[0]["ScalingConfig"] == {"MaximumConcurrency": 5}
    p.fresh(maximum_concurrency=None, reserved_concurrency=None)
    p.reset_calls()
    engine.apply(p.ctx)
    assert sorted(p.mutating()) == ["lambda.DeleteFunctionConcurrency",
                                    "lambda.UpdateEventSourceMapping"]
    # Lambda API: "To remove the configuration, pass an empty value."
    assert _calls(p, "UpdateEventSourceMapping")[0]["ScalingConfig"] == {}
    p.fresh()
    assert {c.action for c in engine.plan(p.ctx)} == {"unchanged"}


def test_a_reservation_of_zero_pauses_whatever_the_maximum() -> None:
    loaded = config.load({"reserved_concurrency": 0, "maximum_concurrency": 4}, {})
    assert (loaded.reserved_concurrency, loaded.maximum_concurrency) == (0, 4)
