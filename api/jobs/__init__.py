"""Scheduled jobs: NIS2 deadlines, silent agents, retention; one runner at a time per job
across every service process on a database (locks in the database), every run recorded."""
