"""Event protos -> points: simple_value and tensor scalars, hparams, run info; fast path == protobuf."""

import math

import eventfiles
import numpy as np
import pytest

from lrdoctor.analyzers import events, records


def _parse(path, *, fast=True, plugins=None):
    buf = records.Buffer(path.read_bytes())
    framed = records.frame(buf, str(path))
    return events.parse(buf, framed, str(path), 0, plugins, fast=fast)


def _assert_same(a: events.Parsed, b: events.Parsed):
    assert list(a.points) == list(b.points)
    for tag in a.points:
        for x, y in zip(a.points[tag], b.points[tag], strict=True):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), tag
    assert (a.hparams, a.run_info, a.plugins, a.warnings) == (b.hparams, b.run_info, b.plugins, b.warnings)


VALUES = [2.5, 0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-30, 3.4e38, 0.1]


class TestSimpleValue:
    def test_torch_points_at_full_precision_with_nan_and_inf(self, tmp_path):
        path = eventfiles.torch_scalars(tmp_path, eventfiles.series_points(VALUES, "loss"), wall_time=1.7e9)
        steps, values, walls = _parse(path).points["loss"]
        assert steps.dtype == np.int64 and values.dtype == np.float64 and walls.dtype == np.float64
        assert steps.tolist() == list(range(len(VALUES)))
        want = np.array(VALUES, dtype=np.float32).astype(np.float64)  # simple_value is a float32
        assert np.array_equal(values, want, equal_nan=True)
        assert math.copysign(1, values[2]) == -1  # -0.0 survives
        assert walls.tolist() == [1.7e9 + i for i in range(len(VALUES))]

    def test_fast_path_equals_protobuf_on_odd_records(self, tmp_path):
        long_tag = "a/" + "x" * 200  # nested lengths need two-byte varints: protobuf path
        events_ = [eventfiles.file_version_event()]
        for step in (0, 1, 127, 128, 16_383, 16_384, 2**40, -5):
            for tag in ("loss", "损失/训练", long_tag, "t" * 118, "t" * 119, ""):
                events_.append(eventfiles.scalar_event(tag, step, step / 3))
        events_.append(eventfiles.scalar_event("loss", 7, 1.0, wall_time=0.0))  # wall time 0: omitted field
        two = eventfiles.scalar_event("loss", 8, 2.0)
        two.summary.value.add(tag="acc", simple_value=0.5)
        events_.append(two)
        events_.append(eventfiles.tensor_event("loss", 9, 3.0))  # same tag, tensor-valued, in between
        events_.append(eventfiles.scalar_event("loss", 10, 4.0))
        events_.append(eventfiles.scalar_event("abc", 11, 5.0).SerializeToString().replace(b"abc", b"a\xffc"))
        path = eventfiles.write_records(tmp_path / eventfiles.event_file_name(), events_)
        fast, slow = _parse(path), _parse(path, fast=False)
        _assert_same(fast, slow)
        assert fast.points["loss"][0].tolist() == [0, 1, 127, 128, 16_383, 16_384, 2**40, -5, 7, 8, 9, 10]
        assert fast.points["loss"][1].tolist()[-4:] == [1.0, 2.0, 3.0, 4.0]
        assert fast.points["acc"][1].tolist() == [0.5]
        assert len(fast.points[long_tag][0]) == 8 and len(fast.points["损失/训练"][0]) == 8
        assert len(fast.warnings) == 1 and fast.warnings[0].endswith("record is not an Event proto; skipped")

    def test_fast_path_equals_protobuf_on_many_tags(self, tmp_path):
        rng = np.random.default_rng(1)
        tags = [f"grad_norm/layer{i}.weight" for i in range(300)] + ["loss", "lr"]
        pts = [
            (tags[i], int(s), float(v))
            for s, i, v in zip(range(5000), rng.integers(0, 302, 5000), rng.normal(size=5000), strict=True)
        ]
        path = eventfiles.torch_scalars(tmp_path, pts, wall_time=1e9)
        fast = _parse(path)
        _assert_same(fast, _parse(path, fast=False))
        assert sum(len(p[0]) for p in fast.points.values()) == 5000


class TestTensorValued:
    @pytest.mark.parametrize("dtype", list(eventfiles.TENSOR_DTYPES))
    @pytest.mark.parametrize("content", [True, False])
    @pytest.mark.parametrize("metadata", ["first", "every"])
    def test_tf2_scalars_every_dtype_and_encoding(self, tmp_path, dtype, content, metadata):
        raw = [1.5, -2.25, 0.0, 100.0, 7.0] + ([float("nan"), float("inf")] if "float" in dtype else [])
        path = eventfiles.tf2_scalars(
            tmp_path, eventfiles.series_points(raw, "epoch_loss"), dtype, content=content, metadata=metadata
        )
        parsed = _parse(path)
        steps, values, walls = parsed.points["epoch_loss"]
        want = np.array(raw).astype(eventfiles.TENSOR_DTYPES[dtype][1]).astype(np.float64)
        assert np.array_equal(values, want, equal_nan=True)
        assert steps.tolist() == list(range(len(raw)))
        assert walls[0] == 1.7e9
        assert parsed.plugins == {"epoch_loss": "scalars"}

    def test_plugin_remembered_across_reads(self, tmp_path):
        """TF2 names the plugin on a tag's first point only; a later read must still know it."""
        path = eventfiles.write_records(
            tmp_path / "f",
            [
                eventfiles.tensor_event("h", 0, 1.0, plugin="histograms"),
                eventfiles.tensor_event("h", 1, 2.0, plugin=None),
            ],
        )
        assert "h" not in _parse(path).points
        assert "h" not in _parse(path, plugins={"h": "histograms"}).points

    def test_non_scalar_content_is_not_a_scalar(self, tmp_path):
        vec = eventfiles.tensor_event("weights", 0, 1.0)
        vec.summary.value[0].tensor.tensor_content = np.arange(3, dtype=np.float32).tobytes()
        path = eventfiles.write_records(
            tmp_path / "f",
            [
                vec,
                eventfiles.text_event("notes", "hello"),
                eventfiles.tensor_event("img", 0, 1.0, plugin="images"),
            ],
        )
        assert _parse(path).points == {}


class TestMetadata:
    def test_torch_add_hparams_values(self, tmp_path):
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(tmp_path)) as w:
            w.add_hparams(
                {"lr": 0.01, "optimizer": "SGD", "bs": 32, "nesterov": True}, {"hp/acc": 0.9}, run_name="hp"
            )
        (path,) = (tmp_path / "hp").iterdir()
        parsed = _parse(path)
        assert parsed.hparams == {"lr": 0.01, "optimizer": "SGD", "bs": 32.0, "nesterov": True}
        assert parsed.points["hp/acc"][1].tolist() == [pytest.approx(0.9)]

    def test_run_info_later_keys_win(self, tmp_path):
        path = eventfiles.write_records(
            tmp_path / "f",
            [
                eventfiles.run_info_event({"optimizer": "Adam", "lr": 0.001, "grad_clip": None}),
                eventfiles.run_info_event({"grad_clip": 1.0}, step=5),
            ],
        )
        assert _parse(path).run_info == {"optimizer": "Adam", "lr": 0.001, "grad_clip": 1.0}

    def test_bad_run_info_and_bad_event_are_warned(self, tmp_path):
        path = eventfiles.write_records(
            tmp_path / "f",
            [eventfiles.text_event("lrdoctor/run_info", "{not json"), b"\xff\xff\xff not a proto"],
        )
        heads = [h for h, _ in eventfiles.record_offsets(path)]
        parsed = _parse(path)
        assert parsed.warnings == [
            f"{path}:{heads[0]}: unreadable lrdoctor/run_info JSON object; skipped",
            f"{path}:{heads[1]}: record is not an Event proto; skipped",
        ]
        assert parsed.run_info == {} and parsed.points == {}
