"""The Data quality page's review of pairs possibly of one lesion under two ids: the candidates best first with
their evidence, and a verdict per pair saved into the dataset's lesion merges file (dashboard.merges_data)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import audit_data, components, merges_data, run_images

PAIRS_PER_PAGE = 6
RERUN_HINT = "re-run the audit to look for one lesion filed under two ids"


def _yes_no(value: object, what: str) -> str:
    return f"{what} –" if pd.isna(value) else f"same {what}" if value else f"**different {what}**"


def _same_lesion_facts(pair: pd.Series, k: int, verdict: tuple[str, str] | None) -> str:
    def rank(r: int) -> str:
        return f"#{r}" if r <= k else f"beyond #{k}"

    phash = "–" if pd.isna(pair["phash_distance"]) else f"{int(pair['phash_distance'])} bits"
    pixels = "–" if pd.isna(pair["pixel_distance"]) else f"{pair['pixel_distance']:.1f} / 255"
    age = pair["age_difference"]
    age = ("age –" if pd.isna(age) else "one age unknown" if age >= 99 else "same age" if age == 0
           else f"ages {age:g} years apart")
    split = (f"**crosses splits** ({pair['split_a']} / {pair['split_b']}): a leak" if pair["crosses_split"]
             else f"both in {pair['split_a']}")
    current = ("not reviewed yet" if verdict is None
               else f"**{merges_data.LABELS[verdict[0]]}**" + (f" ({verdict[1]})" if verdict[1] else ""))
    return "\n".join([
        f"- **probability of one lesion: {pair['probability']:.2f}** (candidate #{int(pair['rank'])})",
        f"- embedding cosine distance: {pair['cosine_distance']:.2e}",
        (f"- mutual ranks among images of other lesions: a ranks b {rank(int(pair['rank_ab']))}, b ranks a "
         f"{rank(int(pair['rank_ba']))}"),
        f"- pHash distance: {phash} · mean pixel difference (32x24): {pixels}",
        (f"- metadata: {_yes_no(pair['same_dx'], 'diagnosis')} ({pair['dx_a']} / {pair['dx_b']}), "
         f"{_yes_no(pair['same_sex'], 'sex')}, {_yes_no(pair['same_localization'], 'localization')}, {age}"),
        f"- lesion ids: {pair['lesion_a']} ({pair['split_a']}) · {pair['lesion_b']} ({pair['split_b']})",
        f"- {split}",
        f"- current verdict: {current}"])


def _save_verdict(path: Path, image_a: str, image_b: str, key: str) -> None:
    """The Save button's callback: record the chosen verdict, and keep the outcome to show once."""
    verdict = st.session_state.get(f"{key}_verdict")
    if verdict is None:
        st.session_state[f"{key}_said"] = ("error", "Choose a verdict first: same lesion, different lesions or unsure.")
        return
    error = merges_data.save(path, image_a, image_b, verdict, st.session_state.get(f"{key}_note", ""))
    saved = f"Saved: {merges_data.LABELS[verdict]}, in `{components.run_argument(path)}`."
    st.session_state[f"{key}_said"] = ("error", error) if error else ("success", saved)


def _verdict_control(merges: merges_data.Merges, image_a: str, image_b: str, key: str) -> None:
    """Same lesion / different lesions / unsure, an optional note, and Save (into the merges file)."""
    current = merges.verdict_of(image_a, image_b)
    # the widgets belong to one file: another file starts from its own verdicts
    key = f"{key}_{hashlib.sha1(str(merges.path).encode()).hexdigest()[:8]}"
    options = list(merges_data.LABELS)
    st.radio("Verdict", options, index=options.index(current[0]) if current else None,
             format_func=merges_data.LABELS.get, horizontal=True, key=f"{key}_verdict")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.text_input("Note (optional)", value=current[1] if current else "", key=f"{key}_note",
                    placeholder="what decided it")
    right.button("Save", key=f"{key}_save", icon=":material/save:", on_click=_save_verdict,
                 args=(merges.path, image_a, image_b, key), disabled=merges.unusable,
                 help="Fix the merges file, or choose another, first" if merges.unusable
                 else f"Record this verdict in {merges.path.name}, replacing the pair's earlier one")
    said = st.session_state.pop(f"{key}_said", None)
    if said:
        (st.error if said[0] == "error" else st.success)(said[1])


def _merges_file(run: Path, meta: pd.DataFrame) -> merges_data.Merges:
    """The merges file input, a one-line summary of what it holds, and its one error message if any."""
    default = merges_data.default_path(run)
    text = st.text_input(
        "Lesion merges file", value=components.run_argument(default), key=f"dq_merges_{run.name}",
        help="Verdicts go to this CSV (image_a, image_b, verdict, note; skinsim.data.merges), which belongs to the "
             "dataset, not the run, so they outlive new runs and audits. By default it is "
             f"`{merges_data.FILE_NAME}` in the run's dataset folder when that folder is writable, else "
             f"`data/<dataset folder>_{merges_data.FILE_NAME}` in this repository (a shared dataset copy is read-"
             "only). The first verdict saved creates the file; its folder must exist.")
    merges = merges_data.read(Path(text.strip()).expanduser(), meta) if text.strip() else None
    if merges is None:
        st.error("Choose where the lesion merges file goes: the path is empty.")
        return merges_data.Merges(Path(""), error="no path", stale=False)
    if merges.error:
        st.error(f"Lesion merges file: {merges.error}. Nothing was changed"
                 + (". Verdicts can still be saved; they keep its other rows." if merges.stale else
                    "; fix it, or choose another file, to save verdicts."), icon=":material/block:")
    where = components.run_argument(merges.path)
    if merges.exists and not merges.unusable:
        n, total = merges.counts(), len(merges.table)
        st.caption(f"{total:,} pair{'' if total == 1 else 's'} reviewed in `{where}`: {n['same']:,} same lesion, "
                   f"{n['different']:,} different lesions, {n['unsure']:,} unsure.")
    elif not merges.exists:
        st.caption(f"No verdicts yet: the first one saved creates `{where}`.")
    return merges


def tab(run: Path, audit: object, meta: pd.DataFrame, flt: tuple[set[str], set[str], set[str]]) -> None:
    summary = audit.summary
    if not audit_data.has_same_lesion(summary):
        st.info(f"This audit predates the search for images of one lesion filed under two lesion ids: "
                f"{RERUN_HINT}.", icon=":material/history:")
        st.code(f"python -m skinsim.audit {components.run_argument(run)}", language="bash")
        return
    threshold = float(summary["same_lesion"]["threshold"])
    st.caption("Pairs of images filed under two lesion ids that may show one lesion photographed twice, most "
               "probable first. One lesion under two ids leaks across a lesion split: one photo can train the "
               "model while the other evaluates it. Review a pair and save a verdict: it goes to the lesion merges "
               "file, which belongs to the dataset; `same` verdicts merge the two lesion ids for later splits.")
    merges = _merges_file(run, meta)
    cols = st.columns([2, 1], vertical_alignment="bottom")
    at_least = cols[0].slider("Probability of one lesion, at least", 0.0, 1.0, threshold, step=0.01, key="dq_sl_p",
                              help=f"The audit counts pairs from {threshold:g} as likely one lesion. "
                                   f"Probability: {summary['same_lesion']['how']}.")
    crossing = cols[1].checkbox("only pairs across splits", key="dq_sl_cross")
    pairs = audit.same_lesion
    shown = audit_data.same_lesion_shown(pairs, flt, at_least, crossing)
    if shown.empty:
        st.info("No pair passes these filters." if len(pairs) else "The audit found no pair of images under two "
                "lesion ids close enough to be one lesion.")
        return
    k = int(summary["params"]["k"])
    for i, pair in components.page_of(shown, PAIRS_PER_PAGE, "dq_sl_page").iterrows():
        a, b = str(pair["image_a"]), str(pair["image_b"])
        with st.container(border=True, key=f"dq_sl_pair_{i}"):
            pictures, right = st.columns([2, 1.6])
            with pictures:
                for col, side, image_id in zip(st.columns(2), "ab", (a, b)):
                    col.image(run_images.image_bytes(run, image_id)[0], width="stretch",
                              caption=f"{side} · {pair[f'lesion_{side}']} · {pair[f'split_{side}']} · "
                                      f"{pair[f'dx_{side}']} · {image_id}")
                    with col:
                        components.map_button(run, image_id, key=f"dq_sl_map_{i}_{side}")
                components.pair_why_similar(run, a, b, key=f"dq_sl_why_{i}")
            with right:
                st.markdown(_same_lesion_facts(pair, k, merges.verdict_of(a, b)))
                _verdict_control(merges, a, b, key=f"dq_sl_{a}_{b}")

