"""Trained models in use: an HTTP server (LitServe) and a web demo (Gradio) over the newest checkpoint of each task.

Both need the optional extra: pip install -e '.[serve]'.
"""
