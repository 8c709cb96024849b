"""Retrieval accuracy: per-class P@1, P@k and recall@k with 95% intervals and baselines, averages, the
confusion heatmap, and a second run side by side."""
from __future__ import annotations

import streamlit as st

from dashboard import accuracy, components, figures, run_data

NONE = "(none)"


def main() -> None:
    """Render the retrieval accuracy page."""
    run = components.page_run("Retrieval accuracy")
    if run is None:
        return
    others = [p for p in run_data.available_runs() if p != run]
    left, right = st.columns([2, 2])
    k = left.slider("k (neighbours per query)", 1, 50, 5, key="acc_k")
    second_name = right.selectbox("Compare with a second run", [NONE] + [p.name for p in others], key="acc_second")
    runs = {run.name: run}
    if second_name != NONE:
        runs[second_name] = next(p for p in others if p.name == second_name)

    results = {name: accuracy.retrieval(path, k) for name, path in runs.items()}
    missing = [name for name, res in results.items() if res is None]
    for name in missing:
        st.warning(f"Run `{name}` has no validation or test images, so retrieval cannot be measured.")
    results = {name: res for name, res in results.items() if res is not None}
    if not results:
        return
    first = next(iter(results.values()))
    st.caption(f"Recomputed from the stored embeddings: queries = the validation split ({first.n_queries:,} images), "
               f"search space = the test split ({first.n_search:,} images). P@k is the share of a query's k nearest "
               "neighbours with its diagnosis; recall@k the share of queries with at least one. Bars show 95% "
               "intervals (Wilson for P@1 and recall, normal approximation for P@k). Markers are the baselines "
               f"(random: a random test image; majority: always-{first.majority}, the commonest diagnosis of the "
               "training split).")

    per_class = {name: res.per_class for name, res in results.items()}
    overall = {name: res.overall for name, res in results.items()}
    for metric, label in accuracy.METRICS:
        st.plotly_chart(figures.accuracy_bars(per_class, metric, label.format(k=k), overall), key=f"bars_{metric}")

    st.subheader("Micro and macro averages")
    st.caption("Micro: every query counts once. Macro: every diagnosis counts once, whatever its size.")
    st.dataframe(accuracy.overall_table(results).style.format(precision=3), hide_index=True)

    both = accuracy.both_ways_table(runs)
    if both is not None:
        st.caption("Macro P@1 rests on a handful of queries in the small classes. Pooling the queries both ways "
                   "(test images querying validation too) doubles them; the intervals are percentile bootstraps "
                   "that resample queries within each class.")
        st.dataframe(both.style.format(precision=3), hide_index=True)

    st.subheader("Same lesion, another photo")
    same = accuracy.same_lesion_table(runs)
    if same is None:
        st.caption("These runs' metrics.json predate same-lesion retrieval: `python -m skinsim.evaluate RUN` adds it.")
    else:
        st.caption("For every validation or test image whose lesion has other images: is one of them its nearest "
                   "image among all images of the dataset (itself excluded)? The same lesion photographed twice is "
                   "the most similar lesion there is. mAP ranks all of the lesion's other images.")
        st.dataframe(same.style.format(precision=3), hide_index=True)

    st.subheader("Confusion: query diagnosis vs top-1 neighbour diagnosis")
    cols = st.columns(len(results))
    for col, (name, res) in zip(cols, results.items()):
        with col:
            st.plotly_chart(figures.confusion_heatmap(res.confusion, f"run {name}"), key=f"confusion_{name}")

    with st.expander("Per-class table"):
        for name, res in results.items():
            st.markdown(f"**{name}**")
            st.dataframe(res.per_class.style.format(precision=3))


main()
