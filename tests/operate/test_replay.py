"""`replay` in-process against moto: which objects, what is published, how fast, when it
asks. The end-to-end guarantees (stored once, a fixed row stored) are in test_e2e.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from lambda_src.envelopes import FileRef, unwrap
from pipelinectl.cli import main
from pipelinectl.operate import replay as core
from pipelinectl.resources.base import Context
from pipelinectl.resources.rule import Rule

from .conftest import FakeTime


def _put(ctx: Context, *keys: str) -> None:
    for key in keys:
        ctx.client("s3").put_object(Bucket=ctx.names.bucket, Key=key, Body=b"id\n1\n")


def _run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def _published(ctx: Context) -> list[dict[str, Any]]:
    return [json.loads(c.params["Message"]) for c in ctx.factory.calls
            if c.operation == "Publish"]


def test_only_files_under_incoming_are_selected_and_a_dry_run_sends_nothing(
        ctx: Context) -> None:
    _put(ctx, "incoming/a.csv", "incoming/day/b.jsonl", "incoming/folder/",
         "rejected/a.csv.errors.jsonl", "elsewhere.csv")
    ctx.factory.calls.clear()
    dry = core.replay(ctx, core.select(ctx, core.Selection()), core.Selection(), dry_run=True)
    assert dry.published == 0 and len(dry.objects) == 2
    assert [str(c) for c in ctx.factory.calls] == ["s3.ListObjectsV2"]
    result = _run("--output", "json", "replay", "--dry-run")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [o["key"] for o in payload["objects"]] == ["incoming/a.csv",
                                                      "incoming/day/b.jsonl"]
    assert payload["counts"] == {"selected": 2, "bytes": 10, "published": 0}


def test_a_prefix_outside_incoming_is_refused(ctx: Context) -> None:
    result = _run("replay", "--prefix", "rejected/", "--dry-run")
    assert result.exit_code == 2
    assert "outside incoming/" in result.output


def test_filters_since_until_match_and_max(ctx: Context) -> None:
    _put(ctx, "incoming/2024-08-01.csv", "incoming/2024-08-02.csv", "incoming/x.jsonl")
    select = core.select
    assert [o.key for o in select(ctx, core.Selection(match="*.csv"))] == [
        "incoming/2024-08-01.csv", "incoming/2024-08-02.csv"]
    assert [o.key for o in select(ctx, core.Selection(match="2024-08-02*"))] == [
        "incoming/2024-08-02.csv"]
    assert len(select(ctx, core.Selection(limit=2))) == 2
    modified = select(ctx, core.Selection())[0].modified_ms
    assert select(ctx, core.Selection(since_ms=modified + 60_000)) == []
    assert select(ctx, core.Selection(until_ms=modified - 60_000)) == []
    assert len(select(ctx, core.Selection(since_ms=modified - 1, until_ms=modified + 1))) \
        >= 1


def test_each_object_gets_the_rules_event_with_a_fresh_id_marked_as_a_replay(
        ctx: Context) -> None:
    _put(ctx, "incoming/a.csv", "incoming/b.csv")
    objects = core.select(ctx, core.Selection())
    result = core.replay(ctx, objects, core.Selection(), rate=1000)
    assert result.published == 2
    events = _published(ctx)
    assert len({e["id"] for e in events}) == 2
    assert {e["replay-name"] for e in events} == {result.replay_name}
    topic = [c.params["TopicArn"] for c in ctx.factory.calls if c.operation == "Publish"]
    assert set(topic) == {f"arn:aws:sns:us-east-1:123456789012:{ctx.names.ingest_topic}"}
    # The rule's own pattern matches the event (moto has no TestEventPattern: by hand) ...
    pattern = Rule(ctx).pattern()
    for event in events:
        assert [event["source"]] == pattern["source"]
        assert [event["detail-type"]] == pattern["detail-type"]
        assert event["detail"]["bucket"]["name"] == ctx.names.bucket
        assert event["detail"]["object"]["key"].startswith("incoming/")
        assert event["resources"] == [f"arn:aws:s3:::{ctx.names.bucket}"]
        assert event["detail"]["object"]["etag"] and event["detail"]["object"]["size"] == 5
    # ... and the processor reads it as the file, knowing it is a replay.
    files = [f for e in events for f in unwrap(json.dumps(e)).files]
    assert files == [FileRef(ctx.names.bucket, "incoming/a.csv", 5, result.replay_name),
                     FileRef(ctx.names.bucket, "incoming/b.csv", 5, result.replay_name)]


def test_a_versioned_bucket_names_the_current_version(ctx: Context) -> None:
    ctx.client("s3").put_bucket_versioning(Bucket=ctx.names.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    ctx.config = type(ctx.config)(**{**ctx.config.__dict__, "bucket_versioning": True})
    _put(ctx, "incoming/a.csv", "incoming/a.csv", "incoming/gone.csv")
    ctx.client("s3").delete_object(Bucket=ctx.names.bucket, Key="incoming/gone.csv")
    latest = ctx.client("s3").head_object(Bucket=ctx.names.bucket, Key="incoming/a.csv")
    objects = core.select(ctx, core.Selection())
    assert [(o.key, o.version_id) for o in objects] == [("incoming/a.csv",
                                                         latest["VersionId"])]
    event = core.event(ctx, objects[0], "r", 0)
    assert event["detail"]["object"]["version-id"] == latest["VersionId"]


def test_the_rate_is_kept_on_a_fake_clock(ctx: Context, fake_time: FakeTime) -> None:
    _put(ctx, *(f"incoming/{n}.csv" for n in range(5)))
    sent_at: list[float] = []
    ticks: list[core.Tick] = []
    sns = ctx.client("sns")
    sns.meta.events.register("before-call.sns.Publish",
                             lambda **_: sent_at.append(fake_time.clock()))
    result = core.replay(ctx, core.select(ctx, core.Selection()), core.Selection(), rate=2,
                         on_tick=ticks.append, clock=fake_time.clock, sleep=fake_time.sleep)
    assert result.published == 5
    assert [t - sent_at[0] for t in sent_at] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [t.done for t in ticks] == [1, 2, 3, 4, 5]
    assert ticks[-1].bytes_done == ticks[-1].bytes_total == 25
    assert result.seconds == pytest.approx(2.0)


def test_over_the_threshold_it_asks_and_refuses_without_yes_when_it_cannot(
        ctx: Context) -> None:
    _put(ctx, *(f"incoming/{n}.csv" for n in range(core.CONFIRM_ABOVE + 1)))
    refused = _run("replay")
    assert refused.exit_code == 2
    assert "pass --yes" in refused.output
    assert _run("replay", "--max", str(core.CONFIRM_ABOVE)).exit_code == 0  # at it: no ask
    done = _run("--output", "json", "replay", "--yes", "--rate", "1000")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["counts"]["published"] == core.CONFIRM_ABOVE + 1
