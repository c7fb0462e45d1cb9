"""Image and video export of composed views (no Qt): PNG, JPEG and MP4 files of what a viewport shows."""
