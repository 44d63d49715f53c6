"""Intake of statement files: the same file twice is refused (`duplicate_file`), by its sha256.

A channel that re-sends yesterday's file, or an operator who drops the same file in twice, must
not double the day's money. The T+1 engine takes each file through `Intake.admit`, which refuses a
file whose bytes were seen before, parses it (refusing it whole on any defect), and only then
records its sha256: a refused file is never marked seen, so a corrected resend is taken.

The store of seen digests is pluggable: an in-memory set (tests, one process), or any callable
`claim(sha256, path) -> prior_path | None` that records the digest and answers with the path the
digest was first taken from, atomically (e.g. an INSERT ... ON CONFLICT in the warehouse).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, MutableMapping
from datetime import date
from pathlib import Path

from connectors.statements import ParsedFile, StatementError, file_sha256, get_format

# Answers the path a digest was first taken from, or None when it is new (and then records it).
Claim = Callable[[str, str], "str | None"]


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of bytes already in memory (the same digest `file_sha256` gives the file)."""
    return hashlib.sha256(data).hexdigest()


class MemorySeen:
    """An in-process store of seen digests: sha256 -> the path it was first taken from."""

    def __init__(self) -> None:
        self.paths: MutableMapping[str, str] = {}

    def __call__(self, sha256: str, path: str) -> str | None:
        prior = self.paths.get(sha256)
        if prior is None:
            self.paths[sha256] = path
        return prior


class Intake:
    """Admit statement files at most once by content. `store` is a `Claim` callable or a set of
    digests (a plain set cannot say where a digest came from; the message then says so)."""

    def __init__(self, store: Claim | set[str] | None = None) -> None:
        if store is None:
            store = MemorySeen()
        if isinstance(store, set):
            seen = store

            def claim(sha256: str, path: str) -> str | None:
                if sha256 in seen:
                    return "an earlier file"
                seen.add(sha256)
                return None

            self._claim: Claim = claim
            self._peek: Callable[[str], bool] = seen.__contains__
        else:
            self._claim = store
            self._peek = lambda sha: False
        self._pending: set[str] = set()

    def check(self, path: Path, sha256: str | None = None) -> str:
        """Refuse `path` when its bytes were taken before (`duplicate_file`); return its sha256."""
        sha = sha256 or file_sha256(path)
        if self._peek(sha) or sha in self._pending:
            raise StatementError(path, 0, "duplicate_file", f"sha256 {sha[:16]}... was already taken in")
        return sha

    def admit(self, path: Path, *, format: str, channel: str, business_date: date | None = None) -> ParsedFile:
        """Parse `path` with `format` and record it as taken; refuse a duplicate or a bad file whole.

        Returns the ParsedFile (LINE_SCHEMA frame). Raises StatementError with reason
        `duplicate_file` (nothing parsed), or the parser's reason (nothing recorded).
        """
        path = Path(path)
        sha = self.check(path)
        parsed = get_format(format).parse(path, channel=channel, business_date=business_date)
        assert parsed.sha256 == sha, "the parser read other bytes than the intake hashed"
        prior = self._claim(sha, str(path))
        if prior is not None:
            # Lost a race with another worker, or a store that only answers on claim.
            raise StatementError(path, 0, "duplicate_file", f"sha256 {sha[:16]}... was already taken in from {prior}")
        return parsed
