"""Record contracts: closed enums and deterministic ids usable as idempotency keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipelines.records import (
    DEFAULT_ACTION,
    TXN_KEYED_KINDS,
    BreakKind,
    RepairAction,
    break_id,
    task_id,
    trace_id_for,
)

ids = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x1f"), max_size=30)


def test_every_break_kind_has_a_default_action() -> None:
    assert set(DEFAULT_ACTION) == set(BreakKind)
    assert DEFAULT_ACTION[BreakKind.DUPLICATE_CALLBACK] == RepairAction.NONE


@given(st.sampled_from(list(BreakKind)), ids, ids, ids)
def test_break_id_is_deterministic_and_order_keyed_kinds_ignore_the_channel_txn(
    kind: BreakKind, channel: str, payment_id: str, txn: str
) -> None:
    a = break_id(channel, kind, payment_id, txn)
    assert a == break_id(channel, kind.value, payment_id, txn)
    assert a.startswith("brk_") and len(a) == 36
    other = break_id(channel, kind, payment_id, txn + "x")
    assert (a == other) == (kind not in TXN_KEYED_KINDS)


@given(ids, ids)
def test_ids_do_not_collide_across_field_boundaries(a: str, b: str) -> None:
    if a + b:
        assert (
            break_id("c", BreakKind.MISSING_INTERNAL, a, b) != break_id("c", BreakKind.MISSING_INTERNAL, a + b, "")
            or b == ""
        )


def test_task_id_is_one_per_break_and_action() -> None:
    b = break_id("alipay", BreakKind.DUPLICATE_PAYMENT, "P1", "T2")
    assert task_id(b, RepairAction.REFUND) == task_id(b, "REFUND")
    assert task_id(b, RepairAction.REFUND) != task_id(b, RepairAction.MANUAL_REVIEW)
    assert trace_id_for("P1") == trace_id_for("P1") != trace_id_for("P2")
