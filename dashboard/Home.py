"""Entry point of the dashboard: `streamlit run dashboard/Home.py`. Sets the page up, draws the shared run
picker in the sidebar and hands over to the chosen page."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `streamlit run` only puts dashboard/ on the path; skinsim may not be installed
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from dashboard import components  # noqa: E402

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="skinsim", page_icon=":material/dermatology:", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
    st.Page(PAGES / "embedding_map.py", title="Embedding map", icon=":material/scatter_plot:", url_path="map"),
    st.Page(PAGES / "retrieval_accuracy.py", title="Retrieval accuracy", icon=":material/bar_chart:",
            url_path="accuracy"),
    st.Page(PAGES / "query_viewer.py", title="Query viewer", icon=":material/image_search:", url_path="query"),
    st.Page(PAGES / "data_quality.py", title="Data quality", icon=":material/fact_check:", url_path="quality"),
])
components.run_picker()
navigation.run()
