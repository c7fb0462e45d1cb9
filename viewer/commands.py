"""Subcommands of the `lightbox` CLI. Each area adds its own with the `command` decorator.

The registry lives here, below `viewer.cli` in the floors: the CLI reads `COMMANDS`, and nothing here
imports the CLI back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from viewer.core.context import AppContext

# Subcommands register here as (name, help, add_arguments, run); run returns the exit code.
Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: list[Command] = []


def command(
    name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS.append((name, help_text, add_arguments, run))
        return run

    return register


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", default="", help="free text over name, ID, accession, description")
    parser.add_argument("--name", default="", help="patient name (* and ? wildcards)")
    parser.add_argument("--id", dest="patient_id", default="", help="patient ID")
    parser.add_argument("--modality", default="", help="only studies with a series of this modality")
    parser.add_argument("--from", dest="date_from", default="", help="study date from (YYYYMMDD)")
    parser.add_argument("--to", dest="date_to", default="", help="study date to (YYYYMMDD)")
    parser.add_argument("--series", action="store_true", help="also list each study's series (with their UIDs)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


@command("list", "list the studies in the local store", _list_arguments)
def list_studies(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from viewer.core.store import StudyQuery

    ctx = AppContext.open(args.home)
    query = StudyQuery(
        patient_name=args.name,
        patient_id=args.patient_id,
        modality=args.modality,
        date_from=args.date_from,
        date_to=args.date_to,
        text=args.text,
    )
    studies = ctx.store.studies(query)
    if args.json:
        out = []
        for study in studies:
            entry = asdict(study)
            if args.series:
                entry["series"] = [asdict(se) for se in ctx.store.series_for_study(study.study_uid)]
            out.append(entry)
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    for study in studies:
        print(
            f"{study.study_date or '--------'}  {study.patient_name:<30.30}  {study.patient_id:<16.16}  "
            f"{'/'.join(study.modalities):<8.8}  {study.series_count:>3} series  {study.instance_count:>5} images  "
            f"{study.study_description}"
        )
        if args.series:
            print(f"    study {study.study_uid}")
            for se in ctx.store.series_for_study(study.study_uid):
                number = "" if se.series_number is None else se.series_number
                print(
                    f"    {number!s:>4} {se.modality:<4} {se.instance_count:>5} {se.kind:<5} "
                    f"{se.series_description:<30.30} {se.series_uid}"
                )
    if not args.json:
        counts = ctx.store.counts()
        print(f"{len(studies)} of {counts['studies']} studies shown; {counts['instances']} instances in the store")
    return 0


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="files, folders, DICOMDIRs or ZIP archives")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")


@command("import", "import files, folders, a CD (DICOMDIR) or ZIP archives into the local store", _import_arguments)
def import_command(args: argparse.Namespace) -> int:
    """Exit status 0 when nothing failed (skipped non-DICOM files are not failures), 1 otherwise."""
    import sys

    from viewer.core import audit
    from viewer.core.importer import import_paths
    from viewer.core.tasks import Progress

    ctx = AppContext.open(args.home)
    audit.install(ctx.home, ctx.store, local_ae=ctx.settings.local.ae_title)
    interactive = sys.stderr.isatty() and not args.quiet

    def show(p: Progress) -> None:
        if interactive:
            print(f"\r{p.done}/{p.total} files  {p.rate:.0f} files/s", end="", file=sys.stderr, flush=True)

    try:
        report = import_paths(ctx.store, args.paths, progress=show, limits=ctx.import_limits())
    except KeyboardInterrupt:
        print("\ninterrupted; what was imported so far is kept", file=sys.stderr)
        return 130
    finally:
        audit.uninstall()  # writes the grouped "imported" messages still pending
    if interactive:
        print(file=sys.stderr)
    print(report.summary() if args.quiet else report.details())
    return 0 if report.ok else 1


def _render_arguments(parser: argparse.ArgumentParser) -> None:
    from viewer.render.tool import add_render_arguments

    add_render_arguments(parser)


@command("render", "render a DICOM file or a stored series/instance to PNG (headless)", _render_arguments)
def render_image(args: argparse.Namespace) -> int:
    from viewer.render.tool import run_render

    return run_render(args)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="empty (or new) folder to write the files and DICOMDIR into")
    parser.add_argument("--study", action="append", default=[], help="Study Instance UID (repeatable)")
    parser.add_argument("--patient-id", default="", help="every study of this patient ID")
    parser.add_argument("--all", action="store_true", help="every study in the store")
    parser.add_argument("--deidentify", action="store_true", help="apply the Basic Confidentiality Profile")
    parser.add_argument("--key-file", type=Path, help="de-identify with a repeatable mapping keyed by this file")


@command("export", "export studies to a folder with a DICOMDIR (STD-GEN-CD), maybe de-identified", _export_arguments)
def export_command(args: argparse.Namespace) -> int:
    from viewer.core import audit
    from viewer.core.deidentify import Deidentifier
    from viewer.core.export import ExportError, export_studies
    from viewer.core.store import StudyQuery

    ctx = AppContext.open(args.home)
    trail = audit.install(ctx.home, ctx.store, local_ae=ctx.settings.local.ae_title)
    uids = list(args.study)
    if args.patient_id:
        matches = ctx.store.studies(StudyQuery(patient_id=args.patient_id))
        uids += [s.study_uid for s in matches if s.patient_id == args.patient_id]
    if args.all:
        uids += [s.study_uid for s in ctx.store.studies()]
    if not uids:
        print("nothing to export: name --study, --patient-id or --all")
        return 2
    deidentifier = None
    if args.deidentify or args.key_file:
        deidentifier = Deidentifier(key=args.key_file.read_bytes() if args.key_file else None)
    try:
        report = export_studies(ctx.store, uids, args.folder, deidentifier=deidentifier, audit_log=trail)
    except ExportError as exc:
        print(f"export failed: {exc}")
        return 1
    finally:
        audit.uninstall()
    print(f"exported {report.exported} instances of {len(report.studies)} studies to {report.folder}")
    for sop_uid, reason in report.skipped:
        print(f"skipped {sop_uid}: {reason}")
    return 0 if report.exported and not report.skipped else 1
