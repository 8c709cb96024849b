"""Two-part embeddings: a diagnosis part and a look part, each unit-length, joined into one unit vector.

With `look_dims` > 0 the last `look_dims` outputs of the head form the look part (trained by the lesion term: other
photos of the same lesion close, other lesions far) and the rest the diagnosis part (trained by the class loss).
They are joined as [sqrt(1 - share) * diagnosis, sqrt(share) * look], which is unit-length again, so that

    |e1 - e2|^2 = (1 - share) |d1 - d2|^2 + share |l1 - l2|^2

and `share` weighs "same diagnosis" against "looks alike" in every search, while the run's vectors stay plain
unit vectors for FAISS, the map and the dashboard. Both parts can be read back from a joined vector, so a run can
be searched at another share without training again:

    python -m skinsim.two_part data/runs/NAME --shares 0,0.25,0.5,0.75,1    # scores a --dev-fold run at each share
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F


def check(look_dims: int, share: float, em: int) -> None:
    """ValueError unless `look_dims` leaves both parts at least one dimension and 0 < share < 1."""
    if look_dims == 0:
        return
    if not 0 < look_dims < em:
        raise ValueError(f"--look-dims must be 0 (one part) or between 1 and --em - 1 = {em - 1}, not {look_dims}")
    if not 0 < share < 1:
        raise ValueError(f"--look-share must be between 0 and 1 (both excluded), not {share}")


def join(out: torch.Tensor, look_dims: int, share: float) -> torch.Tensor:
    """Unit vectors from raw head outputs (n, em): one L2-normalised part, or the two parts joined at `share`."""
    if not look_dims:
        return F.normalize(out, dim=1)
    return _weighed(F.normalize(out[:, :-look_dims], dim=1), F.normalize(out[:, -look_dims:], dim=1), share)


def _weighed(diagnosis: torch.Tensor, look: torch.Tensor, share: float) -> torch.Tensor:
    return torch.cat([diagnosis * (1 - share) ** 0.5, look * share ** 0.5], dim=1)


def split(emb: torch.Tensor, look_dims: int, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(diagnosis part, look part) of joined vectors, each unit-length again."""
    return emb[:, :-look_dims] / (1 - share) ** 0.5, emb[:, -look_dims:] / share ** 0.5


def rejoin(emb: torch.Tensor, look_dims: int, share: float, new_share: float) -> torch.Tensor:
    """The same vectors joined at `new_share` (0: diagnosis only, 1: look only, as in `join`'s formula)."""
    return _weighed(*split(emb, look_dims, share), new_share)


def linear_target(z: torch.Tensor, other: torch.Tensor, look_dims: int, share: float) -> torch.Tensor:
    """w (detached) with z . w = join(z) . other at this z: each part's norm held fixed, so a gradient of z . w
    explains the joined cosine with `other` (skinsim.explain)."""
    z = z.detach()
    diagnosis, look = z[:, :-look_dims].norm(dim=1, keepdim=True), z[:, -look_dims:].norm(dim=1, keepdim=True)
    return torch.cat([other[:, :-look_dims] * (1 - share) ** 0.5 / diagnosis,
                      other[:, -look_dims:] * share ** 0.5 / look], dim=1)


def parse_shares(text: str) -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0]; ValueError unless each is between 0 and 1."""
    shares = [float(v) for v in text.split(",") if v.strip()]
    if not shares or any(not 0 <= v <= 1 for v in shares):
        raise ValueError(text)
    return shares


def main(argv: list[str] | None = None) -> int:
    """CLI: a two-part run's stored vectors joined again at each share, scored as the run was."""
    import numpy as np

    from skinsim.benchmark import format_table
    from skinsim.config import TrainConfig
    from skinsim.evaluate import evaluate
    from skinsim.runs import open_run_or_say

    parser = argparse.ArgumentParser(prog="python -m skinsim.two_part", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or name under data/runs, trained with --look-dims")
    parser.add_argument("--shares", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                        help="comma-separated look shares between 0 (diagnosis part only) and 1 (look part only)")
    args = parser.parse_args(argv)
    try:
        shares = parse_shares(args.shares)
    except ValueError:
        parser.error(f"--shares takes comma-separated numbers between 0 and 1, not {args.shares!r}")
    run = open_run_or_say(args.run)
    if run is None:
        return 2
    cfg = TrainConfig.from_dict(run.config)
    if not cfg.look_dims:
        print(f"error: {run.path.name} has one part (trained without --look-dims): there is no share to change",
              file=sys.stderr)
        return 2
    if not run.config.get("dev_fold"):
        print("note: not a --dev-fold run; these are validation and test numbers, not for choosing a share",
              file=sys.stderr)
    table, vectors = run.embeddings()
    rows = []
    for share in shares:
        joined = rejoin(torch.from_numpy(np.array(vectors)), cfg.look_dims, cfg.look_share, share).numpy()
        m = evaluate(table, joined)
        mel, both = m["per_class"].get("mel", {}), m["both_ways"]["both_ways"]
        rows.append({"look share": share, "P@1": m["overall"]["p_at_1"], "macro P@1": m["overall"]["macro_p_at_1"],
                     "mel P@1": mel.get("p_at_1"), "mel MAP@R": mel.get("map_at_r"),
                     "mel P@1 both ways": both.get("per_class_p_at_1", {}).get("mel"),
                     "macro P@1 both ways": both.get("macro_p_at_1"),
                     "same-lesion R@1": m["same_lesion"]["r_at_1"]})
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
