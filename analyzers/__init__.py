"""Read TensorBoard logdirs and diagnose each run's learning rate. Never imports torch."""

from lrdoctor.analyzers.audit import AuditResult, RunReport, analyze_run, audit
from lrdoctor.analyzers.detectors import is_range_test
from lrdoctor.analyzers.findings import FINDING_CODES, Finding, Severity, Verdict
from lrdoctor.analyzers.logdir import Logdir, LogdirError, read_logdir
from lrdoctor.analyzers.run import SIGNALS, Run, Series

__all__ = [
    "FINDING_CODES",
    "SIGNALS",
    "AuditResult",
    "Finding",
    "Logdir",
    "LogdirError",
    "Run",
    "RunReport",
    "Series",
    "Severity",
    "Verdict",
    "analyze_run",
    "audit",
    "is_range_test",
    "read_logdir",
]
