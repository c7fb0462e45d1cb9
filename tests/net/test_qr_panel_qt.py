"""pytest-qt: the Query/Retrieve panel drives real queries against dcmqrscp and retrieves with progress."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.peers import Peer, StudyFiles, dcmqrscp, make_study
from viewer.core.context import AppContext
from viewer.core.settings import RemoteNode

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def qt_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peer, StudyFiles, int]]:
    study = make_study(
        tmp_path_factory.mktemp("qt-data"), patient_name="PANEL^TEST", patient_id="QT1", series_counts=(4, 3)
    )
    port = free_port()
    with dcmqrscp(tmp_path_factory.mktemp("qt-qr"), move_destinations={"LIGHTBOX": port}, files=study.files) as peer:
        yield peer, study, port


@pytest.fixture
def ctx(tmp_path: Path, qt_archive) -> Iterator[AppContext]:
    peer, _, port = qt_archive
    context = AppContext.open(tmp_path / "home")
    context.settings.local.port = port
    context.settings.local.bind_address = "127.0.0.1"
    context.settings.nodes = [RemoteNode(name="Test archive", ae_title=peer.ae_title, host="127.0.0.1", port=peer.port)]
    yield context
    context.store.close()


def test_panel_searches_expands_and_retrieves_with_progress(qtbot, ctx: AppContext, qt_archive) -> None:
    from viewer.ui.network_service import NetworkService
    from viewer.ui.qr_panel import MATCH_ROLE, QueryRetrievePanel

    _, study, port = qt_archive
    service = NetworkService(ctx)
    statuses: list[str] = []
    service.status_changed.connect(statuses.append)
    assert service.start()
    try:
        assert statuses[-1] == f"LIGHTBOX @ {port}"
        panel = QueryRetrievePanel(ctx, service)
        qtbot.addWidget(panel)
        panel.name_edit.setText("PANEL")  # a trailing * is added
        with qtbot.waitSignal(panel.search_finished, timeout=20000) as found:
            panel.search_button.click()
        assert found.args == [1]
        item = panel.results.topLevelItem(0)
        assert item.text(0).startswith("PANEL^TEST") and item.text(1) == "QT1"

        item.setExpanded(True)  # study -> series, queried in the background
        qtbot.waitUntil(lambda: item.childCount() == 2, timeout=20000)
        assert sorted(item.child(i).data(0, MATCH_ROLE).get("SeriesInstanceUID") for i in range(2)) == sorted(
            study.series
        )

        panel.results.clearSelection()
        item.setSelected(True)
        with qtbot.waitSignal(panel.retrieve_finished, timeout=60000) as done:
            panel.retrieve_button.click()
            assert not panel.retrieve_button.isEnabled() and panel.cancel_button.isEnabled()
        results = done.args[0]
        assert not isinstance(results, Exception), results
        assert results[0].status == 0x0000
        assert len(ctx.store.instances_for_study(study.study_uid)) == len(study.files)
        assert panel.progress_updates, "no progress was shown"
        assert panel.progress_bar.value() == panel.progress_bar.maximum() == len(study.files)
        assert "Retrieved 7 instance(s)" in panel.status_label.text()
        assert service.received == len(study.files)
    finally:
        service.stop()
    assert statuses[-1] == "Storage SCP: off"


def test_panel_explains_unreachable_archive(qtbot, ctx: AppContext) -> None:
    from viewer.ui.qr_panel import QueryRetrievePanel

    ctx.settings.nodes = [RemoteNode(name="Gone", ae_title="GONE", host="127.0.0.1", port=free_port())]
    panel = QueryRetrievePanel(ctx)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.search_finished, timeout=20000) as finished:
        panel.search_button.click()
    assert finished.args == [-1]
    assert "Connection refused" in panel.status_label.text()


def test_settings_dialog_test_button_explains_a801(qtbot, ctx: AppContext) -> None:
    from viewer.ui.settings_dialog import SettingsDialog

    ctx.settings.local.ae_title = "NOTKNOWN"  # the archive's HostTable only knows LIGHTBOX
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    dialog.tabs.setCurrentIndex(1)
    dialog.nodes_tab.test_move_button.click()
    label = dialog.nodes_tab.test_result
    qtbot.waitUntil(
        lambda: label.text().startswith(("Failed", "C-ECHO OK: ARCHIVE")) and "Testing" not in label.text(),
        timeout=30000,
    )
    qtbot.waitUntil(lambda: "register" in label.text() or "Test retrieve" in label.text(), timeout=30000)
    assert "register NOTKNOWN at 127.0.0.1" in label.text()


def test_local_node_tab_keeps_the_sync_each_instance_choice(qtbot, ctx: AppContext) -> None:
    from viewer.core.settings import LocalNode
    from viewer.ui.settings_dialog import LocalNodeTab

    local = LocalNode()
    assert local.sync_each_instance is False  # group sync is the default
    tab = LocalNodeTab(local)
    qtbot.addWidget(tab)
    assert not tab.sync_each.isChecked()
    tab.sync_each.setChecked(True)
    tab.apply(local)
    assert local.sync_each_instance is True
