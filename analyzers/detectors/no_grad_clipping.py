"""``no_grad_clipping``: a recurrent model trained without gradient clipping.

INFO by itself (many RNNs train fine without it); WARNING when the run also shows
exploding gradients, since clipping is then the standard remedy.
"""

from __future__ import annotations

from lrdoctor.analyzers.detectors.context import DetectorContext, grad_clip, loss_span, model_kind
from lrdoctor.analyzers.detectors.exploding_gradients import detect_exploding_gradients
from lrdoctor.analyzers.findings import Finding, Severity
from lrdoctor.analyzers.run import Run


def detect_no_grad_clipping(run: Run, context: DetectorContext | None = None) -> list[Finding]:
    """Note an RNN run without gradient clipping.

    Needs ``model_kind`` "rnn" (or an architecture name with rnn/lstm/gru) and no clipping
    hyperparameter (``grad_clip``, ``max_grad_norm``, ``gradient_clip_val``, ...).

    Args:
        run: the run to examine.
        context: unused.

    Returns:
        At most one finding. Evidence: ``exploding_spike_count``.

    Example:
        An LSTM with no ``grad_clip`` whose grad norm spikes 50x: WARNING with the max_norm to use.
    """
    if model_kind(run) != "rnn" or grad_clip(run) is not None:
        return []
    exploding = [f for f in detect_exploding_gradients(run) if f.severity is not Severity.INFO]
    if exploding:
        e = exploding[0]
        max_norm = e.evidence["suggested_max_norm"]
        return [
            Finding(
                "no_grad_clipping",
                Severity.WARNING,
                e.step,
                e.steps,
                {"exploding_spike_count": e.evidence["spike_count"], "suggested_max_norm": max_norm},
                "This recurrent model trains without gradient clipping and its gradients explode "
                "(see exploding_gradients). Clipping bounds each update whatever the gradient.",
                e.fix,
                signal="grad_norm",
            )
        ]
    step = loss_span(run)[0]
    return [
        Finding(
            "no_grad_clipping",
            Severity.INFO,
            step,
            (step, step),
            {"exploding_spike_count": 0.0},
            "This recurrent model trains without gradient clipping. RNNs are prone to exploding "
            "gradients; clipping is a cheap safeguard.",
            "add torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0) before "
            "optimizer.step() (or a high percentile of the observed grad norm)",
            signal="grad_norm",
        )
    ]
