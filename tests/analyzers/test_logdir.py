"""Logdir: discovery, folding, restart merge, incremental refresh, bad files (real event files)."""

import os
import re
from pathlib import Path

import eventfiles
import numpy as np
import pytest

from lrdoctor.analyzers import Logdir, LogdirError, logdir, read_logdir

# Reading /proc/self/io itself counts (~120 bytes); event files here are tens of kB.
PROC_IO_SELF_BYTES = 512


def _bytes_read() -> int:
    """Bytes this process has read with read(2) so far (Linux ``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


needs_proc_io = pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")


class TestErrors:
    def test_missing_logdir(self, tmp_path):
        with pytest.raises(LogdirError, match="no such logdir"):
            Logdir(tmp_path / "nope")

    def test_file_is_not_a_logdir(self, tmp_path):
        (tmp_path / "f").write_text("x")
        with pytest.raises(LogdirError, match="not a directory"):
            read_logdir(tmp_path / "f")

    def test_empty_logdir_has_no_runs(self, tmp_path):
        assert read_logdir(tmp_path) == {}


class TestBadFiles:
    def test_zero_byte_file_is_warned_and_the_rest_loads(self, tmp_path):
        run = tmp_path / "run"
        eventfiles.torch_scalars(run, eventfiles.series_points([1.0, 2.0]), suffix=".a")
        empty = run / "events.out.tfevents.1.empty"
        empty.write_bytes(b"")
        (r,) = read_logdir(tmp_path).values()
        assert r.warnings == (f"{empty}:0: empty event file (0 bytes)",)
        assert r.signal("loss").values.tolist() == [1.0, 2.0]

    def test_garbage_with_event_file_name(self, tmp_path):
        eventfiles.torch_scalars(tmp_path / "good", eventfiles.series_points([1.0]))
        bad = tmp_path / "bad" / "events.out.tfevents.123.host"
        bad.parent.mkdir()
        bad.write_bytes(b"this is not a TFRecord file at all" * 100)
        runs = read_logdir(tmp_path)
        assert runs["bad"].warnings == (
            f"{bad}:0: bad length checksum (not an event file, or corrupt); skipped the remaining 3400 bytes",
        )
        assert runs["bad"].scalars == {}
        assert runs["good"].warnings == () and len(runs["good"].signal("loss")) == 1

    def test_corrupted_checksum_loses_exactly_one_point(self, tmp_path):
        path = eventfiles.torch_scalars(tmp_path, eventfiles.series_points(np.arange(100.0)))
        head, length = eventfiles.record_offsets(path)[31]  # record 0 is the file version
        eventfiles.flip_bit(path, head + 12 + length - 2)
        (r,) = read_logdir(tmp_path).values()
        assert r.warnings == (f"{path}:{head}: bad checksum; skipped this {length}-byte record",)
        assert r.signal("loss").steps.tolist() == [s for s in range(100) if s != 30]

    def test_flipped_length_bit_loses_at_most_that_record(self, tmp_path):
        path = eventfiles.torch_scalars(tmp_path, eventfiles.series_points(np.arange(1000.0)))
        size = path.stat().st_size
        head, _ = next((h, n) for h, n in eventfiles.record_offsets(path) if h >= size // 10)
        eventfiles.flip_bit(path, head + 1, 2)
        (r,) = read_logdir(tmp_path).values()
        assert len(r.warnings) == 1 and r.warnings[0].startswith(f"{path}:{head}: bad length checksum")
        assert len(r.signal("loss")) == 999

    def test_vanished_file_is_warned(self, tmp_path):
        path = eventfiles.torch_scalars(tmp_path / "run", eventfiles.series_points([1.0]))
        ld = Logdir(tmp_path)
        ld.refresh()
        path.unlink()
        (r,) = ld.refresh().values()
        assert r.warnings == (f"{path}:0: cannot stat (No such file or directory)",)

    def test_file_that_cannot_be_opened_is_warned(self, tmp_path):
        """An OS error on open, even for root: the event file was replaced by a folder."""
        path = eventfiles.torch_scalars(tmp_path / "run", eventfiles.series_points([1.0]))
        ld = Logdir(tmp_path)
        ld.refresh()
        path.unlink()
        path.mkdir()
        (path / "filler").write_bytes(b"x")
        (r,) = ld.refresh().values()
        assert len(r.warnings) == 1
        assert re.fullmatch(rf"{re.escape(str(path))}:\d+: cannot read \(Is a directory\)", r.warnings[0])

    def test_unreadable_file_is_warned(self, tmp_path):
        path = eventfiles.torch_scalars(tmp_path / "run", eventfiles.series_points([1.0]))
        path.chmod(0)
        try:
            if os.access(path, os.R_OK):
                pytest.skip("running as root: chmod 000 does not stop this process reading")
            (r,) = read_logdir(tmp_path).values()
            assert r.warnings == (f"{path}:0: cannot read (Permission denied)",)
        finally:
            path.chmod(0o644)


class TestMerge:
    def test_restart_with_overlapping_steps_later_file_wins(self, tmp_path):
        eventfiles.torch_scalars(tmp_path, eventfiles.series_points([1.0] * 10), suffix=".1")
        eventfiles.torch_scalars(tmp_path, eventfiles.series_points([2.0] * 10, start=5), suffix=".2")
        (r,) = read_logdir(tmp_path).values()
        loss = r.signal("loss")
        assert loss.steps.tolist() == list(range(15))
        assert loss.values.tolist() == [1.0] * 5 + [2.0] * 10
        assert len(r.files) == 2

    @pytest.mark.parametrize(
        ("chunks", "steps", "values"),
        [
            ([[0, 1, 2]], [0, 1, 2], [0, 0, 0]),
            ([[0, 1, 2], [3, 4]], [0, 1, 2, 3, 4], [0, 0, 0, 1, 1]),  # a continuation
            ([[0, 1, 2, 3], [2, 3]], [0, 1, 2, 3], [0, 0, 1, 1]),  # restart at 2
            ([[0, 1, 1, 2]], [0, 1, 1, 2], [0, 0, 0, 0]),  # repeated step kept within a segment
            ([[0, 1, 2, 0, 1]], [0, 1], [0, 0]),  # restart inside one file (purge)
            ([[5, 6], [0, 1], [1, 2]], [0, 1, 2], [1, 2, 2]),
        ],
    )
    def test_merge_segments(self, chunks, steps, values):
        arrays = [
            (np.array(c, dtype=np.int64), np.full(len(c), float(i)), np.zeros(len(c)))
            for i, c in enumerate(chunks)
        ]
        # the last case's in-file restart: values mark which file each point came from
        s, v, _ = logdir.merge_segments(arrays)
        assert s.tolist() == steps and v.tolist() == values

    def test_file_order_is_natural(self):
        names = [
            "events.out.tfevents.100.h.1.10",
            "events.out.tfevents.100.h.1.2",
            "events.out.tfevents.99.h.1.0",
        ]
        assert sorted(names, key=logdir.file_order_key) == [names[2], names[1], names[0]]

    def test_hparams_subrun_folds_into_parent(self, tmp_path):
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(tmp_path / "exp")) as w:
            for step in range(5):
                w.add_scalar("Loss/train", 1.0 / (step + 1), step)
                w.add_scalar("lr-Adam", 1e-3, step)
            w.add_hparams({"lr": 1e-3, "batch_size": 64, "optim": "Adam"}, {"hp/final_loss": 0.2})
        runs = read_logdir(tmp_path)
        assert list(runs) == ["exp"]
        r = runs["exp"]
        assert r.hparams["lr"] == 1e-3 and r.hparams["batch_size"] == 64 and r.hparams["optimizer"] == "Adam"
        assert r.signals["loss"] == "Loss/train" and r.signals["lr"] == "lr-Adam"
        assert r.scalars["hp/final_loss"].values.tolist() == [pytest.approx(0.2)]

    def test_keras_train_validation_fold(self, tmp_path):
        fit = tmp_path / "fit" / "20240101-000000"
        eventfiles.tf2_scalars(fit / "train", eventfiles.series_points([3.0, 2.0], "epoch_loss"))
        eventfiles.tf2_scalars(fit / "validation", eventfiles.series_points([3.5, 2.5], "epoch_loss"))
        (r,) = read_logdir(tmp_path).values()
        assert r.name == "fit/20240101-000000"
        assert r.signal("loss").values.tolist() == [3.0, 2.0]
        assert r.signal("val_loss").values.tolist() == [3.5, 2.5]

    def test_user_tag_override(self, tmp_path):
        eventfiles.torch_scalars(tmp_path, [("loss", 0, 1.0), ("my/custom_loss", 0, float("nan"))])
        (r,) = read_logdir(tmp_path, {"loss": "my/custom_loss"}).values()
        assert r.signal("loss").tag == "my/custom_loss" and np.isnan(r.signal("loss").values[0])
        assert r.scalars["loss"].values.tolist() == [1.0]  # unmapped tags stay by their name

    def test_optimizer_inferred_from_lightning_tag(self, tmp_path):
        eventfiles.torch_scalars(tmp_path, [("lr-SGD", 0, 0.1), ("train_loss_step", 0, 2.0)])
        (r,) = read_logdir(tmp_path).values()
        assert r.hparams["optimizer"] == "SGD"

    def test_run_info_fills_hparams(self, tmp_path):
        eventfiles.write_records(
            tmp_path / eventfiles.event_file_name(1),
            [
                eventfiles.file_version_event(),
                eventfiles.run_info_event({"optimizer": "AdamW", "lr": 3e-4, "batch_size": 128}),
                eventfiles.scalar_event("lrdoctor/loss", 1, 2.0),
                eventfiles.scalar_event("lrdoctor/lr/pg0", 1, 3e-4),
                eventfiles.scalar_event("lrdoctor/lr/pg1", 1, 3e-5),
            ],
        )
        (r,) = read_logdir(tmp_path).values()
        assert r.hparams["optimizer"] == "AdamW" and r.hparams["batch_size"] == 128
        assert set(r.lr_groups()) == {"pg0", "pg1"}


class TestIncremental:
    @needs_proc_io
    def test_unchanged_logdir_reads_no_bytes_and_returns_same_objects(self, tmp_path):
        for i in range(3):
            eventfiles.torch_scalars(tmp_path / f"run{i}", eventfiles.series_points(np.arange(500.0)))
        ld = Logdir(tmp_path)
        first = ld.refresh()
        before = _bytes_read()
        second = ld.refresh()
        assert _bytes_read() - before < PROC_IO_SELF_BYTES
        assert all(second[k] is first[k] for k in first) and list(second) == list(first)

    @needs_proc_io
    def test_grown_file_adds_only_new_points(self, tmp_path):
        name = tmp_path / "run" / eventfiles.event_file_name(1)
        events_ = [eventfiles.scalar_event("loss", s, float(s)) for s in range(2000)]
        eventfiles.write_records(name, [eventfiles.file_version_event()] + events_[:1000])
        ld = Logdir(tmp_path)
        old = ld.refresh()["run"]
        other = eventfiles.torch_scalars(tmp_path / "other", eventfiles.series_points([1.0]))
        size_before = name.stat().st_size
        eventfiles.write_records(name, events_[1000:], mode="ab")
        before = _bytes_read()
        runs = ld.refresh()
        read = _bytes_read() - before
        assert read < 2 * (name.stat().st_size - size_before) + other.stat().st_size + 4096
        new = runs["run"]
        assert new is not old
        assert new.signal("loss").steps.tolist() == list(range(2000))
        assert old.signal("loss").steps.tolist() == list(range(1000))  # earlier Run unchanged

    def test_record_completed_by_a_later_write(self, tmp_path):
        name = tmp_path / eventfiles.event_file_name(1)
        eventfiles.write_records(
            name,
            [eventfiles.file_version_event()] + [eventfiles.scalar_event("loss", s, s) for s in range(3)],
        )
        data = name.read_bytes()
        name.write_bytes(data[:-10])  # the last record is still being written
        ld = Logdir(tmp_path)
        r = ld.refresh()["."]
        assert r.signal("loss").steps.tolist() == [0, 1] and r.warnings == ()
        with open(name, "ab") as f:
            f.write(data[-10:])
        r = ld.refresh()["."]
        assert r.signal("loss").steps.tolist() == [0, 1, 2] and r.warnings == ()

    def test_rewritten_file_is_read_again(self, tmp_path):
        name = tmp_path / eventfiles.event_file_name(1)
        eventfiles.write_records(name, [eventfiles.scalar_event("loss", s, 1.0) for s in range(50)])
        ld = Logdir(tmp_path)
        ld.refresh()
        eventfiles.write_records(name, [eventfiles.scalar_event("loss", s, 2.0) for s in range(3)])
        (r,) = ld.refresh().values()
        assert r.signal("loss").values.tolist() == [2.0, 2.0, 2.0]

    def test_empty_file_that_gets_written_loses_its_warning(self, tmp_path):
        name = tmp_path / eventfiles.event_file_name(1)
        name.write_bytes(b"")
        ld = Logdir(tmp_path)
        assert ld.refresh()["."].warnings == (f"{name}:0: empty event file (0 bytes)",)
        eventfiles.write_records(name, [eventfiles.scalar_event("loss", 0, 1.0)])
        (r,) = ld.refresh().values()
        assert r.warnings == () and len(r.signal("loss")) == 1

    def test_deleted_run_disappears(self, tmp_path):
        import shutil

        for name in ("a", "b"):
            eventfiles.torch_scalars(tmp_path / name, eventfiles.series_points([1.0]))
        ld = Logdir(tmp_path)
        assert list(ld.refresh()) == ["a", "b"]
        shutil.rmtree(tmp_path / "a")
        assert list(ld.refresh()) == ["b"]

    def test_new_run_appears(self, tmp_path):
        eventfiles.torch_scalars(tmp_path / "a", eventfiles.series_points([1.0]))
        ld = Logdir(tmp_path)
        a = ld.refresh()["a"]
        eventfiles.torch_scalars(tmp_path / "b", eventfiles.series_points([1.0]))
        runs = ld.refresh()
        assert list(runs) == ["a", "b"] and runs["a"] is a


class TestParallel:
    def test_parallel_read_equals_serial(self, tmp_path, monkeypatch):
        for i in range(4):
            pts = [(t, s, float(s * (i + 1))) for s in range(300) for t in ("loss", "lr", "grad_norm")]
            eventfiles.torch_scalars(tmp_path / f"run{i}", pts)
        monkeypatch.setattr(logdir, "PARALLEL_MIN_BYTES", 0)
        ld = Logdir(tmp_path, workers=2)
        ld._discover()
        files = [f for d in ld._dirs.values() for f in d.check_files()[1]]
        assert logdir._parallel_ok(files, 2), "this test must exercise worker processes"
        parallel = read_logdir(tmp_path, workers=2)
        serial = read_logdir(tmp_path, workers=1)
        assert list(parallel) == list(serial)
        for name, r in serial.items():
            assert list(parallel[name].scalars) == list(r.scalars)
            for tag, s in r.scalars.items():
                p = parallel[name].scalars[tag]
                assert np.array_equal(p.steps, s.steps) and np.array_equal(p.values, s.values)
                assert np.array_equal(p.wall_times, s.wall_times)


class TestChunkedReads:
    @pytest.mark.parametrize("chunk", [64, 1000, 4096])
    def test_small_chunks_give_the_same_points(self, tmp_path, monkeypatch, chunk):
        big = eventfiles.text_event("notes", "x" * 5000)  # longer than the smaller chunks
        evs = [eventfiles.file_version_event(), big]
        evs += [eventfiles.scalar_event(t, s, s * 0.5) for s in range(400) for t in ("loss", "lr")]
        evs += [eventfiles.tensor_event("epoch_loss", s, 1.0 / (s + 1)) for s in range(20)]
        path = eventfiles.write_records(tmp_path / eventfiles.event_file_name(1), evs)
        whole = logdir.read_new_bytes(str(path), 0, {})
        monkeypatch.setattr(logdir, "READ_CHUNK_BYTES", chunk)
        chunked = logdir.read_new_bytes(str(path), 0, {})
        assert chunked.end == whole.end == path.stat().st_size
        assert list(chunked.parsed.points) == list(whole.parsed.points)
        for tag, pts in whole.parsed.points.items():
            for a, b in zip(pts, chunked.parsed.points[tag], strict=True):
                assert np.array_equal(a, b)
        assert chunked.parsed.plugins == whole.parsed.plugins and chunked.parsed.warnings == []

    def test_corrupt_length_near_a_chunk_end_still_costs_one_record(self, tmp_path, monkeypatch):
        path = eventfiles.write_records(
            tmp_path / eventfiles.event_file_name(1),
            [eventfiles.scalar_event("loss", s, 1.0) for s in range(300)],
        )
        heads = eventfiles.record_offsets(path)
        monkeypatch.setattr(logdir, "READ_CHUNK_BYTES", heads[100][0] + 20)  # record 100 straddles the end
        eventfiles.flip_bit(path, heads[99][0] + 3)
        result = logdir.read_new_bytes(str(path), 0, {})
        assert len(result.parsed.warnings) == 1
        assert result.parsed.warnings[0].startswith(f"{path}:{heads[99][0]}: bad length checksum; skipped")
        assert result.parsed.points["loss"][0].tolist() == [s for s in range(300) if s != 99]


def test_budgeted_refresh_reads_run_folders_in_parts(tmp_path):
    for i in range(4):
        points = [eventfiles.scalar_event("loss", s, 1.0) for s in range(50)]
        events = [eventfiles.file_version_event(), *points]
        eventfiles.write_records(tmp_path / f"run{i}" / eventfiles.event_file_name(1), events)
    ld = Logdir(tmp_path, workers=1)
    seen = []
    while True:
        runs = ld.refresh(budget_bytes=1)  # one folder per call: any folder exceeds 1 byte
        seen.append(sorted(runs))
        if not ld.pending:
            break
    assert seen == [["run0"], ["run0", "run1"], ["run0", "run1", "run2"], ["run0", "run1", "run2", "run3"]]
    assert all(len(r.signal("loss")) == 50 for r in runs.values())
    assert ld.refresh() == runs  # nothing left to read: same runs back
