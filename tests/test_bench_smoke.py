"""Every benchmark runs, with tiny sizes (make bench runs the real ones)."""

import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

pytest.importorskip("duckdb")


@pytest.mark.slow
def test_the_benchmarks_run_and_report(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    result = subprocess.run([sys.executable, str(PROJECT_DIR / "bench" / "run.py"), "--smoke", "--output", str(output)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    for heading in ("## 1. Flush", "## 2. Aggregation", "## 3. The minute job", "## 4. Write and read units, cost",
                    "## 5. Parquet", "## 6. Watchdog"):
        assert heading in text
    # 60 readings: 3 batches, 1 of their hour's marker, the registry, the sensor's latest item
    assert ("| ours: BatchWriteItem of 25, 4 in flight, then the round's markers (+1 registry, +1 latest PutItem) "
            "| 6 / 6.0 / 6 |") in text
    assert "| ours | 5 / 5.0 / 5 |" in text and "| naive | 30 / 30.0 / 30 |" in text  # 30 over the slow link
    assert "| **markers of new hours** | **1.05** (goal <= 1.15) |" in text
    assert "| 2.0 / 2.0 / 2.0 | 1.5 / 1.5 / 1.5 |" in text  # 1 device: a BatchGetItem and a Query
