"""The step buffer: device cells, host cells, masks, non-finite detection, host copy."""

from __future__ import annotations

import math

import pytest
import torch
from tensorboard.compat.proto import event_pb2

from lrdoctor.collectors.buffer import COLUMN_CHUNK, StepBuffer


def _events_by_step(job):
    out = {}
    for ev in map(_parsed, job()):
        out.setdefault(ev.step, {}).update({v.tag: v.simple_value for v in ev.summary.value})
    return out


def _parsed(event):
    """Jobs return serialized events (and protos from callbacks)."""
    return event_pb2.Event.FromString(event) if isinstance(event, bytes) else event


class TestStepBuffer:
    def test_empty_take_is_none(self):
        assert StepBuffer(4).take() is None

    def test_capacity_must_be_positive(self):
        with pytest.raises(ValueError, match="capacity must be >= 1"):
            StepBuffer(0)

    def test_tensor_and_number_cells_round_trip(self):
        buf = StepBuffer(4)
        loss, lr = buf.column("loss"), buf.column("lr")
        for step in range(3):
            buf.put(loss, torch.tensor(2.0 - step))
            buf.put(lr, 0.1 * (step + 1))
            assert buf.end_row(10 + step, 100.0 + step) is False
        assert buf.end_row(13, 103.0) is True  # fourth row (only masks) fills it
        events = [_parsed(e) for e in buf.take()()]
        assert [e.step for e in events] == [10, 11, 12, 13]
        assert [e.wall_time for e in events] == [100.0, 101.0, 102.0, 103.0]
        by_step = _events_by_step(lambda: events)
        assert by_step[10] == {"loss": 2.0, "lr": pytest.approx(0.1)}
        assert by_step[12] == {"loss": 0.0, "lr": pytest.approx(0.3)}
        assert 13 not in by_step or by_step[13] == {}  # absent values are not written
        assert buf.rows == 0

    def test_cells_absent_in_a_row_are_not_written(self):
        buf = StepBuffer(8)
        a, b = buf.column("a"), buf.column("b")
        buf.put(a, torch.tensor(1.0))
        buf.put(b, 5.0)
        buf.end_row(0, 0.0)
        buf.put(a, torch.tensor(2.0))
        buf.end_row(1, 0.0)
        assert _events_by_step(buf.take()) == {0: {"a": 1.0, "b": 5.0}, 1: {"a": 2.0}}

    def test_tensor_requiring_grad_is_detached(self):
        w = torch.tensor(3.0, requires_grad=True)
        buf = StepBuffer(2)
        buf.put(buf.column("loss"), w * 2)
        buf.end_row(0, 0.0)
        assert _events_by_step(buf.take()) == {0: {"loss": 6.0}}

    def test_one_element_tensor_of_any_shape_and_dtype(self):
        buf = StepBuffer(2)
        buf.put(buf.column("x"), torch.tensor([[7]], dtype=torch.int64))
        buf.put(buf.column("y"), torch.tensor(0.5, dtype=torch.float64))
        buf.end_row(0, 0.0)
        assert _events_by_step(buf.take()) == {0: {"x": 7.0, "y": 0.5}}

    def test_growing_columns_mid_block_keeps_values(self):
        buf = StepBuffer(4)
        first = buf.column("first")
        buf.put(first, torch.tensor(1.5))
        buf.end_row(0, 0.0)
        names = [f"extra{i}" for i in range(COLUMN_CHUNK + 3)]
        for i, name in enumerate(names):
            buf.put(buf.column(name), torch.tensor(float(i)))
        buf.put(first, torch.tensor(2.5))
        buf.end_row(1, 0.0)
        by_step = _events_by_step(buf.take())
        assert by_step[0] == {"first": 1.5}
        assert by_step[1] == {"first": 2.5, **{n: float(i) for i, n in enumerate(names)}}

    def test_first_nonfinite_row_is_reported_once_per_block(self):
        seen = []

        def on_nonfinite(step, tags):
            seen.append((step, tags))
            return []

        buf = StepBuffer(8)
        loss, norm = buf.column("loss"), buf.column("norm")
        for step, (lv, nv) in enumerate([(1.0, 1.0), (2.0, math.inf), (math.nan, math.nan), (3.0, 1.0)]):
            buf.put(loss, torch.tensor(lv))
            buf.put(norm, nv)  # a host value: checked on the host copy
            buf.end_row(step, 0.0)
        values = _events_by_step(buf.take(on_nonfinite))
        assert seen == [(1, ["norm"])]
        assert math.isnan(values[2]["loss"]) and values[1]["norm"] == math.inf

    def test_device_nan_is_flagged(self):
        seen = []
        buf = StepBuffer(4)
        col = buf.column("loss")
        for step, v in enumerate([1.0, 2.0, math.nan]):
            buf.put(col, torch.tensor(v))
            buf.end_row(step, 0.0)
        buf.take(lambda step, tags: seen.append((step, tags)) or [])()
        assert seen == [(2, ["loss"])]

    def test_stale_values_of_an_earlier_block_do_not_flag(self):
        seen = []
        buf = StepBuffer(2)
        a, b = buf.column("a"), buf.column("b")
        buf.put(a, torch.tensor(math.nan))
        buf.end_row(0, 0.0)
        buf.put(b, torch.tensor(1.0))
        buf.end_row(1, 0.0)
        buf.take()()
        buf.put(b, torch.tensor(1.0))  # row 0 again, "a" absent: the old NaN must not count
        buf.end_row(2, 0.0)
        buf.take(lambda step, tags: seen.append(step) or [])()
        assert seen == []

    def test_callback_events_are_appended(self):
        buf = StepBuffer(2)
        buf.put(buf.column("loss"), torch.tensor(math.inf))
        buf.end_row(5, 0.0)
        events = buf.take(lambda step, tags: [event_pb2.Event(step=step, file_version="marker")])()
        assert events[-1].file_version == "marker" and events[-1].step == 5

    def test_cpu_tensor_is_read_on_the_host_when_the_buffer_is_elsewhere(self):
        """Copying a CPU tensor into a GPU buffer would synchronize; its value is read instead."""
        buf = StepBuffer(2, device=torch.device("meta"))
        buf.put(buf.column("acc"), torch.tensor(0.75))
        buf.end_row(0, 0.0)
        assert _events_by_step(buf.take()) == {0: {"acc": 0.75}}


class TestNormColumns:
    def test_norm_of_parts_is_taken_in_float64_when_written(self):
        buf = StepBuffer(4)
        norm, loss = buf.column("norm"), buf.column("loss")
        parts = [torch.tensor(3.0), torch.tensor(4.0), torch.tensor(12.0)]
        buf.put(loss, torch.tensor(1.0))
        buf.put_norm(norm, parts)
        buf.end_row(0, 0.0)
        buf.put_norm(norm, [torch.tensor(2.5)])  # a known total: one part
        buf.end_row(1, 0.0)
        assert _events_by_step(buf.take()) == {0: {"loss": 1.0, "norm": 13.0}, 1: {"norm": 2.5}}

    def test_nan_part_makes_a_nan_norm_and_is_reported(self):
        seen = []
        buf = StepBuffer(2)
        buf.put_norm(buf.column("norm"), [torch.tensor(1.0), torch.tensor(math.nan)])
        buf.end_row(7, 0.0)
        values = _events_by_step(buf.take(lambda step, tags: seen.append((step, tags)) or []))
        assert math.isnan(values[7]["norm"]) and seen == [(7, ["norm"])]


class TestRowWrites:
    @pytest.mark.parametrize("count", [3, 40])  # copied value by value on CPU / one stack
    def test_many_tensor_values_in_a_row(self, count):
        buf = StepBuffer(3)
        cols = [buf.column(f"v{i}") for i in range(count)]
        for step in range(2):
            for i, col in enumerate(cols):
                buf.put(col, torch.tensor(float(i + 100 * step)))
            buf.end_row(step, 0.0)
        by_step = _events_by_step(buf.take())
        assert by_step[1] == {f"v{i}": float(i + 100) for i in range(count)}

    def test_values_of_any_dtype_or_needing_grad(self):
        """Norm parts need grad under ``backward(create_graph=True)``."""
        buf = StepBuffer(2)
        buf.put(buf.column("a"), torch.tensor(1.5, requires_grad=True) * 2)
        needs_grad = torch.tensor(3.0, dtype=torch.float64, requires_grad=True) * 1
        parts = [needs_grad, torch.tensor(4, dtype=torch.int32)]
        buf.put_norm(buf.column("n"), parts)
        buf.end_row(0, 0.0)
        assert _events_by_step(buf.take()) == {0: {"a": 3.0, "n": 5.0}}

    def test_a_flush_between_puts_and_end_row_keeps_the_step(self):
        """A signal handler may flush while a step is being staged: that step goes to the next block."""
        buf = StepBuffer(4)
        col = buf.column("loss")
        buf.put(col, torch.tensor(1.0))
        buf.end_row(0, 0.0)
        buf.put(col, torch.tensor(2.0))
        first = _events_by_step(buf.take())
        buf.end_row(1, 0.0)
        assert first == {0: {"loss": 1.0}} and _events_by_step(buf.take()) == {1: {"loss": 2.0}}

    def test_number_beyond_float32_is_written_as_inf(self):
        buf = StepBuffer(1)
        buf.put(buf.column("x"), 1e300)
        buf.end_row(0, 0.0)
        assert _events_by_step(buf.take()) == {0: {"x": math.inf}}
