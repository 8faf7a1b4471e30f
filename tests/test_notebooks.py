"""The notebooks: committed without outputs, and executed headless on a small subset (figures rendered to tmp)."""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = {"embedding_space.ipynb", "what_vgg_sees.ipynb"}


def _read(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    found = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert EXPECTED <= found
    for name in sorted(found):
        nb = _read(name)
        nbformat.validate(nb)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        for cell in code:
            assert cell.outputs == [], f"{name}: a code cell has outputs (strip them before committing)"
            assert cell.execution_count is None, f"{name}: a code cell has an execution count"
        assert "parameters" in code[0].metadata.get("tags", []), f"{name}: first code cell is not tagged parameters"
        assert nb.metadata.kernelspec.name == "python3"


def _execute(name, tmp_path, monkeypatch, env):
    from nbclient import NotebookClient

    for key, value in {**env, "ARBSTYLE_NB_FIGURES": str(tmp_path / "figures")}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    nb = _read(name)
    NotebookClient(nb, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for out in cell.outputs if out.output_type == "stream")
    return nb, text


def _assert_figures(folder, names):
    for name in names:
        image = np.asarray(Image.open(folder / name).convert("RGB"), np.float32)
        assert image.shape[0] > 100 and image.shape[1] > 200, name
        assert image.std() > 10, f"{name} is blank"


def test_what_vgg_sees_executes(tmp_path, monkeypatch):
    _, text = _execute("what_vgg_sees.ipynb", tmp_path, monkeypatch,
                       {"ARBSTYLE_NB_N": "16", "ARBSTYLE_NB_SIDE": "96", "ARBSTYLE_NB_UNITS": "4",
                        "ARBSTYLE_NB_TOP": "4", "ARBSTYLE_NB_N_SHUFFLE": "8"})
    _assert_figures(tmp_path / "figures",
                    ["vgg_top_patches.png", "vgg_receptive_fields.png", "vgg_layout_shuffle.png"])
    sizes = dict(re.findall(r"(relu\d_\d): receptive field\s+(\d+)", text))
    assert [int(sizes[k]) for k in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")] == [5, 14, 40, 92, 196]
    changes = {k: (float(g), float(f)) for k, g, f in
               re.findall(r"(relu\d_\d): Gram change ([\d.]+), feature change ([\d.]+)", text)}
    # the reading's claim: shuffling the layout barely moves shallow Gram statistics, but moves the features
    gram1, feat1 = changes["relu1_2"]
    assert gram1 < 0.75 * feat1
    assert changes["relu1_2"][0] < changes["relu5_3"][0]


def test_embedding_space_executes(tmp_path, monkeypatch):
    _, text = _execute("embedding_space.ipynb", tmp_path, monkeypatch,
                       {"ARBSTYLE_NB_N": "60", "ARBSTYLE_NB_THUMBNAILS": "12", "ARBSTYLE_NB_SIZE": "96",
                        "ARBSTYLE_NB_STEPS": "3", "ARBSTYLE_NB_ROWS": "2", "ARBSTYLE_NB_NEIGHBOURS": "4",
                        "ARBSTYLE_NB_PERPLEXITY": "10"})
    _assert_figures(tmp_path / "figures",
                    ["embedding_pca.png", "embedding_tsne.png", "embedding_neighbours.png",
                     "embedding_interpolation.png", "embedding_strength.png"])
    shape = re.search(r"paintings \((\d+), (\d+)\) validation styles \((\d+), (\d+)\)", text)
    assert shape and shape.group(1) == "60" and shape.group(2) == shape.group(4) == "100"
    knn = float(re.search(r"style embedding: ([\d.]+)%", text).group(1))
    baseline = float(re.search(r"baseline\):\s+([\d.]+)%", text).group(1))
    assert knn > baseline  # embeddings carry the grouping, even on a small subset
