"""Collector agents: enrollment tokens per establishment, agents and their credentials."""
