"""Lightbox: a desktop DICOM viewer workstation."""

__version__ = "0.1.0"
APP_NAME = "Lightbox"
