"""The skinsim Streamlit dashboard: `streamlit run dashboard/Home.py`."""
