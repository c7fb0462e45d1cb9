"""Structured reports, encapsulated PDF/CDA and tag browsing models. No Qt here."""
