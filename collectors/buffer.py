"""Per-step values kept where they were computed, copied to the host once per flush.

`StepBuffer` holds up to ``capacity`` rows (one per logged step) of named columns (tags). A
value given as a tensor is copied, on its device, into a preallocated float32 tensor: no
``.item()``, no host copy, no synchronization per step. A plain number goes to a host array.
Which of the two a cell holds is known on the host (masks), so absent values need no sentinel
and NaN stays a value.

`StepBuffer.take` is the one place where device values reach the host: it marks rows holding a
non-finite value (on the device), starts one non-blocking copy of the used rows (into pinned
memory on CUDA) and returns a *job* that, run later on the writer thread, waits for that copy
and turns the rows into TensorBoard events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from tensorboard.compat.proto import event_pb2, summary_pb2

# Columns are added in chunks so that a run logging a few extra scalars reallocates rarely.
COLUMN_CHUNK = 8

# Called on the writer thread with the step and tags of the first non-finite value in a flushed
# block; returns events to append after the block (e.g. an updated run description).
NonFiniteCallback = Callable[[int, list[str]], Iterable[event_pb2.Event]]


class StepBuffer:
    """A fixed number of rows of scalar values, each row one logged step.

    Args:
        capacity: rows held before `take` must be called (the flush interval, in steps).
        device: where tensor values are kept; None: the device of the first tensor value.
    """

    def __init__(self, capacity: int, device: torch.device | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 step, got {capacity}")
        self.capacity = capacity
        self.device = device
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self.rows = 0
        self._steps = np.zeros(capacity, dtype=np.int64)
        self._wall = np.zeros(capacity, dtype=np.float64)
        self._alloc_cols = 0
        self._host = np.zeros((capacity, 0))
        self._host_mask = np.zeros((capacity, 0), dtype=bool)
        self._dev_mask = np.zeros((capacity, 0), dtype=bool)
        self._dev: torch.Tensor | None = None  # (capacity, _alloc_cols + 1); last column: non-finite flag
        # One 0-d view per cell of _dev, made once: indexing costs more than the copy itself.
        self._cells: list[tuple[torch.Tensor, ...]] | None = None

    def column(self, tag: str) -> int:
        """Index of ``tag``'s column, added if new."""
        col = self._index.get(tag)
        if col is None:
            col = self._index[tag] = len(self.names)
            self.names.append(tag)
            if col >= self._alloc_cols:
                self._grow(self._alloc_cols + COLUMN_CHUNK)
        return col

    def put(self, col: int, value: torch.Tensor | float) -> None:
        """Set column ``col`` of the current row (a tensor stays on its device)."""
        row = self.rows
        if (
            isinstance(value, torch.Tensor)
            and value.is_cpu
            and self.device is not None
            and self.device.type != "cpu"
        ):
            value = value.item()  # free for a CPU tensor; copying it to the GPU would synchronize
        if isinstance(value, torch.Tensor):
            if self._cells is None:
                self._allocate_device(value.device)
            if value.requires_grad:
                value = value.detach()  # else the buffer would join the autograd graph
            self._cells[row][col].copy_(value if value.dim() == 0 else value.reshape(()))
            self._dev_mask[row, col] = True
            self._host_mask[row, col] = False
        else:
            self._host[row, col] = value
            self._host_mask[row, col] = True
            self._dev_mask[row, col] = False

    def end_row(self, step: int, wall_time: float) -> bool:
        """Close the current row as ``step`` (wall time in seconds). Returns True when full."""
        self._steps[self.rows] = step
        self._wall[self.rows] = wall_time
        self.rows += 1
        return self.rows >= self.capacity

    def discard_row(self) -> None:
        """Forget values put into the current (unclosed) row."""
        self._host_mask[self.rows] = False
        self._dev_mask[self.rows] = False

    def take(
        self, on_nonfinite: NonFiniteCallback | None = None
    ) -> Callable[[], list[event_pb2.Event]] | None:
        """Start the host copy of the closed rows and empty the buffer.

        Args:
            on_nonfinite: called (on the writer thread) for the first row holding NaN/inf.

        Returns:
            A job for `writer.BackgroundWriter`, or None when no row was closed.
        """
        n = self.rows
        if n == 0:
            return None
        steps, wall = self._steps[:n].copy(), self._wall[:n].copy()
        host, host_mask = self._host[:n].copy(), self._host_mask[:n].copy()
        dev_mask = self._dev_mask[:n].copy()
        names = list(self.names)
        dev_copy, ready = None, None
        if self._dev is not None and dev_mask.any():
            used = self._dev[:n]
            # Non-finite detection on the device: the flag column rides along with the one copy.
            used[:, -1].copy_(torch.isfinite(used[:, :-1]).logical_not_().any(dim=1))
            if used.is_cuda:
                dev_copy = torch.empty(used.shape, dtype=used.dtype, pin_memory=True)
                dev_copy.copy_(used, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
            else:
                dev_copy = used.clone()
            used.zero_()  # stale values must not raise the flag of a later block
        self.rows = 0
        # All rows, not just n: a signal handler may flush while step() is filling row n.
        self._host_mask[:] = False
        self._dev_mask[:] = False

        def job() -> list[event_pb2.Event]:
            if ready is not None:
                ready.synchronize()
            dev = dev_copy.numpy() if dev_copy is not None else None
            return _to_events(names, steps, wall, host, host_mask, dev, dev_mask, on_nonfinite)

        return job

    def _allocate_device(self, device: torch.device) -> None:
        self.device = self.device or device
        self._set_device_storage(
            torch.zeros((self.capacity, self._alloc_cols + 1), dtype=torch.float32, device=self.device)
        )

    def _set_device_storage(self, dev: torch.Tensor) -> None:
        self._dev = dev
        self._cells = [row.unbind(0) for row in dev.unbind(0)]

    def _grow(self, cols: int) -> None:
        extra = cols - self._alloc_cols
        pad = ((0, 0), (0, extra))
        self._host = np.pad(self._host, pad)
        self._host_mask = np.pad(self._host_mask, pad)
        self._dev_mask = np.pad(self._dev_mask, pad)
        if self._dev is not None:
            old = self._dev
            new = torch.zeros((self.capacity, cols + 1), dtype=old.dtype, device=old.device)
            new[:, : self._alloc_cols].copy_(old[:, :-1])
            self._set_device_storage(new)
        self._alloc_cols = cols


def _to_events(
    names: list[str],
    steps: np.ndarray,
    wall: np.ndarray,
    host: np.ndarray,
    host_mask: np.ndarray,
    dev: np.ndarray | None,
    dev_mask: np.ndarray,
    on_nonfinite: NonFiniteCallback | None,
) -> list[event_pb2.Event]:
    n, k = len(steps), len(names)
    dev_mask, host_mask = dev_mask[:, :k], host_mask[:, :k]
    # One value per cell: the device copy where the device cell was set, else the host one.
    values = np.where(dev_mask, dev[:, :k], host[:, :k]) if dev is not None else host[:, :k]
    present = dev_mask | host_mask
    flagged = dev[:, -1] != 0 if dev is not None else np.zeros(n, dtype=bool)
    finite = np.isfinite(values) | ~present
    first_bad: tuple[int, list[str]] | None = None
    bad_rows = np.flatnonzero(~finite.all(axis=1) | flagged)
    if len(bad_rows):
        i = int(bad_rows[0])
        first_bad = (int(steps[i]), [t for t, ok in zip(names, finite[i].tolist(), strict=True) if not ok])
    # Python lists: element access on numpy arrays costs more than building the protos.
    Value, Summary, Event = summary_pb2.Summary.Value, summary_pb2.Summary, event_pb2.Event
    events = []
    for step, wall_time, row, mask in zip(
        steps.tolist(), wall.tolist(), values.tolist(), present.tolist(), strict=True
    ):
        cells = [Value(tag=tag, simple_value=v) for tag, v, m in zip(names, row, mask, strict=True) if m]
        events.append(Event(wall_time=wall_time, step=step, summary=Summary(value=cells)))
    if first_bad is not None and on_nonfinite is not None:
        events.extend(on_nonfinite(*first_bad))
    return events
