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
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from lrdoctor.analyzers import events, records, tags
from lrdoctor.analyzers.run import Run, Series

_SPLITS = {"train": "", "validation": "validation/"}
_CANONICAL_HPARAMS = {
    "lr": ("lr", "learning_rate", "initial_lr", "base_lr"),
    "batch_size": ("batch_size", "train_batch_size", "per_device_train_batch_size", "batchsize", "bs"),
    "optimizer": ("optimizer", "optim", "optimizer_name", "opt"),
    "momentum": ("momentum",),
    "weight_decay": ("weight_decay", "wd"),
}


class LogdirError(Exception):
    """The logdir cannot be read at all (does not exist, is not a directory)."""


def is_event_file(name: str) -> bool:
    """True for TensorBoard event file names (``events.out.tfevents.*`` and variants)."""
    return "tfevents" in name


def file_order_key(name: str) -> tuple:
    """Sort key for event files in one run: by the timestamp in the name, then the name."""
    m = re.search(r"tfevents\.(\d+)", name)
    return (int(m.group(1)) if m else 0, name)


@dataclass(slots=True)
class _FileState:
    path: str
    offset: int = 0
    size: int = -1
    mtime: float = 0.0
    content: events.FileContent = field(default_factory=events.FileContent)
    # Per tag, arrays of everything read so far (lists are drained into these after each read).
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def read_new(self) -> bool:
        """Read what was appended since the last call. Returns True if anything changed."""
        try:
            st = os.stat(self.path)
        except OSError as e:
            return self._note(f"{self.path}:0: cannot stat ({e.strerror})")
        if st.st_size == self.size and st.st_mtime == self.mtime:
            return False
        if st.st_size < self.offset:  # replaced or truncated by its writer: start over
            self.offset, self.content, self.arrays, self.notes = 0, events.FileContent(), {}, []
        self.size, self.mtime = st.st_size, st.st_mtime
        if st.st_size == 0:
            return self._note(f"{self.path}:0: empty event file (0 bytes)")
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                buf = f.read()
        except OSError as e:
            return self._note(f"{self.path}:{self.offset}: cannot read ({e.strerror or e})")
        self.notes = [n for n in self.notes if "empty event file" not in n and "cannot" not in n]
        framed = records.frame(buf, self.path, self.offset)
        self.offset = framed.end
        self.notes.extend(framed.warnings)
        events.parse_into(framed.payloads, framed.offsets, self.path, self.content)
        self._drain()
        return True

    def _note(self, msg: str) -> bool:
        if msg in self.notes:
            return False
        self.notes.append(msg)
        return True

    def _drain(self) -> None:
        for tag, tp in self.content.points.items():
            if not tp.steps:
                continue
            new = (
                np.asarray(tp.steps, dtype=np.int64),
                np.asarray(tp.values, dtype=np.float64),
                np.asarray(tp.wall_times, dtype=np.float64),
            )
            old = self.arrays.get(tag)
            self.arrays[tag] = new if old is None else tuple(np.concatenate(p) for p in zip(old, new))
            tp.steps.clear()
            tp.values.clear()
            tp.wall_times.clear()

    @property
    def warnings(self) -> list[str]:
        return self.notes + self.content.warnings


def merge_segments(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Merge one tag's points from several files (in file order) into one series.

    A *segment* is a stretch of points whose step never decreases, within one file. When a later
    segment starts at or below a step of an earlier one, the writer restarted: the earlier
    points at or past that step are dropped and the later ones win (TensorBoard's purge rule).
    Repeated steps inside one segment are kept (several points logged at one step).
    """
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


def _hparam_value(v: object) -> object:
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return v  # keep floats floats; batch sizes are normalized below
    return v


def normalize_hparams(raw: dict[str, object], tag_names: list[str]) -> dict[str, object]:
    """Raw hparams (any writer) + our run info -> the canonical keys of `run.py`, raw keys kept."""
    out = {k: _hparam_value(v) for k, v in raw.items() if isinstance(v, (str, int, float, bool)) or v is None}
    lower = {k.lower(): k for k in raw}
    for canon, aliases in _CANONICAL_HPARAMS.items():
        if canon in out and out[canon] is not None:
            continue
        for alias in aliases:
            if alias in lower and raw[lower[alias]] is not None:
                out[canon] = raw[lower[alias]]
                break
    for key in ("lr", "momentum", "weight_decay"):
        try:
            if key in out and out[key] is not None:
                out[key] = float(out[key])
        except (TypeError, ValueError):
            out.pop(key)
    if out.get("batch_size") is not None:
        try:
            out["batch_size"] = int(float(out["batch_size"]))
        except (TypeError, ValueError):
            out.pop("batch_size")
    if not out.get("optimizer"):
        opt = tags.optimizer_from_tags(tag_names)
        if opt:
            out["optimizer"] = opt
    return out


@dataclass(slots=True)
class _RunDir:
    name: str
    path: str
    files: dict[str, _FileState] = field(default_factory=dict)  # by file name
    extra: list[tuple[str, _RunDir]] = field(default_factory=list)  # (tag prefix, folded dir)
    cached: Run | None = None

    def refresh_files(self) -> bool:
        try:
            names = sorted((n for n in os.listdir(self.path) if is_event_file(n)), key=file_order_key)
        except OSError:
            names = []
        changed = False
        for n in names:
            fp = os.path.join(self.path, n)
            if n not in self.files and os.path.isfile(fp):
                self.files[n] = _FileState(fp)
                changed = True
        for n in sorted(self.files, key=file_order_key):
            changed |= self.files[n].read_new()
        return changed

    def ordered(self) -> list[_FileState]:
        return [self.files[n] for n in sorted(self.files, key=file_order_key)]

    def scalar_tags(self) -> set[str]:
        return {t for f in self.files.values() for t in f.arrays}

    def is_hparams_only(self) -> bool:
        has_hp = any(f.content.hparams for f in self.files.values())
        return has_hp and len(self.scalar_tags()) <= 1


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

    Raises:
        LogdirError: at construction, if ``path`` does not exist or is not a directory.
    """

    def __init__(self, path: str | os.PathLike, tag_overrides: dict[str, str] | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.exists(self.path):
            raise LogdirError(f"{self.path}: no such logdir")
        if not os.path.isdir(self.path):
            raise LogdirError(f"{self.path}: not a directory")
        self.tag_overrides = dict(tag_overrides or {})
        self._dirs: dict[str, _RunDir] = {}  # by path relative to the logdir
        self.warnings: list[str] = []  # problems outside any run (unreadable folders)

    def _discover(self) -> None:
        self.warnings = []

        def onerror(e: OSError) -> None:
            self.warnings.append(f"{e.filename}:0: cannot list folder ({e.strerror})")

        for dirpath, dirnames, filenames in os.walk(self.path, onerror=onerror, followlinks=False):
            dirnames.sort()
            if not any(is_event_file(n) for n in filenames):
                continue
            rel = os.path.relpath(dirpath, self.path).replace(os.sep, "/")
            if rel not in self._dirs:
                self._dirs[rel] = _RunDir(rel, dirpath)

    def refresh(self) -> dict[str, Run]:
        """Read new bytes of every event file (and new files and folders) and return all runs.

        Returns:
            ``{run name: Run}``, sorted by name. Runs whose files did not change are the same
            objects as last time.
        """
        self._discover()
        changed = {rel for rel, d in self._dirs.items() if d.refresh_files()}
        return self._assemble(changed)

    def _assemble(self, changed: set[str]) -> dict[str, Run]:
        dirs = self._dirs
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
            old = self._cached.get(key) if hasattr(self, "_cached") else None
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
                for k, v in f.content.hparams.items():
                    raw_hp.setdefault(k, v)
                run_info.update(f.content.run_info)
                for tag, arrs in f.arrays.items():
                    per_tag.setdefault(prefix + tag, []).append(arrs)
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


def read_logdir(path: str | os.PathLike, tag_overrides: dict[str, str] | None = None) -> dict[str, Run]:
    """Read every run of a logdir once. See `Logdir` for incremental reads."""
    return Logdir(path, tag_overrides).refresh()
