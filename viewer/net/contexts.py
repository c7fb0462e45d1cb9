"""Which SOP classes and transfer syntaxes Lightbox negotiates, as SCP and as retrieving SCU."""

from __future__ import annotations

from pydicom.uid import (
    JPEG2000,
    MPEG2MPHL,
    MPEG2MPML,
    MPEG4HP41,
    MPEG4HP41BD,
    MPEG4HP422D,
    MPEG4HP423D,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.sop_class import _STORAGE_CLASSES  # the complete list pynetdicom knows, retired ones included

UNCOMPRESSED: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
COMPRESSED: tuple[str, ...] = (
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEG2000,
    JPEGLSNearLossless,
)
VIDEO: tuple[str, ...] = (MPEG2MPML, MPEG2MPHL, MPEG4HP41, MPEG4HP41BD, MPEG4HP422D, MPEG4HP423D)

# Every transfer syntax the seeds list; the SCP stores objects as received, so it can accept them all.
# pynetdicom picks the first of ours that the sender proposed, so the order is the preference, as in the
# Enterprise Imaging seed: compressed over uncompressed (a sender never has to decompress for us, which
# DCMTK's storescu cannot do), lossless over lossy, explicit over implicit VR.
SCP_TRANSFER_SYNTAXES: list[str] = [*COMPRESSED, *VIDEO, *UNCOMPRESSED]

VERIFICATION = UID("1.2.840.10008.1.1")
STORAGE_SERVICE_CLASS = UID("1.2.840.10008.4.2")

QR_MODELS: dict[str, dict[str, UID]] = {
    "study": {
        "find": UID("1.2.840.10008.5.1.4.1.2.2.1"),
        "move": UID("1.2.840.10008.5.1.4.1.2.2.2"),
        "get": UID("1.2.840.10008.5.1.4.1.2.2.3"),
    },
    "patient": {
        "find": UID("1.2.840.10008.5.1.4.1.2.1.1"),
        "move": UID("1.2.840.10008.5.1.4.1.2.1.2"),
        "get": UID("1.2.840.10008.5.1.4.1.2.1.3"),
    },
}


def storage_sop_classes() -> list[UID]:
    """Every standard storage SOP class (images, multiframe, all PS, KO, SR, PDF/CDA, waveforms, RT, SEG, raw)."""
    return sorted({UID(uid) for uid in _STORAGE_CLASSES.values()})


_STANDARD_STORAGE = set(storage_sop_classes())


def is_standard_storage(uid: str) -> bool:
    return uid in _STANDARD_STORAGE


def looks_like_storage(uid: str) -> bool:
    """A private or unknown abstract syntax proposed to a Storage SCP is treated as storage.

    Known non-storage services (Q/R, print, worklist...) are not: they are negotiated, or refused, as usual.
    """
    if uid in _STANDARD_STORAGE:
        return True
    as_uid = UID(uid)
    if not as_uid.is_valid:
        return False
    return as_uid.is_private or as_uid.name == uid  # pydicom names every public UID it knows


def is_image_storage(uid: str) -> bool:
    name = UID(uid).name
    return "Image Storage" in name and "Presentation State" not in name
