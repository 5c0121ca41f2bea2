"""The `lrdoctor` command: parses arguments, calls the public APIs, owns exit codes.

Exit status: 0 ok; 1 ``audit --fail-on`` matched a run; 2 bad usage or an unreadable logdir
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lrdoctor import __version__

EPILOG = """examples:
  lrdoctor serve sample_runs                 open the dashboard on http://127.0.0.1:8050
  lrdoctor audit runs/ --format markdown     a verdict per run, as a Markdown table
  lrdoctor audit runs/ --fail-on nan_loss,lr_too_high   exit 1 if any run matches (for CI)
  lrdoctor report runs/ -o audit.html        one self-contained HTML file with the plots
"""


class CliError(Exception):
    """A problem to report as one line and exit status 2."""


def _tag_overrides(pairs: Sequence[str]) -> dict[str, str]:
    from lrdoctor.analyzers import SIGNALS

    out = {}
    for pair in pairs:
        signal, sep, tag = pair.partition("=")
        if not sep or not signal or not tag:
            raise CliError(f"--tag expects SIGNAL=TAG (e.g. loss=my/custom_loss), got {pair!r}")
        if signal not in SIGNALS and not signal.startswith("lr/"):
            raise CliError(f"--tag: unknown signal {signal!r}; choose from {', '.join(SIGNALS)}")
        out[signal] = tag
    return out


def _add_logdir_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("logdir", help="a TensorBoard logdir (searched recursively for event files)")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="SIGNAL=TAG",
        help="use TAG as the curve for SIGNAL (loss, val_loss, grad_norm, lr, accuracy, val_accuracy); "
        "repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lrdoctor",
        description="Diagnose learning-rate, optimizer and batch-size problems from TensorBoard logs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lrdoctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="open the dashboard on a logdir (live: new runs appear as written)")
    _add_logdir_args(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; use 0.0.0.0 to serve to others)",
    )
    p.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    p.add_argument(
        "--refresh",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often to re-read the logdir for new data (default 10)",
    )

    p = sub.add_parser("audit", help="print a verdict, top finding and fix for every run")
    _add_logdir_args(p)
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="output format")
    p.add_argument(
        "--fail-on",
        default="",
        metavar="CODES",
        help="comma-separated finding codes or verdicts; exit 1 if any run matches",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    p = sub.add_parser("report", help="write the audit as one self-contained HTML (or Markdown) file")
    _add_logdir_args(p)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="output file; .md writes Markdown, anything else HTML",
    )
    return parser


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise CliError(f"{output}: cannot write ({e.strerror})") from None


def _cmd_audit(args: argparse.Namespace) -> int:
    overrides = _tag_overrides(args.tag)
    from lrdoctor.analyzers import audit

    result = audit(args.logdir, tag_overrides=overrides)
    fail_on = [c.strip() for c in args.fail_on.split(",") if c.strip()]
    unknown = result.unknown_codes(fail_on)
    if unknown:
        raise CliError(
            f"--fail-on: unknown code(s) {', '.join(unknown)}; known: {', '.join(result.known_codes())}"
        )
    if args.format == "json":
        _write(json.dumps(result.to_json(), indent=2, allow_nan=False), args.output)
    elif args.format == "markdown":
        _write(result.to_markdown(), args.output)
    else:
        _write(result.to_table(), args.output)
    for w in result.warnings:
        print(f"lrdoctor: warning: {w}", file=sys.stderr)
    matched = result.matching(fail_on)
    if matched:
        print(f"lrdoctor: --fail-on matched {len(matched)} run(s): {', '.join(matched)}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from lrdoctor.dashboard.export import ExportError, write_report

    try:
        path = write_report(args.logdir, args.output, tag_overrides=_tag_overrides(args.tag))
    except ExportError as e:
        raise CliError(str(e)) from None
    print(f"lrdoctor: wrote {path}", file=sys.stderr)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from lrdoctor.dashboard import serve

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1-65535, got {args.port}")
    if args.refresh <= 0:
        raise CliError(f"--refresh must be > 0 seconds, got {args.refresh}")
    serve(
        args.logdir,
        host=args.host,
        port=args.port,
        refresh_s=args.refresh,
        tag_overrides=_tag_overrides(args.tag),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from lrdoctor.analyzers import LogdirError

    try:
        return {"audit": _cmd_audit, "report": _cmd_report, "serve": _cmd_serve}[args.command](args)
    except (CliError, LogdirError, OSError) as e:  # OSError: an output file or port we cannot use
        print(f"lrdoctor: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
