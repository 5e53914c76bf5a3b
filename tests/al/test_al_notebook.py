"""examples/active_learning.ipynb runs top to bottom on the CPU (nbclient, a real Jupyter kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.slow
def test_notebook_runs_top_to_bottom() -> None:
    nb = nbformat.read(EXAMPLES / "active_learning.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(EXAMPLES)}}
    )
    client.execute()
    outputs = [
        "".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in nb.cells if cell.cell_type == "code"
    ]
    text = "\n".join(outputs)
    assert "round 1 next stage: wait | model fitted: True" in text
    assert "round 4:" in text and "| entropy | 2 |" in text
    # the last cell displays the learning-curve PNG
    last = nb.cells[-1]["outputs"][0]
    assert "image/png" in last["data"]
