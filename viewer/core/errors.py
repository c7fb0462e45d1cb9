"""The root of what the store and its ingest refuse or fail on; kept apart so both can share it."""

from __future__ import annotations


class StoreError(Exception):
    """Base of what the store refuses; the message is meant for the user."""
