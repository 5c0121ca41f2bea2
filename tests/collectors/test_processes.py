"""The collector in real child processes: killed, terminated, interrupted, out of disk, distributed.

Each child is a small training script (written to tmp_path) run with this Python.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata

from lrdoctor.analyzers import read_logdir

pytestmark = pytest.mark.slow

TRAIN_PRELUDE = """
import sys, warnings
import torch
from torch import nn
from lrdoctor.collectors import Collector, CollectorWarning
torch.set_num_threads(1)
torch.manual_seed(0)
model = nn.Linear(8, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))

def train_step(col):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    col.step(loss)
"""


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(TRAIN_PRELUDE + textwrap.dedent(body))
    return str(path)


def _start(tmp_path, body: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, _script(tmp_path, body), str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(tmp_path, body: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, _script(tmp_path, body), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _read_until(proc: subprocess.Popen, predicate) -> str:
    for line in proc.stdout:
        if predicate(line.strip()):
            return line.strip()
    raise AssertionError(f"child ended early: {proc.wait()} {proc.stderr.read()}")


def _loss_steps(tmp_path) -> list[int]:
    run = read_logdir(str(tmp_path))["run"]
    assert run.warnings == ()
    return run.signal("loss").steps.tolist()


def test_sigkill_keeps_everything_up_to_the_last_flush(tmp_path):
    proc = _start(
        tmp_path,
        """
        col = Collector(sys.argv[1], model=model, optimizer=opt, batch_size=32, flush_every=8)
        step = 0
        while True:
            train_step(col)
            step += 1
            if step % 20 == 0:
                col.flush(wait=True)  # steps 0..step-1 are in the file
                print(step, flush=True)
        """,
    )
    try:
        flushed = int(_read_until(proc, lambda line: int(line) >= 60))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    steps = _loss_steps(tmp_path)
    assert len(steps) >= flushed
    assert steps == list(range(len(steps)))  # no hole: a torn record at the end is all that is lost
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("lrdoctor/loss")] == steps
    assert read_logdir(str(tmp_path))["run"].hparams["optimizer"] == "SGD"


def test_normal_exit_without_close_writes_everything(tmp_path):
    proc = _run(
        tmp_path,
        """
        col = Collector(sys.argv[1], model=model, optimizer=opt, batch_size=32, flush_every=1000)
        for _ in range(37):
            train_step(col)
        # no close(), no with-block: the interpreter's exit closes the run
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert _loss_steps(tmp_path) == list(range(37))
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    assert hp_metadata.parse_session_end_info_plugin_data(content).status == api_pb2.STATUS_SUCCESS


def test_sigterm_flushes_then_terminates(tmp_path):
    proc = _start(
        tmp_path,
        """
        col = Collector(sys.argv[1], model=model, optimizer=opt, batch_size=32, flush_every=1000)
        step = 0
        while True:
            train_step(col)
            step += 1
            print(step, flush=True)
        """,
    )
    try:
        _read_until(proc, lambda line: int(line) >= 50)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM  # the default action still happens
    assert len(_loss_steps(tmp_path)) >= 50  # though the buffer never filled


def test_sigint_flushes_and_raises_keyboard_interrupt(tmp_path):
    proc = _start(
        tmp_path,
        """
        try:
            with Collector(sys.argv[1], model=model, optimizer=opt, batch_size=32, flush_every=1000) as col:
                step = 0
                while True:
                    train_step(col)
                    step += 1
                    print(step, flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        """,
    )
    try:
        _read_until(proc, lambda line: line.isdigit() and int(line) >= 50)
        proc.send_signal(signal.SIGINT)
        _read_until(proc, lambda line: line == "interrupted")
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert len(_loss_steps(tmp_path)) >= 50
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    assert hp_metadata.parse_session_end_info_plugin_data(content).status == api_pb2.STATUS_FAILURE


def test_disk_full_is_one_warning_and_training_goes_on(tmp_path):
    """RLIMIT_FSIZE makes writes past 3000 bytes fail with EFBIG, as a full disk fails them."""
    proc = _run(
        tmp_path,
        """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, hard))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Collector(sys.argv[1], model=model, optimizer=opt, flush_every=10) as col:
                for step in range(300):
                    train_step(col)
            print(step + 1)
        print(len([w for w in caught if issubclass(w.category, CollectorWarning)]))
        for w in caught:
            print(w.message)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "300" and lines[1] == "1", proc.stdout
    assert "cannot write" in lines[2] and "File too large" in lines[2] and "training goes on" in lines[2]
    run = read_logdir(str(tmp_path))["run"]
    steps = run.signal("loss").steps.tolist()
    assert 0 < len(steps) < 300 and steps == list(range(len(steps)))
    assert os.path.getsize(run.files[0]) <= 3000


DDP_SCRIPT = """
import json, os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from lrdoctor.collectors import Collector


def norm(module):
    return sum(float(p.grad.double().pow(2).sum()) for p in module.parameters()) ** 0.5


def train(col_kwargs, logdir, model, rank):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(rank)  # each rank its own data
    norms = []
    with Collector(logdir, model=model, optimizer=opt, flush_every=4, **col_kwargs) as col:
        for _ in range(6):
            x, y = torch.randn(16, 8, generator=g), torch.randint(0, 2, (16,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            norms.append(norm(model))
            opt.step()
            col.step(torch.tensor(float(rank)))
    return norms


def worker(rank, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
    torch.manual_seed(0)
    ddp = DistributedDataParallel(nn.Linear(8, 2))
    result = {"ddp": train({}, f"{out}/ddp", ddp, rank)}
    result["per_rank"] = train({"batch_size": 32, "per_rank": True}, f"{out}/per_rank", ddp, rank)
    torch.manual_seed(rank)  # sharded: each rank holds different parameters
    result["sharded"] = train({"grad_norm_all_reduce": True}, f"{out}/sharded", nn.Linear(8, 2), rank)
    with open(f"{out}/norms{rank}.json", "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1],), nprocs=2)
"""


def test_ddp_two_processes_gloo(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    norms = [json.loads((tmp_path / f"norms{rank}.json").read_text()) for rank in (0, 1)]

    # Default: rank 0 alone writes; after DDP's all-reduce its norm is the global one.
    runs = read_logdir(str(tmp_path / "ddp"))
    assert list(runs) == ["."]
    run = runs["."]
    np.testing.assert_allclose(norms[0]["ddp"], norms[1]["ddp"], rtol=1e-6)
    np.testing.assert_allclose(run.signal("grad_norm").values, norms[0]["ddp"], rtol=1e-5)
    assert run.signal("loss").values.tolist() == [0.0] * 6
    assert run.hparams["world_size"] == 2 and run.hparams["batch_size"] == 32  # 16 per rank, inferred

    # per_rank=True: one run per rank.
    runs = read_logdir(str(tmp_path / "per_rank"))
    assert sorted(runs) == ["rank0", "rank1"]
    assert runs["rank1"].signal("loss").values.tolist() == [1.0] * 6

    # Sharded parameters: the norm all-reduces squares over the ranks.
    run = read_logdir(str(tmp_path / "sharded"))["."]
    expected = np.hypot(norms[0]["sharded"], norms[1]["sharded"])
    np.testing.assert_allclose(run.signal("grad_norm").values, expected, rtol=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_tensorboard_hparams_tab_lists_the_runs(tmp_path):
    """A real TensorBoard server: its HParams plugin lists each run with its LR and status."""
    import torch

    from lrdoctor.collectors import Collector

    for name, lr in (("slow", 0.001), ("fast", 0.1)):
        model = torch.nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        with Collector(tmp_path / name, model=model, optimizer=opt, batch_size=8) as col:
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(8, 4)).sum().backward()
                opt.step()
                col.step(torch.tensor(1.0))
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(tmp_path),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/data/plugin/hparams/session_groups"
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN"],
        "colParams": [{"hparam": "lr", "order": "ORDER_ASC"}],
        "startIndex": 0,
        "sliceSize": 10,
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                groups = _post_json(url, body)["sessionGroups"]
                if len(groups) == 2:
                    break
            except (OSError, KeyError, ValueError):
                pass
            assert time.monotonic() < deadline, "TensorBoard did not list the runs within 60 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(30)
    listed = [
        (g["name"], g["hparams"]["lr"], g["hparams"]["optimizer"], g["sessions"][0]["status"]) for g in groups
    ]
    assert listed == [("slow", 0.001, "SGD", "STATUS_SUCCESS"), ("fast", 0.1, "SGD", "STATUS_SUCCESS")]
