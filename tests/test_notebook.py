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


def test_readme_lists_the_notebooks_parameters():
    import re

    notebook = json.loads((PROJECT_DIR / "visualise.ipynb").read_text())
    cell = "".join(notebook["cells"][1]["source"])
    parameters = re.findall(r"^([A-Z_]+) = ", cell, re.M)
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme[readme.index("## Notebook"):readme.index("## Statistics")]
    documented = [name for row in re.findall(r"^\| (`[A-Z_].*?) \|", section, re.M)
                  for name in re.findall(r"`([A-Z_]+)`", row)]
    assert documented == parameters
    assert "jupyter execute visualise.ipynb" in section and "demo.execute_notebook(" in section


@pytest.mark.slow
def test_the_notebook_stops_with_a_reason_when_it_finds_no_data(tmp_path):
    from nbclient.exceptions import CellExecutionError

    with pytest.raises(CellExecutionError) as stopped:
        demo.execute_notebook({"SOURCE": str(tmp_path / "no-such-mirror"), "DEVICE": "alex_rpi",
                               "START": "2025-06-21", "END": "2025-06-22", "OUTPUT_DIR": str(tmp_path / "plots")})
    import re

    shown = re.sub(r"\x1b\[[0-9;]*m", "", str(stopped.value))  # the traceback's colours
    assert ("NoData: no readings of alex_rpi (pin 4, bme280) from 2025-06-21 to 2025-06-22 (UTC) in "
            f"'{tmp_path / 'no-such-mirror'}': set SOURCE, DEVICE, START and END") in shown
    assert not (tmp_path / "plots").exists()  # no empty figures
