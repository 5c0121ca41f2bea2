"""Read TensorBoard logdirs and diagnose each run's learning rate. Never imports torch."""

from lrdoctor.analyzers.logdir import Logdir, LogdirError, read_logdir
from lrdoctor.analyzers.run import SIGNALS, Run, Series

__all__ = ["SIGNALS", "Logdir", "LogdirError", "Run", "Series", "read_logdir"]
