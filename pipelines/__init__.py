"""payrecon: payment reconciliation and fund accounting."""

import os

# Polars allocates through its own jemalloc, which it sets to keep freed pages for 0.5 s and
# then 1 s more (`dirty_decay_ms:500,muzzy_decay_ms:1000`, in polars/__init__.py) before giving
# them back. The T+1 job frees gigabytes at a time (a column once split, a file once parsed) and
# allocates as much again right after, so at ten million payments a side those kept pages were
# 0.5 GB of the peak (4.2e6 KiB with Polars' setting, 3.6e6 KiB with this one, in the same runs;
# no slower: bench/README.md). Polars appends the variable's value to its own (the last setting
# wins) when it loads, so it is set here, before any module of the project imports Polars; a
# value the user set is kept.
JEMALLOC_CONF = "dirty_decay_ms:100,muzzy_decay_ms:0"
os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_CONF)
