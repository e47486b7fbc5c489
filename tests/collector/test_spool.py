"""The agent's spool on a real SQLite file: durable, the same batch after a crash, a counted
disk budget, checkpoints written with the events they cover."""

from __future__ import annotations

from pathlib import Path

import orjson

from collector.spool import Spool


def _events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"@timestamp": "2026-11-20T10:00:00Z", "message": f"line {i}"}
        for i in range(start, start + n)
    ]


def test_batches_are_the_same_after_a_reopen_and_go_once_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put(_events(5), [{"rule_id": "r", "level": "high"}], {"tail:a": {"offset": 42}})
    first = spool.next_batch(max_items=4)
    assert first is not None
    assert len(first) == 4
    spool.close()

    # The process died before the answer: the same batch, same id and items, comes back.
    spool = Spool(tmp_path)
    again = spool.next_batch(max_items=100)
    assert again is not None
    assert (again.batch_id, again.events) == (first.batch_id, first.events)
    assert spool.checkpoint("tail:a") == {"offset": 42}
    spool.ack(again)
    rest = spool.next_batch(max_items=100)
    assert rest is not None
    assert rest.batch_id != first.batch_id
    assert [e["message"] for e in rest.events] == ["line 4"]
    assert rest.detections == [{"rule_id": "r", "level": "high"}]
    spool.ack(rest)
    assert spool.next_batch(max_items=100) is None
    stats = spool.stats()
    assert stats["received"] == 6
    assert stats["shipped"] == 6
    assert stats["queued"] == 0
    spool.close()


def test_the_disk_budget_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put(_events(10))
    pending = spool.next_batch(max_items=2)  # in flight: never dropped under its feet
    assert pending is not None
    spool.put(_events(90, start=10))
    size = spool.stats()["queued_bytes"]
    dropped = spool.enforce_budget(size // 2)
    assert dropped > 0
    stats = spool.stats()
    assert stats["dropped"] == dropped
    assert stats["queued_bytes"] <= size // 2
    again = spool.next_batch(max_items=100)
    assert again is not None
    assert again.batch_id == pending.batch_id
    assert [e["message"] for e in again.events] == ["line 0", "line 1"]
    spool.ack(again)
    following = spool.next_batch(max_items=1)
    assert following is not None
    assert following.events[0]["message"] == f"line {2 + dropped}"  # the oldest went first
    spool.close()


def test_batches_respect_the_byte_limit_but_always_carry_one_item(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put([{"message": "x" * 5000}] * 3)
    batch = spool.next_batch(max_items=100, max_bytes=6000)
    assert batch is not None
    assert len(batch) == 1
    spool.ack(batch)
    huge = spool.next_batch(max_items=100, max_bytes=10)
    assert huge is not None
    assert len(huge) == 1
    spool.close()


def test_every_item_goes_with_an_id_of_its_own_that_survives_a_reopen(tmp_path: Path) -> None:
    """The service keeps an item once by its id: the id is the spool's and the item's, the
    same after a restart, different in a new spool file (whose item numbers start again)."""
    spool = Spool(tmp_path / "a")
    spool.put(_events(3), [{"rule_id": "r", "level": "high"}])
    first = spool.next_batch(max_items=100)
    assert first is not None
    assert len(set(first.event_ids + first.detection_ids)) == 4
    assert all(i.startswith(f"{spool.spool_id}-") for i in first.event_ids)
    body = orjson.loads(first.body())
    assert body["event_ids"] == first.event_ids
    assert body["detection_ids"] == first.detection_ids
    assert "event_ids" not in orjson.loads(first.body(item_ids=False))  # for an older service
    spool.close()

    spool = Spool(tmp_path / "a")
    again = spool.next_batch(max_items=100)
    assert again is not None
    assert (again.event_ids, again.detection_ids) == (first.event_ids, first.detection_ids)
    spool.close()

    other = Spool(tmp_path / "b")
    other.put(_events(3))
    fresh = other.next_batch(max_items=100)
    assert fresh is not None
    assert not set(fresh.event_ids) & set(first.event_ids)
    other.close()


def test_put_within_the_budget_is_one_step_for_another_thread(tmp_path: Path) -> None:
    """Stored and cut to the budget in one transaction: a batch taken from another thread
    (the agent's delivering one) right after holds only what the budget kept, the newest."""
    spool = Spool(tmp_path)
    other = Spool(tmp_path)  # another connection: sees only committed states
    newest = sum(len(orjson.dumps(e)) for e in _events(10, start=90))
    dropped = spool.put_within(newest, _events(100))
    assert dropped == 90
    batch = other.next_batch(max_items=100)
    assert batch is not None
    assert [e["message"] for e in batch.events] == [f"line {n}" for n in range(90, 100)]
    assert spool.stats()["dropped"] == 90
    other.close()
    spool.close()


def test_the_body_spliced_from_stored_items_is_their_encoding_byte_for_byte(
    tmp_path: Path,
) -> None:
    # The body is joined from the stored JSON, not decoded and encoded again: it must be the
    # very bytes the decoded batch encodes to (unicode, nesting, numbers, empty lists).
    events: list[dict[str, object]] = [
        {"@timestamp": "2026-11-20T10:00:00Z", "message": 'Pitié-Salpêtrière \u2028 "q" \\'},
        {"n": 2**62, "x": -1.5e-7, "ok": True, "none": None, "log": {"a": [1, {"b": []}]}},
    ]
    spool = Spool(tmp_path)
    spool.put(events, [{"rule_id": "r", "tags": ["a", "é"]}])
    batch = spool.next_batch(max_items=10)
    assert batch is not None
    for item_ids in (True, False):
        expected: dict[str, object] = {
            "batch_id": batch.batch_id,
            "events": batch.events,
            "detections": batch.detections,
        }
        if item_ids:
            expected["event_ids"] = batch.event_ids
            expected["detection_ids"] = batch.detection_ids
        assert batch.body(item_ids=item_ids) == orjson.dumps(expected)
    assert batch.events == events
    assert orjson.loads(batch.body())["detection_ids"] == [f"{spool.spool_id}-3"]
    spool.put(events[:1])
    spool.ack(batch)
    only_events = spool.next_batch(max_items=10)
    assert only_events is not None
    assert orjson.loads(only_events.body()) == {
        "batch_id": only_events.batch_id,
        "events": events[:1],
        "detections": [],
        "event_ids": [f"{spool.spool_id}-4"],
        "detection_ids": [],
    }
