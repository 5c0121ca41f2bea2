"""Per-step values kept where they were computed, copied to the host once per flush.

`StepBuffer` holds up to ``capacity`` rows (one per logged step) of named columns (tags). The
values of a row are *staged* by `StepBuffer.put` (tensors stay on their device, plain numbers on
the host) and the row is closed by `StepBuffer.end_row`, which writes all its tensor values into
the row of a preallocated float32 device tensor with ONE ``torch.stack(..., out=row)``: no
``.item()``, no host copy, no synchronization per step. Each row keeps, on the host, the
layout of its device values and its host values, so absent values need no sentinel and NaN
stays a value. A column may also be the L2 norm of several device values (`StepBuffer.put_norm`:
the per-tensor gradient norms), taken in float64 when the block is written.

How the values get there was measured in a real training loop (``benchmarks/bench_collector.py``;
after forward and backward the caches hold the model's code and data, not ours): on CPU the
first call of each kind of kernel costs 5-30 us, later calls of the same kind about 1 us, so a
few values are copied one by one (``copy_`` is warm: the training loop uses it too), which beat
one ``torch.stack`` by ~10 us per step; many values, and any accelerator (where every op is a
launch), take one ``torch.stack(..., out=row)``.

`StepBuffer.take` is the one place where device values reach the host: it marks rows holding a
non-finite value (on the device), starts one non-blocking copy of the used rows (into pinned
memory on CUDA) and returns a *job* that, run later on the writer thread, waits for that copy
and turns the rows into serialized TensorBoard events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from tensorboard.compat.proto import event_pb2

from lrdoctor.collectors.writer import scalar_event, scalar_value_prefix

# Device rows are allocated this many values wide at a time (plus one non-finite flag column).
COLUMN_CHUNK = 8
# On CPU, rows of up to this many tensor values are copied value by value (see above).
CPU_COPY_MAX = 32

# Called on the writer thread with the step and tags of the first non-finite value in a flushed
# block; returns events to append after the block (e.g. an updated run description).
NonFiniteCallback = Callable[[int, list[str]], Iterable[event_pb2.Event]]


class StepBuffer:
    """A fixed number of rows of scalar values, each row one logged step.

    A column set twice in one row keeps the later value of the same kind (tensor or number);
    a number wins over a tensor. The collector never does either.

    Args:
        capacity: rows held before `take` must be called (the flush interval, in steps).
        device: where tensor values are kept; None: the device of the first tensor values.
    """

    def __init__(self, capacity: int, device: torch.device | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 step, got {capacity}")
        self.capacity = capacity
        self.device = device
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._prefixes: list[bytes] = []  # serialized start of each column's summary value
        self.rows = 0
        self._steps = [0] * capacity
        self._wall = [0.0] * capacity
        # Per closed row: the layout of its device row, (column, parts) in order, parts 0 for a
        # value and N for the L2 norm of N values; and its host values as (columns, numbers).
        self._dev_cols: list[list[tuple[int, int]]] = [[] for _ in range(capacity)]
        self._host_cells: list[tuple[list[int], list[float]]] = [([], []) for _ in range(capacity)]
        # The row being filled.
        self._staged_cols: list[tuple[int, int]] = []
        self._staged_tensors: list[torch.Tensor] = []
        self._staged_host: tuple[list[int], list[float]] = ([], [])
        self._dev: torch.Tensor | None = None  # (capacity, width + 1); last column: non-finite flag
        # Views of the first k values of every device row, by k, and of every cell, made once:
        # slicing per step costs more than the copy itself.
        self._row_views: dict[int, list[torch.Tensor]] = {}
        self._cells: list[tuple[torch.Tensor, ...]] = []
        self._cpu_read_on_host = device is not None and device.type != "cpu"

    def column(self, tag: str) -> int:
        """Index of ``tag``'s column, added if new."""
        col = self._index.get(tag)
        if col is None:
            col = self._index[tag] = len(self.names)
            self.names.append(tag)
            self._prefixes.append(scalar_value_prefix(tag))
        return col

    def put(self, col: int, value: torch.Tensor | float) -> None:
        """Stage column ``col`` of the current row (a tensor stays on its device).

        Raises:
            TypeError, ValueError: ``value`` is not a number.
            RuntimeError: ``value`` is a tensor of several elements.
        """
        if isinstance(value, torch.Tensor):
            if not (self._cpu_read_on_host and value.is_cpu):
                if value.requires_grad:
                    value = value.detach()  # out= ops refuse autograd inputs
                self._staged_tensors.append(value if value.dim() == 0 else value.reshape(()))
                self._staged_cols.append((col, 0))
                return
            value = value.item()  # free for a CPU tensor; copying it to the GPU would synchronize
        cols, numbers = self._staged_host
        numbers.append(float(value))
        cols.append(col)

    def put_norm(self, col: int, parts: Sequence[torch.Tensor]) -> None:
        """Stage column ``col`` of the current row as the L2 norm of ``parts`` (0-d tensors).

        The norm is taken when the block is written: no kernel now but the row's one stack.
        """
        self._staged_tensors.extend(parts)
        self._staged_cols.append((col, len(parts)))

    def end_row(self, step: int, wall_time: float) -> bool:
        """Close the current row as ``step`` (wall time in seconds). Returns True when full."""
        row = self.rows
        tensors = self._staged_tensors
        if tensors:
            self._stack_into_row(row, tensors)
            self._staged_tensors = []
        self._dev_cols[row] = self._staged_cols
        self._host_cells[row] = self._staged_host
        self._staged_cols, self._staged_host = [], ([], [])
        self._steps[row] = step
        self._wall[row] = wall_time
        if self.rows != row:  # a signal handler's flush emptied the buffer meanwhile
            self._move_row(row, self.rows)
            row = self.rows
        self.rows = row + 1
        return self.rows >= self.capacity

    def discard_row(self) -> None:
        """Forget values staged for the current (unclosed) row."""
        self._staged_cols, self._staged_tensors, self._staged_host = [], [], ([], [])

    def take(
        self, on_nonfinite: NonFiniteCallback | None = None
    ) -> Callable[[], list[bytes | event_pb2.Event]] | None:
        """Start the host copy of the closed rows and empty the buffer.

        Args:
            on_nonfinite: called (on the writer thread) for the first row holding NaN/inf.

        Returns:
            A job for `writer.BackgroundWriter`, or None when no row was closed.
        """
        n = self.rows
        if n == 0:
            return None
        steps, wall = self._steps[:n], self._wall[:n]
        dev_cols, host_cells = self._dev_cols[:n], self._host_cells[:n]
        names, prefixes = list(self.names), list(self._prefixes)
        dev_copy, ready = None, None
        if self._dev is not None and any(dev_cols):
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

        def job() -> list[bytes | event_pb2.Event]:
            if ready is not None:
                ready.synchronize()
            dev = dev_copy.numpy() if dev_copy is not None else None
            return _to_events(names, prefixes, steps, wall, dev_cols, dev, host_cells, on_nonfinite)

        return job

    def _stack_into_row(self, row: int, tensors: list[torch.Tensor]) -> None:
        k = len(tensors)
        if self._dev is None or k >= self._dev.shape[1]:
            self._allocate(tensors[0].device, k)
        try:
            if k <= CPU_COPY_MAX and not self._cpu_read_on_host:  # a CPU buffer
                for cell, tensor in zip(self._cells[row], tensors, strict=False):
                    cell.copy_(tensor)
                return
            views = self._row_views.get(k)
            if views is None:
                views = self._row_views[k] = [r[:k] for r in self._dev.unbind(0)]
            torch.stack(tensors, out=views[row])
        except RuntimeError:  # values on another device, or needing grad (create_graph=True)
            with torch.no_grad():
                self._dev[row, :k].copy_(torch.stack([t.detach().to(self._dev.device) for t in tensors]))

    def _allocate(self, device: torch.device, values: int) -> None:
        """(Re)allocate the device rows for at least ``values`` values per row, keeping old rows."""
        self.device = self.device or device
        self._cpu_read_on_host = self.device.type != "cpu"
        width = -(-values // COLUMN_CHUNK) * COLUMN_CHUNK
        new = torch.zeros((self.capacity, width + 1), dtype=torch.float32, device=self.device)
        if self._dev is not None:
            old_width = self._dev.shape[1] - 1
            new[:, :old_width].copy_(self._dev[:, :old_width])
        self._dev = new
        self._row_views.clear()
        self._cells = [r.unbind(0) for r in new.unbind(0)]

    def _move_row(self, src: int, dst: int) -> None:
        if self._dev is not None:
            self._dev[dst].copy_(self._dev[src])
            self._dev[src].zero_()
        self._dev_cols[dst], self._host_cells[dst] = self._dev_cols[src], self._host_cells[src]
        self._steps[dst], self._wall[dst] = self._steps[src], self._wall[src]


def _to_events(
    names: list[str],
    prefixes: list[bytes],
    steps: list[int],
    wall: list[float],
    dev_layouts: list[list[tuple[int, int]]],
    dev: np.ndarray | None,
    host_cells: list[tuple[list[int], list[float]]],
    on_nonfinite: NonFiniteCallback | None,
) -> list[bytes | event_pb2.Event]:
    n, k = len(steps), len(names)
    values = np.zeros((n, k))
    present = np.zeros((n, k), dtype=bool)
    # Rows of one layout (usually all of them) are placed in a few array operations.
    for layout, rows in _rows_by_key(dev_layouts).items():
        if not layout:
            continue
        block = dev[rows].astype(np.float64)
        pos = 0
        for col, parts in layout:
            if parts:
                values[rows, col] = np.sqrt(np.square(block[:, pos : pos + parts]).sum(axis=1))
            else:
                values[rows, col] = block[:, pos]
            present[rows, col] = True
            pos += parts or 1
    for cols, rows in _rows_by_key([cols for cols, _ in host_cells]).items():
        if cols:
            values[np.ix_(rows, cols)] = [host_cells[i][1] for i in rows]
            present[np.ix_(rows, cols)] = True
    with np.errstate(over="ignore"):  # a number beyond float32 is written as inf, as protobuf does
        packed = values.astype(np.float32)
    finite = np.isfinite(packed) | ~present
    flagged = dev[:, -1] != 0 if dev is not None else np.zeros(n, dtype=bool)
    bad_rows = np.flatnonzero(~finite.all(axis=1) | flagged)
    events: list[bytes | event_pb2.Event] = []
    raw = packed.tobytes()
    uniform = bool((present == present[0]).all())
    row_cols = np.flatnonzero(present[0]).tolist()
    for i, (wall_time, step) in enumerate(zip(wall, steps, strict=True)):
        if not uniform:
            row_cols = np.flatnonzero(present[i]).tolist()
        start = 4 * k * i
        cells = b"".join([prefixes[c] + raw[start + 4 * c : start + 4 * c + 4] for c in row_cols])
        events.append(scalar_event(wall_time, step, cells))
    if len(bad_rows) and on_nonfinite is not None:
        i = int(bad_rows[0])
        events.extend(on_nonfinite(steps[i], [names[c] for c in np.flatnonzero(~finite[i]).tolist()]))
    return events


def _rows_by_key(keys: list[list]) -> dict[tuple, list[int]]:
    """Row indices by key (a row's layout), keys made hashable."""
    rows: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        rows.setdefault(tuple(key), []).append(i)
    return rows
