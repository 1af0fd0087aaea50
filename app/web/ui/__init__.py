"""The web page's parts: table, live updates, actions, API, sign-in. See app/gradio_server.py."""
