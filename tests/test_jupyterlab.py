"""A lab opens in JupyterLab as a notebook that starts its kernel without asking, and saves back unchanged.

JupyterLab 4 opens a lab through Jupytext's contents manager (right-click › Open With › Jupytext
Notebook). The notebook it receives must name a kernel, or JupyterLab shows "Select Kernel" every time:
each lab's header keeps a generic ``python3`` kernelspec, and ``jupytext.toml`` keeps that one piece of
metadata when JupyterLab saves. These checks drive the same contents manager the Jupyter server uses.
"""

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.py"))

pytest.importorskip("jupyter_server")
jupytext_cm = pytest.importorskip("jupytext.sync_contentsmanager")
from jupyter_server.services.contents.largefilemanager import LargeFileManager  # noqa: E402

ContentsManager = jupytext_cm.build_sync_jupytext_contents_manager_class(LargeFileManager)


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.stem)
def test_lab_opens_with_the_python3_kernel(lab):
    model = ContentsManager(root_dir=str(ROOT)).get(f"labs/{lab.name}", type="notebook")
    kernelspec = model["content"]["metadata"].get("kernelspec")
    assert kernelspec and kernelspec.get("name") == "python3", (
        f"labs/{lab.name} opens in JupyterLab without a kernel, so JupyterLab asks 'Select Kernel': keep "
        f"the header jupytext writes with a generic kernelspec (display_name: Python 3 (ipykernel), "
        f"language: python, name: python3) at the top of the lab"
    )


def test_saving_in_jupyterlab_leaves_a_lab_unchanged(tmp_path):
    """Open and save, as JupyterLab does: the text, kernelspec header included, comes back byte for byte."""
    lab = ROOT / "labs" / "01_why_parallel.py"
    (tmp_path / "labs").mkdir()
    shutil.copy(ROOT / "jupytext.toml", tmp_path / "jupytext.toml")
    shutil.copy(lab, tmp_path / "labs" / lab.name)
    manager = ContentsManager(root_dir=str(tmp_path))
    model = manager.get(f"labs/{lab.name}", type="notebook")
    manager.save(model, f"labs/{lab.name}")
    assert (tmp_path / "labs" / lab.name).read_text(encoding="utf-8") == lab.read_text(encoding="utf-8")
    assert not list((tmp_path / "labs").glob("*.ipynb")), "saving a lab must not write a paired .ipynb"
