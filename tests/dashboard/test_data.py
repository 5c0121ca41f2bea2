"""data.py: RunStore over real event files: stable ids, cached audits, live refresh, safety of ids."""

from __future__ import annotations

import threading
import time

import dashboard_logs
import pytest

from lrdoctor.analyzers import LogdirError, audit
from lrdoctor.dashboard import data
from lrdoctor.dashboard.data import RunStore, Snapshot


@pytest.fixture
def logdir(tmp_path):
    return dashboard_logs.make_logdir(tmp_path / "logs")


class TestRefresh:
    def test_first_read_matches_the_analyzers_audit(self, logdir):
        store = RunStore(logdir)
        assert not store.snapshot().loaded
        snap = store.refresh()
        assert snap.loaded and snap.version == 1
        expected = audit(logdir)
        assert [e.name for e in snap.entries] == sorted(expected.reports)
        for e in snap.entries:
            assert e.report.verdict == expected.reports[e.name].verdict
            assert e.report.findings == expected.reports[e.name].findings
        assert [e.id for e in snap.entries] == list(range(len(snap.entries)))

    def test_first_read_of_a_big_logdir_is_shown_in_parts(self, logdir, monkeypatch):
        monkeypatch.setattr(data, "FIRST_LOAD_PART_BYTES", 1)  # one run folder per part
        parts = []

        class Recording(RunStore):
            def _publish(self, *args, **kwargs):
                snap = super()._publish(*args, **kwargs)
                parts.append((len(snap.entries), snap.pending))
                return snap

        final = Recording(logdir).refresh()
        n = len(final.entries)
        assert n >= 3
        # Every part is published with one more run and one folder fewer to go, then the full audit.
        assert parts == [(k, n - k) for k in range(1, n)] + [(n, 0)]
        assert final.audit.reports.keys() == audit(logdir).reports.keys()

    def test_corrupt_file_is_listed_not_fatal(self, logdir):
        snap = RunStore(logdir).refresh()
        assert any("broken" in w for w in snap.warnings)
        assert snap.entry(0).name == "broken"

    def test_unchanged_logdir_keeps_snapshot_and_reports(self, logdir):
        store = RunStore(logdir)
        first = store.refresh()
        second = store.refresh()
        assert second.version == first.version
        assert all(a.report is b.report for a, b in zip(first.entries, second.entries, strict=True))
        assert second.refreshed_at >= first.refreshed_at

    def test_new_run_gets_next_id_and_old_ids_stay(self, logdir):
        store = RunStore(logdir)
        before = {e.name: e.id for e in store.refresh().entries}
        dashboard_logs.write_run(logdir, "aaa_new", *dashboard_logs.healthy(50)[:1])
        snap = store.refresh()
        after = {e.name: e.id for e in snap.entries}
        assert snap.version == 2
        assert after["aaa_new"] == len(before)
        assert all(after[n] == i for n, i in before.items())

    def test_growing_run_is_analyzed_again(self, logdir):
        store = RunStore(logdir)
        old = store.refresh().entry(2)
        assert old.name == "healthy" and "nan_loss" not in [f.code for f in old.report.findings]
        dashboard_logs.write_run(logdir, "healthy", [float("nan")] * 5, start=400)
        new = store.refresh().entry(2)
        assert new.run is not old.run
        assert "nan_loss" in [f.code for f in new.report.findings]


class TestRefreshIfDue:
    def test_throttled_by_refresh_s(self, logdir):
        store = RunStore(logdir, refresh_s=60)
        snap = store.refresh_if_due()
        assert snap.loaded
        dashboard_logs.write_run(logdir, "zzz_late", [1.0, 0.9])
        assert store.refresh_if_due() is snap  # not due yet
        assert "zzz_late" in [e.name for e in store.refresh_if_due(now=time.time() + 61).entries]

    def test_never_waits_for_a_running_refresh(self, logdir):
        store = RunStore(logdir)
        store._refresh_lock.acquire()  # stands for a first load in progress in another thread
        try:
            t0 = time.perf_counter()
            snap = store.refresh_if_due()
            assert time.perf_counter() - t0 < 0.5
            assert not snap.loaded
        finally:
            store._refresh_lock.release()


def test_load_in_background_and_wait(logdir):
    store = RunStore(logdir)
    done = threading.Event()
    seen: list = []
    store.load_in_background(lambda snap, err: (seen.append((snap, err)), done.set()))
    snap = store.wait_loaded(timeout_s=60)
    assert done.wait(60)
    assert snap.loaded and seen[0][0] is snap and seen[0][1] is None


def test_is_live(logdir):
    store = RunStore(logdir, refresh_s=1)
    snap = store.refresh()
    e = snap.entries[0]
    assert store.live_window_s == 150.0  # SummaryWriter flushes every 120 s
    assert store.is_live(e, now=e.run.last_write + 10)
    assert not store.is_live(e, now=e.run.last_write + 151)
    assert RunStore(logdir, refresh_s=100).live_window_s == 300.0


@pytest.mark.parametrize(
    "bad",
    [
        "..",
        "../",
        "../etc/passwd",
        "/etc/passwd",
        "%2e%2e%2f",
        "..%2f..%2fetc%2fpasswd",
        "0/../1",
        "-1",
        "1.0",
        "1e3",
        "0x1",
        "\u0661",
        "",
        "9999999999",
        None,
        True,
        1.0,
        [0],
        {"id": 0},
    ],
)
def test_only_ids_address_runs(logdir, bad):
    snap = RunStore(logdir).refresh()
    assert snap.entry(bad) is None
    assert snap.entries_by_ids([bad, "1", 1]) == [snap.entry(1)]


def test_errors(tmp_path):
    with pytest.raises(LogdirError, match="no such logdir"):
        RunStore(tmp_path / "missing")
    with pytest.raises(ValueError, match="refresh_s"):
        RunStore(tmp_path, refresh_s=0)


def test_empty_logdir(tmp_path):
    snap = RunStore(tmp_path).refresh()
    assert snap.loaded and snap.entries == () and isinstance(snap, Snapshot)
    assert RunStore(tmp_path).audit_result().reports == {}
