"""skinsim.two_part: a diagnosis part and a look part joined into one unit vector; the objective trains each part
with its own term; a run with two parts trains, records them and is searched like any other."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skinsim import two_part
from skinsim.config import TrainConfig
from skinsim.losses import lesion_contrast, triplet_loss
from skinsim.mining import mine
from skinsim.runs import read_vectors
from skinsim.search import SearchIndex
from skinsim.train import main
from tests.conftest import TINY_ARGS


def test_join_by_hand():
    out = torch.tensor([[3.0, 4.0, 0.0, 2.0]])
    # diagnosis (3, 4) / 5 = (0.6, 0.8); look (0, 2) / 2 = (0, 1); share 0.36: factors sqrt(0.64) = 0.8, sqrt(0.36) = 0.6
    joined = two_part.join(out, look_dims=2, share=0.36)
    torch.testing.assert_close(joined, torch.tensor([[0.48, 0.64, 0.0, 0.6]]))
    assert float(joined.norm()) == pytest.approx(1.0)
    torch.testing.assert_close(two_part.join(out, 0, 0.36), torch.tensor([[0.6, 0.8, 0.0, 0.4]]) / 1.0770329)


def test_squared_distance_is_the_share_weighted_sum_of_the_parts():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 10, generator=g)
    e = two_part.join(out, look_dims=4, share=0.3)
    d, look = two_part.split(e, 4, 0.3)
    torch.testing.assert_close(d, F.normalize(out[:, :6], dim=1))
    torch.testing.assert_close(look, F.normalize(out[:, 6:], dim=1))
    expected = 0.7 * (d[0] - d[1]).pow(2).sum() + 0.3 * (look[0] - look[1]).pow(2).sum()
    torch.testing.assert_close((e[0] - e[1]).pow(2).sum(), expected)
    torch.testing.assert_close(two_part.rejoin(e, 4, 0.3, 0.8), two_part.join(out, 4, 0.8))


@pytest.mark.parametrize("look_dims, share, message", [(16, 0.5, "between 1 and --em - 1 = 15"),
                                                        (-1, 0.5, "between 1 and --em - 1"),
                                                        (4, 0.0, "--look-share must be between 0 and 1"),
                                                        (4, 1.0, "--look-share must be between 0 and 1")])
def test_check_refuses_parts_that_cannot_be_joined(look_dims: int, share: float, message: str):
    with pytest.raises(ValueError, match=message):
        two_part.check(look_dims, share, em=16)
    two_part.check(0, share, em=16)  # one part: the share is not used


def test_the_objective_trains_each_part_with_its_own_term():
    pytest.importorskip("pytorch_metric_learning")
    from skinsim.metric_losses import Objective

    g = torch.Generator().manual_seed(1)
    out = torch.randn(16, 12, generator=g)
    emb = two_part.join(out, 4, 0.25).requires_grad_()
    labels = torch.arange(4).repeat_interleave(4)
    lesions = torch.arange(8).repeat_interleave(2)
    d, look = two_part.split(emb, 4, 0.25)
    expected = triplet_loss(d, mine("semi-hard", d, labels, 0.2), 0.2) + 0.5 * lesion_contrast(look, lesions)
    got = Objective("triplet", "semi-hard", 0.2, 0.5, 4, 12, seed=0, look_dims=4, look_share=0.25)(emb, labels, lesions)
    torch.testing.assert_close(got, expected)
    # without the lesion term nothing reaches the look part; the lesion term alone leaves the diagnosis part alone
    Objective("triplet", "semi-hard", 0.2, 0.0, 4, 12, seed=0, look_dims=4, look_share=0.25)(emb, labels, lesions).backward()
    assert emb.grad[:, 8:].abs().sum() == 0 and emb.grad[:, :8].abs().sum() > 0
    proxy = Objective("proxy-anchor", "semi-hard", 0.2, 0.0, 4, 12, seed=0, look_dims=4, look_share=0.25)
    assert proxy.other.proxies.shape == (4, 8)  # class proxies live in the diagnosis part


@pytest.fixture(scope="module")
def two_part_run(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "two-part"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS,
                 "--look-dims", "6", "--look-share", "0.3", "--precision", "fp32"]) == 0  # bf16: see test_precision
    return out


def test_a_two_part_run_records_its_parts_and_searches_like_any_other(two_part_run: Path, synthetic_data: Path):
    cfg = json.loads((two_part_run / "config.json").read_text())
    assert (cfg["look_dims"], cfg["look_share"], cfg["em"]) == (6, 0.3, 16)
    vectors = read_vectors(two_part_run / "embeddings.parquet")[1]
    assert vectors.shape[1] == 16
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose((vectors[:, :10] ** 2).sum(1), 0.7, atol=1e-5)  # the diagnosis part's share
    index = SearchIndex.from_run(two_part_run, search_space=("test",))
    row = index.search_table.iloc[0]
    found = index.query_image(synthetic_data / row["path"], k=3)
    assert found["image_id"].iloc[0] == row["image_id"] and found["distance"].iloc[0] < 1e-3
    assert TrainConfig.from_dict({"epochs": 3}).look_dims == 0  # runs made before two parts have one


@pytest.mark.parametrize("flags, message", [(["--look-dims", "16"], "--look-dims must be 0 (one part) or between 1"),
                                            (["--look-dims", "4", "--look-share", "1.5"], "--look-share must be"),
                                            (["--look-dims", "4", "--lesion-weight", "0"],
                                             "--look-dims needs the lesion term")])
def test_bad_two_part_flags_give_one_message_and_no_folder(synthetic_data: Path, tmp_path: Path, capsys,
                                                           flags: list[str], message: str):
    out = tmp_path / "bad"
    assert main(["--data-dir", str(synthetic_data), "--out", str(out), *TINY_ARGS, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err
    assert not out.exists() and not (tmp_path / ".bad.partial").exists()


def test_linear_target_gives_the_joined_cosine_at_this_point():
    g = torch.Generator().manual_seed(3)
    z, other = torch.randn(1, 10, generator=g), two_part.join(torch.randn(1, 10, generator=g), 4, 0.3)
    w = two_part.linear_target(z, other, 4, 0.3)
    torch.testing.assert_close((z * w).sum(), (two_part.join(z, 4, 0.3) * other).sum())


def test_the_cli_scores_a_two_part_run_at_each_share(two_part_run: Path, capsys):
    from skinsim.runs import load_run

    assert two_part.main([str(two_part_run), "--shares", "0,0.3,1"]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| look share | P@1 | macro P@1 | mel P@1 |") and len(lines) == 1 + 3
    # at the share it was trained with, the run's own numbers come back
    stored = load_run(two_part_run).metrics
    assert lines[2].startswith("| 0.300 | ")
    assert lines[2].split(" | ")[1] == f"{stored['overall']['p_at_1']:.3f}"
    assert lines[2].split(" | ")[-1].rstrip(" |") == f"{stored['same_lesion']['r_at_1']:.3f}"
    assert "not a --dev-fold run" in out.err


def test_the_cli_refuses_bad_shares_and_one_part_runs(tiny_run: Path, two_part_run: Path, capsys):
    with pytest.raises(SystemExit):
        two_part.main([str(two_part_run), "--shares", "0.5,2"])
    assert "--shares takes comma-separated numbers between 0 and 1, not '0.5,2'" in capsys.readouterr().err
    assert two_part.main([str(tiny_run)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "trained without --look-dims" in err
    assert two_part.main([str(tiny_run.parent / "no-such-run")]) == 2
