"""Other libraries' log messages that read as failures in a good run, dropped while they run.

Each caller names the logger and how the messages it drops begin, and says why they are noise
where it does; every other message still shows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping


class _Dropped(logging.Filter):
    """Drops the records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


@contextlib.contextmanager
def dropped(messages: Mapping[str, tuple[str, ...]]) -> Iterator[None]:
    """Within the block, each logger (``""``: the root) drops its messages that start with one
    of the given prefixes; the filters are gone afterwards."""
    filters = [(logging.getLogger(name), _Dropped(prefixes)) for name, prefixes in messages.items()]
    for logger, noise in filters:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger, noise in filters:
            logger.removeFilter(noise)
