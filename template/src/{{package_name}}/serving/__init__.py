"""Serving: the HTTP contract of MLflow's scoring server (/invocations), as a small client."""
