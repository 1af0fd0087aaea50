"""The web front end: the FastAPI app (page, /metrics, probes), the Gradio page, sign-in and roles."""
