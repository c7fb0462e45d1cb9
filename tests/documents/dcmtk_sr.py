"""Compare our SR model with DCMTK's reading of the same file (`dsrdump`), item by item.

`dsrdump +Pn +Pl +Pu +Psu +Pc +U8` prints one line per content item with its position, relationship, value
type, full concept name code and value (codes, units, UIDs, frames, coordinates). `dcmtk_line` writes our
model's item in the same notation, so a mismatch in any concept, value, unit or order shows up as a
differing line.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from viewer.documents.sr import RELATIONSHIP_LABELS, Code, ContentItem, Reference, SRDocument

DSRDUMP_OPTIONS = ["+Pn", "+Pl", "+Pu", "+Psu", "+Pc", "+U8"]
_ITEM_LINE = re.compile(r"^(?P<position>\d+(?:\.\d+)*)  (?P<body><.*)$")


@dataclass
class DcmtkDump:
    header: dict[str, list[str]]
    items: list[str]


def run_dsrdump(path: Path, dsrdump: str = "dsrdump") -> DcmtkDump:
    proc = subprocess.run(
        [dsrdump, *DSRDUMP_OPTIONS, str(path)], capture_output=True, text=True, encoding="utf-8", timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    header: dict[str, list[str]] = {}
    items: list[str] = []
    last_key = ""
    for line in proc.stdout.splitlines():
        match = _ITEM_LINE.match(line)
        if match:
            items.append(line)
        elif items:
            continue
        elif line.startswith(" " * 22) and last_key:
            header[last_key].append(line.strip())
        elif " : " in line:
            key, _, value = line.partition(" : ")
            last_key = key.strip()
            header.setdefault(last_key, []).append(value.strip())
    return DcmtkDump(header, items)


def _code(code: Code | None) -> str:
    if code is None:
        return ""
    scheme = code.scheme + (f"[{code.scheme_version}]" if code.scheme_version else "")
    return f'({code.value},{scheme},"{code.meaning}")'


def _string(value: str) -> str:
    return '"' + value.replace("\r", "\\r").replace("\n", "\\n") + '"'


def _number(value: float) -> str:
    return f"{value:g}"


def _reference(ref: Reference, value_type: str) -> str:
    parts = [f'"{ref.sop_class_uid}"', f'"{ref.sop_instance_uid}"']
    if value_type == "IMAGE":
        parts += [str(f) for f in ref.frames]
    if value_type == "WAVEFORM":
        parts += [f"{ref.channels[i]}/{ref.channels[i + 1]}" for i in range(0, len(ref.channels) - 1, 2)]
    text = "(" + ",".join(parts) + ")"
    if ref.presentation_state is not None:
        ps = ref.presentation_state
        text += f',("{ps.sop_class_uid}","{ps.sop_instance_uid}")'
    return text


def dcmtk_value(item: ContentItem) -> str:
    vt = item.value_type
    if vt == "CONTAINER":
        return item.continuity
    if vt in ("TEXT", "DATE", "TIME", "DATETIME", "PNAME", "UIDREF"):
        return _string(item.text)
    if vt == "CODE":
        return _code(item.code)
    if vt == "NUM":
        m = item.measurement
        assert m is not None
        if not m.value:
            return "empty" + (f" {_code(m.qualifier)}" if m.qualifier else "")
        return f"{_string(m.value)} {_code(m.unit)}"
    if vt in ("COMPOSITE", "IMAGE", "WAVEFORM"):
        return ",".join(_reference(ref, vt) for ref in item.references)
    if vt == "SCOORD":
        assert item.scoord is not None
        points = ",".join("/".join(_number(v) for v in p) for p in item.scoord.points)
        return f"({item.scoord.graphic_type},{points})"
    if vt == "SCOORD3D":
        assert item.scoord is not None
        points = ",".join("/".join(_number(v) for v in p) for p in item.scoord.points)
        return f'({item.scoord.graphic_type},"{item.scoord.frame_of_reference_uid}",{points})'
    if vt == "TCOORD":
        tc = item.tcoord
        assert tc is not None
        values = [str(v) for v in tc.sample_positions] or [_number(v) for v in tc.time_offsets] or list(tc.datetimes)
        return f"({tc.range_type}," + ",".join(values) + ")"
    raise AssertionError(f"unexpected value type {vt}")


def _observation(value: str) -> str:
    v = value.strip()
    return f"{v[0:4]}-{v[4:6]}-{v[6:8]} {v[8:10]}:{v[10:12]}:{v[12:14]}"


def dcmtk_line(item: ContentItem) -> str:
    rel = RELATIONSHIP_LABELS.get(item.relationship, item.relationship)
    if item.is_by_reference:
        return f"{item.position}  <{rel} {item.referenced_position}>"
    prefix = f"{rel} " if rel else ""
    line = f"{item.position}  <{prefix}{item.value_type}:{_code(item.concept)}={dcmtk_value(item)}>"
    if item.observation_datetime:
        line += " {" + _observation(item.observation_datetime) + "}"
    return line


def our_lines(doc: SRDocument) -> list[str]:
    return [dcmtk_line(item) for item in doc.items()]
