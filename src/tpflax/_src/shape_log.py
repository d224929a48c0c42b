"""Tensorpack's shape log: each named layer's input and output shapes, once per layer name.

The format is tensorpack's (``'conv0': [8, 28, 28, 1] --> [8, 28, 28, 32]``; a layer that
calls other logged layers prints ``input:`` / ``output:`` lines around them, indented). Records
go to the ``tpflax`` logger at INFO level. As tensorpack's logger does, it prints them itself,
to stderr (``[tpflax] ...``), and does not pass them on to the root logger (whose handlers
other libraries install as they like). Silence it with
``logging.getLogger('tpflax').setLevel(logging.WARNING)``; send its records to your own logging
instead with ``logger.handlers.clear(); logger.propagate = True``.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

log = logging.getLogger("tpflax")


class DefaultHandler(logging.Handler):
    """Prints ``tpflax`` records to the current ``sys.stderr``, one write per record."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("[tpflax] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


if not any(isinstance(h, DefaultHandler) for h in log.handlers):
    log.addHandler(DefaultHandler())
    log.propagate = False
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


class ShapeLogger:
    """Logs a layer's shapes the first time its scope name is seen.

    One instance belongs to one transformed model (so each model logs its own layers once);
    it is not shared between models. Threads running the same model share which layers are
    logged (each is claimed once, under a lock) but each has its own nesting, so every line
    is whole and every layer logged once.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled  # False: nothing is ever "the first time" (silent)
        self.logged: set[str] = set()
        self._lock = threading.Lock()
        self._local = threading.local()

    def _nest(self) -> Any:
        """This thread's nesting: ``.stack`` of pending input lines and ``.depth``."""
        nest = self._local
        if not hasattr(nest, "stack"):
            nest.stack, nest.depth = [], 0
        return nest

    def begin(self) -> None:
        """Forgets a half-finished nesting left by a call that raised (this thread's)."""
        nest = self._nest()
        nest.stack.clear()
        nest.depth = 0

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is asked about in this model, then False (claimed
        under a lock): a layer's shape line, and other once-per-model log lines
        (``regularize_cost``, argscope-enabled functions)."""
        if not self.enabled:
            return False
        with self._lock:
            if key in self.logged:
                return False
            self.logged.add(key)
            return True

    def push_inputs(self, name: str, message: str) -> None:
        nest = self._nest()
        while nest.stack:
            outer, outer_msg = nest.stack.pop()
            log.info("%s'%s' input: %s", "  " * nest.depth, outer, outer_msg)
            nest.depth += 1
        nest.stack.append((name, message))

    def push_outputs(self, name: str, message: str) -> None:
        nest = self._nest()
        if nest.stack:
            _, in_msg = nest.stack.pop()
            log.info("%s'%s': %s --> %s", "  " * nest.depth, name, in_msg, message)
        else:
            nest.depth -= 1
            log.info("%s'%s' output: %s", "  " * nest.depth, name, message)
