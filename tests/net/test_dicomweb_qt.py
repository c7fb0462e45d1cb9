"""pytest-qt: DICOMweb nodes in Settings (Test in a worker) and the Q/R panel against Orthanc's DICOMweb plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.orthanc_dicomweb import DicomWebPeer, orthanc_dicomweb
from tests.support.peers import StudyFiles, make_study, storescu
from viewer.core.context import AppContext
from viewer.core.settings import RemoteNode, Settings

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def web_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DicomWebPeer, StudyFiles]]:
    study = make_study(tmp_path_factory.mktemp("web-qt-data"), patient_name="WEB^PANEL", series_counts=(4, 3))
    with orthanc_dicomweb(tmp_path_factory.mktemp("web-qt-orthanc")) as peer:
        storescu(peer.ae_title, peer.port, study.files)
        yield peer, study


@pytest.fixture
def ctx(tmp_path: Path, web_archive) -> Iterator[AppContext]:
    peer, _ = web_archive
    context = AppContext.open(tmp_path / "home")
    context.settings.nodes = [RemoteNode(name="Dimse archive", ae_title="NONE", host="127.0.0.1", port=1)]
    context.settings.dicomweb_nodes = [peer.web_node(name="Web archive")]
    yield context
    context.store.close()


def test_settings_tab_tests_the_node_in_the_background(qtbot, ctx: AppContext) -> None:
    from viewer.ui.dicomweb_settings import DicomWebNodesTab

    nodes = list(ctx.settings.dicomweb_nodes)
    tab = DicomWebNodesTab(nodes)
    qtbot.addWidget(tab)
    assert tab.base_url.text() == nodes[0].base_url and tab.username.isEnabled() and not tab.token.isEnabled()
    tab.test_button.click()
    qtbot.waitUntil(lambda: tab.test_result.text().startswith("Connected"), timeout=20000)

    tab.password.setText("wrong")
    tab.password.editingFinished.emit()
    assert nodes[0].password == "wrong"
    tab.test_button.click()
    qtbot.waitUntil(lambda: "user name or password" in tab.test_result.text(), timeout=20000)
    assert tab.test_result.text().startswith("Failed:")


def test_settings_dialog_saves_dicomweb_nodes(qtbot, ctx: AppContext) -> None:
    from viewer.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    tab = dialog.dicomweb_tab
    tab.add_button.click()
    tab.name.setText("Second web")
    tab.base_url.setText("https://vna.example/dicomweb")
    tab.auth.setCurrentIndex(tab.auth.findData("bearer"))
    tab.token.setText("abc")
    tab.token.editingFinished.emit()
    dialog.accept()
    saved = ctx.settings.dicomweb_nodes
    assert [(n.name, n.auth, n.token) for n in saved][-1] == ("Second web", "bearer", "abc")
    reloaded = Settings.load(ctx.home / "settings.json")
    assert reloaded.dicomweb_nodes[-1].base_url == "https://vna.example/dicomweb"


def test_panel_searches_expands_and_retrieves_over_dicomweb(qtbot, ctx: AppContext, web_archive) -> None:
    from viewer.ui.qr_panel import QueryRetrievePanel

    _, study = web_archive
    panel = QueryRetrievePanel(ctx)
    qtbot.addWidget(panel)
    assert panel.node_combo.itemText(1) == "Web archive (DICOMweb)"
    panel.node_combo.setCurrentIndex(1)
    panel.name_edit.setText("WEB")
    with qtbot.waitSignal(panel.search_finished, timeout=20000) as found:
        panel.search_button.click()
    assert found.args == [1]
    item = panel.results.topLevelItem(0)
    assert item.text(0).startswith("WEB^PANEL")
    item.setExpanded(True)
    qtbot.waitUntil(lambda: item.childCount() == 2, timeout=20000)
    item.setSelected(True)
    with qtbot.waitSignal(panel.retrieve_finished, timeout=60000) as finished:
        panel.retrieve_button.click()
    (results,) = finished.args
    assert sum(r.received for r in results) == len(study.files)
    assert len(ctx.store.instances_for_study(study.study_uid)) == len(study.files)
    assert panel.progress_bar.value() == panel.progress_bar.maximum() == len(study.files)
    assert "Retrieved 7 instance(s) over DICOMweb" in panel.status_label.text()
