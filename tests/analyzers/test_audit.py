"""`audit` on real event files, its renderings, and the `lrdoctor audit` command."""

import json

import curves
import eventfiles
import numpy as np
import pytest

from lrdoctor.analyzers import AuditResult, Finding, Severity, Verdict, audit, read_logdir
from lrdoctor.analyzers.audit import RunReport, _order
from lrdoctor.cli import main

N = 200


def _write_run(root, name, loss, lr, info):
    points = [
        (t, i, float(v))
        for i in range(len(loss))
        for t, v in (("lrdoctor/loss", loss[i]), ("lrdoctor/lr/pg0", lr[i]))
    ]
    eventfiles.torch_scalars(root / name, points, wall_time=1.7e9)
    eventfiles.write_records(
        root / name / eventfiles.event_file_name(1_600_000_000, "info"),
        [eventfiles.file_version_event(), eventfiles.run_info_event(info)],
    )


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("logdir")
    base = {"optimizer": "SGD", "model_kind": "cnn"}
    _write_run(
        root, "batch_32", curves.noisy(curves.decay(N), 0.1), np.full(N, 0.01), {**base, "batch_size": 32}
    )
    _write_run(
        root,
        "batch_256_unscaled",
        curves.noisy(curves.slow(N, total_drop=0.2), 0.005),
        np.full(N, 0.01),
        {**base, "batch_size": 256},
    )
    _write_run(
        root,
        "nan/run",
        curves.with_nan(curves.diverging(N, start=60, growth=0.1), 120),
        np.full(N, 0.5),
        {**base, "batch_size": 32},
    )
    _write_run(root, "short", curves.decay(10), np.full(10, 0.01), base)
    return root


def test_audit_verdicts_and_findings(logdir):
    result = audit(str(logdir))
    assert isinstance(result, AuditResult) and result.logdir == str(logdir)
    v = {n: r.verdict for n, r in result.reports.items()}
    assert v == {
        "batch_32": Verdict.HEALTHY,
        "batch_256_unscaled": Verdict.LR_TOO_LOW,
        "nan/run": Verdict.LR_TOO_HIGH,
        "short": Verdict.INCONCLUSIVE,
    }
    nan = result.reports["nan/run"]
    assert nan.top.code == "nan_loss" and nan.top.step == 120
    scaling = [f for f in result.reports["batch_256_unscaled"].findings if f.code == "batch_lr_scaling"]
    assert (
        scaling
        and scaling[0].fix == "with batch 256 the linear rule gives LR 0.08 from the batch-32 run's 0.01"
    )


def test_audit_accepts_runs_dict_and_matches(logdir):
    result = audit(read_logdir(logdir))
    assert result.logdir == "" and len(result.reports) == 4
    assert result.matching(["nan_loss"]) == ["nan/run"]
    assert result.matching(["lr_too_low", "inconclusive"]) == ["batch_256_unscaled", "short"]
    assert result.matching([]) == []
    assert result.unknown_codes(["nan_loss", "healthy", "bogus"]) == ["bogus"]
    assert "slow_decrease" in result.known_codes() and "lr_too_high" in result.known_codes()


def test_json_is_strict_and_documented(logdir):
    doc = audit(logdir).to_json()
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert back["summary"] == {"runs": 4, "healthy": 1, "lr_too_high": 1, "lr_too_low": 1, "inconclusive": 1}
    run = next(r for r in back["runs"] if r["run"] == "nan/run")
    assert run["verdict"] == "lr_too_high" and run["findings"][0]["code"] == "nan_loss"
    assert run["findings"][0]["step"] == 120
    assert {"confidence", "summary", "hparams", "signals", "points", "last_step"} <= set(run)


def test_table_and_markdown(logdir):
    result = audit(logdir)
    table = result.to_table()
    assert table.splitlines()[0].split()[:3] == ["RUN", "VERDICT", "CONF"]
    assert "lower the LR from 0.5" in table and "4 run(s)" in table
    md = result.to_markdown()
    assert "| `nan/run` | **lr_too_high** |" in md and "## `short`: inconclusive" in md


def test_empty_logdir(tmp_path):
    result = audit(tmp_path)
    assert result.reports == {} and "no runs found" in result.to_table()
    assert result.to_json()["runs"] == []


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_cli_formats(logdir, fmt, capsys):
    assert main(["audit", str(logdir), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(out)["summary"]["runs"] == 4
    else:
        assert "nan/run" in out


def test_cli_fail_on(logdir, capsys):
    assert main(["audit", str(logdir), "--fail-on", "nan_loss,lr_too_low"]) == 1
    assert "matched 2 run(s)" in capsys.readouterr().err
    assert main(["audit", str(logdir), "--fail-on", "exploding_gradients"]) == 0


def test_cli_unknown_code_and_missing_logdir(logdir, tmp_path, capsys):
    assert main(["audit", str(logdir), "--fail-on", "nan_los"]) == 2
    err = capsys.readouterr().err
    assert "unknown code(s) nan_los" in err and err.count("\n") == 1
    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_output_file_and_read_warnings(tmp_path, capsys):
    root = tmp_path / "logs"
    _write_run(root, "a", curves.decay(N), np.full(N, 0.1), {})
    path = next((root / "a").glob("*tfevents*[!o]"))
    eventfiles.flip_bit(path, eventfiles.record_offsets(path)[5][0] + 20)
    out = tmp_path / "audit.json"
    assert main(["audit", str(root), "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["runs"][0]["run"] == "a"
    assert "warning:" in capsys.readouterr().err


def _finding(code, severity, step=0):
    return Finding(code, severity, step, (step, step))


@pytest.mark.parametrize(
    ("codes", "top"),
    [
        # At equal severity a curve symptom comes before context, whatever the step.
        ([("batch_lr_scaling", "warning", 0), ("slow_decrease", "warning", 287)], "slow_decrease"),
        (
            [("no_grad_clipping", "warning", 23), ("exploding_gradients", "warning", 23)],
            "exploding_gradients",
        ),
        ([("lr_out_of_range", "info", 0), ("exploding_gradients", "info", 636)], "exploding_gradients"),
        ([("lr_out_of_range", "info", 0), ("lr_range_test", "info", 0)], "lr_range_test"),
        # Severity first; the non-finite loss first among errors.
        ([("lr_out_of_range", "info", 0), ("batch_lr_scaling", "warning", 0)], "batch_lr_scaling"),
        ([("loss_diverging", "error", 30), ("nan_loss", "error", 48)], "nan_loss"),
    ],
)
def test_top_finding_is_the_most_useful(codes, top):
    findings = [_finding(c, Severity(s), step) for c, s, step in codes]
    rep = RunReport("r", Verdict.HEALTHY, 0.5, _order(findings))
    assert rep.top.code == top


def test_range_test_gets_only_its_own_finding():
    # It blows the loss up on purpose at an LR far outside the tables: no curve symptom, no
    # lr_out_of_range, and it is never the base of the batch-size rule.
    hp = {"optimizer": "SGD", "model_kind": "cnn", "batch_size": 64, "run_kind": "lr_range_test"}
    lr = 1e-4 * 1.05 ** np.arange(N)
    loss = np.r_[curves.decay(150), curves.decay(150)[-1] * np.exp(0.08 * np.arange(50))]
    rt = curves.make_run("range_test", loss=loss, lr=lr, hparams=hp)
    other = curves.make_run(
        "big",
        loss=curves.decay(N),
        lr=np.full(N, 0.01),
        hparams={**hp, "run_kind": "train", "batch_size": 512},
    )
    result = audit({"range_test": rt, "big": other})
    rep = result.reports["range_test"]
    assert rep.verdict is Verdict.INCONCLUSIVE and rep.codes() == ["lr_range_test"]
    assert "batch_lr_scaling" not in result.reports["big"].codes()
