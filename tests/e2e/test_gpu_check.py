"""benchmarks/gpu_check.py, the script for the first machine with a GPU, run small on the CPU: every
section runs and the record says what a GPU run will report (repeated runs bitwise equal)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_on_a_cpu_and_writes_its_record(tmp_path, data_dir):
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                          "--data-dir", str(data_dir), "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=1200, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (record,) = tmp_path.glob("gpu-check-*-cpu.md")
    text = record.read_text()
    for section in ("1. The machine", "2. Determinism", "3. The default experiment", "4. Batched training speed",
                    "5. Peak memory"):
        assert f"## {section}" in text
    assert "Verdict: repeated runs bitwise identical; batched vs solo within the tolerance." in text
    row = text.split("| batching 1: run a vs run b |")[1].splitlines()[0]
    assert row.split("|")[1:3] == [" 0 ", " 0 "], row  # not equal: none; largest difference: 0
