"""Collectors: log what the analyzers need from a torch training loop (needs torch).

`Collector` hooks an optimizer and writes TensorBoard event files with our tags (`tags.py`)
and a run description (`hparams.py`); `lr_range_test` runs an LR range test and logs it as a
run. Writing is done off the training thread (`writer.py`) from a device-side buffer
(`buffer.py`), so logging every step costs no host-device synchronization.
"""

from lrdoctor.collectors.collector import Collector, CollectorWarning
from lrdoctor.collectors.range_test import RangeTestResult, lr_range_test
from lrdoctor.collectors.writer import CollectorError

__all__ = ["Collector", "CollectorError", "CollectorWarning", "RangeTestResult", "lr_range_test"]
