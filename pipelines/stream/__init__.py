"""The near-real-time stream matcher (Faust on Kafka): payment events against channel callbacks.

- `matcher`: the decisions (pure; state per payment in, break and task records out).
- `app`: the Faust app: topics, the pending-state table, the agent, the dead-letter topic.
- `replay`: publishes a simulated day's `stream/events.jsonl` to Kafka, then watermark ticks.
- `collect`: reads the break and task topics back, last record per id, into CSV.
- `demo`: one call for `payrecon demo`: worker, replay, wait, collect, stop.
- `cli`: `payrecon stream worker|replay|collect|run-day`.

Stream breaks are PROVISIONAL: the T+1 run of the same business day confirms or closes them under
the same `break_id` (`pipelines.records.break_id`).
"""
