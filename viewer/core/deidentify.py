"""De-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Every attribute of Table E.1-1 gets the profile's action; where the table leaves a choice that depends on
the IOD (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) we take the choice that keeps any IOD valid without knowing it:
a dummy value (D) where D is allowed, else a zero-length value (Z). Private attributes, curves and overlays
are removed. UIDs are replaced by new ones, mapped consistently through one `Deidentifier` so that a study's
series, instances and references stay linked. Patient name and ID are replaced by a pseudonym (Z allows a
dummy value). Dates the profile lists are emptied or replaced by a dummy date; other dates are kept, as the
basic profile (without the Retain Longitudinal option) requires nothing else of them.

Pixel data is never changed: objects flagged Burned In Annotation = YES are reported so the caller can
refuse them (see `DeidentifyResult.burned_in_annotation`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from viewer.core.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, new_uid

DICOM_UID_ROOT = "1.2.840.10008."
METHOD_DESCRIPTION = "PS3.15 Basic Application Level Confidentiality Profile"  # LO: 64 chars at most

# PS3.15 Table E.1-1, column "Basic Prof.": action followed by the tags (group,element) it applies to.
_TABLE_E1_1 = """
D: 0018,11BB 006A,0005 006A,0003 0044,0104 0400,0562 300C,0127 0400,0115 0012,0081 0012,0020 0012,0010
 0012,0040 0012,0042 0040,0512 0040,A730 0008,0107 0008,0106 0040,A121 0040,A120 0018,9701 2100,0140 3010,002D
 0400,0105 0068,6226 0042,0011 3010,0035 3010,0038 0018,9804 0034,0002 0034,0001 0018,9074 0034,0007 0018,9151
 0018,9623 0070,0001 0072,000A 003A,0314 0068,6270 300A,0741 300A,0742 300A,0783 0400,0563 300A,0760 0040,1101
 0040,A123 300A,0002 3010,0054 300A,062A 300A,0619 300A,0623 300A,067C 0400,0565 300A,073A 0040,A13A 3008,0162
 3008,0164 3008,0166 3008,0168 0072,005E 0072,005F 0072,0061 0072,0063 0072,0066 0072,0068 0072,0065 0072,006A
 0072,006C 0072,006E 0072,006B 0072,006D 0072,0071 0072,0070 0018,936A 0034,0005 0018,9369 300A,022C 300A,022E
 0040,0551 3006,0002 0040,A122 3008,0024 3008,0025 300A,0608 300A,0736 300A,0734 3010,0033 3010,0034 0040,A030
 0040,A075 0040,A073 0040,A027 0018,9371 0018,9367
Z: 0008,0050 0018,1203 0012,0060 0012,0021 0012,0030 0012,0031 0012,0050 3010,000F 3010,0017 0008,009C 3010,001B
 0040,2017 3010,007F 0040,0513 0040,0562 3010,0043 0040,A082 0010,0020 0010,0030 0010,0010 0010,0040 0040,2016
 3010,007B 3010,0081 3006,00A6 3006,0026 300A,0615 300A,0611 3010,005A 300A,067D 3010,005C 0008,0090 300E,0004
 300E,0005 0400,0564 0040,0610 3006,0008 3006,0009 0008,0020 0020,0010 0008,0030 3010,007A 0040,A088
X: 0018,4000 0018,9424 0040,4035 0010,21B0 0040,A353 0038,0010 0038,0020 0008,1084 0008,1080 0038,0021 0000,1000
 0010,2110 006A,0006 0044,0004 4000,0010 0044,0105 0040,A078 300A,00C3 300A,00DD 0010,1081 0014,407E 0014,407C
 0016,004D 0018,1007 0400,0310 0012,0082 0012,0072 0012,0071 0012,0051 0040,0310 0040,0280 300A,02EB 0040,3001
 0008,009D 0050,001B 0040,051A 0070,0086 0018,1042 0018,1043 0018,A002 0018,A003 0010,2150 2100,0040 2100,0050
 0040,A307 0038,0300 0008,0025 0008,0035 0040,A07C FFFC,FFFC 0040,A110 0018,1205 0018,1200 0018,1204 0018,1012
 0018,1202 0018,937F 0008,2111 0050,0020 0016,004B FFFA,FFFA 0038,0030 0038,0040 0038,0032 300A,079A 4008,011A
 4008,0119 300A,0016 3010,0037 3010,0036 300A,0676 0012,0087 0012,0086 0010,2160 0040,4011 003A,032B 0040,A023
 0040,A024 300A,0196 300A,0072 0020,9158 0016,0076 0016,0075 0016,008C 0016,007B 0016,008D 0016,0088 0016,008A
 0016,0089 0016,0086 0016,0085 0016,0087 0016,0084 0016,0083 0016,008E 0016,0081 0016,0080 0016,0072 0016,0071
 0016,0074 0016,0073 0016,0082 0016,007A 0016,008B 0016,0078 0016,007D 0016,007C 0016,0079 0016,0077 0016,007F
 0016,007E 0016,0070 0018,1008 0018,1005 0040,E004 0040,4037 0040,4036 0088,0200 0008,4000 0020,4000 0028,4000
 0040,2400 4008,0300 0008,0015 0400,0600 0008,0081 0008,1040 0008,1041 0010,1050 3010,0085 0040,1011 4008,0112
 4008,0113 4008,0111 4008,010C 4008,0115 4008,0200 4008,0202 4008,0100 4008,0101 4008,0102 4008,010B 4008,010A
 4008,0108 4008,0109 0018,0035 0018,0027 0040,2004 0040,2005 0038,0011 0038,0014 0010,0021 0038,0061 0038,0064
 0010,21D0 0016,004F 0016,0050 0016,0051 0016,004E 0050,0021 0400,0404 0016,002B 0010,2000 0010,1090 0010,1080
 0400,0550 0020,3403 0020,3406 0020,3405 0020,3401 0018,937B 0008,1060 0040,1010 0008,1000 0400,0552 0400,0551
 0040,A192 0040,A033 0040,A193 0010,2180 0040,2010 0040,2011 0040,2008 0040,2009 0400,0561 2100,0070 0010,1000
 0010,1002 0010,1001 0008,0024 0008,0034 0040,A07A 0010,4000 300A,0794 0038,0500 0040,1004 300A,0792 300A,078E
 0010,1040 0010,1010 0010,1005 0010,0032 0038,0400 0010,0050 0010,1060 0010,0101 0010,0102 0010,21F0 0010,1020
 0010,2155 0010,2154 0010,1030 0040,0243 0040,0254 0040,0250 0040,4051 0040,0251 0040,0253 0040,0244 0040,4050
 0040,0245 0040,0241 0040,4030 0040,0242 0040,4028 0008,1052 0008,1050 0040,1102 0040,1104 0040,1103 4008,0114
 0008,1062 0008,1048 0008,1049 0018,1004 3002,0123 3002,0121 0040,0012 0010,21C0 300A,000E 0070,0082 0070,0083
 3010,0061 0040,4052 0044,000B 0008,1088 0020,0027 3006,0028 3006,0038 3006,0088 3006,0085 300A,0004 300A,0003
 0018,1078 0018,1072 0018,1079 0018,1073 300C,0113 0040,100A 0032,1030 0032,1066 0032,1067 0040,2001 0040,1002
 0074,1234 0400,0402 0038,0004 0010,1100 0008,1120 0400,0403 0008,0096 0008,0092 0008,0094 0010,2152 0040,0275
 0032,1070 0040,1400 0040,1001 0040,1005 0018,9937 0074,1236 0032,1032 0032,1033 0018,9185 0010,2299 0010,2297
 4008,4000 4008,0118 4008,0040 4008,0042 0008,0054 0100,0420 0038,001A 0038,001B 0038,001C 0038,001D 0040,4034
 0038,001E 0040,000B 0040,0006 0040,0007 0040,0004 0040,0005 0040,4008 0040,0009 0040,0011 0040,4010 0040,0002
 0040,4005 0040,0003 0040,0001 0040,4027 0040,0010 0040,4025 0032,1020 0032,1021 0032,1000 0032,1001 0032,1010
 0032,1011 0008,103E 0038,0062 0038,0060 300A,01B2 300A,01A6 0040,06FA 0010,21A0 300A,0216 0038,0050 0040,050A
 0040,0602 0040,0600 0008,0055 3006,0006 3006,0004 0032,1040 0032,1041 0032,4000 0032,1050 0032,1051 0008,1030
 0032,0012 0032,0034 0032,0035 0032,0032 0032,0033 0044,0010 0040,A354 0040,DB07 0040,DB06 4000,4000 2030,0020
 0040,A112 0018,1201 0018,1014 0008,0201 0088,0910 0088,0912 0088,0906 0088,0904 0018,5011 300A,000B 0018,100A
 0018,1009 0040,A352 0040,A358 0038,4000 0018,9373 003A,0329
U: 0008,0017 0020,9161 3010,0006 3010,0013 0018,1002 0400,0100 0020,9164 300A,0013 3010,006E 0008,0058 0070,031A
 0020,0052 0008,0014 0008,3010 0028,1214 0018,100B 0002,0003 003A,0310 0040,A402 0040,A171 0028,1199 300A,0650
 0070,1101 0070,1102 0008,0019 3010,003B 3010,000B 300A,0083 3010,006F 3010,0031 3006,0024 0040,4023 0040,A172
 0008,1155 0004,1511 300A,0785 3006,00C2 0000,1001 0008,0018 0020,000E 3010,0015 0064,0003 0040,0554 0088,0140
 0020,000D 0020,0200 0018,2042 0040,DB0D 0040,DB0C 0062,0021 0008,1195 300A,0609 300A,0700 0040,A124
Z/D: 0070,0084 0008,0023 0008,0033 0018,0010 0018,9919
X/Z: 0040,0555 0008,0022 0008,0032 2200,0005 2200,0002 0010,2203 0008,1110 0032,1060 300E,0008 3008,0105 300A,00B2
X/D: 0018,1400 0018,700C 0018,700A 0018,9517 3008,0054 0008,0012 3010,004D 3010,004C 3008,0056 0040,A032 0008,1072
 0018,1030 300A,0006 300A,0007 3010,0056 0008,0021 0008,0031 0018,9516 0018,700E 3008,0250 3010,0077 3008,0251
X/Z/D: 0008,002A 0018,1000 0008,0013 0008,0082 0008,0080 0008,1070 0008,1111 0008,1010
X/Z/U*: 0008,1140 0008,2112
"""


def _parse_table(text: str) -> dict[int, str]:
    actions: dict[int, str] = {}
    action = ""
    for token in text.split():
        if token.endswith(":"):
            action = token[:-1]
            continue
        group, element = token.split(",")
        actions[int(group + element, 16)] = action
    return actions


BASIC_PROFILE: dict[int, str] = _parse_table(_TABLE_E1_1)
"""Tag → the profile's action code ("D", "Z", "X", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*")."""


def effective_action(action: str) -> str:
    """The single action we apply for a table entry: D wherever D is allowed, else Z, X or U."""
    if action in ("D", "Z/D", "X/D", "X/Z/D"):
        return "D"
    if action in ("Z", "X/Z"):
        return "Z"
    if action == "X/Z/U*":
        return "U*"
    return action


def _is_curve_or_overlay(tag: BaseTag) -> bool:
    # Curves (50xx,xxxx) and overlays (60xx,xxxx) can hold burned-in text and drawn annotations.
    return tag.group & 0xFF00 in (0x5000, 0x6000) and tag.group % 2 == 0


_DUMMY_TEXT = "ANONYMIZED"
_DUMMIES: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000.000000",
    "TM": "000000.00",
    "DS": "0",
    "IS": "0",
    "LO": _DUMMY_TEXT,
    "LT": _DUMMY_TEXT,
    "SH": _DUMMY_TEXT,
    "ST": _DUMMY_TEXT,
    "UC": _DUMMY_TEXT,
    "UT": _DUMMY_TEXT,
    "PN": _DUMMY_TEXT,
    "UR": "urn:anonymized",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": 0,
}


@dataclass
class DeidentifyResult:
    dataset: Dataset
    original_study_uid: str
    original_sop_instance_uid: str
    burned_in_annotation: bool = False
    removed_private: int = 0


@dataclass
class Deidentifier:
    """One de-identification session: UIDs and patients map to the same replacements throughout.

    With `key` the mapping is derived from it (HMAC-SHA256), so the same key gives the same new UIDs and
    pseudonyms in a later export; without it new UIDs are random and the mapping lives as long as this object.
    """

    key: bytes | None = None
    patient_name: str | None = None  # use this pseudonym for every patient instead of a numbered one
    patient_id: str | None = None
    uid_map: dict[str, str] = field(default_factory=dict)
    patient_map: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ mappings
    def map_uid(self, uid: str) -> str:
        uid = str(uid).strip("\x00 ")
        if not uid or uid.startswith(DICOM_UID_ROOT):
            return uid
        mapped = self.uid_map.get(uid)
        if mapped is None:
            if self.key is None:
                mapped = new_uid()
            else:
                digest = hmac.new(self.key, b"uid:" + uid.encode(), hashlib.sha256).digest()
                mapped = "2.25." + str(int.from_bytes(digest[:16], "big"))
            self.uid_map[uid] = mapped
        return mapped

    def pseudonym(self, patient_id: str, patient_name: str) -> tuple[str, str]:
        """(name, ID) replacing a patient; stable for the same original patient in this session."""
        original = (patient_id, patient_name)
        found = self.patient_map.get(original)
        if found is None:
            number = len(self.patient_map) + 1
            if self.key is not None:
                digest = hmac.new(self.key, f"patient:{patient_id}|{patient_name}".encode(), hashlib.sha256)
                suffix = digest.hexdigest()[:10].upper()
            else:
                suffix = f"{number:06d}"
            found = (self.patient_name or f"ANONYMOUS^{suffix}", self.patient_id or f"ANON{suffix}")
            self.patient_map[original] = found
        return found

    # ------------------------------------------------------------------ the profile
    def deidentify(self, source: Dataset) -> DeidentifyResult:
        """A de-identified copy of `source` (which is left untouched), with a matching file meta."""
        ds = copy.deepcopy(source)
        original_study = str(ds.get("StudyInstanceUID", ""))
        original_sop = str(ds.get("SOPInstanceUID", ""))
        burned_in = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
        patient_name, patient_id = self.pseudonym(str(ds.get("PatientID", "")), str(ds.get("PatientName", "")))
        private = sum(1 for _ in _private_elements(ds))
        ds.remove_private_tags()
        self._clean(ds)
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD_DESCRIPTION
        code = Dataset()
        code.CodeValue = "113100"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        meta = getattr(source, "file_meta", None)
        if meta is not None:
            ds.file_meta = copy.deepcopy(meta)
            if "SOPInstanceUID" in ds:
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if "SOPClassUID" in ds:
                ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
            ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
            for tag in _SITE_META_TAGS:
                if tag in ds.file_meta:
                    del ds.file_meta[tag]
        return DeidentifyResult(ds, original_study, original_sop, burned_in, private)

    def _clean(self, ds: Dataset, *, scrub_text: bool = False) -> None:
        """Apply the table to every element of `ds`, at any depth.

        `scrub_text` is set inside a sequence the table says to replace with a dummy (D): its items keep their
        structure (an SR's content tree, a verifying observer) but every free text the table does not list is
        replaced too, except the codes of coded entries, which name concepts rather than people.
        """
        scrub_here = scrub_text and "CodingSchemeDesignator" not in ds
        for tag in list(ds.keys()):
            elem = ds[tag]
            if _is_curve_or_overlay(tag):
                del ds[tag]
                continue
            action = BASIC_PROFILE.get(int(tag))
            if action is None:
                self._clean_unlisted(elem, scrub_text=scrub_text)
                if scrub_here and elem.VR in _FREE_TEXT and elem.value not in (None, ""):
                    _dummy(elem)
                continue
            effective = effective_action(action)
            if effective == "X":
                del ds[tag]
            elif effective == "Z":
                _empty(elem)
            elif effective == "U":
                self._replace_uids(elem)
            elif effective == "U*":
                if elem.VR == "SQ":
                    for item in elem.value:
                        self._clean(item, scrub_text=scrub_text)
                elif elem.VR == "UI":
                    self._replace_uids(elem)
                else:
                    _empty(elem)
            elif elem.VR == "SQ" and int(tag) not in _SEQUENCES_EMPTIED_FOR_DUMMY:
                for item in elem.value or []:
                    self._clean(item, scrub_text=True)
            else:
                _dummy(elem)

    def _clean_unlisted(self, elem: DataElement, *, scrub_text: bool) -> None:
        if elem.VR == "SQ":
            for item in elem.value or []:
                self._clean(item, scrub_text=scrub_text)
        elif elem.VR == "UI" and not (elem.keyword or "").endswith("ClassUID"):
            # Not in the table, but a site UID (not a DICOM-defined one) links back to the original objects.
            self._replace_uids(elem)

    def _replace_uids(self, elem: DataElement) -> None:
        if elem.VR == "SQ":
            _empty(elem)
            return
        if elem.value in (None, ""):
            return
        if elem.VM > 1:
            elem.value = [self.map_uid(v) for v in elem.value]
        else:
            elem.value = self.map_uid(elem.value)


def _empty(elem: DataElement) -> None:
    elem.value = Sequence() if elem.VR == "SQ" else (b"" if elem.VR in _BINARY else None)


# Source / sending / receiving AE titles and presentation addresses, private meta information: they name sites.
_SITE_META_TAGS = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028, 0x00020100, 0x00020102)
_FREE_TEXT = {"PN", "LO", "LT", "SH", "ST", "UC", "UT"}
# Sequences whose items are codes identifying a person: a dummy of them is no item at all.
_SEQUENCES_EMPTIED_FOR_DUMMY = {0x00401101}  # Person Identification Code Sequence
_BINARY = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"}


def _dummy(elem: DataElement) -> None:
    if elem.VR == "SQ":
        elem.value = Sequence()
    elif elem.VR in _BINARY:
        elem.value = b"\x00\x00"
    elif elem.VR in _DUMMIES:
        elem.value = _DUMMIES[elem.VR]
    else:
        elem.value = None


def _private_elements(ds: Dataset) -> Iterator[DataElement]:
    for elem in ds.iterall():
        if elem.tag.is_private:
            yield elem


def deidentify(ds: Dataset, deidentifier: Deidentifier | None = None) -> Dataset:
    """Convenience for one dataset; use one `Deidentifier` for a whole export to keep UIDs linked."""
    return (deidentifier or Deidentifier()).deidentify(ds).dataset
