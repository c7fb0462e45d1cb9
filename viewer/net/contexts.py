"""Which SOP classes and transfer syntaxes Lightbox negotiates, as SCP and as retrieving SCU."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.uid import (
    HTJ2K,
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
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
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

# Uncompressed, in our order of preference: explicit VR keeps the VRs of private elements; deflate costs an
# inflate (and is the one bomb-shaped syntax); big endian is retired and the costliest to handle.
UNCOMPRESSED: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
# Lossless compressed syntaxes, the most common first. HTJ2K (PS3.5 A.4.11) is decoded by our renderer, so
# its two lossless forms are taken like the others.
LOSSLESS_COMPRESSED: tuple[str, ...] = (
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
)
# Syntaxes that may be lossy (HTJ2K 4.203 and JPEG 2000 4.91 may also carry lossless data: the syntax does not
# say, so they rank as lossy).
LOSSY: tuple[str, ...] = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless, HTJ2K)
COMPRESSED: tuple[str, ...] = (*LOSSLESS_COMPRESSED, *LOSSY)
VIDEO: tuple[str, ...] = (MPEG2MPML, MPEG2MPHL, MPEG4HP41, MPEG4HP41BD, MPEG4HP422D, MPEG4HP423D)

# Every transfer syntax the seeds list; the SCP stores objects as received, so it can accept them all. Which
# one it takes in a presentation context is `choose_transfer_syntax`'s decision, not this list's order.
SCP_TRANSFER_SYNTAXES: list[str] = [*LOSSLESS_COMPRESSED, *UNCOMPRESSED, *LOSSY, *VIDEO]
_LOSSY_OR_VIDEO = frozenset((*LOSSY, *VIDEO))
_LOSSLESS_COMPRESSED = frozenset(LOSSLESS_COMPRESSED)


def choose_transfer_syntax(proposed: Sequence[str], *, prefer_compressed: bool = True) -> str | None:
    """The transfer syntax to accept in one presentation context, from the syntaxes the sender proposed in it.

    Never a lossy one when the sender offered a lossless one in the same context: a lossy original (only
    lossy syntaxes proposed) is still taken, since refusing it would lose the object, but we must never ask
    for a loss the sender did not have to make (PS3.5 8.2, and storescp chooses the same way). Among the
    lossless ones: with `prefer_compressed`, the sender's own lossless compressed syntaxes first, in the
    sender's order (it lists what it holds first, so it need not transcode, and the file stays small), then
    Explicit VR Little Endian; without it, the uncompressed ones first (Explicit VR Little Endian leading).
    None when nothing proposed is ours.
    """
    proposed = [str(ts) for ts in proposed]
    compressed = [ts for ts in proposed if ts in _LOSSLESS_COMPRESSED]
    uncompressed = [ts for ts in UNCOMPRESSED if ts in proposed]
    lossless = compressed + uncompressed if prefer_compressed else uncompressed + compressed
    if lossless:
        return lossless[0]
    lossy = [ts for ts in proposed if ts in _LOSSY_OR_VIDEO]
    return lossy[0] if lossy else None


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


# Retired storage SOP classes (PS3.6 Table A-1, "Retired") that archives and modalities in the field still send;
# the vendors' conformance statements (shared/reference) list them. pynetdicom's storage list leaves them out.
RETIRED_STORAGE: tuple[str, ...] = (
    "1.2.840.10008.5.1.1.27",  # Stored Print Storage
    "1.2.840.10008.5.1.1.29",  # Hardcopy Grayscale Image Storage
    "1.2.840.10008.5.1.1.30",  # Hardcopy Color Image Storage
    "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (Retired)
    "1.2.840.10008.5.1.4.1.1.5",  # Nuclear Medicine Image Storage (Retired)
    "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (Retired)
    "1.2.840.10008.5.1.4.1.1.8",  # Standalone Overlay Storage
    "1.2.840.10008.5.1.4.1.1.9",  # Standalone Curve Storage
    "1.2.840.10008.5.1.4.1.1.9.1",  # Waveform Storage - Trial
    "1.2.840.10008.5.1.4.1.1.10",  # Standalone Modality LUT Storage
    "1.2.840.10008.5.1.4.1.1.11",  # Standalone VOI LUT Storage
    "1.2.840.10008.5.1.4.1.1.12.3",  # X-Ray Angiographic Bi-Plane Image Storage
    "1.2.840.10008.5.1.4.1.1.77.1",  # VL Image Storage - Trial
    "1.2.840.10008.5.1.4.1.1.77.2",  # VL Multi-frame Image Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.1",  # Text SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.2",  # Audio SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.3",  # Detail SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.88.4",  # Comprehensive SR Storage - Trial
    "1.2.840.10008.5.1.4.1.1.129",  # Standalone PET Curve Storage
)


def storage_sop_classes() -> list[UID]:
    """Every storage SOP class (images, multiframe, all PS, KO, SR, PDF/CDA, waveforms, RT, SEG, raw), the
    retired ones still in use included."""
    return sorted({UID(uid) for uid in (*_STORAGE_CLASSES.values(), *RETIRED_STORAGE)})


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
