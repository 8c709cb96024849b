"""Ensembles of runs (skinsim.bench.ensemble): joined unit vectors, checked on cases worked out by hand."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinsim.bench import ensemble
from skinsim.runs.folder import read_vectors, write_vectors


def test_joined_vectors_are_unit_and_their_cosine_is_the_mean_of_the_runs():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0]])
    out = ensemble.joined([a, b])
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    # run a says the two images are orthogonal (cosine 0), run b that they are the same (cosine 1): mean 0.5
    assert out[0] @ out[1] == pytest.approx(0.5)
    assert np.allclose(ensemble.joined([a, a]) @ ensemble.joined([a, a]).T, a @ a.T)


def test_an_ensemble_of_a_run_with_itself_scores_as_the_run(tiny_run: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    assert ensemble.main([str(tiny_run), str(copy)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    own, joined = lines[2].split(" | ")[2:6], lines[3].split(" | ")[2:6]
    assert own == joined  # P@1, macro P@1, mel P@1 and MAP@R unchanged


def test_runs_of_other_splits_are_refused_with_one_message(tiny_run: Path, tmp_path: Path, capsys):
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    table, vectors = read_vectors(other / "embeddings.parquet")
    table["split"] = np.where(table["split"] == "val", "test", np.where(table["split"] == "test", "val", table["split"]))
    write_vectors(other / "embeddings.parquet", pd.DataFrame(table), vectors)
    assert ensemble.main([str(tiny_run), str(other)]) == 2
    assert "different splits" in capsys.readouterr().err
    assert ensemble.main([str(tiny_run)]) == 2
    assert "two or more runs" in capsys.readouterr().err
