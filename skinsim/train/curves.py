"""Training curves: one row per epoch, saved as CSV and drawn as a PNG."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["epoch", "train_loss", "violating_triplets", "val_p_at_1", "lr", "time_s"]


def save_curves(rows: list[dict], folder: Path) -> pd.DataFrame:
    """Write curves.csv and curves.png into `folder`."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.to_csv(Path(folder) / "curves.csv", index=False)
    plot_curves(table, Path(folder) / "curves.png")
    return table


def plot_curves(table: pd.DataFrame, path: Path) -> None:
    """Loss and validation P@1 against epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(table["epoch"], table["train_loss"], marker="o")
    left.set(xlabel="epoch", ylabel="triplet loss", title="training loss")
    right.plot(table["epoch"], table["val_p_at_1"], marker="o", color="tab:green")
    right.set(xlabel="epoch", ylabel="P@1", title="validation P@1 (search: test)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
