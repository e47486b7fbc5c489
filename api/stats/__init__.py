"""Counts for the dashboard: the national (or an establishment's) overview, incidents grouped
by region, kind, severity or status, and incidents opened per day or week. Counts only,
computed by the database, scoped to what the caller may see."""
