"""Collectors: log what the analyzers need from a torch training loop (needs torch).

Example::

    from lrdoctor.collectors import Collector, lr_range_test

    with Collector("runs/exp1", model=model, optimizer=optimizer, batch_size=64) as col:
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            loss = loss_fn(out, y)
            loss.backward()
            col.clip_grad_norm_(1.0)   # optional: clip and record the setting
            optimizer.step()
            col.step(loss, accuracy=(out.argmax(1) == y).float().mean())
        col.log(val_loss=val_loss)     # at the last step, not a step of its own

    result = lr_range_test(model, optimizer, loss_fn, loader, logdir="runs/range_test")
    result.suggested_lr

Modules: `collector.py` (`Collector`: hooks, `step`, context manager), `buffer.py` (per-step
values kept on the device; the one host copy per flush), `writer.py` (event files written by a
background thread), `hparams.py` (the run description), `tags.py` (our tag names, the file
contract with `lrdoctor.analyzers`), `range_test.py` (`lr_range_test`), `shutdown.py`
(SIGTERM/SIGINT).
"""

from lrdoctor.collectors.collector import Collector, CollectorWarning
from lrdoctor.collectors.range_test import RangeTestResult, lr_range_test
from lrdoctor.collectors.writer import CollectorError

__all__ = ["Collector", "CollectorError", "CollectorWarning", "RangeTestResult", "lr_range_test"]
