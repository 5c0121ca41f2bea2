"""Shared signal helpers for the detectors: step collapsing, block statistics, trends.

Every helper is NaN-aware where it says so, never mutates its input, and runs in time linear in
the number of points (block statistics use a fixed number of blocks or a fixed window, so the
per-point cost does not grow with the run's length).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from lrdoctor.analyzers.run import Run, Series

PROFILE_CACHE_RUNS = 64  # loss profiles kept (one per run object)
MIN_POINTS = 30  # finite loss points (one per step, see `collapse`) below which no shape is judged


@dataclass(frozen=True, slots=True)
class Curve:
    """One signal with one value per step (repeated steps averaged), ready for statistics.

    Attributes:
        steps: int64, strictly increasing -- except when a writer logged many points at few
            steps (per-batch values against the epoch): then every point is kept, in order.
        values: float64, mean of the points logged at each step (non-finite if any point was).
    """

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def finite_prefix(self) -> Curve:
        """The curve up to (not including) its first non-finite value."""
        k = first_nonfinite(self.values)
        return self if k is None else Curve(self.steps[:k], self.values[:k])


def collapse(series: Series | None) -> Curve:
    """One value per step: the mean of the points logged at that step (NaN propagates).

    Args:
        series: a reader `Series` (steps non-decreasing, may repeat), or None.

    Returns:
        A `Curve`; empty when ``series`` is None or empty.
    """
    if series is None or len(series) == 0:
        return Curve(np.zeros(0, np.int64), np.zeros(0, np.float64))
    steps, values = np.asarray(series.steps), np.asarray(series.values, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    if len(starts) == len(steps) or len(starts) < MIN_POINTS <= len(steps):
        # Too few distinct steps to judge a shape: keep the points (the order is the time).
        return Curve(steps.copy(), values.copy())
    counts = np.diff(np.r_[starts, len(steps)])
    return Curve(steps[starts].copy(), np.add.reduceat(values, starts) / counts)


def signal_curve(run: Run, name: str) -> Curve:
    """`collapse` of ``run.signal(name)``."""
    return collapse(run.signal(name))


def cut_run(run: Run, last_step: int) -> Run:
    """The run as it was when ``last_step`` had just been logged (every series cut there).

    The arrays are views, so this costs no copy of the data.
    """
    scalars = {}
    for tag, s in run.scalars.items():
        k = int(np.searchsorted(s.steps, last_step, side="right"))
        scalars[tag] = Series(s.tag, s.steps[:k], s.values[:k], s.wall_times[:k])
    return dataclasses.replace(run, scalars=scalars)


def first_nonfinite(values: np.ndarray) -> int | None:
    """Index of the first NaN/inf in ``values``, or None."""
    bad = ~np.isfinite(values)
    return int(np.argmax(bad)) if bad.any() else None


def block_stat(values: np.ndarray, n_blocks: int, how: str = "median") -> tuple[np.ndarray, np.ndarray]:
    """Split ``values`` into ``n_blocks`` near-equal consecutive blocks and reduce each.

    Args:
        values: finite float array.
        n_blocks: number of blocks (fewer if there are fewer points).
        how: "median", "mean", "std" or "min".

    Returns:
        (centers, stats): the index of each block's middle point (float) and its statistic.
    """
    n = len(values)
    n_blocks = max(1, min(n_blocks, n))
    edges = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    reduce = {"median": np.median, "mean": np.mean, "std": np.std, "min": np.min}[how]
    pairs = zip(edges[:-1], edges[1:], strict=True)
    out = np.array([reduce(values[a:b]) for a, b in pairs], dtype=np.float64)
    return (edges[:-1] + edges[1:] - 1) / 2.0, out


def rolling_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centered rolling median over ``window`` points (edges use the nearest value).

    Linear in len(values) for a fixed window; the window is clipped to the data length.
    """
    if len(values) == 0:
        return values.astype(np.float64)
    window = max(1, min(int(window), len(values)))
    return ndimage.median_filter(values.astype(np.float64), size=window, mode="nearest")


def trailing_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the ``window`` points *before* each point (NaN for the first ``window`` points)."""
    out = np.full(len(values), np.nan)
    if len(values) <= window:
        return out
    centered = ndimage.median_filter(values.astype(np.float64), size=window, mode="nearest")
    # The centered median at i covers [i - w//2, i + w - 1 - w//2]; shift so it ends at i - 1.
    shift = window - window // 2
    out[window:] = centered[window - shift : len(values) - shift]
    return out


def robust_scale(values: np.ndarray) -> float:
    """Median absolute deviation scaled to a normal sigma (1.4826 x MAD); 0 for < 2 points."""
    if len(values) < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def rank_trend_test(values: np.ndarray) -> tuple[float, float]:
    """Spearman trend of ``values`` with their index, and its two-sided p-value.

    The trend is -1 for values always falling, +1 always rising; (0, 1) when it is undefined
    (under 3 points, constant values, NaN).
    """
    if len(values) < 3 or np.all(values == values[0]):
        return 0.0, 1.0
    res = stats.spearmanr(np.arange(len(values)), values)
    rho, pval = float(res.statistic), float(res.pvalue)
    return (rho, pval) if np.isfinite(rho) and np.isfinite(pval) else (0.0, 1.0)


def fall_p_value(values: np.ndarray, init: float, noise: float) -> float:
    """One-sided Mann-Whitney p-value that the loss at the end is lower than at the start.

    The start window is the first `START_FRACTION` of the points, the end window the last
    `END_FRACTION` (each at least `INIT_POINTS`). A rank test: heavy-tailed minibatch noise (a
    regression loss on noisy targets) cannot fake a fall, whatever its scale. A drop on the
    very first updates leaves one point in the start window; then the initial level ``init``
    (`initial_level` keeps such a first point) above every point of the end window, and more
    than `BEYOND_NOISE_SIGMAS` x ``noise`` (robust sigma, loss units) above their median, is a
    fall: 0. (One point cannot be tested; only a distance no noise tail reaches counts.)
    """
    n = len(values)
    a = values[: max(INIT_POINTS, int(n * START_FRACTION))]
    b = values[-max(INIT_POINTS, int(n * END_FRACTION)) :]
    if init > b.max() and init - float(np.median(b)) > BEYOND_NOISE_SIGMAS * noise:
        return 0.0
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)


def fmt(x: float) -> str:
    """A number for a message: 3 significant digits, no trailing zeros ("0.03", "1.2e-05")."""
    if x is None or not np.isfinite(x):
        return str(x)
    return f"{x:.3g}"


# --- The loss profile: the handful of scale-free figures the loss-shape detectors share. ---

END_FRACTION = 0.1  # the "end level" is the median of this last fraction of the finite loss
INIT_POINTS = 5  # initial level: median of the first INIT_POINTS points (minibatch noise) ...
INIT_FALLING_TREND = -0.9  # ... but the first point when they fall in order (a fast first drop) ...
INIT_BLOWUP_RATIO = 1.2  # ... or when the first is their lowest and their median this x it (a blow-up)
BEYOND_NOISE_SIGMAS = 10.0  # a point this many robust sigmas off its level is beyond any noise tail
INIT_APART_SIGMAS = 3.0  # ... each only beyond this many robust sigmas of the minibatch noise
AFTERMATH_POINTS = 5  # points before and after the highest loss point compared for lasting damage
NOISE_WINDOW_POINTS = 9  # rolling-median window (points) the minibatch noise is measured around
FALL_SIGNIFICANCE = 2.0  # a fall between two part medians counts above this many standard errors
ACTIVE_LR_FRACTION = 0.5  # the loss is judged "still falling" where the LR was >= this x its peak
MIN_ACTIVE_POINTS = 15  # a high-LR part shorter than this many points is not judged on its own
START_FRACTION = 0.05  # the start window of the fall test: this fraction of the points (>= INIT_POINTS)
FALL_P_VALUE = 0.01  # a fall (or a trend) is significant below this p-value
TREND_BLOCKS = 10  # block medians a late trend is measured on (each averages minibatch noise)


@dataclass(frozen=True, slots=True)
class LossProfile:
    """Scale-free figures of a run's finite training loss (see `loss_profile`).

    Attributes:
        steps, values: the finite loss, one value per step (up to the first non-finite value).
        init: initial level (loss units): the larger of the first point and the median of the
            first 5, or the first point alone when those spread over 1.5x (a blow-up).
        end: median of the last `END_FRACTION` of points (loss units).
        progress: (init - end) / init; 1 = loss driven to 0, 0 = no progress, < 0 = worse.
        peak_ratio: highest single loss point in the first half over ``init``.
        peak_sigmas: that point's height above ``init`` in robust sigmas of the first half's
            minibatch noise (spread around a 9-point rolling median); inf if there is no noise.
        peak_step: the step of that point.
        peak_after_ratio, peak_after_p: `aftermath_ratio` of that point (above 1: the loss
            stayed up after it) and the p-value that it did beyond the noise.
        max_ratio: highest loss point of the whole run over ``init``.
        min_level: lowest block median (40 blocks) of the loss (loss units).
        late_trend, late_trend_p: Spearman rank trend of the last half's 10 block medians
            (-1: falling) and its p-value.
        late_noise_ratio: robust scale of the last half's residual around 20 block means,
            over the achieved decrease (init - end); inf when nothing was gained.
        grad_spike_ratio: highest grad norm over its median (nan without a grad norm).
        wander_ratio: sum of the rises between 20 consecutive block medians over the decrease
            from init to the lowest of them (0 for a monotone fall; >= 1: it climbed back up
            as much as it ever fell).
        early_best: lowest of the first 4 of those 20 block medians (the first 20% of the run).
        late_fall_ratio: `late_fall_rate` over the high-LR part of the run (`active_prefix`):
            the loss's fall rate at the end over its average rate (0: converged or flat within
            the noise, ~1: a steady decline far from any plateau). Scale- and floor-free.
        init_se: standard error of ``init`` (loss units): 1.2533 x the first half's noise /
            sqrt(5) when it is a median of the first points, the noise itself when it is the
            first point; a change smaller than a few of these may be noise in where the run started.
        fall_p: `fall_p_value`: how likely a fall this large from start to end is under pure
            noise (small: the loss really went down).
        rebound_p: `rebound_p_value`: how likely the end stands this far above the loss's lowest
            stretch under pure noise (small: it really climbed back).
        climb_p: `climb_p_value`: how likely the loss's highest stretch stands this far above an
            earlier, lower one under pure noise (small: it really climbed at some point).
        noise_grew_p: `noise_grew_p_value`: how likely the last half's point-to-point swings
            are this much larger than the first half's under steady noise (small: the updates
            got more turbulent, e.g. as a schedule raised the LR).
        active_trend, active_trend_p: Spearman trend (and p-value) of 10 block medians over the
            last half of the high-LR part of the run (`active_prefix`; the whole run without a
            decaying schedule): is the loss still going down while the LR allows it?
    """

    steps: np.ndarray
    values: np.ndarray
    init: float
    end: float
    progress: float
    peak_ratio: float
    peak_sigmas: float
    peak_step: int
    peak_after_ratio: float
    peak_after_p: float
    max_ratio: float
    min_level: float
    late_trend: float
    late_trend_p: float
    late_noise_ratio: float
    grad_spike_ratio: float
    wander_ratio: float
    early_best: float
    late_fall_ratio: float
    init_se: float
    fall_p: float
    rebound_p: float
    climb_p: float
    noise_grew_p: float
    active_trend: float
    active_trend_p: float

    @property
    def fell(self) -> bool:
        """The loss went down beyond the noise from start to end (``fall_p`` < `FALL_P_VALUE`)."""
        return self.fall_p < FALL_P_VALUE

    def step_at_fraction(self, frac: float) -> int:
        """The step at a fraction (0..1) of the finite points."""
        return int(self.steps[min(len(self.steps) - 1, int(frac * len(self.steps)))])


def initial_level(values: np.ndarray, noise: float = 0.0) -> float:
    """Where the loss started: the median of the first `INIT_POINTS` points, or the first point.

    Minibatch noise scatters the first points either way (heavy-tailed for a regression loss), so
    their median is the level. Three starts keep the first point instead, each only when the
    difference exceeds `INIT_APART_SIGMAS` x ``noise`` (the robust sigma of the minibatch
    noise, loss units): among five noisy points, one of them is the extreme 40% of the time.

    - the points fall in order (rank trend <= `INIT_FALLING_TREND`): a fast first drop, which
      would pull the median down;
    - the first point stands apart from the next ones by more than their own spread (a drop on
      the very first update, or a blow-up right after the first point);
    - the first point is the lowest and their median over `INIT_BLOWUP_RATIO` x it (the first
      updates blew the loss up).
    """
    head = values[:INIT_POINTS]
    first, med = float(head[0]), float(np.median(head))
    rest = head[1:]
    margin = INIT_APART_SIGMAS * noise
    apart = abs(first - float(np.median(rest))) if len(rest) else 0.0
    stands_apart = len(rest) >= 2 and apart > max(float(np.ptp(rest)), margin)
    blew_up = (
        first > 0 and first == float(head.min()) and med > INIT_BLOWUP_RATIO * first and med - first > margin
    )
    fast_drop = rank_trend_test(head)[0] <= INIT_FALLING_TREND and first - float(head[-1]) > margin
    if fast_drop or stands_apart or blew_up:
        return first
    return med


def aftermath_ratio(values: np.ndarray, k: int, init: float) -> tuple[float, float]:
    """Median of the `AFTERMATH_POINTS` points after index ``k`` over the median of those before.

    A blow-up damages the model, so the loss stays up after it (ratio well above 1); a minibatch
    outlier (heavy-tailed noise) leaves no trace (ratio near 1). Before the first points, the
    initial level stands in; with nothing after ``k``, inf (the run ended on it).

    Returns:
        (ratio, p): ``p`` is the one-sided Mann-Whitney p-value that the points after are higher
        than those before (heavy-tailed noise makes a ratio of two 5-point medians swing);
        against the initial level alone, 0 when every point after is above it, else 1.
    """
    after = values[k + 1 : k + 1 + AFTERMATH_POINTS]
    if len(after) == 0:
        return float("inf"), 0.0
    before = values[max(0, k - AFTERMATH_POINTS) : k]
    if len(before) >= 3:
        level = float(np.median(before))
        same = np.all(after == after[0]) and np.all(before == after[0])
        pval = 1.0 if same else float(stats.mannwhitneyu(after, before, alternative="greater").pvalue)
    else:
        level = init
        pval = 0.0 if np.all(after > init) else 1.0
    return (float(np.median(after)) / level if level > 0 else float("inf")), pval


def noise_grew_p_value(early_resid: np.ndarray, late: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value that the last half swings more than the first half.

    Both halves' swings are their absolute residuals around a `NOISE_WINDOW_POINTS`-point rolling
    median (the trend removed); a rank test, so heavy-tailed but steady minibatch noise gives a
    uniform p-value whatever its scale.
    """
    late_resid = np.abs(late - rolling_median(late, NOISE_WINDOW_POINTS))
    early = np.abs(early_resid)
    if len(early) < INIT_POINTS or len(late_resid) < INIT_POINTS or not (early.any() or late_resid.any()):
        return 1.0
    return float(stats.mannwhitneyu(late_resid, early, alternative="greater").pvalue)


def _blocks(values: np.ndarray) -> list[np.ndarray]:
    """`values` cut into `TREND_BLOCKS` near-equal consecutive blocks (fewer with fewer points)."""
    edges = np.linspace(0, len(values), min(TREND_BLOCKS, len(values)) + 1).astype(np.int64)
    return [values[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def climb_p_value(values: np.ndarray) -> float:
    """How likely the loss's highest stretch stands this far above an earlier, lower one by noise.

    Over `TREND_BLOCKS` blocks, the block with the highest median is compared with the lowest
    block before it (one-sided Mann-Whitney); the p-value is multiplied by the number of block
    pairs (the most extreme of many noisy pairs is extreme by chance). 1 when the highest block
    comes first. Small: the loss really climbed at some point (a blow-up, a wandering loss).
    """
    blocks = _blocks(values)
    meds = np.array([np.median(b) for b in blocks])
    i = int(np.argmax(meds))
    if i == 0:
        return 1.0
    j = int(np.argmin(meds[:i]))
    high, low = blocks[i], blocks[j]
    if np.all(high == high[0]) and np.all(low == high[0]):
        return 1.0
    pairs = len(blocks) * (len(blocks) - 1) / 2
    return min(1.0, pairs * float(stats.mannwhitneyu(high, low, alternative="greater").pvalue))


def rebound_p_value(values: np.ndarray) -> float:
    """How likely the end of the loss stands this far above its lowest stretch by noise alone.

    The loss is cut into `TREND_BLOCKS` blocks; the one with the lowest median is compared with
    the end window (the last `END_FRACTION`) by a one-sided Mann-Whitney test, and the p-value
    is multiplied by the number of blocks (the lowest of many noisy blocks is low by chance).
    1 when the lowest block is the last one.
    """
    n = len(values)
    edges = np.linspace(0, n, TREND_BLOCKS + 1).astype(np.int64)
    meds = [np.median(values[a:b]) if b > a else np.inf for a, b in zip(edges[:-1], edges[1:], strict=True)]
    i = int(np.argmin(meds))
    low, end = values[edges[i] : edges[i + 1]], values[-max(INIT_POINTS, int(n * END_FRACTION)) :]
    if i == TREND_BLOCKS - 1 or len(low) == 0 or (np.all(low == low[0]) and np.all(end == low[0])):
        return 1.0
    return min(1.0, TREND_BLOCKS * float(stats.mannwhitneyu(end, low, alternative="greater").pvalue))


def late_fall_rate(values: np.ndarray, init: float) -> float:
    """How fast the loss still falls at the end, relative to its average fall since the start.

    The last half is cut into three equal parts; the fall between the medians of the last two
    (d = m2 - m3, per point) is divided by the average fall per point from ``init`` to m3. A run
    that has converged (an exponential approach to any floor) ends far slower than its average:
    ratio near 0; a steady linear decline gives 1; a still-accelerating one more. No floor is
    assumed. The fall counts only when it exceeds `FALL_SIGNIFICANCE` standard errors of a
    difference of two such medians (minibatch noise measured around a rolling median): else 0.

    Returns:
        The ratio (0 when the end no longer falls beyond the noise, inf when nothing was gained).
    """
    half = values[len(values) // 2 :]
    if len(half) < 6:
        return 0.0
    parts = np.array_split(half, 3)
    m2, m3 = float(np.median(parts[1])), float(np.median(parts[2]))
    sigma = robust_scale(half - rolling_median(half, NOISE_WINDOW_POINTS))
    se = 1.2533 * sigma * np.sqrt(2.0 / len(parts[-1]))  # std error of a difference of medians
    fall = m2 - m3
    if fall <= FALL_SIGNIFICANCE * se:
        return 0.0
    gained = init - m3
    if gained <= 0:
        return float("inf")
    # Per point: the last fall spans the distance between the two parts' centers.
    step = (len(parts[1]) + len(parts[2])) / 2.0
    return (fall / step) / (gained / (len(values) - len(parts[2]) / 2.0))


def active_prefix(run: Run, curve: Curve) -> Curve:
    """The part of the loss trained at a high LR: up to the last step with LR >= half its peak.

    A decaying schedule (step, cosine, one-cycle) flattens the loss by itself as the LR goes to
    0; whether the loss was still falling is judged where the schedule allowed fast progress.
    Without an LR curve (or with fewer than `MIN_ACTIVE_POINTS` points left) the whole curve.
    """
    lr = signal_curve(run, "lr").finite_prefix()
    if len(lr) < 2 or not lr.values.max() > 0:
        return curve
    high = np.flatnonzero(lr.values >= ACTIVE_LR_FRACTION * lr.values.max())
    k = int(np.searchsorted(curve.steps, lr.steps[high[-1]], side="right"))
    return curve if k < MIN_ACTIVE_POINTS else Curve(curve.steps[:k], curve.values[:k])


@functools.lru_cache(maxsize=PROFILE_CACHE_RUNS)
def loss_profile(run: Run) -> LossProfile | None:
    """The `LossProfile` of ``run``'s training loss, or None with < `MIN_POINTS` finite points.

    Ratios use ``abs(init)`` as the unit, so the profile assumes a loss bounded below by 0
    (cross-entropy, MSE, ...); the block statistics make it linear in points. Several detectors
    use it, so the last `PROFILE_CACHE_RUNS` results are cached (runs are immutable and hash by
    identity).
    """
    curve = signal_curve(run, "loss").finite_prefix()
    v = curve.values
    n = len(v)
    if n < MIN_POINTS:
        return None
    first_half = v[: max(2, n // 2)]
    k = int(np.argmax(first_half))
    early_resid = first_half - rolling_median(first_half, NOISE_WINDOW_POINTS)
    early_noise = robust_scale(early_resid)
    init = initial_level(v, early_noise)
    after_ratio, after_p = aftermath_ratio(v, k, init)
    unit = abs(init) if init != 0 else 1.0
    end = float(np.median(v[-max(3, int(n * END_FRACTION)) :]))
    _, blocks = block_stat(v, 40)
    half = v[n // 2 :]
    _, late_blocks = block_stat(half, TREND_BLOCKS)
    late_trend, late_trend_p = rank_trend_test(late_blocks)
    edges = np.linspace(0, len(half), 21).astype(np.int64)
    _, means = block_stat(half, 20, "mean")
    resid = half - np.repeat(means, np.diff(edges)) if len(half) >= 20 else half - np.mean(half)
    gained = init - end
    noise = robust_scale(resid)
    _, b20 = block_stat(v, 20)
    fall = init - float(b20.min())
    rises = float(np.clip(np.diff(b20), 0, None).sum())
    grad = signal_curve(run, "grad_norm").finite_prefix().values
    gmed = float(np.median(grad)) if len(grad) else float("nan")
    active = active_prefix(run, curve).values
    active_trend, active_trend_p = rank_trend_test(block_stat(active[len(active) // 2 :], TREND_BLOCKS)[1])
    return LossProfile(
        steps=curve.steps,
        values=v,
        init=init,
        end=end,
        progress=gained / unit,
        peak_ratio=float(first_half[k]) / unit,
        peak_sigmas=(float(first_half[k]) - init) / early_noise if early_noise > 0 else float("inf"),
        peak_step=int(curve.steps[k]),
        peak_after_ratio=after_ratio,
        peak_after_p=after_p,
        max_ratio=float(v.max()) / unit,
        min_level=float(blocks.min()),
        late_trend=late_trend,
        late_trend_p=late_trend_p,
        late_noise_ratio=noise / gained if gained > 0 else float("inf"),
        grad_spike_ratio=float(grad.max()) / gmed if len(grad) and gmed > 0 else float("nan"),
        wander_ratio=rises / fall if fall > 0 else float("inf"),
        early_best=float(b20[:4].min()),
        late_fall_ratio=late_fall_rate(active, init),
        # A median of INIT_POINTS points, or a single point when `initial_level` kept the first.
        init_se=early_noise
        if init != float(np.median(v[:INIT_POINTS]))
        else 1.2533 * early_noise / np.sqrt(INIT_POINTS),
        fall_p=fall_p_value(v, init, early_noise),
        rebound_p=rebound_p_value(v),
        climb_p=climb_p_value(v),
        noise_grew_p=noise_grew_p_value(early_resid, v[n // 2 :]),
        active_trend=active_trend,
        active_trend_p=active_trend_p,
    )
