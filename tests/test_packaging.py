"""The package installs as `lrdoctor.*` only, from a wheel as well as editable."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("lrdoctor-*.whl")
    return whl


def test_wheel_holds_only_the_lrdoctor_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("lrdoctor-")}
    assert top == {"lrdoctor"}
    for module in (
        "cli.py",
        "__main__.py",
        "analyzers/logdir.py",
        "collectors/__init__.py",
        "dashboard/app.py",
    ):
        assert f"lrdoctor/{module}" in names
    assert not any(n.startswith("lrdoctor/tests/") or n.startswith("lrdoctor/benchmarks/") for n in names)


def test_wheel_installs_and_runs(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import lrdoctor, lrdoctor.analyzers, lrdoctor.dashboard, lrdoctor.cli; "
        "print(lrdoctor.analyzers.__file__)"
    )
    # Run from tmp_path so the checkout is not on sys.path: the installed copy must stand alone.
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target))


def test_python_dash_m_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "lrdoctor", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "serve" in done.stdout and "audit" in done.stdout and "report" in done.stdout


def test_audit_and_dashboard_work_without_torch(tmp_path):
    # Auditing a logdir must not need torch: make `import torch` fail and do the whole job.
    probe = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is not installed')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from lrdoctor.cli import main\n"
        "from lrdoctor.dashboard import create_app\n"
        f"create_app({str(ROOT / 'sample_runs')!r})\n"
        f"sys.exit(main(['report', {str(ROOT / 'sample_runs')!r}, '-o', {str(tmp_path / 'a.html')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "a.html").stat().st_size > 100_000  # plots and plotly.js inlined
