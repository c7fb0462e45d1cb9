"""The Q/R panel's DICOMweb side: QIDO-RS search and expand, WADO-RS retrieve with progress and Cancel.

`QueryRetrievePanel` lists DICOMweb nodes after its DIMSE nodes and hands the work here when one of them
is selected; the tree, the fields and the progress bar are the panel's own. Every call runs in a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QTreeWidgetItem

from viewer.core.settings import DicomWebNode
from viewer.core.tasks import Progress
from viewer.net import dicomweb
from viewer.net.dicomweb import WebRetrieveResult
from viewer.net.scu import QueryMatch
from viewer.ui.workers import run_in_background

if TYPE_CHECKING:
    from viewer.ui.qr_panel import QueryRetrievePanel

WEB_SUFFIX = " (DICOMweb)"
# One page of studies per search; the archive may hold millions (PS3.18 8.3.4.4 limit/offset).
PAGE_SIZE = 200


def web_search(panel: QueryRetrievePanel, node: DicomWebNode) -> None:
    keys = panel.search_keys()
    panel.results.clear()
    panel.search_button.setEnabled(False)
    panel.status_label.setText(f"Searching {node.name or node.base_url}…")

    def job() -> list[QueryMatch]:
        return dicomweb.search(node, "STUDY", keys, limit=PAGE_SIZE)

    def shown(matches: list[QueryMatch]) -> None:
        panel._show_studies(matches)
        if len(matches) >= PAGE_SIZE:
            panel.status_label.setText(f"The first {PAGE_SIZE} studies are shown: narrow the search to see others.")

    panel._search_worker = run_in_background(
        job,
        on_result=shown,
        on_error=panel._search_failed,
        on_finished=lambda: panel.search_button.setEnabled(True),
    )


def web_expand(panel: QueryRetrievePanel, node: DicomWebNode, item: QTreeWidgetItem, match: QueryMatch) -> None:
    level = "SERIES" if match.level == "STUDY" else "IMAGE"
    keys = {"StudyInstanceUID": match.get("StudyInstanceUID")}
    if level == "IMAGE":
        keys["SeriesInstanceUID"] = match.get("SeriesInstanceUID")
    patient_id = match.get("PatientID")

    def job() -> list[QueryMatch]:
        found = dicomweb.search(node, level, keys)
        return [QueryMatch(m.level, {"PatientID": patient_id, **m.values}) for m in found]

    run_in_background(
        job,
        on_result=lambda matches: panel._add_children(item, matches),
        on_error=lambda exc: panel.status_label.setText(str(exc)),
    )


def web_retrieve(panel: QueryRetrievePanel, node: DicomWebNode, matches: list[QueryMatch]) -> None:
    store = panel.ctx.store
    jobs: list[tuple[str, dict[str, str], int | None]] = []
    for match in matches:
        level = {"STUDY": "STUDY", "SERIES": "SERIES"}.get(match.level, "IMAGE")
        keys = {k: match.get(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if match.get(k)}
        counted = {"STUDY": "NumberOfStudyRelatedInstances", "SERIES": "NumberOfSeriesRelatedInstances"}.get(level)
        jobs.append((level, keys, match.count(counted) if counted else 1))
    expected_total = sum(n or 0 for _, _, n in jobs)

    def job(cancel: Any, progress: Any) -> list[WebRetrieveResult]:
        results: list[WebRetrieveResult] = []
        done_before = 0
        for level, keys, expected in jobs:
            if cancel.cancelled:
                break

            def report(p: Progress, offset: int = done_before) -> None:
                progress(offset + p.done)

            result = dicomweb.retrieve(node, level, keys, store, progress=report, cancel=cancel, total=expected)
            results.append(result)
            done_before += result.done
        return results

    def on_progress(done: int) -> None:
        panel.progress_bar.setValue(min(done, panel.progress_bar.maximum()))
        panel.status_label.setText(f"Retrieving: {done} of {expected_total or '?'} instance(s)")

    def on_done(results: list[WebRetrieveResult]) -> None:
        done = sum(r.received + r.duplicates for r in results)
        failed = sum(r.failed for r in results)
        if any(r.cancelled for r in results) or worker.is_cancelled:
            text = f"Retrieve cancelled after {done} instance(s); each one stored is complete."
        elif failed:
            text = f"Retrieved {done} instance(s); {failed} were refused by the store."
        else:
            text = f"Retrieved {done} instance(s) over DICOMweb."
            panel.progress_bar.setValue(panel.progress_bar.maximum())
        panel.status_label.setText(text)
        panel.retrieve_finished.emit(results)

    def on_error(exc: BaseException) -> None:
        panel.status_label.setText(str(exc))
        panel.retrieve_finished.emit(exc)

    panel.progress_bar.setRange(0, max(expected_total, 1))
    panel.progress_bar.setValue(0)
    panel.retrieve_button.setEnabled(False)
    panel.cancel_button.setEnabled(True)
    panel.status_label.setText(f"Retrieving {len(jobs)} item(s) from {node.name or node.base_url}…")
    worker = run_in_background(
        job, on_result=on_done, on_error=on_error, on_progress=on_progress, on_finished=panel._retrieve_finished
    )
    panel._retrieve_worker = worker
