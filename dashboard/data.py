"""RunStore: the dashboard's one door to the analyzers (incremental reads, cached audits).

Every view reads an immutable `Snapshot` of the logdir: each run with its stable integer id
and its report. A refresh reads only bytes appended since the last one (`Logdir.refresh`);
the reader returns the *same* `Run` object for a run whose files did not change, so when no
run changed the previous audit is kept as is. When any run changed (new, grown, gone), the
runs are audited again with `audit` (its two passes need every run's verdict for the
cross-run batch-size/LR scaling check); should that fail, each run is analyzed alone so one
odd run cannot take the dashboard down.

Thread safety: refreshes are serialized by a lock; a snapshot is replaced in one assignment,
so callbacks running in other threads always see a consistent one.

Safety: views address runs only by the ids handed out here (`Snapshot.entry`), never by path,
so nothing a browser sends can make the server read outside the logdir.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lrdoctor.analyzers import AuditResult, Logdir, Run, RunReport, analyze_run, audit

_ID_RE = re.compile(r"[0-9]{1,9}")

# The first read of a big logdir is published in parts of about this many bytes, so the
# overview fills in within seconds instead of after the whole read.
FIRST_LOAD_PART_BYTES = 64 << 20

# torch's SummaryWriter flushes every 120 s by default, so a run still being written may not
# touch its file for that long: it stays "live" at least this long after its last write.
MIN_LIVE_WINDOW_S = 150.0


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run as the views see it.

    Attributes:
        id: stable integer id within this store (never reused; the URL form of a run).
        run: the run, at full resolution.
        report: its analysis, or None if the analyzers failed on it (see ``error``).
        error: one line saying why there is no report ("" when there is one).
    """

    id: int
    run: Run
    report: RunReport | None
    error: str = ""

    @property
    def name(self) -> str:
        """The run's name (path relative to the logdir)."""
        return self.run.name


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the logdir at one refresh.

    Attributes:
        version: increases by one at every refresh that changed something.
        entries: every run, sorted by name.
        warnings: every read problem ("path:offset: problem"), logdir-level ones first.
        loaded: False until the first part of the first read finished.
        pending: run folders the first read has not reached yet (0 once it is complete).
        refreshed_at: when the last refresh finished, seconds since the epoch (0 before).
        read_s: how long the last refresh took in all (reading and auditing), seconds.
        audit_s: how much of that the audit took, seconds (0 when nothing changed).
        audit: the analyzers' `AuditResult` these entries come from (None before the first read).
    """

    version: int = 0
    entries: tuple[RunEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    loaded: bool = False
    pending: int = 0
    refreshed_at: float = 0.0
    read_s: float = 0.0
    audit_s: float = 0.0
    audit: AuditResult | None = field(default=None, repr=False)
    _by_id: dict[int, RunEntry] = field(default_factory=dict, repr=False)

    def entry(self, run_id: object) -> RunEntry | None:
        """The run with id ``run_id`` (an int or a string of digits), or None.

        Anything else (``..``, a path, an encoded path, a huge number) is simply not an id.
        """
        if isinstance(run_id, bool):
            return None
        if isinstance(run_id, int):
            return self._by_id.get(run_id)
        if isinstance(run_id, str) and _ID_RE.fullmatch(run_id.strip()):
            return self._by_id.get(int(run_id.strip()))
        return None

    def entries_by_ids(self, run_ids: list[object]) -> list[RunEntry]:
        """The runs for ``run_ids`` that exist, in the given order, without repeats."""
        out: list[RunEntry] = []
        for rid in run_ids:
            e = self.entry(rid)
            if e is not None and e not in out:
                out.append(e)
        return out

    @property
    def num_points(self) -> int:
        """Scalar points held over all runs."""
        return sum(e.run.num_points for e in self.entries)


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What a quick walk of the logdir found, before reading: for progress messages."""

    files: int
    bytes: int


class RunStore:
    """Runs of one logdir with their reports, refreshed incrementally, shared by all callbacks.

    Args:
        logdir: the TensorBoard logdir.
        tag_overrides: ``{signal: tag}`` choices passed to the reader.
        refresh_s: minimum seconds between two refreshes triggered by `refresh_if_due`.

    Raises:
        LogdirError: if ``logdir`` does not exist or is not a directory.

    Example:
        >>> store = RunStore("sample_runs")
        >>> snap = store.refresh()
        >>> [(e.id, e.name, e.report.verdict.value) for e in snap.entries]
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        tag_overrides: dict[str, str] | None = None,
        refresh_s: float = 10.0,
    ) -> None:
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be > 0 seconds, got {refresh_s}")
        self._logdir = Logdir(logdir, tag_overrides=tag_overrides)
        self.path = self._logdir.path
        self.refresh_s = float(refresh_s)
        self._refresh_lock = threading.Lock()
        self._snapshot = Snapshot()
        self._ids: dict[str, int] = {}
        self._loader: threading.Thread | None = None

    @property
    def live_window_s(self) -> float:
        """A run written to within this many seconds is shown as live."""
        return max(3 * self.refresh_s, MIN_LIVE_WINDOW_S)

    def snapshot(self) -> Snapshot:
        """The latest snapshot (never blocks)."""
        return self._snapshot

    def is_live(self, entry: RunEntry, now: float | None = None) -> bool:
        """True if the run's files were written within `live_window_s` of ``now``."""
        now = time.time() if now is None else now
        return entry.run.last_write > 0 and now - entry.run.last_write <= self.live_window_s

    def scan(self) -> ScanSummary:
        """Count event files and their bytes under the logdir (a quick walk, no reading)."""
        files = size = 0
        for dirpath, _dirs, names in os.walk(self.path):
            for n in names:
                if "tfevents" in n:
                    files += 1
                    try:
                        size += os.path.getsize(os.path.join(dirpath, n))
                    except OSError:
                        pass
        return ScanSummary(files, size)

    def refresh(self) -> Snapshot:
        """Read what changed on disk, analyze new or grown runs, publish a new snapshot.

        Returns:
            The new snapshot (the same object if nothing changed).
        """
        with self._refresh_lock:
            return self._refresh_locked()

    def refresh_if_due(self, now: float | None = None) -> Snapshot:
        """Refresh if `refresh_s` passed since the last one and no refresh is running.

        Never waits: while another thread refreshes (e.g. the first load), returns the
        current snapshot at once.
        """
        now = time.time() if now is None else now
        snap = self._snapshot
        if snap.loaded and now - snap.refreshed_at < self.refresh_s:
            return snap
        if not self._refresh_lock.acquire(blocking=False):
            return self._snapshot
        try:
            return self._refresh_locked()
        finally:
            self._refresh_lock.release()

    def load_in_background(
        self, on_done: Callable[[Snapshot | None, BaseException | None], None] | None = None
    ) -> threading.Thread:
        """Start the first read in a daemon thread (the app serves a loading page meanwhile).

        Args:
            on_done: called in that thread with (snapshot, None) or (None, exception); by
                default a failure is printed as one line on stderr.

        Returns:
            The thread (already started).
        """

        def load() -> None:
            try:
                snap = self.refresh()
            except Exception as e:  # the page keeps its loading state; say why, in one line
                if on_done is None:
                    print(
                        f"lrdoctor: error: reading {self.path} failed ({type(e).__name__}: {e})",
                        file=sys.stderr,
                    )
                else:
                    on_done(None, e)
                return
            if on_done is not None:
                on_done(snap, None)

        self._loader = threading.Thread(target=load, name="lrdoctor-load", daemon=True)
        self._loader.start()
        return self._loader

    def wait_loaded(self, timeout_s: float | None = None) -> Snapshot:
        """Block until the first read finished (starting it here if nobody did)."""
        if self._loader is None and not self._snapshot.loaded:
            return self.refresh()
        if self._loader is not None:
            self._loader.join(timeout_s)
        return self._snapshot

    def audit_result(self) -> AuditResult:
        """The analyzers' `AuditResult` over the current runs (for the Markdown export)."""
        snap = self._snapshot if self._snapshot.loaded else self.refresh()
        assert snap.audit is not None
        return snap.audit

    def _refresh_locked(self) -> Snapshot:
        t0 = time.perf_counter()
        if self._snapshot.loaded and not self._snapshot.pending:
            runs = self._logdir.refresh()
        else:  # first read: show each part as it arrives, audit the whole at the end
            runs = self._logdir.refresh(budget_bytes=FIRST_LOAD_PART_BYTES)
            while self._logdir.pending:
                self._publish_part(runs, t0)
                runs = self._logdir.refresh(budget_bytes=FIRST_LOAD_PART_BYTES)
        old = self._snapshot
        same = (
            old.audit is not None
            and not old.pending
            and runs.keys() == old.audit.runs.keys()
            and all(run is old.audit.runs[name] for name, run in runs.items())
        )
        warnings = self._warnings(runs)
        if same and warnings == list(old.warnings):
            self._snapshot = dataclasses.replace(
                old, refreshed_at=time.time(), read_s=time.perf_counter() - t0, audit_s=0.0
            )
            return self._snapshot
        t_audit = time.perf_counter()
        result, errors = _audit(runs)
        audit_s = time.perf_counter() - t_audit
        result = dataclasses.replace(result, logdir=self.path, warnings=warnings)
        return self._publish(runs, result, errors, t0, audit_s)

    def _warnings(self, runs: dict[str, Run]) -> list[str]:
        return list(self._logdir.warnings) + [w for run in runs.values() for w in run.warnings]

    def _publish_part(self, runs: dict[str, Run], t0: float) -> None:
        """Publish the runs read so far, each analyzed alone (the cross-run check waits for all)."""
        reports, errors = _analyze_each(runs, previous=self._snapshot.audit)
        result = AuditResult(self.path, dict(runs), reports, self._warnings(runs))
        self._publish(runs, result, errors, t0, 0.0, pending=self._logdir.pending)

    def _publish(
        self,
        runs: dict[str, Run],
        result: AuditResult,
        errors: dict[str, str],
        t0: float,
        audit_s: float,
        pending: int = 0,
    ) -> Snapshot:
        entries = []
        for name, run in runs.items():
            if name not in self._ids:
                self._ids[name] = len(self._ids)
            entries.append(RunEntry(self._ids[name], run, result.reports.get(name), errors.get(name, "")))
        self._snapshot = Snapshot(
            version=self._snapshot.version + 1,
            entries=tuple(entries),
            warnings=tuple(result.warnings),
            loaded=True,
            pending=pending,
            refreshed_at=time.time(),
            read_s=time.perf_counter() - t0,
            audit_s=audit_s,
            audit=result,
            _by_id={e.id: e for e in entries},
        )
        return self._snapshot


def _analyze_each(
    runs: dict[str, Run], previous: AuditResult | None = None
) -> tuple[dict[str, RunReport], dict[str, str]]:
    """Analyze each run alone (no cross-run check), reusing ``previous`` reports of unchanged runs.

    Returns:
        ({run name: report}, {run name: one-line error} for runs the analyzers failed on).
    """
    reports, errors = {}, {}
    for name, run in runs.items():
        if previous is not None and previous.runs.get(name) is run and name in previous.reports:
            reports[name] = previous.reports[name]
            continue
        try:
            reports[name] = analyze_run(run)
        except Exception as e:  # a detector bug on one odd run must not take the whole dashboard down
            errors[name] = f"{name}: analysis failed ({type(e).__name__}: {e})"
    return reports, errors


def _audit(runs: dict[str, Run]) -> tuple[AuditResult, dict[str, str]]:
    """Audit all runs; if that fails, analyze each alone (no cross-run check), noting failures.

    Returns:
        (the audit, {run name: one-line error} for runs that could not be analyzed).
    """
    try:
        return audit(runs), {}
    except Exception:  # a detector bug on one odd run must not take the whole dashboard down
        pass
    reports, errors = _analyze_each(runs)
    return AuditResult("", dict(runs), reports, []), errors
