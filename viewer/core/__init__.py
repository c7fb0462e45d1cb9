"""Data model, study store, importers and settings. No Qt here."""
