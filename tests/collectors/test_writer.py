"""The event-file writer: framing, background thread, errors (real files in tmp_path)."""

from __future__ import annotations

import os
import struct

import eventfiles
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import masked_crc32c as tb_masked_crc32c

from lrdoctor.analyzers import read_logdir
from lrdoctor.collectors.writer import (
    BackgroundWriter,
    CollectorError,
    frame,
    masked_crc32c,
    scalar_event,
    scalar_value_prefix,
)


@pytest.mark.parametrize("data", [b"", b"a", b"hello world", bytes(range(256)) * 3])
def test_masked_crc_matches_tensorboard(data):
    assert masked_crc32c(data) == tb_masked_crc32c(data)


def test_frame_layout():
    record = frame(b"abc")
    assert len(record) == 8 + 4 + 3 + 4
    assert record[:8] == (3).to_bytes(8, "little")
    assert record[12:15] == b"abc"


def test_jobs_are_written_in_order_and_read_back(tmp_path):
    writer = BackgroundWriter(str(tmp_path / "run"))
    writer.submit(lambda: [eventfiles.scalar_event("a", s, s * 0.5) for s in range(3)])
    writer.submit(lambda: [eventfiles.scalar_event("a", s, s * 0.5) for s in range(3, 5)])
    assert writer.flush()
    writer.close()
    assert writer.error is None
    run = read_logdir(str(tmp_path))["run"]
    assert run.scalars["a"].steps.tolist() == [0, 1, 2, 3, 4]
    assert run.scalars["a"].values.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert run.warnings == ()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("a")] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_file_name_and_version_record(tmp_path):
    writer = BackgroundWriter(str(tmp_path))
    writer.close()
    name = os.path.basename(writer.path)
    assert name.startswith("events.out.tfevents.") and str(os.getpid()) in name
    with open(writer.path, "rb") as f:
        data = f.read()
    first = event_pb2.Event.FromString(data[12 : 12 + int.from_bytes(data[:8], "little")])
    assert first.file_version == "brain.Event:2"


def test_two_writers_in_one_logdir_get_distinct_files(tmp_path):
    a, b = BackgroundWriter(str(tmp_path)), BackgroundWriter(str(tmp_path))
    a.close()
    b.close()
    assert a.path != b.path


def test_unwritable_logdir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CollectorError, match=r"cannot write event files in .*file/run"):
        BackgroundWriter(str(blocker / "run"))


def test_failing_job_stops_writing_but_not_the_caller(tmp_path):
    writer = BackgroundWriter(str(tmp_path))

    def broken():
        raise ValueError("boom")

    writer.submit(lambda: [eventfiles.scalar_event("a", 0, 1.0)])
    writer.submit(broken)
    writer.submit(lambda: [eventfiles.scalar_event("a", 1, 2.0)])
    assert writer.flush()
    writer.close()
    assert "ValueError: boom" in writer.error
    run = read_logdir(str(tmp_path))["."]
    assert run.scalars["a"].steps.tolist() == [0]


def test_close_is_idempotent_and_drops_later_jobs(tmp_path):
    writer = BackgroundWriter(str(tmp_path))
    writer.close()
    writer.close()
    writer.submit(lambda: [eventfiles.scalar_event("a", 0, 1.0)])
    assert writer.flush()
    assert os.path.getsize(writer.path) > 0


@pytest.mark.parametrize(
    ("wall_time", "step", "cells"),
    [
        (1.7e9, 5, [("lrdoctor/loss", 2.5), ("lrdoctor/lr/pg0", 0.01)]),
        (0.0, 0, []),  # defaults left out, as protobuf does
        (123.25, 2**40, [("t" * 300, -1.0)]),  # multi-byte varints
        (1.0, 1, [("x", float("nan"))]),
    ],
)
def test_scalar_event_is_the_protobuf_serialization(wall_time, step, cells):
    values = b"".join(scalar_value_prefix(tag) + struct.pack("<f", v) for tag, v in cells)
    ours = scalar_event(wall_time, step, values)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in cells])
    assert ours == event_pb2.Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()


def test_serialized_and_proto_events_in_one_job(tmp_path):
    writer = BackgroundWriter(str(tmp_path))
    value = scalar_value_prefix("a") + struct.pack("<f", 0.5)
    writer.submit(lambda: [scalar_event(1.0e9, 0, value), eventfiles.scalar_event("a", 1, 1.5)])
    writer.close()
    assert read_logdir(str(tmp_path))["."].scalars["a"].values.tolist() == [0.5, 1.5]
