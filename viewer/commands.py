"""Subcommands of the `lightbox` CLI. Each area adds its own with the `command` decorator."""

from __future__ import annotations

import argparse

from viewer.cli import command
from viewer.core.context import AppContext


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


@command("list", "list the studies in the local store", _no_arguments)
def list_studies(args: argparse.Namespace) -> int:
    ctx = AppContext.open(args.home)
    for study in ctx.store.studies():
        print(
            f"{study.study_date or '--------'}  {study.patient_name:<30.30}  {study.patient_id:<16.16}  "
            f"{'/'.join(study.modalities):<8.8}  {study.series_count:>3} series  {study.instance_count:>5} images  "
            f"{study.study_description}"
        )
    return 0
