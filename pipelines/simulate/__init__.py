"""The business-day simulator: the test bed of everything else.

`payrecon simulate --date D [--days K] --payments N --seed S --out ROOT [--channels a,b] [--faults P]`
writes K consecutive business days D, D+1, ... in the layout of SPEC section 4:

    ROOT/<date>/internal/payments.csv          our records at the end of the day (canonical columns)
    ROOT/<date>/channels/<channel>/<files>     each channel's settlement file, in the format its
                                               rule file names (`parser:`)
    ROOT/<date>/stream/events.jsonl            payment events and channel callbacks in arrival order
    ROOT/<date>/truth/breaks.csv               kind,channel,payment_id,channel_txn_id: every break
                                               the T+1 reconciliation must report for the day
    ROOT/<date>/truth/stream_breaks.csv        the same for the stream matcher (final state)
    ROOT/<date>/truth/faults.csv               which fault each affected payment got (for tests)
    ROOT/manifest.json                         the arguments, so a tree says how it was made

Same arguments, same bytes; a different seed gives a different tree.

The world of one payment
------------------------
Each payment has one channel and one `biz_type`; amounts are positive minor units on our side and
signed on statement lines (credit positive: PAY and TOPUP in; WITHDRAW, REFUND, TRANSFER out). Fees
are the rule file's contracted fee, on the statement line and in our record. Most payments are
clean: our record SUCCEEDED with the channel's `channel_txn_id`, one callback within the window,
one statement line in the day's file. Some are legitimately FAILED or CLOSED at both sides: no
statement line, a FAILED callback, no break. A channel whose rule has `callback_window_s: null`
(a bank) sends no callbacks, and our records never learn its transaction id: those match on the
merchant reference (EndToEndId) or on amount and time.

In truth files, `payment_id` is our payment id (empty when we have no record) and `channel_txn_id`
is the channel's id of the channel-side record involved (statement line for T+1, callback for the
stream), empty when the channel has no record.

Faults (rate per payment, one fault at most per payment) and what each must produce:

| fault               | T+1 truth                         | stream truth (final)            |
|---------------------|-----------------------------------|---------------------------------|
| missing_at_channel  | MISSING_AT_CHANNEL (txn empty)    | MISSING_CALLBACK (txn empty)*   |
| missing_internal    | MISSING_INTERNAL (payment empty)  | none (no callback)              |
| lost_callback (掉单)| STATUS_MISMATCH (we: PROCESSING)  | MISSING_CALLBACK (txn empty)    |
| status_mismatch     | STATUS_MISMATCH (we: CLOSED)      | STATUS_MISMATCH                 |
| amount_mismatch     | AMOUNT_MISMATCH (channel more)    | AMOUNT_MISMATCH                 |
| partial_payment     | PARTIAL_PAYMENT (channel less)    | PARTIAL_PAYMENT                 |
| duplicate_payment   | DUPLICATE_PAYMENT (the extra txn) | DUPLICATE_PAYMENT (extra txn)   |
| fee_mismatch        | FEE_MISMATCH                      | none (callbacks carry no fee)   |
| currency_mismatch   | CURRENCY_MISMATCH                 | CURRENCY_MISMATCH               |
| ambiguous (bank)    | AMBIGUOUS (payment empty, line)   | none (bank: no callbacks)       |
| duplicate_callback  | none                              | DUPLICATE_CALLBACK              |
| late_callback       | none                              | none (the provisional MISSING_CALLBACK closes) |
| callback_first      | none                              | none (callback before the payment event)       |
| missing_reference   | none (bank line without EndToEndId, one amount candidate: matched on amount_time) | none |
| cross_day           | none: pending on day D, matched in day D+1's file | none                |
| partial_refund      | none (a REFUND of an earlier payment for less than it) | none           |
| settled_late        | MISSING_AT_CHANNEL on day D; none on D+2, whose file holds the line (it closes the break) | none (its callback came) |
| recorded_late       | MISSING_INTERNAL on day D; none on D+2, whose extract holds our record (it closes the break) | none (no event, no callback) |

`*` only on channels with callbacks. Fault rates are per payment and drawn independently; the
truth's counts per kind match the rates within sampling error (tests check it). `settled_late` and
`recorded_late` are 0 in the named profiles (they need three days to show; a profile file sets
their rates).

Details the engines rely on:
- `cross_day` payments are created after the rule's `carry_forward.cutoff` and booked in the next
  day's file; any payment of ours created after the cutoff that is missing from the day's file is
  pending, never a break, on that day. Every other fault is drawn among payments created before
  the cutoff minus the callback window, so every stream window closes inside the day. The first
  day of a run has no cross-day lines coming in; the last day's go out and stay pending.
- `duplicate_payment`: two statement lines and two SUCCEEDED callbacks with the same payment_id and
  different channel_txn_id; our record knows the first; the extra is booked and arrives later.
- `ambiguous`: two bank payments of ours, same amount, created within the rule's
  `amount_time_window_s`, neither with a channel_txn_id; one bank line without EndToEndId matching
  both. Both of ours belong to the AMBIGUOUS break; neither is MISSING_AT_CHANNEL.
- `currency_mismatch`: our record carries the wrong currency (the channel account's is right).
- `status_mismatch`: we closed the order (CLOSED) after the callback window; the channel charged it
  and its SUCCEEDED callback arrives after our CLOSED event.
- `lost_callback`: the channel charged it; no callback ever came; we are still PROCESSING.
- A payment that we close or fail before its callback window ends expects no callback (a clean
  CLOSED order sends none); a SUCCEEDED event of ours does not cancel the expectation (that is
  how `missing_at_channel` shows in the stream).
- Payment events per payment: PROCESSING when sent to the channel, then the final status
  (SUCCEEDED, FAILED, CLOSED) unless still PROCESSING at the end of the day. Callback ids are
  stable per delivery attempt of the same notification: a duplicate callback repeats its id.

events.jsonl: one JSON object per line, sorted by arrival time (ties in generation order):
    {"type": "payment_event", "at": "<ISO UTC>", "value": {<PaymentEvent fields>}}
    {"type": "channel_callback", "at": "<ISO UTC>", "value": {<ChannelCallback fields>}}
Timestamps are ISO 8601 with a `Z` suffix; amounts are integers; enums are their values.
"""
