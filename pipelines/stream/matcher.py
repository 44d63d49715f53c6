"""The stream matcher's decisions, free of Faust: state per payment in, breaks and tasks out.

The worker (`pipelines.stream.app`) feeds every decoded record to `Matcher.apply`; the state lives
in a `Store` (the Faust table behind a per-batch write-back buffer in the worker, a dict in unit
tests), keyed by `payment_id`.

How a payment is decided
------------------------
The state of a payment is the set of facts seen for it: our payment events (deduplicated by
`event_id`) and the channel's callback deliveries (deduplicated by `callback_id` + `received_at`,
so a Kafka redelivery of the same record changes nothing while a second delivery of the same
notification by the channel is a DUPLICATE_CALLBACK). Breaks are a pure function of those facts and
of the partition's event-time watermark (`decide`); what was already emitted is kept in the state and
only the difference is sent, as break records keyed by `break_id` (a later record with the same id
supersedes the earlier one; status CLOSED closes it) and repair tasks keyed by `task_id`.

- Pair decisions (STATUS_MISMATCH, AMOUNT_MISMATCH, PARTIAL_PAYMENT, CURRENCY_MISMATCH) wait until
  our status is final (SUCCEEDED, FAILED, CLOSED) and a callback is there, and are made by the shared
  `classify_pair` with the channel's rule; so a SUCCEEDED callback that arrives while we still say
  PROCESSING is pending, not a break.
- DUPLICATE_PAYMENT: another SUCCEEDED callback with a different channel_txn_id than the primary one
  (the one our record names, else the earliest SUCCEEDED, else the earliest).
- DUPLICATE_CALLBACK: one callback_id delivered more than once (no money effect, no task).
- MISSING_CALLBACK: the callback window (`callback_window_s` of the rule, from the first event that
  sent the payment to the channel) has closed in event time with no callback received inside it.
  It closes when the partition's watermark passes the deadline, or as soon as a callback received
  after the deadline shows that the window closed empty; a late callback then closes the break
  (the same break_id, status CLOSED). Both orders give the same records: provisional, then closed.
  Channels whose rule has `callback_window_s: None` send no callbacks and get no decisions here.

Event time and watermarks
-------------------------
Each input partition has two watermarks, the latest event time seen on the payment-events partition
(`occurred_at`) and on the callbacks partition (`received_at`); a window closes when both have
passed its deadline, so a callback inside the window is always decided before its window closes as
long as each topic partition is in event-time order (the replay publishes in arrival order). At the
end of a replayed day the replay sends a watermark tick to every partition of both topics, which
closes every window that ends inside the day; windows that end later stay pending.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from pipelines.matching.classify import classify_pair, signed_internal_amount
from pipelines.matching.rules import Rule
from pipelines.records import (
    BIZ_TYPE_SIGN,
    DEFAULT_ACTION,
    BizType,
    Break,
    BreakKind,
    BreakStatus,
    ChannelCallback,
    PaymentEvent,
    PaymentStatus,
    RepairAction,
    RepairTask,
    break_id,
    task_id,
)

FINAL_STATUSES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CLOSED})
# An event with one of these statuses means the payment was sent to the channel: its callback window
# starts at the earliest such event.
SENT_STATUSES = frozenset({PaymentStatus.PROCESSING, *FINAL_STATUSES})
# When two of our events carry the same timestamp, the later state in the lifecycle wins.
_STATUS_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.PROCESSING: 1,
    PaymentStatus.SUCCEEDED: 2,
    PaymentStatus.FAILED: 2,
    PaymentStatus.CLOSED: 2,
}
NO_CALLBACK_EXPECTED = frozenset({PaymentStatus.FAILED, PaymentStatus.CLOSED})
# Enum members by value: the state keeps values (JSON), and a dict hit is cheaper than Enum(value).
_STATUS_BY_VALUE = {s.value: s for s in PaymentStatus}
_BIZ_BY_VALUE = {b.value: b for b in BizType}
WATERMARK_KEY_PREFIX = "\x00wm:"
# The persisted copy of a watermark may lag the live one by this much event time (ms); a restarted
# worker only closes windows a little later, which changes no final decision.
WATERMARK_PERSIST_STEP_MS = 60_000
NO_WATERMARK_MS = -(2**62)
# How long (event time, ms) a decided payment's state is kept after its last fact or window end
# before it is pruned from the table (a tombstone in the changelog). Later records of it are past
# the stream's retention: they go to the dead-letter topic and T+1 decides them. A day, so that a
# redelivery after a crash (at most a commit interval of wall time behind, even when a test replays
# a day in seconds) never finds a pruned payment, and a day's replay keeps every state to its end.
RETENTION_MS_DEFAULT = 24 * 3600 * 1000


def to_ms(value: datetime) -> int:
    """A UTC timestamp as integer milliseconds since the epoch."""
    return int(value.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _day(ms: int) -> date:
    return from_ms(ms).date()


class Store(Protocol):
    """Where payment states live: a Faust table in the worker, a dict in unit tests."""

    def get(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Output:
    """One record to send: `topic_kind` names the output topic, `key` its key (break_id, task_id)."""

    topic_kind: Literal["break", "task"]
    key: str
    value: dict[str, Any]
    trace_id: str | None


@dataclass(slots=True)
class _Decision:
    brk: Break
    decided_ms: int
    task_amount_minor: int
    reason: str
    rule: Rule
    # When the break first held (ms): the window's end for a MISSING_CALLBACK later closed by a
    # late callback; `decided_ms` is then the time it closed.
    opened_ms: int


def _callbacks(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The first delivery of each callback_id, in (received, callback_id) order."""
    cbs = state.get("cb", [])
    if len(cbs) < 2:
        return list(cbs)
    first: dict[str, dict[str, Any]] = {}
    for cb in sorted(cbs, key=lambda c: (c["ms"], c["id"], c["k"])):
        first.setdefault(cb["id"], cb)
    return list(first.values())


def _deliveries(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for cb in sorted(state.get("cb", []), key=lambda c: (c["ms"], c["k"])):
        by_id.setdefault(cb["id"], []).append(cb)
    return by_id


def deadline_ms(state: dict[str, Any], rule: Rule) -> int | None:
    """The end of the payment's callback window (ms), or None when it has none."""
    if rule.callback_window_s is None or state.get("sent_ms") is None:
        return None
    return int(state["sent_ms"]) + rule.callback_window_s * 1000


def status_at(state: dict[str, Any], at_ms: int) -> PaymentStatus | None:
    """Our status at event time `at_ms`: the latest of our events at or before it."""
    best: tuple[int, int] | None = None
    status: PaymentStatus | None = None
    for ms, st in state.get("hist", []):
        s = _STATUS_BY_VALUE[st]
        if ms <= at_ms and (best is None or (ms, _STATUS_RANK[s]) >= best):
            best, status = (ms, _STATUS_RANK[s]), s
    return status


def decide(state: dict[str, Any], rules: Mapping[str, Rule], watermark_ms: int) -> list[_Decision]:
    """Every break the facts in `state` support now (pure: same facts and watermark, same answer)."""
    last = state.get("last")
    all_cbs = state.get("cb")
    channel = last["channel"] if last else (all_cbs[0]["ch"] if all_cbs else None)
    if channel is None or channel not in rules:
        return []
    rule = rules[channel]
    if rule.callback_window_s is None:
        return []
    deadline = deadline_ms(state, rule)
    window_closed = deadline is not None and last is not None and watermark_ms > deadline
    if not window_closed and not (
        all_cbs and (len(all_cbs) > 1 or (last is not None and last["st"] in FINAL_STATUSES))
    ):
        # Nothing to decide yet: the window (if any) still open, no callback delivered twice and no
        # pair to classify (no callback, or our status not final).
        return []
    payment_id = state["pid"]
    ours_ms = state.get("first_ms")
    cbs = _callbacks(state)
    business_ms = ours_ms if ours_ms is not None else min(c["ms"] for c in cbs)
    trace = last["trace"] if last else cbs[0]["tr"]
    out: list[_Decision] = []

    def add(
        kind: BreakKind,
        txn: str | None,
        *,
        internal: int | None,
        channel_amount: int | None,
        currency: str,
        decided_ms: int,
        status: BreakStatus = BreakStatus.PROVISIONAL,
        opened_ms: int | None = None,
        action: RepairAction | None = None,
        task_amount: int = 0,
        reason: str = "",
    ) -> None:
        bid = break_id(channel, kind, payment_id, txn)
        delta = None if internal is None or channel_amount is None else channel_amount - internal
        brk = Break(
            break_id=bid,
            kind=kind,
            channel=channel,
            business_date=_day(business_ms),
            payment_id=payment_id,
            channel_txn_id=txn,
            internal_amount_minor=internal,
            channel_amount_minor=channel_amount,
            currency=currency,
            delta_minor=delta,
            rule_id=rule.ref,
            status=status,
            first_seen_date=_day(business_ms),
            age_days=0,
            action=action or DEFAULT_ACTION[kind],
            trace_id=trace,
        )
        out.append(
            _Decision(brk, decided_ms, task_amount, reason, rule, decided_ms if opened_ms is None else opened_ms)
        )

    # DUPLICATE_CALLBACK: facts of the channel alone; counted, no money moves.
    redelivered = len(all_cbs or ()) > len(cbs)
    for cb_id, deliveries in sorted(_deliveries(state).items()) if redelivered else ():
        if len(deliveries) > 1:
            cb = deliveries[0]
            sign = BIZ_TYPE_SIGN[_BIZ_BY_VALUE[last["biz"]]] if last else 1
            add(
                BreakKind.DUPLICATE_CALLBACK,
                cb["txn"],
                internal=None,
                channel_amount=sign * cb["amt"],
                currency=cb["cur"],
                decided_ms=deliveries[1]["ms"],
                reason=f"callback {cb_id} delivered {len(deliveries)} times",
            )

    if window_closed:
        assert deadline is not None and last is not None
        on_time = [c for c in cbs if c["ms"] <= deadline]
        late = [c for c in cbs if c["ms"] > deadline]
        # An order we had already failed or closed when the window ended expects no callback.
        if not on_time and status_at(state, deadline) not in NO_CALLBACK_EXPECTED:
            ours = signed_internal_amount(_BIZ_BY_VALUE[last["biz"]], last["amt"])
            add(
                BreakKind.MISSING_CALLBACK,
                None,
                internal=ours,
                channel_amount=None,
                currency=last["cur"],
                decided_ms=late[0]["ms"] if late else deadline,
                status=BreakStatus.CLOSED if late else BreakStatus.PROVISIONAL,
                opened_ms=deadline,
                task_amount=last["amt"],
                reason=f"no callback within {rule.callback_window_s} s of {from_ms(state['sent_ms']).isoformat()}",
            )

    if last is not None and last["st"] in FINAL_STATUSES and cbs:
        biz = _BIZ_BY_VALUE[last["biz"]]
        sign = BIZ_TYPE_SIGN[biz]
        succeeded = [c for c in cbs if c["st"] == PaymentStatus.SUCCEEDED]
        named = [c for c in cbs if last.get("txn") and c["txn"] == last["txn"]]
        primary = (named or succeeded or cbs)[0]
        verdict = classify_pair(
            rule,
            biz_type=biz,
            internal_amount_minor=last["amt"],
            internal_currency=last["cur"],
            internal_status=_STATUS_BY_VALUE[last["st"]],
            channel_gross_minor=sign * primary["amt"],
            channel_currency=primary["cur"],
            channel_status=_STATUS_BY_VALUE[primary["st"]],
            channel_fee_minor=None,
        )
        decided = max(last["ms"], primary["ms"])
        if verdict.kind is not None:
            kind = verdict.kind
            action = DEFAULT_ACTION[kind]
            task_amount = last["amt"]
            if kind == BreakKind.STATUS_MISMATCH:
                channel_paid = primary["st"] == PaymentStatus.SUCCEEDED
                action = RepairAction.CONFIRM_SUCCESS if channel_paid else RepairAction.CONFIRM_FAILURE
            elif kind in (BreakKind.AMOUNT_MISMATCH, BreakKind.PARTIAL_PAYMENT):
                task_amount = abs(verdict.delta_minor or 0)
                if kind == BreakKind.AMOUNT_MISMATCH and task_amount > rule.approval_threshold_minor:
                    action = RepairAction.MANUAL_REVIEW
            add(
                kind,
                primary["txn"],
                internal=verdict.internal_amount_minor,
                channel_amount=verdict.channel_amount_minor,
                currency=last["cur"],
                decided_ms=decided,
                action=action,
                task_amount=task_amount,
                reason=f"{kind.value}: ours {last['st']} {last['amt']} {last['cur']}, channel {primary['st']} "
                f"{primary['amt']} {primary['cur']} (callback {primary['id']})",
            )
        if primary["st"] == PaymentStatus.SUCCEEDED:
            for extra in succeeded:
                if extra["txn"] == primary["txn"]:
                    continue
                add(
                    BreakKind.DUPLICATE_PAYMENT,
                    extra["txn"],
                    internal=None,
                    channel_amount=sign * extra["amt"],
                    currency=extra["cur"],
                    decided_ms=max(last["ms"], extra["ms"]),
                    task_amount=extra["amt"],
                    reason=f"charged again as {extra['txn']} besides {primary['txn']}",
                )
    return out


def _break_value(brk: Break, decided_ms: int) -> dict[str, Any]:
    """`to_dict(brk)` (enums as values, dates as ISO text) plus when and by which engine, built
    field by field: `to_dict` deep-copies through `dataclasses.asdict`, and a state holding a break
    rebuilds this value on every record of its payment."""
    return {
        "break_id": brk.break_id,
        "kind": brk.kind.value,
        "channel": brk.channel,
        "business_date": brk.business_date.isoformat(),
        "payment_id": brk.payment_id,
        "channel_txn_id": brk.channel_txn_id,
        "internal_amount_minor": brk.internal_amount_minor,
        "channel_amount_minor": brk.channel_amount_minor,
        "currency": brk.currency,
        "delta_minor": brk.delta_minor,
        "rule_id": brk.rule_id,
        "status": brk.status.value,
        "first_seen_date": brk.first_seen_date.isoformat(),
        "age_days": brk.age_days,
        "action": brk.action.value,
        "trace_id": brk.trace_id,
        "decided_at": from_ms(decided_ms).isoformat().replace("+00:00", "Z"),
        "engine": "stream",
    }


def _task_value(d: _Decision) -> dict[str, Any] | None:
    if d.brk.action == RepairAction.NONE:
        return None
    task = RepairTask(
        task_id=task_id(d.brk.break_id, d.brk.action),
        break_id=d.brk.break_id,
        action=d.brk.action,
        payment_id=d.brk.payment_id,
        amount_minor=d.task_amount_minor,
        currency=d.brk.currency,
        reason=d.reason,
        requires_approval=d.task_amount_minor > d.rule.approval_threshold_minor,
        # Event time, not wall clock: a re-decided task is byte-identical to its first copy.
        created_at=from_ms(d.opened_ms),
        trace_id=d.brk.trace_id,
        extra={"engine": "stream", "rule_id": d.rule.ref, "kind": d.brk.kind.value},
    )
    # `to_dict(task)` with `extra` merged in, field by field (asdict deep-copies).
    return {
        "task_id": task.task_id,
        "break_id": task.break_id,
        "action": task.action.value,
        "payment_id": task.payment_id,
        "amount_minor": task.amount_minor,
        "currency": task.currency,
        "reason": task.reason,
        "requires_approval": task.requires_approval,
        "created_at": task.created_at.isoformat(),
        "trace_id": task.trace_id,
        **task.extra,
    }


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def emit(state: dict[str, Any], decisions: list[_Decision]) -> list[Output]:
    """The records that bring the emitted breaks and tasks of `state` to `decisions`; updates
    `state["out"]` (break_id -> last emitted break value) and `state["tasks"]` (task_id -> digest)."""
    emitted: dict[str, dict[str, Any]] = state.setdefault("out", {})
    tasks: dict[str, str] = state.setdefault("tasks", {})
    if not decisions and not emitted:
        return []
    outputs: list[Output] = []
    wanted: dict[str, _Decision] = {d.brk.break_id: d for d in decisions}
    for bid, d in wanted.items():
        value = _break_value(d.brk, d.decided_ms)
        if emitted.get(bid) == value:
            continue
        if bid not in emitted and d.brk.status == BreakStatus.CLOSED:
            # Closed before it was ever raised (a late callback decided before the window closed):
            # raise it first, so that every order of the same facts sends the same records.
            opened = _break_value(replace(d.brk, status=BreakStatus.PROVISIONAL), d.opened_ms)
            outputs.append(Output("break", bid, opened, d.brk.trace_id))
            outputs.extend(_task_outputs(tasks, d))
        outputs.append(Output("break", bid, value, d.brk.trace_id))
        if d.brk.status != BreakStatus.CLOSED:
            outputs.extend(_task_outputs(tasks, d))
        emitted[bid] = value
    for bid in sorted(set(emitted) - set(wanted)):
        # A break the facts no longer support (a transient decision) is closed, never deleted.
        old = emitted[bid]
        if old["status"] != BreakStatus.CLOSED:
            closed = dict(old, status=BreakStatus.CLOSED.value)
            outputs.append(Output("break", bid, closed, old.get("trace_id")))
            emitted[bid] = closed
    return outputs


def _task_outputs(tasks: dict[str, str], d: _Decision) -> list[Output]:
    value = _task_value(d)
    if value is None:
        return []
    digest = _digest(value)
    if tasks.get(value["task_id"]) == digest:
        return []
    tasks[value["task_id"]] = digest
    return [Output("task", value["task_id"], value, d.brk.trace_id)]


def all_emitted(state: dict[str, Any], rules: Mapping[str, Rule], watermark_ms: int) -> list[Output]:
    """Every break and task this state has emitted, again (after a restart: a copy whose send was
    lost in the crash is sent again; a copy that was not lost is a byte-identical duplicate)."""
    outputs = [Output("break", bid, v, v.get("trace_id")) for bid, v in sorted(state.get("out", {}).items())]
    for d in decide(state, rules, watermark_ms):
        value = _task_value(d)
        if value is not None and value["task_id"] in state.get("tasks", {}):
            outputs.append(Output("task", value["task_id"], value, d.brk.trace_id))
    return outputs


class TooLate(ValueError):
    """A record of a payment with no state whose event time is behind the partition's watermark by
    more than the retention: its payment may have been decided and pruned, so the stream cannot
    decide it again without risking a wrong break (T+1 decides it)."""


def source_key(stream: Literal["e", "c"], src: str | None) -> str:
    """The watermark key of an input: "e" payment events, "c" callbacks published pre-keyed, "c/N"
    callbacks re-keyed from partition N of the raw callback topic (`src` "N/COUNT")."""
    if stream == "e":
        return "e"
    return "c" if src is None else f"c/{src.partition('/')[0]}"


class Matcher:
    """Applies decoded records to payment states in `store` and returns the records to send.

    One Matcher serves every partition a worker holds; `partition` is the input partition of the
    record (payment events and callbacks are co-partitioned, so it is also the table shard).

    Callbacks re-keyed from the raw callback topic arrive on one partition from several raw
    partitions, each in its own event-time order but interleaved arbitrarily; the callback
    watermark is therefore kept per raw source (`src` "N/COUNT", every source known from the first
    record on) and the partition's watermark is the oldest of them and of the payment events.

    A payment whose decision can no longer change (our status final, and the watermark past its
    last fact and window end by `retention_ms`) is removed from the store (`pruned` counts them)."""

    def __init__(self, rules: Mapping[str, Rule], store: Store, *, retention_ms: int = RETENTION_MS_DEFAULT) -> None:
        self.rules = dict(rules)
        self.store = store
        self.retention_ms = retention_ms
        self._wm: dict[int, dict[str, int]] = {}
        # The partition's watermark (the oldest of `_wm[partition]`), kept up to date with it.
        self._wm_min: dict[int, int] = {}
        self._persisted_wm: dict[int, dict[str, int]] = {}
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._prune_heaps: dict[int, list[tuple[int, str]]] = {}
        # What each heap holds per payment (its latest entry), so an unchanged entry is not
        # pushed again on every record of the payment.
        self._queued: dict[int, dict[str, int]] = {}
        self._prune_queued: dict[int, dict[str, int]] = {}
        self.stats = {"events": 0, "callbacks": 0, "ticks": 0, "redelivered": 0, "pruned": 0}

    # --- partitions ----------------------------------------------------------------------------
    def _open_partition(self, partition: int) -> list[Output]:
        """First record of `partition` in this process: load its watermark, index its open windows,
        and resend what its states say was emitted (a crash may have lost the sends)."""
        saved = self.store.get(f"{WATERMARK_KEY_PREFIX}{partition}")
        wm = dict(saved) if saved else {"e": NO_WATERMARK_MS}
        self._wm[partition] = wm
        self._update_watermark(partition)
        self._persisted_wm[partition] = dict(wm)
        self._heaps[partition] = []
        self._prune_heaps[partition] = []
        self._queued[partition] = {}
        self._prune_queued[partition] = {}
        outputs: list[Output] = []
        for key, state in list(self.store.items()):
            if key.startswith(WATERMARK_KEY_PREFIX) or not state or state.get("p") != partition:
                continue
            self._index(partition, state)
            self._index_prune(partition, state)
            outputs.extend(all_emitted(state, self.rules, self.watermark(partition)))
        return outputs

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what this process derived for `partitions` (after a rebalance): the next record of
        one of them reloads its watermark, re-indexes its windows and resends its decisions."""
        for partition in partitions:
            self._wm.pop(partition, None)
            self._wm_min.pop(partition, None)
            self._persisted_wm.pop(partition, None)
            self._heaps.pop(partition, None)
            self._prune_heaps.pop(partition, None)
            self._queued.pop(partition, None)
            self._prune_queued.pop(partition, None)

    def _index(self, partition: int, state: dict[str, Any]) -> None:
        """Queue the end of the payment's callback window while no callback is inside it."""
        last = state.get("last")
        if last is None or last["channel"] not in self.rules:
            return
        deadline = deadline_ms(state, self.rules[last["channel"]])
        if deadline is None or any(c["ms"] <= deadline for c in state.get("cb", [])):
            return
        pid = state["pid"]
        queued = self._queued[partition]
        if queued.get(pid) != deadline:
            # The same (deadline, payment) entry already queued decides the same way when it pops.
            queued[pid] = deadline
            heapq.heappush(self._heaps[partition], (deadline, pid))

    def prune_at(self, state: dict[str, Any]) -> int | None:
        """The watermark (ms) past which `state` may be pruned, or None while our status is not
        final (a payment still PROCESSING may yet succeed or fail)."""
        last = state.get("last")
        if last is not None and last["st"] not in FINAL_STATUSES:
            return None
        horizon = max([last["ms"] if last else NO_WATERMARK_MS, *(c["ms"] for c in state.get("cb", []))])
        rule = self.rules.get(last["channel"]) if last else None
        deadline = deadline_ms(state, rule) if rule else None
        return max(horizon, deadline or horizon) + self.retention_ms

    def _index_prune(self, partition: int, state: dict[str, Any]) -> None:
        at = self.prune_at(state)
        if at is None:
            return
        pid = state["pid"]
        queued = self._prune_queued[partition]
        if queued.get(pid) != at:
            queued[pid] = at
            heapq.heappush(self._prune_heaps[partition], (at, pid))

    def watermark(self, partition: int) -> int:
        """The partition's event-time watermark (ms): the oldest of its input streams (payment
        events and every callback source); none until a callback source has been seen."""
        return self._wm_min[partition]

    def _update_watermark(self, partition: int) -> None:
        wm = self._wm[partition]
        # The oldest of the payment events ("e") and every callback source; none without a source.
        self._wm_min[partition] = min(wm.values()) if len(wm) > 1 else NO_WATERMARK_MS

    def _sources(self, partition: int, stream: Literal["e", "c"], src: str | None) -> str:
        key = source_key(stream, src)
        wm = self._wm[partition]
        if key in wm:
            return key
        if src is not None and stream == "c":
            # Every raw source counts from the first re-keyed record on: a source not heard from
            # yet may still hold older callbacks for this partition.
            count = int(src.partition("/")[2] or 1)
            for i in range(count):
                wm.setdefault(f"c/{i}", NO_WATERMARK_MS)
        wm.setdefault(key, NO_WATERMARK_MS)
        self._update_watermark(partition)
        return key

    # --- records -------------------------------------------------------------------------------
    def apply(self, record: PaymentEvent | ChannelCallback, partition: int, src: str | None = None) -> list[Output]:
        """Apply one payment event or callback from input `partition` (`src`: the raw callback
        partition it was re-keyed from, "N/COUNT", or None); return the records to send. Raises
        TooLate for a record of an unknown payment older than the watermark minus the retention."""
        outputs = self._open_partition(partition) if partition not in self._wm else []
        pid = record.payment_id
        state = self.store.get(pid)
        at = to_ms(record.occurred_at) if isinstance(record, PaymentEvent) else to_ms(record.received_at)
        if not state and at < self.watermark(partition) - self.retention_ms:
            raise TooLate(
                f"{pid}: event time {from_ms(at).isoformat()} is more than {self.retention_ms // 1000} s behind "
                f"the watermark {from_ms(self.watermark(partition)).isoformat()}; its state may have been pruned"
            )
        state = _copy(state) if state else {"pid": pid, "p": partition, "ev": [], "cb": []}
        stream: Literal["e", "c"]
        if isinstance(record, PaymentEvent):
            self.stats["events"] += 1
            fresh = _add_event(state, record, at)
            stream = "e"
        else:
            self.stats["callbacks"] += 1
            fresh = _add_callback(state, record, at)
            stream = "c"
        key = self._sources(partition, stream, src)
        if not fresh:
            # A redelivery: nothing changes, but the state is written again so that a changelog
            # record lost in a crash (the local store ahead of it) is restored, and what the state
            # says was emitted is sent again in case that send was lost too.
            self.stats["redelivered"] += 1
            self.store[pid] = state
            outputs.extend(all_emitted(state, self.rules, self.watermark(partition)))
            return outputs
        # The watermark moves first: a record is itself evidence of how far its stream has got
        # (a callback received after a window's end shows that window closed on its stream).
        self._advance(partition, key, at)
        outputs.extend(emit(state, decide(state, self.rules, self.watermark(partition))))
        self.store[pid] = state
        if state.get("sent_ms") is not None:
            self._index(partition, state)
        self._index_prune(partition, state)
        heap = self._heaps[partition]
        if heap and heap[0][0] < self._wm_min[partition]:
            outputs.extend(self._expire(partition))
        else:
            self._prune(partition, self._wm_min[partition])
        return outputs

    def tick(self, stream: Literal["e", "c"], at: datetime, partition: int, src: str | None = None) -> list[Output]:
        """A watermark tick on one input stream ("e" payment events, "c" callbacks; `src` the raw
        callback partition it was re-keyed from, "N/COUNT", or None) of `partition`."""
        outputs = self._open_partition(partition) if partition not in self._wm else []
        self.stats["ticks"] += 1
        key = self._sources(partition, stream, src)
        self._advance(partition, key, to_ms(at), force_persist=True)
        outputs.extend(self._expire(partition))
        return outputs

    def _advance(self, partition: int, key: str, at_ms: int, force_persist: bool = False) -> None:
        wm = self._wm[partition]
        if at_ms <= wm[key] and not force_persist:
            return
        old = wm[key]
        wm[key] = max(old, at_ms)
        if old <= self._wm_min[partition]:
            # This input was (one of) the oldest: the partition's watermark may move.
            self._update_watermark(partition)
        persisted = self._persisted_wm[partition]
        if force_persist or wm[key] - persisted.get(key, NO_WATERMARK_MS) >= WATERMARK_PERSIST_STEP_MS:
            self.store[f"{WATERMARK_KEY_PREFIX}{partition}"] = dict(wm)
            self._persisted_wm[partition] = dict(wm)

    def _expire(self, partition: int) -> Iterator[Output]:
        heap = self._heaps[partition]
        queued = self._queued[partition]
        watermark = self.watermark(partition)
        while heap and heap[0][0] < watermark:
            deadline, pid = heapq.heappop(heap)
            if queued.get(pid) == deadline:
                del queued[pid]
            state = self.store.get(pid)
            if not state:
                continue
            state = _copy(state)
            outputs = emit(state, decide(state, self.rules, watermark))
            if outputs:
                self.store[pid] = state
                yield from outputs
        self._prune(partition, watermark)

    def _prune(self, partition: int, watermark: int) -> None:
        heap = self._prune_heaps[partition]
        queued = self._prune_queued[partition]
        while heap and heap[0][0] < watermark:
            queued_at, pid = heapq.heappop(heap)
            if queued.get(pid) == queued_at:
                del queued[pid]
            state = self.store.get(pid)
            if not state:
                continue
            at = self.prune_at(state)
            if at is None or at >= watermark:
                # A fact arrived after this entry was queued: the entry queued with it decides.
                continue
            # Its windows are decided and every emitted record is on the output topics; nothing
            # within the retention can change it, so it leaves the table (a changelog tombstone).
            del self.store[pid]
            queued.pop(pid, None)
            self.stats["pruned"] += 1

    def live_payments(self) -> int:
        """How many payment states the store holds (watermark records excluded)."""
        return sum(1 for k, v in self.store.items() if v and not k.startswith(WATERMARK_KEY_PREFIX))


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    # States are small; a copy keeps a half-applied record from ever reaching the store.
    return {
        **state,
        "ev": list(state.get("ev", [])),
        "cb": list(state.get("cb", [])),
        "hist": list(state.get("hist", [])),
        "out": dict(state.get("out", {})),
        "tasks": dict(state.get("tasks", {})),
    }


def _add_event(state: dict[str, Any], ev: PaymentEvent, at: int) -> bool:
    """Add our event (at `at`, its occurred_at in ms) to the payment's facts; False when known."""
    if ev.event_id in state["ev"]:
        return False
    state["ev"].append(ev.event_id)
    state.setdefault("hist", []).append([at, ev.status.value])
    state["first_ms"] = min(at, state.get("first_ms") or at)
    if ev.status in SENT_STATUSES:
        state["sent_ms"] = min(at, state.get("sent_ms") or at)
    last = state.get("last")
    if last is None or (at, _STATUS_RANK[ev.status]) >= (last["ms"], _STATUS_RANK[_STATUS_BY_VALUE[last["st"]]]):
        state["last"] = {
            "st": ev.status.value,
            "ms": at,
            "biz": ev.biz_type.value,
            "channel": ev.channel,
            "amt": ev.amount_minor,
            "cur": ev.currency,
            "txn": ev.channel_txn_id or (last or {}).get("txn"),
            "trace": ev.trace_id,
        }
    return True


def delivery_key(cb: ChannelCallback) -> str:
    """The identity of one delivery of a callback: a Kafka redelivery repeats it, a second
    notification by the channel (same callback_id, received again later) does not."""
    return f"{cb.callback_id}@{to_ms(cb.received_at)}"


def _add_callback(state: dict[str, Any], cb: ChannelCallback, at: int) -> bool:
    """Add one callback delivery (received at `at` ms) to the payment's facts; False when known."""
    key = f"{cb.callback_id}@{at}"
    if any(c["k"] == key for c in state["cb"]):
        return False
    state["cb"].append(
        {
            "k": key,
            "id": cb.callback_id,
            "ch": cb.channel,
            "txn": cb.channel_txn_id,
            "amt": cb.amount_minor,
            "cur": cb.currency,
            "st": cb.status.value,
            "ms": at,
            "tr": cb.trace_id,
        }
    )
    return True
