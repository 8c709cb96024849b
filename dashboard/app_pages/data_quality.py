"""Data quality: the run's audit (near-duplicates, pairs possibly of one lesion under two ids, label-issue
candidates, outliers) as paged images with scores, and the review of those pairs into the dataset's merges file."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import audit_data, components, run_data, run_images, same_lesion_review, selections
from skinsim.audit.leaks import describe as describe_leaks

PAIRS_PER_PAGE = 6
RERUN_HINT = same_lesion_review.RERUN_HINT
TILES_PER_PAGE, TILES_PER_ROW = 12, 4
TILE_WIDTH = 150


def _filters(meta: pd.DataFrame) -> tuple[set[str], set[str], set[str]]:
    """The diagnosis, split and dx_type filters (empty = all)."""
    cols = st.columns(3)
    dx = cols[0].multiselect("Diagnosis", run_data.classes_all(meta["dx"]), key="dq_dx", placeholder="all")
    split = cols[1].multiselect("Split", ["train", "val", "test"], key="dq_split", placeholder="all")
    kinds = run_data.classes_all(meta["dx_type"].dropna()) if "dx_type" in meta else []
    dx_type = cols[2].multiselect("Diagnosis confirmed by (dx_type)", kinds, key="dq_dx_type", placeholder="all",
                                  help="histo (histopathology) is the trustworthy kind; follow_up, consensus and "
                                       "confocal are not biopsy-proven.")
    return set(dx), set(split), set(dx_type)


def _pair_facts(pair: pd.Series) -> str:
    phash = "–" if pd.isna(pair["phash_distance"]) else f"{int(pair['phash_distance'])} bits"
    pixels = "–" if pd.isna(pair["pixel_distance"]) else f"{pair['pixel_distance']:.1f} / 255"
    lesion = ("same lesion" if pair["same_lesion"]
              else f"**different lesion ids** ({pair['lesion_a']}, {pair['lesion_b']}): possibly one lesion "
                   "filed twice")
    split = (f"**crosses splits** ({pair['split_a']} / {pair['split_b']}): a leak" if pair["crosses_split"]
             else f"both in {pair['split_a']}")
    return "\n".join([f"- **rule**: {pair['rule']}", f"- embedding cosine distance: {pair['cosine_distance']:.2e}",
                      f"- pHash distance: {phash}", f"- mean pixel difference (32x24): {pixels}",
                      f"- {lesion}", f"- {split}", f"- diagnoses: {pair['dx_a']} / {pair['dx_b']}"])


def _duplicates(run: Path, dups: pd.DataFrame, flt: tuple[set[str], set[str], set[str]]) -> None:
    st.caption("Pairs of images that are almost the same: identical bytes; or perceptual hash and 32x24 pixels "
               "agree; or almost the same embedding. Pairs of different lesion ids may be one lesion filed twice; "
               "pairs across splits leak a lesion from training into evaluation.")
    cols = st.columns([2, 1, 1])
    rules = cols[0].multiselect("Rule", sorted(dups["rule"].unique()), key="dq_rule", placeholder="all")
    crossing = cols[1].checkbox("only pairs across splits", key="dq_cross")
    other = cols[2].checkbox("only different lesion ids", key="dq_other")
    keep = audit_data.passes(dups, flt, "_a") | audit_data.passes(dups, flt, "_b")
    if rules:
        keep &= dups["rule"].isin(rules)
    if crossing:
        keep &= dups["crosses_split"]
    if other:
        keep &= ~dups["same_lesion"]
    shown = dups[keep]
    if shown.empty:
        st.info("No pair passes these filters." if len(dups) else "The audit found no near-duplicate pair.")
        return
    for i, pair in components.page_of(shown, PAIRS_PER_PAGE, "dq_dup_page").iterrows():
        with st.container(border=True, key=f"dq_pair_{i}"):
            left, middle, right = st.columns([1, 1, 1.6])
            for col, side in ((left, "a"), (middle, "b")):
                image_id = str(pair[f"image_{side}"])
                col.image(run_images.image_bytes(run, image_id)[0], caption=f"{image_id} · {pair[f'dx_{side}']}",
                          width="stretch")
                with col:
                    components.map_button(run, image_id, key=f"dq_map_{i}_{side}")
            right.markdown(_pair_facts(pair))
    scores = audit_data.duplicate_scores(shown)
    components.selection_actions(run, selections.selection_table(run, scores.index.tolist(), scores), key="dq_dup",
                                 default_name="near-duplicates")


def _grid(run: Path, frame: pd.DataFrame, captions: list[str], key: str) -> None:
    """Image tiles in rows of TILES_PER_ROW, each with its caption and a button to the map."""
    for start in range(0, len(frame), TILES_PER_ROW):
        cols = st.columns(TILES_PER_ROW)
        for col, (i, row), caption in zip(cols, frame.iloc[start:start + TILES_PER_ROW].iterrows(),
                                          captions[start:start + TILES_PER_ROW]):
            with col:
                image_id = str(row["image_id"])
                st.image(run_images.image_bytes(run, image_id)[0], caption=caption, width=TILE_WIDTH)
                components.map_button(run, image_id, key=f"{key}_map_{i}")


def _label_issues(run: Path, issues: pd.DataFrame, flt: tuple[set[str], set[str], set[str]]) -> None:
    st.caption("Images whose neighbours from other lesions mostly carry another diagnosis, ranked by cleanlab's "
               "label quality (lowest first) over out-of-sample kNN class probabilities. A candidate is a label "
               "to check, not a wrong label: a histopathology-confirmed (histo) one is more likely a hard case "
               "for the embedding than a mislabelled image.")
    flagged = st.checkbox("only images cleanlab flags as label issues", value=True, key="dq_flagged")
    shown = issues[audit_data.passes(issues, flt) & (issues["is_label_issue"] if flagged else True)].sort_values("rank")
    if shown.empty:
        st.info("No image passes these filters.")
        return
    part = components.page_of(shown, TILES_PER_PAGE, "dq_label_page")
    captions = [f"{r.dx} → {r.suggested_dx} · quality {r.label_quality:.3f} · {r.dx_type} · {r.image_id}"
                for r in part.itertuples()]
    _grid(run, part, captions, "dq_label")
    scores = shown.set_index("image_id")[["suggested_dx", "label_quality", "is_label_issue", "rank", "dx_type"]]
    components.selection_actions(run, selections.selection_table(run, scores.index.tolist(), scores), key="dq_lab",
                                 default_name="label-issue candidates")


def _outliers(run: Path, outs: pd.DataFrame, flt: tuple[set[str], set[str], set[str]], k: int) -> None:
    st.caption(f"Images far from everything: score = mean cosine distance to their {k} nearest images (itself "
               "excluded); 'other lesions' leaves out the image's own lesion. Non-dermatoscopic, damaged or "
               "unusual images rise to the top.")
    cols = st.columns([1, 2])
    top = cols[0].number_input("Show the most isolated", 10, max(10, len(outs)), min(100, max(10, len(outs))),
                               step=10, key="dq_out_top")
    shown = outs[audit_data.passes(outs, flt)].sort_values("rank").head(int(top))
    if shown.empty:
        st.info("No image passes these filters.")
        return
    part = components.page_of(shown, TILES_PER_PAGE, "dq_out_page")
    captions = [f"#{r.rank} · {r.score:.4f} · {r.dx} · {r.split} · {r.image_id}" for r in part.itertuples()]
    _grid(run, part, captions, "dq_out")
    scores = shown.set_index("image_id")[["score", "score_other_lesions", "rank", "nearest_image_id"]]
    components.selection_actions(run, selections.selection_table(run, scores.index.tolist(), scores), key="dq_out",
                                 default_name="outliers")


def _summary(run: Path, audit: object) -> None:
    s = audit.summary
    counts, params, found = s["counts"], s["params"], s["images"]
    searched = audit_data.has_same_lesion(s)
    cols = st.columns(5)
    cols[0].metric("Near-duplicate pairs", f"{counts['duplicates']:,}",
                   help=", ".join(f"{rule}: {n}" for rule, n in counts["duplicates_by_rule"].items()))
    if searched:
        threshold = s["same_lesion"]["threshold"]
        cols[1].metric("Possibly one lesion, two ids", f"{counts['same_lesion_likely']:,}",
                       help=f"pairs of images filed under two lesion ids whose probability of showing one lesion "
                            f"is {threshold:g} or more ({counts['same_lesion']:,} candidates listed)")
        cols[2].metric("Pairs across splits", f"{audit_data.leaking_pairs(audit):,}",
                       help=f"pairs that may leak a lesion between splits, each counted once: "
                            f"{counts['duplicates_crossing_split']:,} near-duplicate pairs "
                            f"({counts['duplicates_crossing_split_other_lesion']:,} of them between different lesion "
                            f"ids) and {counts['same_lesion_likely_crossing_split']:,} pairs possibly of one lesion "
                            f"(probability {threshold:g} or more) cross splits")
    else:
        cols[1].metric("Possibly one lesion, two ids", "–", help=RERUN_HINT.capitalize())
        cols[2].metric("Pairs across splits", f"{counts['duplicates_crossing_split']:,}",
                       help=f"near-duplicate pairs only ({counts['duplicates_crossing_split_other_lesion']} of them "
                            f"between different lesion ids); {RERUN_HINT}")
    cols[3].metric("Label-issue candidates", f"{counts['label_issues']:,}",
                   help=f"{counts['label_issues_histo']} of them histopathology-confirmed")
    cols[4].metric("Images audited", f"{s['n_images']:,}", help=f"{found['found']:,} image files were hashed")
    st.caption(f"Audit `{s['audit_id']}` · k = {params['k']} neighbours vote · embedding duplicate threshold "
               f"{params['dup_threshold']:.3g} · pHash up to {params['phash_threshold']} bits · {found['found']:,} "
               f"of {s['n_images']:,} image files found · {s['seconds']['total']:.1f} s. Computed by "
               f"`python -m skinsim.audit {components.run_argument(run)}`; this page only reads its tables.")
    if searched:
        st.caption(f"Possibly one lesion under two ids: {s['same_lesion']['how']}; a pair counts as likely one "
                   f"lesion from {s['same_lesion']['threshold']:g}.")
        if "leak_check" in s:
            text = describe_leaks(s["leak_check"])
            st.caption(text[0].upper() + text[1:] + ". Each pair judged the same lesion in the merges file keeps "
                       "its two ids together in the next training's split.")
    else:
        st.info(f"This audit did not look for one lesion filed under two ids, so pairs across splits count "
                f"near-duplicates only: {RERUN_HINT}.", icon=":material/history:")
    if found["found"] == 0:
        st.info("The audit found no image files, so duplicates rest on embeddings alone (no hashes or pixels). "
                f"{run_images.GET_DATA} Then audit the run again.", icon=":material/image_not_supported:")
    if not audit.complete:
        st.warning("The audit tables do not all come from the audit that audit.json describes (one is missing or "
                   "was written by another audit). Run the audit again.", icon=":material/warning:")


def main() -> None:
    """Render the data quality page."""
    run = components.page_run("Data quality")
    if run is None:
        return
    try:
        audit = audit_data.audit(run)
    except audit_data.AuditUnreadable as err:
        st.error(f"The audit of this run cannot be read: {err}")
        st.code(f"python -m skinsim.audit {components.run_argument(run)}", language="bash")
        return
    if audit is None:
        st.info(f"Run `{run.name}` has not been audited yet. The audit finds near-duplicate images (and pairs that "
                "cross splits), label-issue candidates and outliers in about 10 s for HAM10000:",
                icon=":material/fact_check:")
        st.code(f"python -m skinsim.audit {components.run_argument(run)}", language="bash")
        st.caption("Training audits each new run when it ends. Reload this page when the audit has finished.")
        return
    _summary(run, audit)
    meta, _ = run_data.embeddings(run)
    flt = _filters(meta)
    n_flagged = int(audit.label_issues["is_label_issue"].sum()) if len(audit.label_issues) else 0
    likely = (f" ({audit.summary['counts']['same_lesion_likely']:,})"
              if audit_data.has_same_lesion(audit.summary) else "")
    tabs = st.tabs([f"Near-duplicates ({len(audit.duplicates):,})", f"Possibly the same lesion{likely}",
                    f"Label-issue candidates ({n_flagged:,})", "Outliers"])
    with tabs[0]:
        _duplicates(run, audit.duplicates, flt)
    with tabs[1]:
        same_lesion_review.tab(run, audit, meta, flt)
    with tabs[2]:
        _label_issues(run, audit.label_issues, flt)
    with tabs[3]:
        _outliers(run, audit.outliers, flt, int(audit.summary["params"]["k"]))
    components.missing_images_notice(run)


main()
