"""Notifications the service raises by itself (e.g. an agent gone silent), for an establishment
and the CERT."""
