"""The analyzers against sample_runs/expected.json (real tiny trainings by the collector)."""

import json
from pathlib import Path

import pytest

from lrdoctor.analyzers import audit

SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"
EXPECTED = SAMPLES / "expected.json"


@pytest.fixture(scope="module")
def result():
    return audit(SAMPLES)


def cases():
    if not EXPECTED.is_file():
        return [
            pytest.param(None, None, marks=pytest.mark.skip(reason="sample_runs/expected.json not generated"))
        ]
    return [pytest.param(name, exp, id=name) for name, exp in json.loads(EXPECTED.read_text()).items()]


@pytest.mark.parametrize(("name", "expected"), cases())
def test_sample_run(result, name, expected):
    rep = result.reports[name]
    assert rep.verdict.value == expected["verdict"], rep.summary
    assert set(expected["codes"]) <= set(rep.codes())
    nan_step = expected.get("facts", {}).get("first_nan_step")
    if nan_step is not None:
        assert any(f.code == "nan_loss" and f.step == nan_step for f in rep.findings)
    if expected["verdict"] == "healthy":
        assert all(f.severity.value == "info" for f in rep.findings), rep.codes()
