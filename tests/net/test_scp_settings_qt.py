"""The SCP's admission settings (issue 14): defaults, the settings file round trip, and the Settings dialog."""

from __future__ import annotations

from pathlib import Path

from viewer.core.settings import LocalNode, Settings
from viewer.net.scp import StorageServer, parse_allowed_entry


def test_defaults_check_the_called_ae_and_bound_a_host_without_blocking_ordinary_senders(tmp_path: Path) -> None:
    local = LocalNode()
    assert local.check_called_ae is True
    assert local.bind_address == "0.0.0.0"  # PACS and modalities must reach a reading-room workstation
    assert local.prefer_compressed is False
    assert local.idle_association_s > 0
    server = StorageServer(None, local)  # type: ignore[arg-type]  # only its limits are read
    assert server.associations_per_host() == 8  # of 10: eight parallel senders from one PACS still fit
    assert StorageServer(None, LocalNode(max_associations=2)).associations_per_host() == 2  # type: ignore[arg-type]
    assert StorageServer(None, LocalNode(max_associations_per_host=3)).associations_per_host() == 3  # type: ignore[arg-type]


def test_allow_list_entries_and_new_fields_survive_the_settings_file(tmp_path: Path) -> None:
    assert parse_allowed_entry(" PACS@10.1.2.3 ") == ("PACS", "10.1.2.3")
    assert parse_allowed_entry("MODALITY") == ("MODALITY", "")
    assert parse_allowed_entry("ODD@") == ("ODD@", "")
    settings = Settings()
    settings.local.allowed_calling_aes = ["PACS@10.1.2.0/24"]
    settings.local.check_called_ae = False
    settings.local.max_associations_per_host = 4
    settings.local.idle_association_s = 30.0
    settings.local.prefer_compressed = True
    settings.save(tmp_path / "settings.json")
    assert Settings.load(tmp_path / "settings.json").local == settings.local


def test_settings_dialog_edits_the_admission_settings(qtbot) -> None:
    from viewer.ui.settings_dialog import LocalNodeTab

    local = LocalNode()
    tab = LocalNodeTab(local)
    qtbot.addWidget(tab)
    assert tab.check_called.isChecked()
    tab.check_called.setChecked(False)
    tab.per_host.setValue(3)
    tab.idle.setValue(20)
    tab.prefer_compressed.setChecked(True)
    tab.allowed.setText("PACS@10.1.2.3, CT1")
    tab.apply(local)
    assert (local.check_called_ae, local.max_associations_per_host, local.idle_association_s) == (False, 3, 20.0)
    assert local.prefer_compressed is True
    assert local.allowed_calling_aes == ["PACS@10.1.2.3", "CT1"]
