"""One-line facts about a run for tables (overview, compare, export): one place computes each.

All values come from the run's curves and report; nothing is estimated here. Missing facts
are None (tables show them blank).
"""

from __future__ import annotations

import math
import time

import numpy as np

from lrdoctor.analyzers import Series
from lrdoctor.dashboard.data import RunEntry

# Characters of the fix shown in the overview table (the full text is in the tooltip).
SHORT_FIX_CHARS = 70


def verdict_key(entry: RunEntry) -> str:
    """The verdict's value ("healthy", "lr_too_high", ...) or "error" when analysis failed."""
    return "error" if entry.report is None else entry.report.verdict.value


def last_finite(series: Series | None) -> float | None:
    """The last finite value of a series, or None."""
    if series is None:
        return None
    ok = np.flatnonzero(np.isfinite(series.values))
    return float(series.values[ok[-1]]) if len(ok) else None


def first_finite(series: Series | None) -> float | None:
    """The first finite value of a series, or None."""
    if series is None:
        return None
    ok = np.flatnonzero(np.isfinite(series.values))
    return float(series.values[ok[0]]) if len(ok) else None


def confidence(entry: RunEntry) -> float | None:
    """The report's confidence rounded to 2 decimals, None when analysis failed."""
    return None if entry.report is None else round(float(entry.report.confidence), 2)


def final_loss(entry: RunEntry) -> float | None:
    """The last logged loss, None if the run has no loss; NaN/inf stay NaN/inf (they matter)."""
    s = entry.run.signal("loss")
    if s is None or len(s) == 0:
        return None
    return float(s.values[-1])


def lr_initial(entry: RunEntry) -> float | None:
    """The initial LR: the run's ``lr`` hyperparameter, else the first logged LR."""
    lr = entry.run.hparams.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr):
        return float(lr)
    return first_finite(entry.run.signal("lr"))


def lr_final(entry: RunEntry) -> float | None:
    """The last logged LR (first param group)."""
    return last_finite(entry.run.signal("lr"))


def last_step(entry: RunEntry) -> int | None:
    """The highest step logged on any curve."""
    steps = [int(s.steps[-1]) for s in entry.run.scalars.values() if len(s)]
    return max(steps) if steps else None


def short_fix(text: str, limit: int = SHORT_FIX_CHARS) -> str:
    """The fix cut to about ``limit`` characters at a word boundary ("..." when cut)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "..."


def top_code(entry: RunEntry) -> str:
    """The code of the most severe finding ("" if none)."""
    top = entry.report.top if entry.report is not None else None
    return top.code if top is not None else ""


def top_fix(entry: RunEntry) -> str:
    """The fix of the most severe finding, or why there is no report."""
    if entry.report is None:
        return entry.error
    top = entry.report.top
    return top.fix if top is not None else ""


def codes(entry: RunEntry) -> list[str]:
    """Every finding code of the run, most severe first, without repeats."""
    if entry.report is None:
        return []
    return list(dict.fromkeys(f.code for f in entry.report.findings))


def when(ts: float) -> str:
    """A local timestamp "YYYY-MM-DD HH:MM:SS" (sorts as text), "" for 0."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts > 0 else ""


def fmt_number(x: object) -> str:
    """A compact, readable number: 3 significant digits for floats, thousands separators for ints."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.3g}"
    return str(x)
