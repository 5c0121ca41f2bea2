"""Collector in real training loops of a tiny CNN on CPU, read back by our reader and TensorBoard."""

from __future__ import annotations

import math
import os
import signal
import time
import warnings

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from torch import nn

from lrdoctor.analyzers import read_logdir
from lrdoctor.collectors import Collector, CollectorError, CollectorWarning, shutdown

F = nn.functional


def _grad_norm(model: nn.Module) -> float:
    """Reference total L2 norm, in float64, one parameter at a time."""
    return math.sqrt(
        sum(float(p.grad.detach().double().pow(2).sum()) for p in model.parameters() if p.grad is not None)
    )


def _run(tmp_path, name="run"):
    return read_logdir(str(tmp_path))[name]


def test_plain_loop_round_trip(tmp_path, make_model, make_batches):
    """Loss, pre-step grad norm, LR of two groups under a scheduler, accuracy, extras, val."""
    model = make_model()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 0.02}],
        lr=0.05,
        momentum=0.9,
    )
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    losses, norms, lrs, accs = [], [], [], []
    with Collector(
        tmp_path / "run", model=model, optimizer=opt, batch_size=16, flush_every=7, scheduler=sched
    ) as col:
        for x, y in make_batches(25):
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            norms.append(_grad_norm(model))
            lrs.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
            acc = (out.argmax(1) == y).float().mean()
            col.step(loss, accuracy=acc, my_metric=2.5)
            losses.append(loss.item())
            accs.append(acc.item())
        col.log(val_loss=torch.tensor(1.25), val_accuracy=0.5)
    run = _run(tmp_path)
    assert run.warnings == ()
    assert run.signal("loss").steps.tolist() == list(range(25))
    np.testing.assert_allclose(run.signal("loss").values, losses, rtol=1e-6)
    np.testing.assert_allclose(run.signal("grad_norm").values, norms, rtol=1e-5)
    groups = run.lr_groups()
    np.testing.assert_allclose(groups["pg0"].values, [lr[0] for lr in lrs], rtol=1e-6)
    np.testing.assert_allclose(groups["pg1"].values, [lr[1] for lr in lrs], rtol=1e-6)
    assert groups["pg0"].values[9] == pytest.approx(0.05) and groups["pg0"].values[10] == pytest.approx(0.025)
    np.testing.assert_allclose(run.signal("accuracy").values, accs, rtol=1e-6)
    assert run.scalars["lrdoctor/extra/my_metric"].values.tolist() == [2.5] * 25
    assert run.signal("val_loss").steps.tolist() == [24] and run.signal("val_loss").values.tolist() == [1.25]
    assert run.signal("val_accuracy").values.tolist() == [0.5]
    hp = run.hparams
    assert hp["optimizer"] == "SGD" and hp["lr"] == 0.05 and hp["momentum"] == 0.9
    assert hp["batch_size"] == 16 and hp["model_kind"] == "cnn" and hp["num_classes"] == 10
    assert hp["run_kind"] == "train" and hp["scheduler"] == "StepLR" and hp["batchnorm"] is False
    assert "first_nonfinite_step" not in hp


def test_tensorboard_reads_the_run(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Collector(tmp_path, model=model, optimizer=opt, flush_every=4) as col:
        for x, y in make_batches(10):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            col.step(loss)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()
    assert {"lrdoctor/loss", "lrdoctor/grad_norm", "lrdoctor/lr/pg0"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("lrdoctor/loss")] == list(range(10))
    assert "lrdoctor/run_info" in tags["tensors"]
    content = acc.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"])
    assert start.hparams["optimizer"].string_value == "Adam"
    assert start.hparams["batch_size"].number_value == 16  # inferred from the model's inputs
    end = hp_metadata.parse_session_end_info_plugin_data(content["_hparams_/session_end_info"])
    assert end.status == api_pb2.STATUS_SUCCESS


def test_clip_helper_records_norm_before_clipping(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before, returned = [], []
    with Collector(tmp_path, model=model, optimizer=opt, batch_size=16) as col:
        for x, y in make_batches(5):
            opt.zero_grad()
            (F.cross_entropy(model(x), y) * 100).backward()  # large gradients: clipping bites
            before.append(_grad_norm(model))
            returned.append(float(col.clip_grad_norm_(0.5)))
            assert _grad_norm(model) == pytest.approx(0.5, rel=1e-4)
            opt.step()
            col.step(torch.tensor(1.0))
    run = _run(tmp_path, ".")
    np.testing.assert_allclose(run.signal("grad_norm").values, before, rtol=1e-5)
    np.testing.assert_allclose(returned, before, rtol=1e-5)
    assert run.hparams["grad_clip"] == 0.5


def test_grad_accumulation_counts_optimizer_steps(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    data = make_batches(12, batch_size=8)
    logged, norms = [], []
    with Collector(tmp_path, model=model, optimizer=opt) as col:
        for i in range(0, 12, 3):  # 3 micro-batches of 8 per optimizer step
            opt.zero_grad()
            micro = []
            for x, y in data[i : i + 3]:
                loss = F.cross_entropy(model(x), y) / 3
                loss.backward()
                micro.append(loss.detach())
                col.step(loss)  # micro-batches before the optimizer step: not steps
            norms.append(_grad_norm(model))
            opt.step()
            mean = torch.stack(micro).sum()
            col.step(mean)
            logged.append(mean.item())
        assert col.skipped_calls == 12
    run = _run(tmp_path, ".")
    assert run.signal("loss").steps.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(run.signal("loss").values, logged, rtol=1e-6)
    np.testing.assert_allclose(run.signal("grad_norm").values, norms, rtol=1e-5)
    assert run.hparams["batch_size"] == 24


def test_amp_grad_scaler_unscaled_norm_and_skipped_steps(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    norms, kept = [], []
    with Collector(tmp_path, model=model, optimizer=opt, scaler=scaler, batch_size=16) as col:
        for i, (x, y) in enumerate(make_batches(8)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
            if i == 3:
                loss = loss * math.inf  # inf gradients: the scaler must skip this step
            scaler.scale(loss).backward()
            reference = _grad_norm(model) / scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            col.step(loss)
            if i != 3:
                norms.append(reference)
                kept.append(loss.item())
    run = _run(tmp_path, ".")
    assert run.signal("loss").steps.tolist() == list(range(7))  # 8 calls, one skipped
    np.testing.assert_allclose(run.signal("loss").values, kept, rtol=1e-6)
    np.testing.assert_allclose(run.signal("grad_norm").values, norms, rtol=1e-4)
    assert run.hparams["amp"] is True


def test_amp_clip_helper_unscales_first(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=4096.0)
    x, y = make_batches(1)[0]
    with Collector(tmp_path, model=model, optimizer=opt, scaler=scaler, batch_size=16) as col:
        scaler.scale(F.cross_entropy(model(x), y)).backward()
        scaled = _grad_norm(model)
        total = col.clip_grad_norm_(1e6)  # no clipping: only the norm
        scaler.step(opt)  # must not unscale twice
        scaler.update()
        col.step(torch.tensor(0.0))
    assert float(total) == pytest.approx(scaled / 4096.0, rel=1e-5)
    assert _run(tmp_path, ".").signal("grad_norm").values[0] == pytest.approx(scaled / 4096.0, rel=1e-5)


def test_exception_in_loop_keeps_nan_step_on_disk(tmp_path, make_model, make_batches):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with (
        pytest.raises(FloatingPointError),
        Collector(tmp_path, model=model, optimizer=opt, flush_every=100) as col,
    ):
        for i, (x, y) in enumerate(make_batches(20)):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            if i == 6:
                loss = loss * math.nan
            loss.backward()
            opt.step()
            col.step(loss)
            if i == 6:
                raise FloatingPointError("NaN loss")
    run = _run(tmp_path, ".")
    loss = run.signal("loss")
    assert loss.steps.tolist() == list(range(7))
    assert np.isfinite(loss.values[:6]).all() and math.isnan(loss.values[6])
    assert run.hparams["first_nonfinite_step"] == 6
    assert col.first_nonfinite_step == 6
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    end = hp_metadata.parse_session_end_info_plugin_data(
        acc.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    )
    assert end.status == api_pb2.STATUS_FAILURE


def test_without_optimizer_every_call_is_a_step(tmp_path):
    with Collector(tmp_path) as col:
        for i in range(5):
            col.step(float(i), accuracy=torch.tensor(0.1 * i))
    run = _run(tmp_path, ".")
    assert run.signal("loss").values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert "grad_norm" not in run.signals and "lr" not in run.signals


def test_clip_helper_without_optimizer_logs_the_norm(tmp_path, make_model, make_batches):
    model = make_model()
    norms = []
    with Collector(tmp_path, model=model) as col:
        for x, y in make_batches(3):
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            norms.append(_grad_norm(model))
            col.clip_grad_norm_(1e6)
            col.step(torch.tensor(1.0))
    run = _run(tmp_path, ".")
    np.testing.assert_allclose(run.signal("grad_norm").values, norms, rtol=1e-5)
    assert run.signal("loss").values.tolist() == [1.0] * 3


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_gradients_of_other_dtypes(tmp_path, make_model, make_batches, dtype):
    model = make_model().to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    norms = []
    with Collector(tmp_path, model=model, optimizer=opt, batch_size=16) as col:
        for x, y in make_batches(3):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x.to(dtype)), y)
            loss.backward()
            norms.append(_grad_norm(model))
            opt.step()
            col.step(loss)
    np.testing.assert_allclose(_run(tmp_path, ".").signal("grad_norm").values, norms, rtol=1e-2)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_gradients_that_need_grad_create_graph(tmp_path, make_model, make_batches):
    """``backward(create_graph=True)`` (gradient penalties): the norms need grad; still logged."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    norms = []
    with Collector(tmp_path, model=model, optimizer=opt, batch_size=16) as col:
        for x, y in make_batches(3):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward(create_graph=True)
            norms.append(_grad_norm(model))
            opt.step()
            col.step(loss)
    run = _run(tmp_path, ".")
    assert run.warnings == ()
    np.testing.assert_allclose(run.signal("grad_norm").values, norms, rtol=1e-5)


@pytest.mark.parametrize("wrap", [False, True])
def test_module_grad_norms_at_their_cadence(tmp_path, make_model, make_batches, wrap):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    per_module = []
    logged = nn.DataParallel(model) if wrap else model  # the wrapper's "module" child is skipped
    with Collector(tmp_path, model=logged, optimizer=opt, module_grad_norm_every=3) as col:
        for x, y in make_batches(7):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            per_module.append(math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model[0].parameters())))
            opt.step()
            col.step(torch.tensor(0.0))
    run = _run(tmp_path, ".")
    conv = run.scalars["lrdoctor/grad_norm/0"]
    assert conv.steps.tolist() == [0, 3, 6]
    np.testing.assert_allclose(conv.values, [per_module[i] for i in (0, 3, 6)], rtol=1e-5)
    assert "lrdoctor/grad_norm/1" not in run.scalars  # ReLU has no parameters


def test_start_step_and_update_info(tmp_path):
    with Collector(tmp_path, start_step=1000, info={"dataset": "digits"}) as col:
        col.step(1.0)
        col.update_info(suggested_lr=0.03)
        assert col.info["suggested_lr"] == 0.03
    run = _run(tmp_path, ".")
    assert run.signal("loss").steps.tolist() == [1000]
    assert run.hparams["dataset"] == "digits" and run.hparams["suggested_lr"] == 0.03


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"flush_every": 0}, ValueError, "flush_every must be an integer >= 1"),
        ({"flush_every": 5000}, ValueError, "flush_every must be <= 1000 steps"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"batch_size": 3.5}, ValueError, "batch_size must be an integer"),
        ({"module_grad_norm_every": -1}, ValueError, "module_grad_norm_every"),
        ({"grad_clip": 0}, ValueError, "grad_clip must be a number > 0"),
        ({"run_kind": "eval"}, ValueError, "run_kind must be one of train, lr_range_test"),
        ({"model": "resnet"}, TypeError, "model must be a torch.nn.Module"),
        ({"optimizer": object()}, TypeError, "optimizer must be a torch.optim.Optimizer"),
    ],
)
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        Collector(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)  # nothing written


def test_unwritable_logdir_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CollectorError, match="cannot write event files in"):
        Collector(tmp_path / "file" / "run")


def test_failure_inside_is_one_warning_and_training_goes_on(tmp_path, make_model, make_batches):
    """A step() value the collector cannot store (a 2-element tensor) disables it with one warning."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Collector(tmp_path, model=model, optimizer=opt, batch_size=16) as col:
            for i, (x, y) in enumerate(make_batches(6)):
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                col.step(loss, bad=torch.ones(2) if i == 2 else 0.0)
    ours = [w for w in caught if issubclass(w.category, CollectorWarning)]
    assert len(ours) == 1 and "logging stopped, training goes on" in str(ours[0].message)
    assert not opt._optimizer_step_pre_hooks  # hooks removed: no cost any more


def test_signal_flushes_then_chains_to_previous_handler(tmp_path):
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        col = Collector(tmp_path, flush_every=1000)
        for i in range(5):
            col.step(float(i))
        assert "lrdoctor/loss" not in _run(tmp_path, ".").scalars  # still on the device
        os.kill(os.getpid(), signal.SIGTERM)
        assert calls == [signal.SIGTERM]
        assert _run(tmp_path, ".").signal("loss").steps.tolist() == [0, 1, 2, 3, 4]
        col.step(5.0)  # training may go on after a handled signal
        col.close()
        assert _run(tmp_path, ".").signal("loss").steps.tolist() == list(range(6))
        assert shutdown.installed() == {}
        assert signal.getsignal(signal.SIGTERM) is not shutdown._handle
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_forked_child_does_not_wait_for_the_parents_writer(tmp_path):
    """A DataLoader worker forked from the training process inherits our handler."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(7))
    try:
        with Collector(tmp_path) as col:
            col.step(1.0)
            start = time.monotonic()
            pid = os.fork()
            if pid == 0:  # the child: the signal must reach the previous handler at once
                os.kill(os.getpid(), signal.SIGTERM)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 7
            assert time.monotonic() - start < 10
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_handlers_are_installed_once_and_restored_after_the_last(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    a, b = Collector(tmp_path / "a"), Collector(tmp_path / "b")
    assert signal.getsignal(signal.SIGINT) is shutdown._handle
    assert shutdown.installed()[signal.SIGINT] is before
    a.close()
    assert signal.getsignal(signal.SIGINT) is shutdown._handle
    b.close()
    assert signal.getsignal(signal.SIGINT) is before


def test_no_signal_handlers_when_asked(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with Collector(tmp_path, handle_signals=False):
        assert signal.getsignal(signal.SIGTERM) is before


def test_hooks_removed_on_close(tmp_path, make_model):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    col = Collector(tmp_path, model=model, optimizer=opt)
    assert opt._optimizer_step_pre_hooks and model._forward_pre_hooks
    col.close()
    assert not opt._optimizer_step_pre_hooks and not model._forward_pre_hooks
    col.step(1.0)  # after close: ignored, no error


def test_event_file_is_a_plain_tensorboard_file(tmp_path):
    with Collector(tmp_path) as col:
        col.step(1.0)
    events = list(EventFileLoader(col.path).Load())
    assert events[0].file_version == "brain.Event:2"
    assert any(v.tag == "lrdoctor/loss" for e in events for v in e.summary.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_device_sync_per_step_on_cuda(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 32, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    with Collector(tmp_path, model=model, optimizer=opt, batch_size=64, flush_every=8) as col:
        for i in range(40):
            if i == 1:  # the first step allocates (caching allocator); from then on: none
                torch.cuda.set_sync_debug_mode("error")
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            col.clip_grad_norm_(1.0)
            opt.step()
            col.step(loss, accuracy=(out.argmax(1) == y).float().mean())
        torch.cuda.set_sync_debug_mode(0)
    assert _run(tmp_path, ".").signal("loss").steps.tolist() == list(range(40))


def test_warns_once_when_the_optimizer_never_steps(tmp_path, make_model):
    model = make_model()
    hooked = torch.optim.SGD(model.parameters(), lr=0.05)
    other = torch.optim.SGD(model.parameters(), lr=0.05)  # the loop steps this one by mistake
    with pytest.warns(CollectorWarning, match="no optimizer step seen") as caught:
        with Collector(tmp_path, model=model, optimizer=hooked) as col:
            for _ in range(250):
                other.step()
                col.step(1.0)
    assert len([w for w in caught if issubclass(w.category, CollectorWarning)]) == 1
