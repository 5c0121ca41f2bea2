"""The public entry point: `audit` a logdir (or runs) and get a `RunReport` per run.

Two passes: every run's own detectors first (`DETECTORS`), then the cross-run ones
(`CROSS_RUN_DETECTORS`, e.g. linear LR scaling against a healthy sibling), which need the
first pass's verdicts. The JSON document (`AuditResult.to_json`) is strict JSON (no NaN):

.. code-block:: text

    {"logdir": str, "lrdoctor_version": str,
     "summary": {"runs": int, "healthy": int, "lr_too_high": int, "lr_too_low": int, "inconclusive": int},
     "runs": [{"run": "<path relative to logdir, '/'-separated>", "verdict": str,
               "confidence": float, "summary": str,
               "findings": [{"code", "severity", "step", "steps", "signal", "message", "fix",
                             "evidence": {...}}, ...],      # most severe first
               "hparams": {...}, "signals": {signal: tag}, "points": int,
               "first_step": int | null, "last_step": int | null, "warnings": [str]}],
     "warnings": [str]}
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrdoctor.analyzers.detectors import (
    CROSS_RUN_DETECTORS,
    DETECTORS,
    DetectorContext,
    detect_loss_diverging,
    detect_loss_oscillating,
    detect_lr_range_test,
    detect_slow_decrease,
    detect_stuck_at_chance,
    is_range_test,
)
from lrdoctor.analyzers.findings import FINDING_CODES, Finding, Verdict, json_number
from lrdoctor.analyzers.logdir import Logdir
from lrdoctor.analyzers.run import Run
from lrdoctor.analyzers.stats import cut_run
from lrdoctor.analyzers.verdict import decide

# Whole-curve detectors: a finding's step is when a live monitor would first have seen it, found
# by re-running the detector on the run cut at CHECKPOINTS evenly spaced loss steps (a bounded
# number of prefixes, so the cost stays linear; only detectors that fired are re-run).
CHECKPOINTS = 16
PREFIX_CHECKED = (
    detect_loss_diverging,
    detect_loss_oscillating,
    detect_stuck_at_chance,
    detect_slow_decrease,
)


# Among findings of equal severity, what a reader needs first: the non-finite loss (it decides),
# what the run is (a range test explains everything else), then what the curves show, and last
# the context from hyperparameters (which only says where to look).
CONTEXT_CODES = ("lr_out_of_range", "batch_lr_scaling", "no_grad_clipping")


def _rank_in_severity(code: str) -> int:
    if code == "nan_loss":
        return 0
    if code == "lr_range_test":
        return 1
    return 3 if code in CONTEXT_CODES else 2


def _order(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Most severe first; among equals `_rank_in_severity` (curve symptoms before context), then step."""
    return tuple(
        sorted(findings, key=lambda f: (-f.severity.rank, _rank_in_severity(f.code), f.step, f.code))
    )


@dataclass(frozen=True)
class RunReport:
    """The diagnosis of one run.

    Attributes:
        run: the run's name (path relative to the logdir, '/'-separated).
        verdict: healthy / lr_too_high / lr_too_low / inconclusive.
        confidence: 0..1 (see `verdict` module for how it is scored).
        findings: most severe first.
        summary: one line saying why the verdict.
    """

    run: str
    verdict: Verdict
    confidence: float
    findings: tuple[Finding, ...] = ()
    summary: str = ""

    @property
    def top(self) -> Finding | None:
        """The most useful finding: the most severe, a curve symptom before context; or None."""
        return self.findings[0] if self.findings else None

    def codes(self) -> list[str]:
        """The finding codes, most severe first."""
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (strict JSON: no NaN)."""
        return {
            "run": self.run,
            "verdict": self.verdict.value,
            "confidence": self.confidence,
            "summary": self.summary,
            "findings": [f.to_json() for f in self.findings],
        }


def _detectable(detect, run: Run, finding: Finding) -> Finding:
    """``finding`` with ``step`` set to the first checkpoint at which ``detect`` already reports it.

    The window (``steps``) keeps the detector's own start (e.g. where a climb began) when earlier.
    """
    loss = run.signal("loss")
    if loss is None or len(loss) == 0:
        return finding
    steps = np.unique(loss.steps)
    for k in range(1, CHECKPOINTS):
        last = int(steps[min(len(steps) - 1, k * len(steps) // CHECKPOINTS)])
        if last >= finding.step and any(
            f.code == finding.code for f in detect(cut_run(run, last), DetectorContext())
        ):
            step = last
            break
    else:
        step = max(finding.step, int(steps[-1]))
    return dataclasses.replace(finding, step=step, steps=(min(finding.steps[0], step), finding.steps[1]))


def _own_findings(run: Run) -> list[Finding]:
    if is_range_test(run):
        # A range test blows the loss up on purpose: its curves are no symptom of anything.
        return detect_lr_range_test(run, DetectorContext())
    out = []
    for detect in DETECTORS:
        found = detect(run, DetectorContext())
        if detect in PREFIX_CHECKED:
            found = [_detectable(detect, run, f) for f in found]
        out.extend(found)
    return out


def _report(run: Run, findings: Sequence[Finding]) -> RunReport:
    findings = _order(findings)
    verdict, confidence, summary = decide(run, findings)
    return RunReport(run.name, verdict, confidence, findings, summary)


def _with_cross_run(run: Run, first: RunReport, ctx: DetectorContext) -> RunReport:
    """``first`` (the run's own report) with the cross-run findings added, given the peers' verdicts."""
    extra = [f for detect in CROSS_RUN_DETECTORS for f in detect(run, ctx)]
    return _report(run, list(first.findings) + extra) if extra else first


def analyze_run(run: Run, peers: Sequence[Run] = ()) -> RunReport:
    """Diagnose one run.

    Args:
        run: the run.
        peers: other runs of the same logdir, for cross-run rules (linear LR scaling); their
            own verdicts are computed here.

    Returns:
        The run's `RunReport`.

    Example:
        >>> report = analyze_run(runs["cnn_lr_too_high"], peers=list(runs.values()))
        >>> report.verdict, report.top.fix
    """
    first = _report(run, _own_findings(run))
    others = tuple(p for p in peers if p.name != run.name)
    if not others:
        return first
    verdicts = {p.name: _report(p, _own_findings(p)).verdict for p in others}
    verdicts[run.name] = first.verdict
    return _with_cross_run(run, first, DetectorContext(peers=others, peer_verdicts=verdicts))


@dataclass
class AuditResult:
    """The audit of a logdir: runs, reports, read warnings, and their renderings.

    Attributes:
        logdir: the logdir audited (absolute path; "" when runs were given directly).
        runs: name -> `Run`.
        reports: name -> `RunReport`, sorted by name.
        warnings: every read problem ("path:offset: problem"), logdir-level first.
    """

    logdir: str
    runs: dict[str, Run]
    reports: dict[str, RunReport]
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Number of runs per verdict (every verdict present, 0 when none)."""
        out = {"runs": len(self.reports)}
        for v in Verdict:
            out[v.value] = sum(r.verdict is v for r in self.reports.values())
        return out

    def to_json(self) -> dict[str, Any]:
        """The documented JSON document (see module docstring)."""
        from lrdoctor import __version__

        runs = []
        for name, rep in self.reports.items():
            run = self.runs.get(name)
            doc = rep.to_json()
            if run is not None:
                loss = run.signal("loss")
                doc.update(
                    {
                        "hparams": {k: json_number(v) for k, v in run.hparams.items()},
                        "signals": dict(run.signals),
                        "points": run.num_points,
                        "first_step": int(loss.steps[0]) if loss is not None and len(loss) else None,
                        "last_step": int(loss.steps[-1]) if loss is not None and len(loss) else None,
                        "warnings": list(run.warnings),
                    }
                )
            runs.append(doc)
        return {
            "logdir": self.logdir,
            "lrdoctor_version": __version__,
            "summary": self.summary(),
            "runs": runs,
            "warnings": list(self.warnings),
        }

    def to_table(self) -> str:
        """A plain-text table: run, verdict, confidence, step, top finding, fix."""
        from lrdoctor.analyzers.report import render_table

        return render_table(self)

    def to_markdown(self) -> str:
        """A Markdown document: summary, table, and every finding per run."""
        from lrdoctor.analyzers.report import render_markdown

        return render_markdown(self)

    @staticmethod
    def known_codes() -> list[str]:
        """Every finding code and verdict `matching` accepts."""
        return list(FINDING_CODES) + [v.value for v in Verdict]

    def unknown_codes(self, codes: Iterable[str]) -> list[str]:
        """The entries of ``codes`` that are neither a finding code nor a verdict."""
        known = set(self.known_codes())
        return [c for c in codes if c not in known]

    def matching(self, codes_or_verdicts: Iterable[str]) -> list[str]:
        """Names of runs whose verdict, or any finding's code, is in ``codes_or_verdicts``."""
        wanted = set(codes_or_verdicts)
        if not wanted:
            return []
        return [
            name
            for name, r in self.reports.items()
            if r.verdict.value in wanted or wanted.intersection(r.codes())
        ]


def audit(
    source: str | os.PathLike | Logdir | Mapping[str, Run], tag_overrides: dict[str, str] | None = None
) -> AuditResult:
    """Read a logdir (or take runs) and diagnose every run.

    Args:
        source: a logdir path, a `Logdir` (refreshed incrementally here), or ``{name: Run}``.
        tag_overrides: ``{signal: tag}`` for a path source (ignored otherwise).

    Returns:
        An `AuditResult`.

    Raises:
        LogdirError: the path does not exist or is not a directory.

    Example:
        >>> result = audit("runs/")
        >>> result.matching(["nan_loss", "lr_too_high"])
    """
    warnings: list[str] = []
    if isinstance(source, Mapping):
        runs, logdir = dict(source), ""
    else:
        ld = source if isinstance(source, Logdir) else Logdir(source, tag_overrides)
        runs = ld.refresh()
        logdir = ld.path
        warnings.extend(ld.warnings)
    names = sorted(runs)
    first = {n: _report(runs[n], _own_findings(runs[n])) for n in names}
    verdicts = {n: r.verdict for n, r in first.items()}
    reports = {}
    for n in names:
        ctx = DetectorContext(peers=tuple(runs[m] for m in names if m != n), peer_verdicts=verdicts)
        reports[n] = _with_cross_run(runs[n], first[n], ctx)
        warnings.extend(runs[n].warnings)
    return AuditResult(logdir, runs, reports, warnings)
