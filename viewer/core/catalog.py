"""The store's catalogue: the SQLite schema, its migrations, and the rows for studies, series and instances.

Functions over a connection the caller owns (`viewer.core.store.StudyStore` keeps the connections, the
locks, the transactions and the files); nothing here touches a file or decides what is stored.

API: `create_or_migrate(conn)`; `write_study_row`, `write_series_row`, `write_instance_row`; the readers
`patients`, `studies(conn, StudyQuery)`, `study`, `series_for_study`, `series`, `instances_for_series`,
`instances_for_study`, `instance`, `instances_of_class`, `counts`; `StudyQuery`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from viewer.core.model import Instance, Patient, Series, Study, document_kind

SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    study_uid TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    accession_number TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    study_description TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_patient ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_date ON studies(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES studies(study_uid) ON DELETE CASCADE,
    modality TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    series_description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT '',
    series_date TEXT NOT NULL DEFAULT '',
    series_time TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'image'
);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid) ON DELETE CASCADE,
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_number INTEGER,
    transfer_syntax TEXT NOT NULL DEFAULT '',
    frames INTEGER NOT NULL DEFAULT 1,
    rows INTEGER NOT NULL DEFAULT 0,
    columns INTEGER NOT NULL DEFAULT 0,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS instances_sha ON instances(sha256);
"""

# Schema 2: `unsynced` marks rows whose file was left to the group sync (it was the `source` text before);
# `image_position` / `image_orientation` hold (0020,0032) / (0020,0037) as backslash-joined numbers ('' when
# absent) so a stack can be sorted before its first image loads; `replaced` keeps what a correction replaced.
_INSTANCE_COLUMNS_2 = (
    ("unsynced", "INTEGER NOT NULL DEFAULT 0"),
    ("image_position", "TEXT NOT NULL DEFAULT ''"),
    ("image_orientation", "TEXT NOT NULL DEFAULT ''"),
)
_REPLACED_TABLE = """
CREATE TABLE IF NOT EXISTS replaced (
    sop_instance_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    file TEXT NOT NULL,
    original_file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    replaced_by TEXT NOT NULL DEFAULT '',
    replaced_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS replaced_instance ON replaced(sop_instance_uid);
"""


@dataclass
class StudyQuery:
    """Browser search: every field is optional; text fields match case-insensitively with * and ?."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    date_from: str = ""  # YYYYMMDD
    date_to: str = ""
    modality: str = ""
    text: str = ""  # free text over name, ID, accession and description


def create_or_migrate(conn: sqlite3.Connection) -> None:
    """Make the tables of a new index, or bring an older one up to `SCHEMA_VERSION`."""
    conn.executescript(SCHEMA)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    _migrate(conn)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older index up to `SCHEMA_VERSION` (one transaction; other processes may be opening too)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
        for name, decl in _INSTANCE_COLUMNS_2:
            if name not in have:
                conn.execute(f"ALTER TABLE instances ADD COLUMN {name} {decl}")
        if "unsynced" not in have:
            # Schema 1 told rows left to the group sync by their source (Storage SCP, C-GET).
            conn.execute("UPDATE instances SET unsynced = 1 WHERE source LIKE 'scp:%' OR source LIKE 'get:%'")
        for statement in _REPLACED_TABLE.strip().split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version' AND CAST(value AS INTEGER) < ?",
            (str(SCHEMA_VERSION), SCHEMA_VERSION),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def write_study_row(conn: sqlite3.Connection, st: Study, now: float) -> None:
    conn.execute(
        """INSERT INTO studies(study_uid, patient_id, patient_name, birth_date, sex, accession_number,
               study_id, study_date, study_time, study_description, referring_physician, added_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(study_uid) DO UPDATE SET
               patient_id = CASE WHEN excluded.patient_id != '' THEN excluded.patient_id ELSE patient_id END,
               patient_name = CASE WHEN excluded.patient_name != '' THEN excluded.patient_name
                                   ELSE patient_name END,
               birth_date = CASE WHEN excluded.birth_date != '' THEN excluded.birth_date ELSE birth_date END,
               sex = CASE WHEN excluded.sex != '' THEN excluded.sex ELSE sex END,
               accession_number = CASE WHEN excluded.accession_number != '' THEN excluded.accession_number
                                       ELSE accession_number END,
               study_date = CASE WHEN excluded.study_date != '' THEN excluded.study_date ELSE study_date END,
               study_time = CASE WHEN excluded.study_time != '' THEN excluded.study_time ELSE study_time END,
               study_description = CASE WHEN excluded.study_description != ''
                                        THEN excluded.study_description ELSE study_description END""",
        (
            st.study_uid,
            st.patient_id,
            st.patient_name,
            st.birth_date,
            st.sex,
            st.accession_number,
            st.study_id,
            st.study_date,
            st.study_time,
            st.study_description,
            st.referring_physician,
            now,
        ),
    )

def write_series_row(conn: sqlite3.Connection, se: Series) -> None:
    conn.execute(
        """INSERT INTO series(series_uid, study_uid, modality, series_number, series_description, body_part,
               series_date, series_time, kind)
           VALUES (?,?,?,?,?,?,?,?,?)
           ON CONFLICT(series_uid) DO UPDATE SET
               modality = CASE WHEN excluded.modality != '' THEN excluded.modality ELSE modality END,
               series_description = CASE WHEN excluded.series_description != ''
                                         THEN excluded.series_description ELSE series_description END""",
        (
            se.series_uid,
            se.study_uid,
            se.modality,
            se.series_number,
            se.series_description,
            se.body_part,
            se.series_date,
            se.series_time,
            se.kind,
        ),
    )

def write_instance_row(
    conn: sqlite3.Connection,
    inst: Instance,
    file: str,
    sha: str,
    size: int,
    source: str,
    now: float,
    unsynced: bool,
) -> None:
    conn.execute(
        """INSERT OR REPLACE INTO instances(sop_instance_uid, series_uid, study_uid, sop_class_uid,
               instance_number, transfer_syntax, frames, rows, columns, file, size, sha256, source, added_at,
               unsynced, image_position, image_orientation)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (
            inst.sop_instance_uid,
            inst.series_uid,
            inst.study_uid,
            inst.sop_class_uid,
            inst.instance_number,
            inst.transfer_syntax,
            inst.frames,
            inst.rows,
            inst.columns,
            file,
            size,
            sha,
            source,
            now,
            1 if unsynced else 0,
            "\\".join(map(repr, inst.image_position)),
            "\\".join(map(repr, inst.image_orientation)),
        ),
    )


def patients(conn: sqlite3.Connection) -> list[Patient]:
    rows = (
        conn.execute(
            """SELECT patient_id, patient_name, MAX(birth_date) AS birth_date, MAX(sex) AS sex,
                  COUNT(*) AS n FROM studies GROUP BY patient_id, patient_name ORDER BY patient_name"""
        )
        .fetchall()
    )
    return [Patient(r["patient_id"], r["patient_name"], r["birth_date"], r["sex"], r["n"]) for r in rows]

_STUDY_SELECT = """
    SELECT s.*,
        (SELECT GROUP_CONCAT(DISTINCT modality) FROM series WHERE series.study_uid = s.study_uid)
            AS modalities,
        (SELECT COUNT(*) FROM series WHERE series.study_uid = s.study_uid) AS series_count,
        (SELECT COUNT(*) FROM instances WHERE instances.study_uid = s.study_uid) AS instance_count
    FROM studies s"""

def studies(conn: sqlite3.Connection, query: StudyQuery | None = None) -> list[Study]:
    where, args = [], []
    q = query or StudyQuery()
    for column, value in (
        ("s.patient_name", q.patient_name),
        ("s.patient_id", q.patient_id),
        ("s.accession_number", q.accession_number),
    ):
        if value:
            pattern = _wildcard_to_like(value)
            if "*" not in value and "?" not in value:
                pattern = f"%{pattern}%"
            where.append(f"{column} LIKE ? ESCAPE '\\'")
            args.append(pattern)
    if q.text:
        pattern = f"%{_wildcard_to_like(q.text)}%"
        where.append(
            "(s.patient_name LIKE ? ESCAPE '\\' OR s.patient_id LIKE ? ESCAPE '\\' "
            "OR s.accession_number LIKE ? ESCAPE '\\' OR s.study_description LIKE ? ESCAPE '\\')"
        )
        args.extend([pattern] * 4)
    if q.date_from:
        where.append("s.study_date >= ?")
        args.append(q.date_from)
    if q.date_to:
        where.append("s.study_date != '' AND s.study_date <= ?")
        args.append(q.date_to)
    if q.modality:
        where.append("EXISTS (SELECT 1 FROM series WHERE series.study_uid = s.study_uid AND series.modality = ?)")
        args.append(q.modality.upper())
    sql = _STUDY_SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.study_date DESC, s.study_time DESC, s.patient_name"
    return [study_from_row(r) for r in conn.execute(sql, args).fetchall()]

def study(conn: sqlite3.Connection, study_uid: str) -> Study | None:
    row = conn.execute(_STUDY_SELECT + " WHERE s.study_uid = ?", (study_uid,)).fetchone()
    return study_from_row(row) if row else None

def series_for_study(conn: sqlite3.Connection, study_uid: str) -> list[Series]:
    rows = (
        conn.execute(
            """SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS n
           FROM series se WHERE se.study_uid = ?
           ORDER BY se.series_number IS NULL, se.series_number, se.series_description""",
            (study_uid,),
        )
        .fetchall()
    )
    return [series_from_row(r) for r in rows]

def series(conn: sqlite3.Connection, series_uid: str) -> Series | None:
    row = (
        conn.execute(
            """SELECT se.*, (SELECT COUNT(*) FROM instances i WHERE i.series_uid = se.series_uid) AS n
           FROM series se WHERE se.series_uid = ?""",
            (series_uid,),
        )
        .fetchone()
    )
    return series_from_row(row) if row else None

def instances_for_series(conn: sqlite3.Connection, files_dir: Path, series_uid: str) -> list[Instance]:
    rows = (
        conn.execute(
            """SELECT * FROM instances WHERE series_uid = ?
           ORDER BY instance_number IS NULL, instance_number, sop_instance_uid""",
            (series_uid,),
        )
        .fetchall()
    )
    return [instance_from_row(files_dir, r) for r in rows]

def instances_for_study(conn: sqlite3.Connection, files_dir: Path, study_uid: str) -> list[Instance]:
    rows = (
        conn.execute(
            """SELECT * FROM instances WHERE study_uid = ?
           ORDER BY series_uid, instance_number IS NULL, instance_number, sop_instance_uid""",
            (study_uid,),
        )
        .fetchall()
    )
    return [instance_from_row(files_dir, r) for r in rows]

def instance(conn: sqlite3.Connection, files_dir: Path, sop_instance_uid: str) -> Instance | None:
    row = conn.execute("SELECT * FROM instances WHERE sop_instance_uid = ?", (sop_instance_uid,)).fetchone()
    return instance_from_row(files_dir, row) if row else None

def instances_of_class(
    conn: sqlite3.Connection, files_dir: Path, sop_class_prefix: str, study_uid: str | None = None
) -> list[Instance]:
    sql = "SELECT * FROM instances WHERE sop_class_uid LIKE ?"
    args: list[str] = [sop_class_prefix + "%"]
    if study_uid:
        sql += " AND study_uid = ?"
        args.append(study_uid)
    return [instance_from_row(files_dir, r) for r in conn.execute(sql + " ORDER BY added_at", args)]

def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        "studies": conn.execute("SELECT COUNT(*) FROM studies").fetchone()[0],
        "series": conn.execute("SELECT COUNT(*) FROM series").fetchone()[0],
        "instances": conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0],
    }

def instance_from_row(files_dir: Path, r: sqlite3.Row) -> Instance:
    return Instance(
        sop_instance_uid=r["sop_instance_uid"],
        series_uid=r["series_uid"],
        study_uid=r["study_uid"],
        sop_class_uid=r["sop_class_uid"],
        instance_number=r["instance_number"],
        transfer_syntax=r["transfer_syntax"],
        frames=r["frames"],
        rows=r["rows"],
        columns=r["columns"],
        path=str(files_dir / r["file"]),
        size=r["size"],
        sha256=r["sha256"],
        image_position=_numbers(r["image_position"]),
        image_orientation=_numbers(r["image_orientation"]),
    )


def study_from_row(r: sqlite3.Row) -> Study:
    return Study(
        study_uid=r["study_uid"],
        patient_id=r["patient_id"],
        patient_name=r["patient_name"],
        birth_date=r["birth_date"],
        sex=r["sex"],
        accession_number=r["accession_number"],
        study_id=r["study_id"],
        study_date=r["study_date"],
        study_time=r["study_time"],
        study_description=r["study_description"],
        referring_physician=r["referring_physician"],
        modalities=tuple(m for m in (r["modalities"] or "").split(",") if m),
        series_count=r["series_count"],
        instance_count=r["instance_count"],
    )


def series_from_row(r: sqlite3.Row) -> Series:
    return Series(
        series_uid=r["series_uid"],
        study_uid=r["study_uid"],
        modality=r["modality"],
        series_number=r["series_number"],
        series_description=r["series_description"],
        body_part=r["body_part"],
        series_date=r["series_date"],
        series_time=r["series_time"],
        instance_count=r["n"],
        kind=r["kind"] or document_kind(""),
    )


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split("\\")) if text else ()
    except ValueError:
        return ()


def _wildcard_to_like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
