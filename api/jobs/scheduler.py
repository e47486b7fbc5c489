"""The service's scheduled jobs (APScheduler), started and stopped with the application."""

from __future__ import annotations

from fastapi import FastAPI


def start(app: FastAPI) -> None:
    del app


def stop(app: FastAPI) -> None:
    del app
