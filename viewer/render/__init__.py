"""Pixel pipeline: decode, LUT stages, presentation states. numpy only, no Qt."""
