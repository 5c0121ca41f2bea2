"""Flush open collectors on SIGTERM/SIGINT, then hand the signal to whoever handled it before.

Handlers are installed once, from the main thread only (Python allows no other), when the first
collector opens, and put back when the last one closes unless someone replaced ours since. On a
signal every open collector writes what it holds and waits for its writer; then the previous
handler runs: a Python handler is called (SIGINT's default raises KeyboardInterrupt, so the
training loop's ``with`` block still closes the run), the default action is re-raised with the
default handler in place, an ignored signal stays ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_open: list[Any] = []  # objects with a flush_for_signal() method
_previous: dict[int, Any] = {}


def register(collector: Any) -> None:
    """Flush ``collector`` (its ``flush_for_signal()``) on SIGTERM/SIGINT until `unregister`."""
    _open.append(collector)
    if _previous or threading.current_thread() is not threading.main_thread():
        return
    for sig in SIGNALS:
        try:
            _previous[sig] = signal.signal(sig, _handle)
        except (ValueError, OSError):  # not the main interpreter, or an exotic platform
            _previous.pop(sig, None)


def unregister(collector: Any) -> None:
    """Stop flushing ``collector`` on signals; restore the old handlers after the last one."""
    if collector in _open:
        _open.remove(collector)
    if _open or not _previous or threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_previous.items()):
        if signal.getsignal(sig) is _handle:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        del _previous[sig]


def _handle(signum: int, frame: Any) -> None:
    for collector in list(_open):
        collector.flush_for_signal()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous is None or previous == signal.SIG_DFL:
        # Default action (terminate): put it back and deliver the signal again.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def installed() -> dict[int, Callable | int | None]:
    """The handlers ours replaced, by signal (empty when ours are not installed)."""
    return dict(_previous)
