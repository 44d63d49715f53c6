"""The stream matcher's decisions on hand-made payments (no Kafka, no Faust)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from stream_helpers import at, callback, clean, event

from pipelines.matching.rules import load_rules
from pipelines.records import BreakKind, PaymentStatus, RepairAction, break_id, task_id
from pipelines.stream.matcher import Matcher, Output, to_ms

RULES = load_rules()


def run(records, ticks_at: float | None = 3600, partition: int = 0) -> tuple[Matcher, list[Output]]:
    store: dict = {}
    m = Matcher(RULES, store)
    out: list[Output] = []
    for r in records:
        out += m.apply(r, partition)
    if ticks_at is not None:
        out += m.tick("e", at(ticks_at), partition)
        out += m.tick("c", at(ticks_at), partition)
    return m, out


def final(outputs: list[Output], kind: str = "break") -> dict[str, dict]:
    """Last record per id, the way a downstream consumer folds the topic."""
    last: dict[str, dict] = {}
    for o in outputs:
        if o.topic_kind == kind:
            last[o.key] = o.value
    return last


def open_kinds(outputs: list[Output]) -> set[tuple[str, str | None]]:
    return {(v["kind"], v["channel_txn_id"]) for v in final(outputs).values() if v["status"] != "CLOSED"}


def test_clean_payment_makes_no_break():
    _, out = run(clean("P1", 0))
    assert out == []


def test_lost_callback_is_a_missing_callback_when_the_window_closes_in_event_time():
    m, out = run([event("P1", PaymentStatus.PROCESSING, 0)], ticks_at=None)
    assert out == []  # no watermark has passed the window yet: pending, whatever the wall clock says
    out = m.tick("e", at(301), 0)
    assert out == []  # the callbacks stream has not passed the deadline: a callback may still come
    out = m.tick("c", at(301), 0)
    brk = final(out)[break_id("alipay", BreakKind.MISSING_CALLBACK, "P1", None)]
    assert (brk["kind"], brk["status"], brk["channel_txn_id"]) == ("MISSING_CALLBACK", "PROVISIONAL", None)
    assert brk["rule_id"] == "alipay-cny@1" and brk["business_date"] == "2026-11-02"
    task = final(out, "task")[task_id(brk["break_id"], RepairAction.REQUERY_CHANNEL)]
    assert task["action"] == "REQUERY_CHANNEL" and task["amount_minor"] == 10_000
    assert task["trace_id"] == brk["trace_id"] and task["trace_id"]


def test_window_exactly_at_deadline_is_still_open():
    m, out = run([event("P1", PaymentStatus.PROCESSING, 0)], ticks_at=300)
    assert out == []
    assert m.tick("c", at(300.001), 0) == []  # one stream past the deadline is not enough
    out = m.tick("e", at(300.001), 0)
    assert open_kinds(out) == {("MISSING_CALLBACK", None)}


def test_an_order_we_closed_inside_the_window_expects_no_callback():
    _, out = run([event("P1", PaymentStatus.PROCESSING, 0), event("P1", PaymentStatus.CLOSED, 30)])
    assert out == []
    # ...but one we closed only after the window ended did expect one (and it never came).
    _, out = run([event("P2", PaymentStatus.PROCESSING, 0), event("P2", PaymentStatus.CLOSED, 360)])
    assert open_kinds(out) == {("MISSING_CALLBACK", None)}


def test_late_callback_closes_the_provisional_break_in_either_order():
    late = [
        event("P1", PaymentStatus.PROCESSING, 0),
        callback("P1", 400),
        event("P1", PaymentStatus.SUCCEEDED, 401, txn="T1"),
    ]
    # Window closed by the watermark first, then the late callback.
    m = Matcher(RULES, {})
    a = m.apply(late[0], 0) + m.tick("e", at(350), 0) + m.tick("c", at(350), 0)
    assert open_kinds(a) == {("MISSING_CALLBACK", None)}
    a += m.apply(late[1], 0) + m.apply(late[2], 0)
    # The late callback arrives before any watermark passes the deadline.
    _, b = run(late, ticks_at=None)
    assert open_kinds(a) == open_kinds(b) == set()
    assert [(o.key, o.value["status"]) for o in a if o.topic_kind == "break"] == [
        (o.key, o.value["status"]) for o in b if o.topic_kind == "break"
    ]
    assert a == b


def test_status_mismatch_waits_for_our_final_status():
    m = Matcher(RULES, {})
    out = m.apply(event("P1", PaymentStatus.PROCESSING, 0), 0) + m.apply(callback("P1", 10), 0)
    assert out == []  # channel says paid, we still say PROCESSING: pending, not a break
    out = m.apply(event("P1", PaymentStatus.CLOSED, 20), 0)
    brk = final(out)[break_id("alipay", BreakKind.STATUS_MISMATCH, "P1", None)]
    assert brk["action"] == "CONFIRM_SUCCESS" and brk["channel_txn_id"] == "T1"
    assert brk["internal_amount_minor"] == 10_000 and brk["channel_amount_minor"] == 10_000


def test_amount_partial_and_currency_come_from_classify_pair():
    more = [
        event("A", PaymentStatus.PROCESSING, 0),
        callback("A", 5, amount=10_100),
        event("A", PaymentStatus.SUCCEEDED, 6),
    ]
    less = [
        event("B", PaymentStatus.PROCESSING, 0),
        callback("B", 5, amount=9_000),
        event("B", PaymentStatus.SUCCEEDED, 6),
    ]
    cur = [
        event("C", PaymentStatus.PROCESSING, 0, currency="USD"),
        callback("C", 5),
        event("C", PaymentStatus.SUCCEEDED, 6, currency="USD"),
    ]
    _, out = run(more + less + cur)
    breaks = final(out)
    assert breaks[break_id("alipay", BreakKind.AMOUNT_MISMATCH, "A", None)]["delta_minor"] == 100
    assert breaks[break_id("alipay", BreakKind.PARTIAL_PAYMENT, "B", None)]["delta_minor"] == -1_000
    assert breaks[break_id("alipay", BreakKind.CURRENCY_MISMATCH, "C", None)]["currency"] == "USD"
    tasks = {(t["break_id"], t["action"], t["amount_minor"]) for t in final(out, "task").values()}
    assert (break_id("alipay", BreakKind.AMOUNT_MISMATCH, "A", None), "ADJUST", 100) in tasks
    assert (break_id("alipay", BreakKind.PARTIAL_PAYMENT, "B", None), "MANUAL_REVIEW", 1_000) in tasks


def test_amount_mismatch_above_the_approval_threshold_goes_to_manual_review():
    big = [event("A", PaymentStatus.PROCESSING, 0, amount=10_000_000), callback("A", 5, amount=11_000_000),
           event("A", PaymentStatus.SUCCEEDED, 6, amount=10_000_000)]  # fmt: skip
    _, out = run(big)
    (task,) = final(out, "task").values()
    assert task["action"] == "MANUAL_REVIEW" and task["requires_approval"] is True


def test_duplicate_callback_is_counted_without_a_task_and_a_redelivery_is_not_a_duplicate():
    cb = callback("P1", 5)
    again = callback("P1", 9)  # the channel notifies again: same callback_id, received later
    recs = [event("P1", PaymentStatus.PROCESSING, 0), cb, cb, event("P1", PaymentStatus.SUCCEEDED, 6, txn="T1")]
    m, out = run(recs)
    assert out == [] and m.stats["redelivered"] == 1  # the same delivery twice is one fact
    _, out = run([*recs, again])
    assert open_kinds(out) == {("DUPLICATE_CALLBACK", "T1")}
    assert final(out, "task") == {}


def test_duplicate_payment_names_the_extra_charge():
    recs = [
        event("P1", PaymentStatus.PROCESSING, 0),
        callback("P1", 5, txn="T1"),
        event("P1", PaymentStatus.SUCCEEDED, 6, txn="T1"),
        callback("P1", 30, txn="T2"),
    ]
    _, out = run(recs)
    assert open_kinds(out) == {("DUPLICATE_PAYMENT", "T2")}
    (task,) = final(out, "task").values()
    assert task["action"] == "REFUND" and task["amount_minor"] == 10_000


def test_callback_before_the_payment_event_matches():
    _, out = run(
        [callback("P1", 0), event("P1", PaymentStatus.PROCESSING, 1), event("P1", PaymentStatus.SUCCEEDED, 2, txn="T1")]
    )
    assert out == []


def test_channel_without_callbacks_gets_no_missing_callback():
    _, out = run([event("B1", PaymentStatus.SUCCEEDED, 0, channel="jpbank", currency="JPY")], ticks_at=86_400)
    assert out == []


def test_redelivered_event_changes_nothing_and_resends_what_was_emitted():
    store: dict = {}
    m = Matcher(RULES, store)
    first = m.apply(event("P1", PaymentStatus.PROCESSING, 0), 0) + m.tick("e", at(400), 0) + m.tick("c", at(400), 0)
    assert open_kinds(first) == {("MISSING_CALLBACK", None)}
    snapshot = {k: v for k, v in store.items() if not k.startswith("\x00")}
    again = m.apply(event("P1", PaymentStatus.PROCESSING, 0), 0)
    assert {k: v for k, v in store.items() if not k.startswith("\x00")} == snapshot
    assert final(again) == final(first) and final(again, "task") == final(first, "task")


def test_a_restarted_matcher_resends_its_state_and_decides_the_same():
    store: dict = {}
    m = Matcher(RULES, store)
    recs = [event("P1", PaymentStatus.PROCESSING, 0), event("P2", PaymentStatus.PROCESSING, 100)]
    out = m.apply(recs[0], 0) + m.apply(recs[1], 0) + m.tick("e", at(350), 0) + m.tick("c", at(350), 0)
    assert open_kinds(out) == {("MISSING_CALLBACK", None)}
    # A new process over the same store (the table recovered from its changelog).
    m2 = Matcher(RULES, store)
    out2 = m2.tick("c", at(500), 0) + m2.tick("e", at(500), 0)
    assert (
        final(out2)[break_id("alipay", BreakKind.MISSING_CALLBACK, "P1", None)]
        == final(out)[break_id("alipay", BreakKind.MISSING_CALLBACK, "P1", None)]
    )
    assert {v["payment_id"] for v in final(out2).values()} == {"P1", "P2"}


def test_a_partition_that_moves_away_and_back_is_reopened_and_resent():
    store: dict = {}
    m = Matcher(RULES, store)
    out = m.apply(event("P1", PaymentStatus.PROCESSING, 0), 2) + m.tick("e", at(400), 2) + m.tick("c", at(400), 2)
    assert open_kinds(out) == {("MISSING_CALLBACK", None)}
    m.forget({2})
    again = m.apply(event("P9", PaymentStatus.PROCESSING, 500), 2)
    assert final(again) == final(out)  # the decisions of the partition are sent again
    assert m.watermark(2) >= to_ms(at(400))  # its watermark came back from the store


def _scenario() -> list:
    return [
        *clean("C1", 0),
        event("L1", PaymentStatus.PROCESSING, 10),  # lost callback
        event("S1", PaymentStatus.PROCESSING, 20),  # we close it; the channel charged it, late
        event("S1", PaymentStatus.CLOSED, 400),
        callback("S1", 420),
        event("D1", PaymentStatus.PROCESSING, 30),  # duplicate payment
        callback("D1", 35, txn="X1"),
        event("D1", PaymentStatus.SUCCEEDED, 36, txn="X1"),
        callback("D1", 60, txn="X2"),
        event("A1", PaymentStatus.PROCESSING, 40),  # amount mismatch
        callback("A1", 45, amount=12_345),
        event("A1", PaymentStatus.SUCCEEDED, 46),
    ]


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_final_breaks_do_not_depend_on_how_the_two_topics_interleave(rnd):
    """Kafka keeps order within a topic partition, not across the two topics: any merge of the
    payment-event order and the callback order gives the same final breaks and tasks."""
    recs = _scenario()
    # Each topic partition is in event-time order (the replay publishes in arrival order).
    events = sorted((r for r in recs if hasattr(r, "event_id")), key=lambda r: r.occurred_at)
    cbs = sorted((r for r in recs if not hasattr(r, "event_id")), key=lambda r: r.received_at)
    merged, i, j = [], 0, 0
    while i < len(events) or j < len(cbs):
        if j >= len(cbs) or (i < len(events) and rnd.random() < 0.5):
            merged.append(events[i])
            i += 1
        else:
            merged.append(cbs[j])
            j += 1
    _, expected = run(sorted(recs, key=lambda r: getattr(r, "occurred_at", None) or r.received_at))
    _, got = run(merged)
    assert final(got) == final(expected)
    assert final(got, "task") == final(expected, "task")
    assert open_kinds(got) == {
        ("MISSING_CALLBACK", None),
        ("STATUS_MISMATCH", "T1"),
        ("DUPLICATE_PAYMENT", "X2"),
        ("AMOUNT_MISMATCH", "T1"),
    }


def test_every_decision_is_sent_once_in_an_undisturbed_run():
    _, out = run(_scenario())
    keys = [(o.topic_kind, o.key, o.value["status"] if o.topic_kind == "break" else "") for o in out]
    assert len(keys) == len(set(keys))
    assert all(a != b for a, b in itertools.pairwise(keys))
