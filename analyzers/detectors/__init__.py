"""One detector per finding code: ``detect_<code>(run, context) -> list[Finding]``.

Every detector is pure (no I/O, never mutates the run), NaN-aware, linear in the number of
points, and uses scale-free thresholds kept as module constants. `DETECTORS` is the explicit
registry the audit runs, in order; `CROSS_RUN_DETECTORS` need the other runs' verdicts and run
on the audit's second pass.
"""

from lrdoctor.analyzers.detectors.batch_lr_scaling import detect_batch_lr_scaling
from lrdoctor.analyzers.detectors.context import DetectorContext
from lrdoctor.analyzers.detectors.exploding_gradients import detect_exploding_gradients
from lrdoctor.analyzers.detectors.loss_diverging import detect_loss_diverging
from lrdoctor.analyzers.detectors.loss_oscillating import detect_loss_oscillating
from lrdoctor.analyzers.detectors.lr_decay_drop import detect_lr_decay_drop
from lrdoctor.analyzers.detectors.lr_out_of_range import detect_lr_out_of_range
from lrdoctor.analyzers.detectors.lr_range_test import detect_lr_range_test, is_range_test
from lrdoctor.analyzers.detectors.nan_loss import detect_nan_loss
from lrdoctor.analyzers.detectors.no_grad_clipping import detect_no_grad_clipping
from lrdoctor.analyzers.detectors.slow_decrease import detect_slow_decrease
from lrdoctor.analyzers.detectors.stuck_at_chance import detect_stuck_at_chance
from lrdoctor.analyzers.detectors.vanishing_gradients import detect_vanishing_gradients

DETECTORS = (
    detect_nan_loss,
    detect_loss_diverging,
    detect_loss_oscillating,
    detect_stuck_at_chance,
    detect_slow_decrease,
    detect_exploding_gradients,
    detect_vanishing_gradients,
    detect_lr_out_of_range,
    detect_no_grad_clipping,
    detect_lr_range_test,
    detect_lr_decay_drop,
)
CROSS_RUN_DETECTORS = (detect_batch_lr_scaling,)

__all__ = ["CROSS_RUN_DETECTORS", "DETECTORS", "DetectorContext", "is_range_test"] + [
    d.__name__ for d in DETECTORS + CROSS_RUN_DETECTORS
]
