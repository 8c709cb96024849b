"""Home: what the selected run is, its headline numbers beside the baselines, its training curves, and how to
make a new run."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import components, figures, run_data, summary


def main() -> None:
    """Render the home page."""
    st.title("skinsim")
    st.caption("Explore how a metric-learning model arranges dermatoscopic images by similarity. "
               "Distances and neighbour votes are similarity statistics, not diagnoses.")
    run = components.current_run()
    if run is None:
        components.no_run_notice()
        return
    info = run_data.run_info(run)
    meta, vectors = run_data.embeddings(run)
    st.header(f"Run `{info.name}`")
    _about(info, meta, vectors.shape[1])
    _headline(info.metrics)
    _curves(run)
    st.subheader("Make a new run")
    st.code(components.TRAIN_COMMAND, language="bash")
    st.caption("Training writes `data/runs/<name>/` and points `data/runs/latest` at it; pick it in the sidebar "
               "after reloading. `python -m skinsim.evaluate RUN` recomputes a run's metrics.json.")


def _about(info: run_data.RunInfo, meta: pd.DataFrame, dim: int) -> None:
    config = info.config
    cfg_meta = config.get("meta") or {}
    left, middle, right = st.columns(3)
    with left:
        st.markdown("**Data**")
        st.markdown(f"- {config.get('dataset', 'ham10000')}: {len(meta):,} images, {meta['lesion_id'].nunique():,} "
                    f"lesions, {meta['dx'].nunique()} diagnoses\n- folder: `{cfg_meta.get('data_dir', config.get('data_dir', 'unknown'))}`"
                    f"\n- made: {summary.created(config)}\n- embedding size: {dim}")
        split_seed = config.get("split_seed")
        split_seed = config.get("seed", "?") if split_seed is None else split_seed
        st.markdown(f"**Split protocol**: {summary.split_protocol(config)} (split seed {split_seed}, "
                    f"training seed {config.get('seed', '?')}).")
        st.dataframe(summary.split_counts(meta))
    with middle:
        st.markdown("**Model**")
        st.markdown(_bullets(summary.topic(config, "model")))
        if cfg_meta.get("versions"):
            st.caption("versions: " + ", ".join(f"{k} {v}" for k, v in cfg_meta["versions"].items()))
    with right:
        st.markdown("**Training**")
        st.markdown(_bullets(summary.topic(config, "training")))
        times = {k: v for k, v in (cfg_meta.get("time_s") or {}).items() if isinstance(v, (int, float))}
        if times:
            st.caption("wall time: " + ", ".join(f"{k} {float(v):.0f} s" for k, v in times.items()))
    with st.expander("Full config.json"):
        st.code(json.dumps(config, indent=2), language="json")


def _bullets(values: dict) -> str:
    return "\n".join(f"- {k}: `{v}`" for k, v in values.items()) or "- not recorded in config.json"


def _headline(metrics: dict) -> None:
    st.subheader("Headline retrieval metrics")
    table = summary.headline(metrics)
    if table.empty:
        st.info("This run has no metrics.json; `python -m skinsim.evaluate RUN` writes it.")
        return
    st.caption(f"Queries = {metrics.get('queries', 'val')} ({metrics.get('n_queries', '?')} images), search space = "
               f"{metrics.get('search_space', 'test')} ({metrics.get('n_search', '?')} images). The baselines "
               f"answer without looking at the image: always-{summary.majority(metrics)} always returns the "
               "commonest diagnosis of the training split, random returns random images.")
    cols = st.columns(min(4, len(table)))
    for col, (name, row) in zip(cols, table.iterrows()):
        random = row["random"]
        col.metric(name, f"{row['this run']:.3f}",
                   delta=None if random is None or pd.isna(random) else f"{row['this run'] - random:+.3f} vs random")
    st.dataframe(table.style.format("{:.3f}", na_rep="–"))
    seed = metrics.get("seed_figure")
    if seed:
        lo, hi = seed.get("ci95", [None, None])
        st.caption(f"On {seed.get('n')} random queries (the original project's figure) P@1 = {seed.get('p_at_1'):.3f}"
                   + (f" (95% interval {lo:.3f}-{hi:.3f})." if lo is not None else "."))


def _curves(run) -> None:
    curves = run_data.curves(run)
    st.subheader("Training curves")
    if curves is None or curves.empty:
        st.info("This run has no curves.csv.")
        return
    st.plotly_chart(figures.training_curves(curves))


main()
