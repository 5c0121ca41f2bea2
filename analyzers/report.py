"""Text renderings of an `AuditResult`: a plain table for terminals and a Markdown document."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrdoctor.analyzers.audit import AuditResult, RunReport

NO_FINDING = "-"


def _top(rep: RunReport) -> tuple[str, str, str]:
    """(step, top finding code, fix) of a report, '-' when there is no finding."""
    top = rep.top
    if top is None:
        return NO_FINDING, NO_FINDING, rep.summary or NO_FINDING
    return str(top.step), f"{top.code} ({top.severity.value})", top.fix or NO_FINDING


def _summary_line(result: AuditResult) -> str:
    s = result.summary()
    return (
        f"{s['runs']} run(s): {s['healthy']} healthy, {s['lr_too_high']} LR too high, "
        f"{s['lr_too_low']} LR too low, {s['inconclusive']} inconclusive"
    )


def render_table(result: AuditResult) -> str:
    """A fixed-width table, one row per run, then a summary line.

    Args:
        result: the audit.

    Returns:
        The table text (no trailing newline).
    """
    header = ("RUN", "VERDICT", "CONF", "STEP", "TOP FINDING", "FIX")
    rows = [header]
    for name, rep in result.reports.items():
        step, code, fix = _top(rep)
        rows.append((name, rep.verdict.value, f"{rep.confidence:.2f}", step, code, fix))
    if len(rows) == 1:
        return f"no runs found in {result.logdir or 'the given runs'}"
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    return "\n".join(lines + ["", _summary_line(result)])


def _md(text: str) -> str:
    """Escape a cell for a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(result: AuditResult) -> str:
    """A Markdown report: summary, one table row per run, then each run's findings in full.

    Args:
        result: the audit.

    Returns:
        Markdown text ending with a newline.
    """
    out = [f"# lrdoctor audit of `{result.logdir or 'runs'}`", "", _summary_line(result) + ".", ""]
    if not result.reports:
        return "\n".join(out) + "\n"
    out += ["| Run | Verdict | Confidence | Step | Top finding | Fix |", "|---|---|---|---|---|---|"]
    for name, rep in result.reports.items():
        step, code, fix = _top(rep)
        out.append(
            f"| `{_md(name)}` | **{rep.verdict.value}** | {rep.confidence:.2f} | {step} | {_md(code)} | "
            f"{_md(fix)} |"
        )
    for name, rep in result.reports.items():
        out += ["", f"## `{name}`: {rep.verdict.value}", "", f"{rep.summary}.", ""]
        for f in rep.findings:
            out.append(f"- **{f.code}** ({f.severity.value}, step {f.step}): {_md(f.message)}  ")
            out.append(f"  *Fix:* {_md(f.fix)}")
    if result.warnings:
        out += ["", "## Read warnings", ""] + [f"- `{_md(w)}`" for w in result.warnings]
    return "\n".join(out) + "\n"
