"""Everything that touches the outside world: statement parsers, Kafka, the payment core, the warehouse."""

# The project's allocator setting for Polars (`pipelines/__init__.py`) has to be in the
# environment before Polars loads, and a program may import this package first (the bench's
# child process did: its peak at 10M payments was 4.06e6 KiB instead of 3.6e6).
import pipelines  # noqa: F401
