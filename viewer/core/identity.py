"""How Lightbox names itself on the wire and in the files it writes."""

from __future__ import annotations

from pydicom.uid import generate_uid

from viewer import __version__

# A UUID-derived root (2.25) needs no registered organisation root and can never collide.
IMPLEMENTATION_CLASS_UID = "2.25.32843169982271139943995144776607700715"
IMPLEMENTATION_VERSION_NAME = ("LIGHTBOX_" + __version__.replace(".", ""))[:16]
UID_ROOT = "2.25."


def new_uid() -> str:
    """A fresh UID for objects we create (GSPS, KO, print instances, de-identified copies)."""
    return generate_uid(prefix=None)
