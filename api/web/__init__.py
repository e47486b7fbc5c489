"""The web dashboard: pages rendered on the server (Jinja2 + htmx)."""
