"""Patch i: concurrent requests on one queue (Lambda's concurrent pollers) must neither fail
nor lose messages, as on AWS (motocompat_sqs.py)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, sqs_backends

REGION = "us-east-1"


def _receive_while_another_receive_runs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Receive A, and, at the moment A walks the queue's in-flight messages, receive B from
    another thread (joined with a bound: if B has to wait for A, A goes on without it).

    The interleaving is forced, not hoped for: the first read of an in-flight message's
    ``group_id`` inside A starts B. Returns what each receive got or raised."""
    backend = sqs_backends[DEFAULT_ACCOUNT_ID][REGION]
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1  # m0 is now in flight

    outcome: dict[str, Any] = {}
    started = threading.Event()

    def receive(name: str) -> None:
        try:
            outcome[name] = [m.body for m in backend.receive_message("q", 1, 0, 30)]
        except Exception as exc:  # the defect being shown
            outcome[name] = exc

    other = threading.Thread(target=receive, args=("B",))

    def group_id(message: Message) -> str | None:
        if threading.current_thread() is threading.main_thread() and not started.is_set():
            started.set()
            other.start()
            other.join(timeout=2)  # B finishes now, or it waits for A's lock
        return message.__dict__.get("_group_id")

    def set_group_id(message: Message, value: str | None) -> None:
        message.__dict__["_group_id"] = value

    monkeypatch.setattr(Message, "group_id", property(group_id, set_group_id), raising=False)
    for message in backend.get_queue("q")._messages:
        message.group_id = None  # the instances' own attribute, now behind the property
    receive("A")
    other.join(timeout=10)
    assert started.is_set() and not other.is_alive()
    return outcome


def test_defect_i_moto_fails_a_receive_that_overlaps_another(
        plain_moto: None, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _receive_while_another_receive_runs(monkeypatch)
    assert isinstance(outcome["A"], RuntimeError)
    assert "changed size during iteration" in str(outcome["A"])


def test_patch_i_overlapping_receives_both_succeed_with_different_messages(
        aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _receive_while_another_receive_runs(monkeypatch)
    assert len(outcome["A"]) == 1 and len(outcome["B"]) == 1
    assert outcome["A"] != outcome["B"]


def test_patch_i_concurrent_senders_and_consumers_lose_nothing(aws: None) -> None:
    """What a pipeline needs of SQS under Lambda's concurrency: every acknowledged send is
    received, no request fails. (SQS stores a message redundantly before SendMessage answers:
    SQS Developer Guide, "Amazon SQS standard queues".)"""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    senders, per_sender = 3, 60
    sent = {f"s{s}-{n}" for s in range(senders) for n in range(per_sender)}
    received: set[str] = set()
    errors: list[BaseException] = []
    done_sending = threading.Event()
    lock = threading.Lock()

    def send(s: int) -> None:
        try:
            for n in range(0, per_sender, 10):
                sqs.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "MessageBody": f"s{s}-{n + i}"} for i in range(10)])
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    def consume() -> None:
        try:
            while not (done_sending.is_set() and len(received) >= len(sent)):
                batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
                messages = batch.get("Messages", [])
                with lock:
                    received.update(m["Body"] for m in messages)
                if messages:  # at most 10: one DeleteMessageBatch
                    sqs.delete_message_batch(QueueUrl=url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)])
                if done_sending.is_set() and not messages and len(received) < len(sent):
                    return  # drained: whatever is missing was lost
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    producers = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for thread in producers + consumers:
        thread.start()
    for thread in producers:
        thread.join()
    done_sending.set()
    for thread in consumers:
        thread.join(timeout=60)
    assert errors == []
    assert sent - received == set()
