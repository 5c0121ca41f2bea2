"""`Collector`: one object in a torch training loop logs what the analyzers need.

Usage::

    with Collector("runs/exp1", model=model, optimizer=optimizer, batch_size=64) as col:
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            col.clip_grad_norm_(1.0)      # optional: clips and records the setting
            optimizer.step()
            col.step(loss, accuracy=acc)  # once per optimizer step

What happens where:

- A *step pre-hook* on the optimizer takes, just before each optimizer step, the norm of
  every gradient (one fused ``torch._foreach_norm``; on CPU written into preallocated cells;
  before clipping when clipping goes through `Collector.clip_grad_norm_`) and the LR of every
  param group as the optimizer is about to use it (so schedulers are captured). The total
  gradient norm, the L2 norm of those norms, is taken on the host when the step is written (in
  float64): two kernels fewer per step (``stack`` + ``vector_norm``: ~20 us in a small LSTM's
  CPU training loop, where the norms themselves cost ~40 us; see `buffer.py`).
- `Collector.step` puts the loss, that norm, the LRs and the extra scalars into a `StepBuffer`:
  tensors stay on their device, nothing is synchronized. Every ``flush_every`` steps the buffer
  is copied to the host once (non-blocking) and a background thread writes the events.
- A step counts only when the optimizer actually stepped since the previous `step` call: a
  step that AMP's ``GradScaler`` skipped (inf/NaN gradients) is not a step, and with gradient
  accumulation only the call after the optimizer step records (the norm then covers the
  accumulated gradients; the batch size inferred covers all micro-batches).
  Under ``GradScaler`` the hook sees unscaled gradients: ``scaler.step`` unscales before it
  calls ``optimizer.step``, and `clip_grad_norm_` unscales first when given the scaler.
- Distributed (DDP): rank 0 writes, the other ranks do nothing (``per_rank=True``: every rank
  writes its own run ``<logdir>/rank<N>``). After DDP's all-reduce every rank holds the global
  gradients, so rank 0's norm is the global norm. With sharded parameters (FSDP, ZeRO) pass
  ``grad_norm_all_reduce=True``: every rank then all-reduces its squared norm.
- Nothing it does raises into the training loop after construction: a failure (disk full,
  file removed) is one `CollectorWarning` and logging stops while training goes on. The run is
  flushed and closed on exit from the ``with`` block (normal or by exception), at interpreter
  exit, and flushed on SIGTERM/SIGINT (`shutdown.py`).

Limitation: gradients clipped by the user's own ``torch.nn.utils.clip_grad_norm_`` call are
seen after clipping; use `Collector.clip_grad_norm_` (same signature and return value), or pass
``grad_clip=`` so the analyzers at least know the max norm.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from tensorboard.compat.proto import event_pb2
from torch import nn

from lrdoctor.collectors import hparams, shutdown, tags
from lrdoctor.collectors.buffer import StepBuffer
from lrdoctor.collectors.writer import BackgroundWriter, CollectorError

RUN_KINDS = ("train", "lr_range_test")
# The buffer holds flush_every rows with a view per cell; past this the saving is nil anyway.
MAX_FLUSH_EVERY = 1000
# step() calls without any optimizer step after which the user is warned once (a wrong optimizer?).
NO_STEP_WARNING_CALLS = 100
Number = int | float


class CollectorWarning(RuntimeWarning):
    """The collector stopped logging (the training itself goes on)."""


class Collector:
    """Logs loss, gradient norm, LRs and a run description to TensorBoard event files.

    Args:
        logdir: directory of this run (created if missing); one event file per collector.
        model: the trained module (model kind, normalization layers, parameter count, classes;
            batch size inference; per-module gradient norms).
        optimizer: its optimizer; hooked for gradient norm and LRs. Without it every `step`
            call is a step and only the given scalars are logged.
        batch_size: samples per optimizer step, all ranks together. None: inferred from the
            first dimension of the model's inputs between two optimizer steps, times the world size.
        flush_every: steps kept on the device between two host copies (1 to 1000).
        grad_clip: max gradient norm if the loop clips by itself (recorded, not applied).
        scheduler: the LR scheduler (its class is recorded).
        scaler: AMP ``GradScaler`` (recorded; `clip_grad_norm_` unscales through it).
        module_grad_norm_every: log each top-level module's gradient norm every this many
            steps (0: never).
        run_kind: "train" or "lr_range_test".
        info: extra facts for the run description (JSON scalars or lists).
        start_step: number of the first step (to continue a resumed run).
        per_rank: under torch.distributed, every rank writes ``<logdir>/rank<N>``.
        grad_norm_all_reduce: all-reduce squared gradient norms over ranks (sharded parameters).
        handle_signals: flush on SIGTERM/SIGINT (installed from the main thread only).

    Attributes:
        logdir: the run directory written (``<logdir>/rank<N>`` with ``per_rank``).
        path: the event file, or None on a rank that does not write.
        rank: this process's rank (0 when not distributed).
        first_nonfinite_step: first step holding a NaN/inf value (any tag), known once the
            block holding it is written; None so far.
        skipped_calls: `step` calls that recorded nothing (no optimizer step since the last).

    Raises:
        CollectorError: the logdir cannot be created or written.
        ValueError, TypeError: an argument is out of range or of the wrong type.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        *,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        batch_size: int | None = None,
        flush_every: int = 100,
        grad_clip: float | None = None,
        scheduler: object | None = None,
        scaler: torch.amp.GradScaler | None = None,
        module_grad_norm_every: int = 0,
        run_kind: str = "train",
        info: Mapping[str, Any] | None = None,
        start_step: int = 0,
        per_rank: bool = False,
        grad_norm_all_reduce: bool = False,
        handle_signals: bool = True,
    ) -> None:
        _check_args(
            model, optimizer, batch_size, flush_every, grad_clip, module_grad_norm_every, run_kind, start_step
        )
        rank, world_size = _rank_and_world_size()
        self.logdir = (
            os.path.join(os.fspath(logdir), f"rank{rank}")
            if per_rank and world_size > 1
            else os.fspath(logdir)
        )
        self.rank = rank
        self._pid = os.getpid()
        self._model = model
        self._optimizer = optimizer
        self._scaler = scaler
        self._writes = per_rank or rank == 0
        self._all_reduce = grad_norm_all_reduce and world_size > 1
        self._world_size = world_size
        self._module_every = module_grad_norm_every
        self._step = self._start_step = start_step
        self._closed = False
        self._failed = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        # Set by the optimizer hook, consumed by step().
        self._opt_steps = 0
        # The gradient norm as parts whose L2 norm is the total: per-tensor norms, or the total.
        self._grad_norm: Sequence[torch.Tensor] | None = None
        self._scratch_cells: Sequence[torch.Tensor] = ()  # see _norms_in_scratch
        self._lrs: list[Any] = []  # each group's "lr" as stored (float, or tensor when capturable)
        self._module_norms: Sequence[tuple[str, list[torch.Tensor]]] = ()
        # The optimizer's parameters, listed again when a param group is added.
        self._param_list: list[torch.Tensor] = []
        self._param_groups_seen = -1
        self.skipped_calls = 0  # step() calls without an optimizer step (AMP skips, micro-batches)
        self._samples = 0  # model inputs seen since the last optimizer step (batch size inference)
        self._batch_size = batch_size
        self._grad_clip = grad_clip
        self.first_nonfinite_step: int | None = None
        self._session_written = False
        self._info_lock = threading.Lock()

        self._forward_hook: torch.utils.hooks.RemovableHandle | None = None
        self._writer: BackgroundWriter | None = None
        self.path: str | None = None
        self._info: dict[str, Any] = {}
        if not self._writes and not self._all_reduce:
            self._closed = True  # a silent rank: no file, no hooks
            return
        if self._writes:
            self._writer = BackgroundWriter(self.logdir)
            self.path = self._writer.path
        self._buffer = StepBuffer(flush_every, _model_device(model))
        # Columns looked up once: step() runs on every training step.
        self._loss_col = self._buffer.column(tags.LOSS)
        self._norm_col = self._buffer.column(tags.GRAD_NORM)
        self._lr_cols: list[int] = []
        self._scalar_cols: dict[str, int] = {}
        try:
            self._info = hparams.describe_run(
                model,
                optimizer,
                batch_size=batch_size,
                grad_clip=grad_clip,
                scheduler=scheduler,
                amp=scaler is not None and scaler.is_enabled(),
                world_size=world_size,
                run_kind=run_kind,
                extra=info,
            )
        except BaseException:
            if self._writer is not None:  # no thread or open file left behind by a failed start
                self._writer.close()
            raise
        if optimizer is not None:
            self._handles.append(optimizer.register_step_pre_hook(self._before_optimizer_step))
        if model is not None and batch_size is None:
            self._forward_hook = model.register_forward_pre_hook(self._count_samples, with_kwargs=True)
            self._handles.append(self._forward_hook)
        self._submit_info()
        if handle_signals:
            shutdown.register(self)
        atexit.register(self.close)

    # -- the training loop's calls -------------------------------------------------------------

    def step(self, loss: torch.Tensor | Number, **scalars: torch.Tensor | Number) -> None:
        """Record one optimizer step: ``loss``, the hooked gradient norm and LRs, ``scalars``.

        Call once per optimizer step, after ``optimizer.step()``. A call when the optimizer has
        not stepped since the previous call records nothing (an AMP step that ``GradScaler``
        skipped; a gradient-accumulation micro-batch): it is counted in `skipped_calls`.
        Keyword names ``accuracy``, ``val_loss`` and ``val_accuracy`` have tags of their own;
        others go to ``lrdoctor/extra/<name>``. Never synchronizes with the device; never raises.

        Args:
            loss: training loss of this step (tensor on any device, or a number). With gradient
                accumulation, pass the loss to log (e.g. the mean over the micro-batches).
            **scalars: more values of this step (tensors or numbers).
        """
        if self._closed or self._failed:
            return
        try:
            if self._optimizer is not None and self._opt_steps == 0:
                self.skipped_calls += 1
                if self.skipped_calls == NO_STEP_WARNING_CALLS and self._step == self._start_step:
                    warnings.warn(
                        f"lrdoctor: {NO_STEP_WARNING_CALLS} step() calls and no optimizer step seen; "
                        "pass the optimizer object that actually steps (nothing is logged until it does)",
                        CollectorWarning,
                        stacklevel=2,
                    )
                return
            if self._writer is not None:  # a rank that only takes part in the norm all-reduce writes nothing
                self._record_step(loss, scalars)
            self._step += 1
            self._opt_steps, self._grad_norm, self._module_norms = 0, None, ()
        except Exception as e:  # never break the user's training
            self._fail(e)

    def _record_step(self, loss: torch.Tensor | Number, scalars: Mapping[str, torch.Tensor | Number]) -> None:
        buf = self._buffer
        put = buf.put
        put(self._loss_col, loss)
        if self._grad_norm is not None:
            buf.put_norm(self._norm_col, self._grad_norm)
        lrs = self._lrs
        if len(lrs) > len(self._lr_cols):  # first step, or a param group added
            self._lr_cols = [buf.column(tags.lr_tag(group)) for group in range(len(lrs))]
        for col, lr in zip(self._lr_cols, lrs, strict=False):
            put(col, lr)
        for tag, parts in self._module_norms:
            buf.put_norm(buf.column(tag), parts)
        for name, value in scalars.items():
            col = self._scalar_cols.get(name)
            if col is None:
                col = self._scalar_cols[name] = buf.column(tags.scalar_tag(name))
            put(col, value)
        full = buf.end_row(self._step, time.time())
        if not self._session_written:
            self._start_session()
        if full:
            self.flush()

    def log(self, **scalars: torch.Tensor | Number) -> None:
        """Record scalars at the last recorded step without counting a step (e.g. ``val_loss``).

        Args:
            **scalars: values by name, as in `step`.
        """
        if self._closed or self._failed or not scalars or self._writer is None:
            return
        try:
            buf = self._buffer
            for name, value in scalars.items():
                buf.put(buf.column(tags.scalar_tag(name)), value)
            if buf.end_row(max(self._step - 1, 0), time.time()):
                self.flush()
        except Exception as e:
            self._fail(e)

    def clip_grad_norm_(
        self, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
    ) -> torch.Tensor:
        """Clip the optimizer's gradients like ``torch.nn.utils.clip_grad_norm_`` and record it.

        The total norm before clipping becomes this step's ``lrdoctor/grad_norm``; ``max_norm``
        goes into the run description (``grad_clip``). With a ``GradScaler`` given at
        construction the gradients are unscaled first (unless already done).

        Args:
            max_norm: max total norm of the gradients.
            norm_type: type of the norm (2.0: L2).
            error_if_nonfinite: raise if the total norm is NaN or inf (as torch does).

        Returns:
            The total norm of the gradients before clipping (a tensor; not synchronized).
        """
        params = self._params()
        if self._scaler is not None and self._scaler.is_enabled() and self._optimizer is not None:
            try:
                self._scaler.unscale_(self._optimizer)
            except RuntimeError:  # already unscaled for this step
                pass
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type, error_if_nonfinite)
        if not self._closed and not self._failed:
            if norm_type == 2.0:
                self._grad_norm = [self._reduced(total)]
            if self._grad_clip != max_norm:
                self._grad_clip = float(max_norm)
                self.update_info(grad_clip=self._grad_clip)
        return total

    def update_info(self, **values: Any) -> None:
        """Add facts to the run description; it is written again (later values win).

        Args:
            **values: JSON scalars or lists (e.g. ``suggested_lr=0.03``).
        """
        if self._closed or self._failed:
            return
        with self._info_lock:
            self._info = {**self._info, **values}
        self._submit_info()

    # -- flushing and closing ------------------------------------------------------------------

    def flush(self, wait: bool = False) -> None:
        """Copy buffered steps to the host and queue them for writing.

        Args:
            wait: block until they are written and flushed to the OS.
        """
        if self._closed or self._failed or self._writer is None:
            return
        job = self._buffer.take(self._on_nonfinite)
        if job is not None:
            self._writer.submit(job)
        if wait:
            self._writer.flush()
        self._check_writer()

    def close(self, failed: bool = False) -> None:
        """Write everything, end the HParams session and close the file (idempotent).

        Args:
            failed: the training ended by an exception (recorded as the session status).
        """
        if self._closed:
            return
        if os.getpid() != self._pid:  # a forked child: the file and its writer belong to the parent
            self._closed = True
            return
        try:
            self.flush()
            if self._writer is not None and not self._failed:
                self._start_session()
                self._writer.submit(lambda: [hparams.session_end_event(failed)])
        finally:
            self._closed = True
            self._remove_hooks()
            if self._writer is not None:
                self._writer.close()
                self._check_writer()

    def flush_for_signal(self) -> None:
        """Write buffered steps and wait for the writer (called by the signal handler).

        Nothing happens in a forked child (e.g. a DataLoader worker that inherited the handler):
        the writer thread lives in the parent only, and waiting for it would hang the child.
        """
        if os.getpid() != self._pid:
            return
        try:
            self.flush(wait=True)
        except Exception as e:
            self._fail(e)

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        self.close(failed=exc_type is not None)

    @property
    def info(self) -> dict[str, Any]:
        """The run description as last written (a copy)."""
        return dict(self._info)

    @property
    def steps(self) -> int:
        """Number of the next step to be recorded."""
        return self._step

    # -- hooks ---------------------------------------------------------------------------------

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._closed or self._failed:
            return
        try:
            self._opt_steps += 1
            self._lrs = [group["lr"] for group in optimizer.param_groups]
            if self._grad_norm is None:  # not already taken before clipping
                self._grad_norm = self._norm_parts(self._params(), reuse=True)
            if self._module_every and self._model is not None and self._step % self._module_every == 0:
                self._module_norms = [
                    (tags.module_grad_norm_tag(name), self._norm_parts(child.parameters()))
                    for name, child in _unwrapped(self._model).named_children()
                    if any(p.grad is not None for p in child.parameters())
                ]
            if self._batch_size is None and self._samples:
                self._batch_size = self._samples * self._world_size
                if self._forward_hook is not None:  # inference is done
                    self._forward_hook.remove()
                self.update_info(batch_size=self._batch_size)
            self._samples = 0
        except Exception as e:
            self._fail(e)

    def _count_samples(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if module.training and self._batch_size is None:
            first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
            if first is not None and first.dim() > 0:
                self._samples += first.shape[0]

    # -- internals -----------------------------------------------------------------------------

    def _params(self) -> list[torch.Tensor]:
        """The parameters whose gradients are measured: the optimizer's, else the model's."""
        if self._optimizer is None:
            return list(self._model.parameters()) if self._model is not None else []
        groups = self._optimizer.param_groups
        if len(groups) != self._param_groups_seen:  # add_param_group() is how params are added
            self._param_list = [p for group in groups for p in group["params"]]
            self._param_groups_seen = len(groups)
        return self._param_list

    def _norm_parts(
        self, params: Iterable[torch.Tensor], reuse: bool = False
    ) -> Sequence[torch.Tensor] | None:
        """Gradient norms of ``params`` whose L2 norm is their total norm, or None if no gradient.

        Args:
            params: the parameters.
            reuse: CPU gradients' norms may go into this collector's scratch cells (overwritten
                by the next call with ``reuse``).
        """
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return None
        scratch = reuse and grads[0].is_cpu and grads[0].dtype == torch.float32
        parts = self._norms_in_scratch(grads) if scratch else None
        if parts is None:
            parts = _grad_norms(grads)
        if self._all_reduce:
            return [self._reduced(torch.linalg.vector_norm(torch.stack(parts)))]
        return parts

    def _norms_in_scratch(self, grads: list[torch.Tensor]) -> Sequence[torch.Tensor] | None:
        """CPU: each gradient's norm written into a preallocated cell, or None if one cannot be.

        No tensor is allocated per step. Measured with ``benchmarks/bench_collector.py``: with
        new tensors per step (the fused kernel's, alive from this hook to `step`), the small
        CNN's overhead swung from run to run between -3.3 % and +6.7 % (its own kernels' speed
        depends on where its tensors land in memory); with these cells it stayed within +0.4 to
        +1.6 % in six runs.
        """
        cells = self._scratch_cells
        if len(cells) != len(grads):
            cells = self._scratch_cells = torch.zeros(len(grads)).unbind(0)
        try:
            for grad, cell in zip(grads, cells, strict=True):
                torch.linalg.vector_norm(grad, out=cell)
        except RuntimeError:  # sparse, not all float32, needing grad (create_graph=True), ...
            return None
        return cells

    def _reduced(self, norm: torch.Tensor) -> torch.Tensor:
        """The global norm when parameters are sharded over ranks (all-reduce of squares)."""
        if not self._all_reduce:
            return norm
        squared = norm.double() ** 2
        torch.distributed.all_reduce(squared)
        return squared.sqrt()

    def _start_session(self) -> None:
        if self._writer is None or self._session_written:
            return
        self._session_written = True
        info = self.info
        group = os.path.basename(os.path.normpath(self.logdir))
        self._writer.submit(lambda: [hparams.session_start_event(info, group)])

    def _submit_info(self) -> None:
        if self._writer is not None:
            info, step = self.info, self._step
            self._writer.submit(lambda: [hparams.run_info_event(info, step)])

    def _on_nonfinite(self, step: int, bad_tags: list[str]) -> Iterable[event_pb2.Event]:
        # Runs on the writer thread.
        if self.first_nonfinite_step is not None:
            return []
        self.first_nonfinite_step = step
        with self._info_lock:
            self._info = {**self._info, "first_nonfinite_step": step, "first_nonfinite_tags": bad_tags}
        return [hparams.run_info_event(self._info, step)]

    def _check_writer(self) -> None:
        if self._writer is not None and self._writer.error and not self._failed:
            self._failed = True
            self._remove_hooks()
            warnings.warn(
                f"lrdoctor: cannot write {self._writer.error}; logging stopped, training goes on",
                CollectorWarning,
                stacklevel=3,
            )

    def _fail(self, error: Exception) -> None:
        if self._failed:
            return
        self._failed = True
        self._remove_hooks()
        warnings.warn(
            f"lrdoctor: collector for {self.logdir} failed ({type(error).__name__}: {error}); "
            "logging stopped, training goes on",
            CollectorWarning,
            stacklevel=3,
        )

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        shutdown.unregister(self)
        atexit.unregister(self.close)


def _grad_norms(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """L2 norms of ``grads`` (one fused kernel), whose own L2 norm is the total gradient norm.

    Gradients on several devices, or sparse ones, give a single part: the total, from torch's
    slower general function.
    """
    try:
        return torch._foreach_norm(grads)
    except RuntimeError:
        return [torch.nn.utils.get_total_norm(grads)]


def _unwrapped(model: nn.Module) -> nn.Module:
    """The user's model inside a (Distributed)DataParallel wrapper, whose only child it is."""
    if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        return model.module
    return model


def _model_device(model: nn.Module | None) -> torch.device | None:
    param = next(model.parameters(), None) if model is not None else None
    return param.device if param is not None else None


def _rank_and_world_size() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_args(
    model: object,
    optimizer: object,
    batch_size: object,
    flush_every: object,
    grad_clip: object,
    module_grad_norm_every: object,
    run_kind: object,
    start_step: object,
) -> None:
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("flush_every", flush_every, 1),
        ("module_grad_norm_every", module_grad_norm_every, 0),
        ("start_step", start_step, 0),
    ):
        if value is None and name == "batch_size":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if grad_clip is not None and (not isinstance(grad_clip, int | float) or not grad_clip > 0):
        raise ValueError(f"grad_clip must be a number > 0 or None, got {grad_clip!r}")
    if flush_every > MAX_FLUSH_EVERY:
        raise ValueError(f"flush_every must be <= {MAX_FLUSH_EVERY} steps, got {flush_every!r}")
    if run_kind not in RUN_KINDS:
        raise ValueError(f"run_kind must be one of {', '.join(RUN_KINDS)}, got {run_kind!r}")


__all__ = ["Collector", "CollectorError", "CollectorWarning", "RUN_KINDS"]
