"""Events and detections storage: one interface (`store.EventStore`), SQLite and Elasticsearch."""

from api.events.store import (
    EventStore,
    EventStoreError,
    InvalidDocument,
    RetroHunt,
    StoreWriteError,
)

__all__ = ["EventStore", "EventStoreError", "InvalidDocument", "RetroHunt", "StoreWriteError"]
