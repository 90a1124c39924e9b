"""visualise.ipynb runs headless against generated data and draws its figures."""

import json

import pytest

import demo
from tests.conftest import PROJECT_DIR
from tests.test_mirror import mirrored  # noqa: F401 (the fixture)

pytest.importorskip("nbclient")


def test_the_notebook_is_stored_without_outputs():
    notebook = json.loads((PROJECT_DIR / "visualise.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert "parameters" in code[0]["metadata"]["tags"]


@pytest.mark.slow
def test_the_notebook_draws_every_figure_from_the_local_mirror(mirrored, tmp_path):  # noqa: F811
    notebook = demo.execute_notebook({
        "SOURCE": str(mirrored["parquet_dir"]), "DEVICE": "alex_rpi", "PIN_SENSOR": "4", "ENV_SENSOR": "bme280",
        "START": "2025-06-21", "END": "2025-06-22", "TABLE_PREFIX": mirrored["table_prefix"],
        "OUTPUT_DIR": str(tmp_path / "plots")})
    assert sorted(p.name for p in (tmp_path / "plots").glob("*.png")) == [
        "daily_uptime.png", "environment.png", "power_timeline.png"]
    text = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "330 pin readings, 2 days, 3 BME280 readings" in text
    tables = "".join(output.get("data", {}).get("text/plain", "") for cell in notebook.cells
                     for output in cell.get("outputs", []))
    assert "180" in tables  # the longest outage, 22:30 to 01:29
