"""T+1 reconciliation: load a business day's files, match them against our records, carry forward,
persist breaks into the warehouse and write the day's outputs.

Stages, one module each: `load` (internal extract and channel files to typed frames), `engine` (the
DuckDB matching of one channel, compiled from its rule), `persist` (warehouse state: breaks with
history, pending set, outbox), `day` (the day job that ties them together; the CLI and the Airflow
DAG both call it).
"""
