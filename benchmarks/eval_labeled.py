#!/usr/bin/env python3
"""Score the analyzers' verdicts against the outcome labels of `make_labeled_runs.py`.

Prints, for all runs and per family (cnn, rnn, mlp). The main set's statistics (all families)
were looked at while the thresholds were chosen; ``make_labeled_runs.py --set holdout`` makes a
second set of other configurations and seeds for an unseen check:

- macro-F1 over the three verdicts (healthy, lr_too_high, lr_too_low); a run predicted
  ``inconclusive`` counts as a miss of its label;
- the confusion matrix (rows: label, columns: verdict);
- NaN-step exactness: runs whose logged loss (else grad norm) went non-finite, and how many
  carry a ``nan_loss`` finding at exactly that first non-finite step;
- the false-alarm rate: healthy-labeled runs given any WARNING or ERROR finding;
- early warning: for runs that end in NaN or divergence (labeled lr_too_high with final loss at
  least their initial loss), steps from the first WARNING+ finding to the run's last step (a
  finding's step is when it became detectable, checked at 16 evenly spaced points of the run).

Ambiguous runs (gap between the thresholds) are not scored, nor are the finite runs of a sweep in
which no LR learned anything (``weak_sweep``: see `make_labeled_runs.py`'s label-quality rule).

Sets: ``main`` and ``holdout`` (both looked at while tuning), ``fresh`` (seen by the second pass)
and ``fresh2`` (made and scored once before the third pass changed the detectors).

Example:
    python benchmarks/make_labeled_runs.py bench_labeled && python benchmarks/eval_labeled.py bench_labeled
    python benchmarks/make_labeled_runs.py bench_labeled_holdout --set holdout
    python benchmarks/eval_labeled.py bench_labeled_holdout
    python benchmarks/make_labeled_runs.py bench_labeled_fresh2 --set fresh2
    python benchmarks/eval_labeled.py bench_labeled_fresh2 -v
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from lrdoctor.analyzers import Severity, audit

CLASSES = ("healthy", "lr_too_high", "lr_too_low")
COLUMNS = CLASSES + ("inconclusive",)


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Macro-averaged F1 over `CLASSES` of (label, predicted) pairs."""
    scores = []
    for c in CLASSES:
        tp = sum(1 for y, p in pairs if y == c and p == c)
        fp = sum(1 for y, p in pairs if y != c and p == c)
        fn = sum(1 for y, p in pairs if y == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return sum(scores) / len(scores)


def confusion(pairs: list[tuple[str, str]]) -> str:
    """The confusion matrix as text."""
    lines = ["label \\ verdict".ljust(16) + "".join(c.rjust(14) for c in COLUMNS)]
    for y in CLASSES:
        lines.append(
            y.ljust(16)
            + "".join(str(sum(1 for a, p in pairs if a == y and p == c)).rjust(14) for c in COLUMNS)
        )
    return "\n".join(lines)


def evaluate(root: str, family: str | None, labels: dict, result, verbose: bool) -> None:
    """Print the scores for one family (None: all runs)."""
    chosen = {n: v for n, v in labels.items() if family is None or v["family"] == family}
    scored = {n: v for n, v in chosen.items() if v["label"] in CLASSES and n in result.reports}
    pairs = [(v["label"], result.reports[n].verdict.value) for n, v in scored.items()]
    title = "all runs" if family is None else f"family {family}"
    weak = sum(1 for v in chosen.values() if v["label"] == "weak_sweep")
    print(
        f"\n== {title}: {len(scored)} scored runs ({len(chosen) - len(scored) - weak} ambiguous or "
        f"missing, {weak} in sweeps that learned nothing)"
    )
    print(
        f"macro-F1: {macro_f1(pairs):.3f}   "
        f"accuracy: {sum(y == p for y, p in pairs) / max(1, len(pairs)):.3f}"
    )
    print(confusion(pairs))
    nan_runs = {n: v for n, v in chosen.items() if v["nan_step"] is not None}
    exact = sum(
        1
        for n, v in nan_runs.items()
        if any(f.code == "nan_loss" and f.step == v["nan_step"] for f in result.reports[n].findings)
    )
    print(f"NaN runs: {len(nan_runs)}, nan_loss at the exact first non-finite step: {exact}/{len(nan_runs)}")
    before_nan = sorted(
        v["nan_step"]
        - min(f.step for f in result.reports[n].findings if f.severity.rank >= Severity.WARNING.rank)
        for n, v in nan_runs.items()
    )
    if before_nan:
        print(f"  first WARNING+ finding this many steps before the NaN: {before_nan}")
    healthy = [n for n, v in scored.items() if v["label"] == "healthy"]
    alarms = [
        n
        for n in healthy
        if any(f.severity.rank >= Severity.WARNING.rank for f in result.reports[n].findings)
    ]
    print(
        f"false alarms on healthy runs (any WARNING+): {len(alarms)}/{len(healthy)} = "
        f"{len(alarms) / max(1, len(healthy)):.1%}" + (f"  {alarms}" if alarms and verbose else "")
    )
    leads = []
    for n, v in scored.items():
        blew_up = v["nan_step"] is not None or (
            v["final_loss"] is not None and v["final_loss"] >= v["initial_loss"]
        )
        if v["label"] != "lr_too_high" or not blew_up:
            continue
        loss = result.runs[n].signal("loss")
        last = int(loss.steps[-1])
        warn = [f.step for f in result.reports[n].findings if f.severity.rank >= Severity.WARNING.rank]
        leads.append(last - min(warn) if warn else None)
    got = sorted(x for x in leads if x is not None)
    if leads:
        med = got[len(got) // 2] if got else None
        print(
            f"early warning on {len(leads)} NaN/diverged runs: warned {len(got)}/{len(leads)}; "
            "steps before the "
            f"end: median {med}, min {got[0] if got else None}, max {got[-1] if got else None}"
        )
    if verbose:
        for n, v in sorted(scored.items()):
            rep = result.reports[n]
            if rep.verdict.value != v["label"]:
                print(
                    f"  MISS {n}: label {v['label']} (gap {v['gap']}), verdict {rep.verdict.value} "
                    f"[{', '.join(rep.codes())}]"
                )


def main() -> int:
    """Parse arguments, audit the labeled logdir, print the scores."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", help="folder written by make_labeled_runs.py (holds labels.json)")
    p.add_argument("-v", "--verbose", action="store_true", help="list misclassified runs and false alarms")
    args = p.parse_args()
    path = os.path.join(args.root, "labels.json")
    if not os.path.isfile(path):
        print(f"eval_labeled: {path}: no labels.json (run make_labeled_runs.py first)", file=sys.stderr)
        return 2
    with open(path) as f:
        labels = json.load(f)
    t0 = time.perf_counter()
    result = audit(args.root)
    print(f"audited {len(result.reports)} runs in {time.perf_counter() - t0:.2f} s")
    for family in (None, "cnn", "rnn", "mlp"):
        evaluate(args.root, family, labels, result, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
