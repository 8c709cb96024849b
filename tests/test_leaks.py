"""The leak check: likely same-lesion pairs across a run's split, before and after the reviewed merges."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skinsim.audit.leaks import crossing, describe, leak_check, split_without_merges
from skinsim.data.merges import check_rows, merged_lesion_ids
from skinsim.data.splits import make_split


def test_pairs_across_splits_are_counted_by_verdict() -> None:
    ids = pd.Series(["a", "b", "c", "d", "e", "f", "g", "h"])
    split = np.array(["train", "test", "train", "train", "val", "test", "train", "val"])
    pairs = pd.DataFrame({"image_a": ["a", "c", "e", "g"], "image_b": ["b", "d", "f", "h"]})
    # a|b cross (judged same), c|d do not (judged same), e|f cross (nobody said), g|h cross (judged different)
    verdicts = {frozenset(("b", "a")): "same", frozenset(("c", "d")): "same", frozenset(("g", "h")): "different"}
    assert crossing(pairs, ids, split, verdicts) == {
        "crossing": 3, "by_verdict": {"same": 1, "different": 1, "unsure": 0, "unreviewed": 1}}


def lesions_table(n_lesions: int = 400) -> pd.DataFrame:
    """Two views per lesion, a melanoma every third lesion; lesion L0001 is lesion L0000 filed again."""
    lesion = np.repeat(np.arange(n_lesions), 2)
    return pd.DataFrame({"image_id": [f"I{i:04d}" for i in range(len(lesion))],
                         "lesion_id": [f"L{x:04d}" for x in lesion],
                         "dx": np.where(lesion % 3 == 0, "mel", "nv")}).assign(
        dx=lambda t: t["dx"].where(t["lesion_id"] != "L0001", "mel"))


def test_a_reviewed_pair_crosses_before_the_merges_and_not_after(tmp_path: Path) -> None:
    table = lesions_table()
    pair = table["lesion_id"].isin(["L0000", "L0001"]).to_numpy()
    seed = next(s for s in range(42, 142) if len(set(make_split(table, "lesion", s)[pair])) > 1)
    merges = tmp_path / "lesion_merges.csv"
    merges.write_text("image_a,image_b,verdict\nI0000,I0002,same\n")
    run = table.assign(filed_lesion_id=table["lesion_id"],
                       lesion_id=merged_lesion_ids(table, check_rows(pd.read_csv(merges))).to_numpy())
    run["split"] = make_split(run, "lesion", seed)
    config = {"split": "lesion", "seed": seed, "meta": {"lesion_merges": {"path": str(merges)}}}
    before = split_without_merges(run, config)
    assert (before == make_split(table, "lesion", seed)).all() and len(set(before[pair])) == 2
    # another pair of two lesions that crosses both splits, nobody reviewed
    other = next((a, b) for a, b in zip(run["image_id"][10::2], run["image_id"][12::2])
                 if len(set(run.set_index("image_id").loc[[a, b], "split"])) == 2
                 and len(set(pd.Series(before, index=run["image_id"]).loc[[a, b]])) == 2)
    candidates = pd.DataFrame({"image_a": ["I0000", "I0001", other[0], "I0004"],
                               "image_b": ["I0002", "I0003", other[1], "I0006"],
                               "probability": [0.9, 0.8, 0.6, 0.3]})  # the last is below the threshold
    check = leak_check(candidates, run, config, threshold=0.5)
    assert check["likely"] == 3 and check["merges"] == str(merges)
    # before: both views of the lesion filed twice cross (one pair reviewed, one not), and the other pair
    assert check["before_merges"] == {"crossing": 3, "by_verdict": {"same": 1, "different": 0, "unsure": 0,
                                                                    "unreviewed": 2}}
    # after: only the pair nobody reviewed
    assert check["after_merges"] == {"crossing": 1, "by_verdict": {"same": 0, "different": 0, "unsure": 0,
                                                                   "unreviewed": 1}}
    assert "3 would cross the split without the reviewed merges, 1 cross the run's split (1 not reviewed)" \
        in describe(check)


def test_without_merges_before_is_the_runs_own_split() -> None:
    table = lesions_table(60).assign(split=lambda t: np.where(t.index % 2 == 0, "train", "test"))
    candidates = pd.DataFrame({"image_a": ["I0000"], "image_b": ["I0003"], "probability": [0.7]})
    check = leak_check(candidates, table, {"split": "lesion", "seed": 1}, threshold=0.5)
    assert check["merges"] is None and check["before_merges"] == check["after_merges"]
    assert check["after_merges"]["crossing"] == 1 and "no reviewed merges applied" in describe(check)
