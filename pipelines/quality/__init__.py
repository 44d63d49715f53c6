"""The quality gate of the T+1 run: Great Expectations suites on every input and on the outputs.

`validate_statement`, `validate_internal` and `validate_outputs` return a `QualityResult` (ok,
named failures, the GX results); `write_data_docs` renders a day's results as static Data Docs.
A file that fails is quarantined whole by the caller; the failures are its named reasons.
"""

from pipelines.quality.docs import write_data_docs
from pipelines.quality.gate import (
    AMOUNT_MAJOR_MAX,
    GX_ROWS_MAX,
    INTERNAL_SCHEMA,
    Engine,
    QualityResult,
    TableResult,
    validate_internal,
    validate_outputs,
    validate_statement,
)

__all__ = [
    "AMOUNT_MAJOR_MAX",
    "GX_ROWS_MAX",
    "INTERNAL_SCHEMA",
    "Engine",
    "QualityResult",
    "TableResult",
    "validate_internal",
    "validate_outputs",
    "validate_statement",
    "write_data_docs",
]
