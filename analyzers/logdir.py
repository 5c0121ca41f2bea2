"""A logdir on disk -> `Run` objects, incrementally.

Discovery: every directory under the logdir that directly holds a file whose name contains
``tfevents`` is a run directory. Two kinds of sub-folder are folded into their parent run
instead of becoming runs of their own:

- *hparams sub-runs*: what ``SummaryWriter.add_hparams`` writes, a folder (typically named by a
  timestamp) holding HParams plugin data and at most one scalar tag; its hyperparameters (and
  that tag) go to the nearest ancestor that is a run;
- *Keras splits*: ``train/`` and ``validation/`` sibling folders whose parent holds no event
  files of its own (``tf.keras.callbacks.TensorBoard`` writes ``<logdir>/train`` and
  ``<logdir>/validation``): both become one run named by the parent, the validation tags
  prefixed ``validation/``.

Reading is incremental (`Logdir.refresh`): each file remembers the offset just past its last
complete record, and a later refresh reads only the bytes added since. A record still being
written is left for the next refresh. A file that shrank was replaced: it is read again.
Files with new bytes are read in worker processes when there are enough bytes to pay for
them (first reads of big logdirs); see `_parallel_ok` for when that is safe.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from lrdoctor.analyzers import events, records, tags
from lrdoctor.analyzers.run import Run, Series

# Event files are read this many bytes at a time (bounds the memory a huge file needs).
READ_CHUNK_BYTES = 64 << 20
# Below this many new bytes in all, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 16 << 20
_SPLITS = {"train": "", "validation": "validation/"}
_CANONICAL_HPARAMS = {
    "lr": ("lr", "learning_rate", "initial_lr", "base_lr"),
    "batch_size": ("batch_size", "train_batch_size", "per_device_train_batch_size", "batchsize", "bs"),
    "optimizer": ("optimizer", "optim", "optimizer_name", "opt"),
    "momentum": ("momentum",),
    "weight_decay": ("weight_decay", "wd"),
    "grad_clip": ("grad_clip", "max_grad_norm", "gradient_clip_val", "clip_grad_norm", "grad_clip_norm"),
}


class LogdirError(Exception):
    """The logdir cannot be read at all (does not exist, is not a directory)."""


def is_event_file(name: str) -> bool:
    """True for TensorBoard event file names (``events.out.tfevents.*`` and variants)."""
    return "tfevents" in name


def file_order_key(name: str) -> tuple:
    """Sort key for event files in one run: by the timestamp in the name, then the name read
    naturally (numbers as numbers, so the writer counter ``.10`` comes after ``.2``)."""
    m = re.search(r"tfevents\.(\d+)", name)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)
    return (int(m.group(1)) if m else 0, parts)


@dataclass(slots=True)
class _ReadResult:
    """What one read of the new bytes of one file gave (built in a worker process when parallel)."""

    end: int
    parsed: events.Parsed | None = None
    error: str | None = None


def read_new_bytes(path: str, offset: int, plugins: dict[str, str]) -> _ReadResult:
    """Read ``path`` from ``offset`` to its end, frame and parse the complete records.

    A big file is read `READ_CHUNK_BYTES` at a time (more if one record is longer), so memory
    for bytes and temporaries stays bounded whatever the file's size.

    Args:
        path: event file.
        offset: file offset of the first unread record.
        plugins: tag -> plugin remembered from earlier reads of this file.

    Returns:
        A `_ReadResult`: the offset past the last complete record and what the records hold,
        or ``error`` (a one-line warning) when the file cannot be opened or read.
    """
    parts: list[events.Parsed] = []
    end, chunk = offset, READ_CHUNK_BYTES
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while end < size:
                f.seek(end)
                buf = records.Buffer.read(f, min(chunk, size - end))
                final = end + buf.size >= size
                framed = records.frame(buf, path, end, final=final)
                if framed.end == end:  # not one whole record in this chunk
                    if final:
                        break  # a record still being written
                    chunk *= 2  # a record longer than the chunk
                    continue
                parsed = events.parse(buf, framed, path, end, plugins)
                parsed.warnings[:0] = framed.warnings
                parts.append(parsed)
                plugins, end = parsed.plugins, framed.end
                if final:
                    break
    except OSError as e:
        return _ReadResult(end=offset, error=f"{path}:{end}: cannot read ({e.strerror or e})")
    return _ReadResult(end=end, parsed=events.concat(parts, plugins))


class _Growing:
    """One tag's points from one file, grown in place so that a live file's refresh is cheap.

    A first read keeps the parsed arrays as they are (no slack: memory is 24 bytes per point);
    later reads append into spare capacity, over-allocating by half when it runs out. Callers
    only ever get views of the filled part, so `Series` handed out earlier never change.
    """

    __slots__ = ("arrays", "n")

    def __init__(self, points: events.Points) -> None:
        self.arrays = list(points)
        self.n = len(points[0])

    def append(self, points: events.Points) -> None:
        m = len(points[0])
        if self.n + m > len(self.arrays[0]):
            cap = max(self.n + m, self.n * 3 // 2)
            grown = [np.empty(cap, dtype=a.dtype) for a in self.arrays]
            for g, a in zip(grown, self.arrays, strict=True):
                g[: self.n] = a[: self.n]
            self.arrays = grown
        for a, p in zip(self.arrays, points, strict=True):
            a[self.n : self.n + m] = p
        self.n += m

    def view(self) -> events.Points:
        return tuple(a[: self.n] for a in self.arrays)


@dataclass(slots=True)
class _FileState:
    path: str
    offset: int = 0
    size: int = -1
    mtime: float = 0.0
    plugins: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, object] = field(default_factory=dict)
    run_info: dict[str, object] = field(default_factory=dict)
    tags: dict[str, _Growing] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # from the records read so far
    status: str | None = None  # why the file could not be read this time (stat, open, empty)

    def check(self) -> tuple[bool, bool]:
        """Stat the file. Returns ``(changed, needs_read)``; updates ``status``."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            return self._set_status(f"{self.path}:0: cannot stat ({e.strerror})"), False
        if st.st_size == self.size and st.st_mtime == self.mtime:
            return False, False
        if st.st_size < self.offset:  # replaced or truncated by its writer: start over
            self.offset, self.plugins, self.hparams, self.run_info = 0, {}, {}, {}
            self.tags, self.problems = {}, []
        self.size, self.mtime = st.st_size, st.st_mtime
        if st.st_size == 0:
            return self._set_status(f"{self.path}:0: empty event file (0 bytes)"), False
        return True, st.st_size > self.offset

    def apply(self, result: _ReadResult) -> None:
        """Take in what `read_new_bytes` found."""
        self.status = result.error
        if result.parsed is None:
            return
        self.offset = result.end
        p = result.parsed
        self.plugins = p.plugins
        for k, v in p.hparams.items():
            if v is not None or k not in self.hparams:
                self.hparams[k] = v
        self.run_info.update(p.run_info)
        self.problems.extend(p.warnings)
        for tag, pts in p.points.items():
            if tag in self.tags:
                self.tags[tag].append(pts)
            else:
                self.tags[tag] = _Growing(pts)

    def _set_status(self, msg: str) -> bool:
        changed, self.status = msg != self.status, msg
        return changed

    @property
    def warnings(self) -> list[str]:
        return ([self.status] if self.status else []) + self.problems


def merge_segments(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Merge one tag's points from several files (in file order) into one series.

    A *segment* is a stretch of points whose step never decreases, within one file. When a later
    segment starts at or below a step of an earlier one, the writer restarted: the earlier
    points at or past that step are dropped and the later ones win (TensorBoard's purge rule).
    Repeated steps inside one segment are kept (several points logged at one step).
    """
    if len(chunks) == 1 and not (chunks[0][0][1:] < chunks[0][0][:-1]).any():
        return chunks[0]  # the common case, without a copy
    steps = np.concatenate([c[0] for c in chunks])
    values = np.concatenate([c[1] for c in chunks])
    walls = np.concatenate([c[2] for c in chunks])
    if len(steps) < 2:
        return steps, values, walls
    starts = np.zeros(len(steps), dtype=bool)
    starts[0] = True
    starts[1:] = steps[1:] < steps[:-1]
    pos = 0
    for c in chunks[:-1]:  # every file boundary starts a segment
        pos += len(c[0])
        if pos < len(steps):
            starts[pos] = True
    if starts.sum() == 1:
        return steps, values, walls
    seg = np.cumsum(starts) - 1
    seg_min = np.minimum.reduceat(steps, np.flatnonzero(starts))
    # Smallest step of any *later* segment: a point survives only if it is below that.
    later_min = np.minimum.accumulate(seg_min[::-1])[::-1]
    later_min = np.append(later_min[1:], np.iinfo(np.int64).max)
    keep = steps < later_min[seg]
    return steps[keep], values[keep], walls[keep]


# Canonical optimizer class names, by lower-case name (torch classes, HF ``optim`` prefixes).
_OPTIMIZERS = {
    o.lower(): o
    for o in (
        "SGD",
        "Adam",
        "AdamW",
        "RMSprop",
        "Adagrad",
        "Adadelta",
        "Adamax",
        "NAdam",
        "RAdam",
        "Lion",
        "Adafactor",
        "LAMB",
        "LBFGS",
        "SparseAdam",
        "ASGD",
        "Rprop",
    )
}


def optimizer_name(value: object) -> object:
    """Canonical optimizer class name for what writers store: ``"<class 'torch.optim.adamw.AdamW'>"``
    (Lightning hparams) -> ``"AdamW"``, Hugging Face ``"adamw_torch_fused"`` -> ``"AdamW"``;
    anything unknown is returned as it is."""
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"<class '(?:[\w.]*\.)?(\w+)'>", value.strip())
    name = m.group(1) if m else value.strip()
    return _OPTIMIZERS.get(name.lower()) or _OPTIMIZERS.get(name.lower().split("_")[0]) or name


def normalize_hparams(raw: dict[str, object], tag_names: list[str]) -> dict[str, object]:
    """Raw hparams (any writer) + our run info -> the canonical keys of `run.py`, raw keys kept."""
    out = {k: v for k, v in raw.items() if isinstance(v, (str, int, float, bool)) or v is None}
    lower = {k.lower(): k for k in raw}
    for canon, aliases in _CANONICAL_HPARAMS.items():
        if canon in out and out[canon] is not None:
            continue
        for alias in aliases:
            if alias in lower and raw[lower[alias]] is not None:
                out[canon] = raw[lower[alias]]
                break
    for key in ("lr", "momentum", "weight_decay", "grad_clip"):
        try:
            if key in out and out[key] is not None:
                out[key] = float(out[key])
        except (TypeError, ValueError):
            out.pop(key)
    if out.get("grad_clip") is not None and not out["grad_clip"] > 0:
        out["grad_clip"] = None  # Hugging Face: max_grad_norm 0 means no clipping
    if out.get("batch_size") is not None:
        try:
            out["batch_size"] = int(float(out["batch_size"]))
        except (TypeError, ValueError):
            out.pop("batch_size")
    if out.get("optimizer"):
        out["optimizer"] = optimizer_name(out["optimizer"])
    else:
        opt = tags.optimizer_from_tags(tag_names)
        if opt:
            out["optimizer"] = optimizer_name(opt)
    return out


@dataclass(slots=True)
class _RunDir:
    name: str
    path: str
    files: dict[str, _FileState] = field(default_factory=dict)  # by file name
    seen: bool = False  # checked at least once (a budgeted refresh may not reach every folder)

    def check_files(self) -> tuple[bool, list[_FileState]]:
        """Find new files and stat all. Returns (anything changed, files with bytes to read)."""
        try:
            names = [n for n in os.listdir(self.path) if is_event_file(n)]
        except OSError:
            names = []
        changed = False
        for n in names:
            fp = os.path.join(self.path, n)
            if n not in self.files and os.path.isfile(fp):
                self.files[n] = _FileState(fp)
                changed = True
        to_read = []
        for f in self.ordered():
            file_changed, needs_read = f.check()
            changed |= file_changed
            if needs_read:
                to_read.append(f)
        return changed, to_read

    def ordered(self) -> list[_FileState]:
        return [self.files[n] for n in sorted(self.files, key=file_order_key)]

    def scalar_tags(self) -> set[str]:
        return {t for f in self.files.values() for t in f.tags}

    def is_hparams_only(self) -> bool:
        has_hp = any(f.hparams for f in self.files.values())
        return has_hp and len(self.scalar_tags()) <= 1


def _read_all(files: list[_FileState], workers: int | None) -> None:
    """Read the new bytes of ``files``, in parallel processes when it is worth it and safe."""
    jobs = [(f.path, f.offset, f.plugins) for f in files]
    results = None
    workers = _idle_cpus() if workers is None else workers
    if _parallel_ok(files, workers):
        try:
            results = _read_parallel(jobs, min(workers, len(files)))
        except (OSError, RuntimeError, BrokenProcessPool):
            results = None  # no processes to be had here: read in this one
    if results is None:
        results = [read_new_bytes(*job) for job in jobs]
    for f, r in zip(files, results, strict=True):
        f.apply(r)
    if sum(f.size for f in files) >= PARALLEL_MIN_BYTES:
        _return_free_memory()


def _return_free_memory() -> None:
    # A big read frees many large temporaries between the arrays it keeps; glibc keeps that
    # memory resident (~30% over the 24 bytes per point held) unless asked to hand it back.
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to do


def _idle_cpus() -> int:
    """CPUs free for worker processes: this process's own plus those the load average leaves idle.

    On a machine busy with other jobs, extra processes only add start-up and copying costs.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cpus, int(cpus - busy + 1)))


def _parallel_ok(files: list[_FileState], workers: int) -> bool:
    # Only "fork" starts workers without re-importing the caller's main module, and forking a
    # process that runs other threads (a dashboard server) can deadlock the child: so only from
    # a single-threaded process, and only for enough bytes to pay for the start-up.
    return (
        workers > 1
        and len(files) > 1
        and sum(f.size - f.offset for f in files) >= PARALLEL_MIN_BYTES
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
    )


def _read_parallel(jobs: list[tuple[str, int, dict[str, str]]], workers: int) -> list[_ReadResult]:
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(read_new_bytes, *zip(*jobs, strict=True)))


class Logdir:
    """Incremental reader of one logdir.

    Example:
        >>> ld = Logdir("runs")
        >>> runs = ld.refresh()          # reads everything
        >>> runs = ld.refresh()          # later: reads only what was appended
        >>> runs["exp1"].signal("loss").values

    Args:
        path: the logdir.
        tag_overrides: ``{signal: tag}`` user choices, e.g. ``{"loss": "my/custom_loss"}``.
        workers: processes reading files at once. None: one per idle CPU (by the load
            average); 1: never in parallel.
            Parallel reads are used only when there are at least `PARALLEL_MIN_BYTES` to read.

    Raises:
        LogdirError: at construction, if ``path`` does not exist or is not a directory.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        tag_overrides: dict[str, str] | None = None,
        *,
        workers: int | None = None,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.exists(self.path):
            raise LogdirError(f"{self.path}: no such logdir")
        if not os.path.isdir(self.path):
            raise LogdirError(f"{self.path}: not a directory")
        self.tag_overrides = dict(tag_overrides or {})
        self.workers = workers
        self._dirs: dict[str, _RunDir] = {}  # by path relative to the logdir
        self._cached: dict[tuple[str, tuple[str, ...]], Run] = {}
        self.warnings: list[str] = []  # problems outside any run (unreadable folders)

    def _discover(self) -> None:
        self.warnings = []
        # A run folder deleted since the last refresh is gone, not a set of unreadable files.
        self._dirs = {rel: d for rel, d in self._dirs.items() if os.path.isdir(d.path)}

        def onerror(e: OSError) -> None:
            self.warnings.append(f"{e.filename}:0: cannot list folder ({e.strerror})")

        for dirpath, dirnames, filenames in os.walk(self.path, onerror=onerror, followlinks=False):
            dirnames.sort()
            if not any(is_event_file(n) for n in filenames):
                continue
            rel = os.path.relpath(dirpath, self.path).replace(os.sep, "/")
            if rel not in self._dirs:
                self._dirs[rel] = _RunDir(rel, dirpath)

    def refresh(self, budget_bytes: int | None = None) -> dict[str, Run]:
        """Read new bytes of every event file (and new files and folders) and return all runs.

        Args:
            budget_bytes: stop taking further run folders (in name order) once this many new
                bytes are due to be read, so a first load of a huge logdir can be shown in
                parts; `pending` then counts the folders never read yet, and the next call
                goes on. None: read everything.

        Returns:
            ``{run name: Run}``, sorted by name, for every folder read at least once. Runs whose
            files did not change are the same objects as last time.
        """
        self._discover()
        changed: set[str] = set()
        to_read: list[_FileState] = []
        due = 0
        for rel in sorted(self._dirs):
            if budget_bytes is not None and due >= budget_bytes:
                break
            d = self._dirs[rel]
            dir_changed, files = d.check_files()
            d.seen = True
            if dir_changed:
                changed.add(rel)
            to_read.extend(files)
            due += sum(f.size - f.offset for f in files)
        _read_all(to_read, self.workers)
        return self._assemble(changed)

    @property
    def pending(self) -> int:
        """Run folders found but not read yet (after a `refresh` with a byte budget)."""
        return sum(not d.seen for d in self._dirs.values())

    def _assemble(self, changed: set[str]) -> dict[str, Run]:
        dirs = {rel: d for rel, d in self._dirs.items() if d.seen}
        owner: dict[str, tuple[str, str]] = {}  # dir -> (run name, tag prefix)
        for rel in sorted(dirs):
            parent, _, base = rel.rpartition("/")
            parent = parent or "."
            sibling = "validation" if parent == "." else f"{parent}/validation"
            if rel != "." and base in _SPLITS and parent not in dirs and sibling in dirs:
                owner[rel] = (parent, _SPLITS[base])
            elif rel != "." and dirs[rel].is_hparams_only():
                anc = parent
                while anc not in dirs and anc != ".":
                    anc = anc.rpartition("/")[0] or "."
                owner[rel] = (owner.get(anc, (anc, ""))[0], "") if anc in dirs else (rel, "")
            else:
                owner[rel] = (rel, "")
        members: dict[str, list[tuple[str, _RunDir]]] = {}
        for rel, (name, prefix) in owner.items():
            members.setdefault(name, []).append((prefix, dirs[rel]))
        runs: dict[str, Run] = {}
        for name in sorted(members):
            parts = members[name]
            key = (name, tuple(d.name for _, d in parts))
            old = self._cached.get(key)
            if old is not None and not any(d.name in changed for _, d in parts):
                runs[name] = old
                continue
            runs[name] = self._build(name, parts)
        self._cached = {(n, tuple(d.name for _, d in members[n])): r for n, r in runs.items()}
        return runs

    def _build(self, name: str, parts: list[tuple[str, _RunDir]]) -> Run:
        per_tag: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        raw_hp: dict[str, object] = {}
        run_info: dict[str, object] = {}
        warnings: list[str] = []
        files: list[str] = []
        last_write = 0.0
        # The run's own folder first, so its hparams win over a folded sub-run's.
        for prefix, d in sorted(parts, key=lambda p: (p[1].name != name, p[1].name)):
            for f in d.ordered():
                files.append(f.path)
                last_write = max(last_write, f.mtime)
                warnings.extend(f.warnings)
                for k, v in f.hparams.items():
                    raw_hp.setdefault(k, v)
                run_info.update(f.run_info)
                for tag, grown in f.tags.items():
                    per_tag.setdefault(prefix + tag, []).append(grown.view())
        scalars = {}
        for tag, chunks in per_tag.items():
            steps, values, walls = merge_segments(chunks)
            scalars[tag] = Series(tag, steps, values, walls)
        raw_hp.update(run_info)
        hp = normalize_hparams(raw_hp, list(scalars))
        signals = tags.map_signals(scalars, self.tag_overrides)
        path = os.path.join(self.path, name) if name != "." else self.path
        return Run(
            name=name,
            path=os.path.normpath(path),
            scalars=scalars,
            signals=signals,
            hparams=hp,
            warnings=tuple(warnings),
            last_write=last_write,
            files=tuple(files),
        )


def read_logdir(
    path: str | os.PathLike, tag_overrides: dict[str, str] | None = None, *, workers: int | None = None
) -> dict[str, Run]:
    """Read every run of a logdir once. See `Logdir` for incremental reads and the arguments."""
    return Logdir(path, tag_overrides, workers=workers).refresh()
