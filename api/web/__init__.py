"""The web dashboard: pages rendered on the server (Jinja2 + htmx), for people with a cookie
session; the JSON API keeps its bearer tokens and API keys."""
