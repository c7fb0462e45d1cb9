"""The printer list editor: edits round-trip into PrinterSettings / presets; "Check printer" asks a real printer."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from PySide6.QtCore import Qt

from tests.support.printer import PrintServer
from viewer.core.settings import PrinterSettings, Settings
from viewer.print.job import PrintPreset


def test_editing_printers_round_trips(qtbot, tmp_path) -> None:
    from viewer.ui.printer_settings import PrinterSettingsWidget

    original = PrinterSettings(
        name="Drystar",
        ae_title="DRYSTAR",
        host="10.0.0.5",
        port=5040,
        film_sizes=["8INX10IN"],
        defaults=PrintPreset(film_size="8INX10IN", bits=12, min_density=20).to_dict(),
    )
    widget = PrinterSettingsWidget([original])
    qtbot.addWidget(widget)
    assert widget.name_edit.text() == "Drystar" and widget.p_bits.currentText() == "12"
    assert widget.p_min_density.value() == 20 and widget.p_max_density.value() == -1

    widget.ae_edit.setText("DRYSTAR5300")
    widget.ae_edit.textEdited.emit("DRYSTAR5300")
    widget.color_check.setChecked(True)
    widget.compat_check.setChecked(True)
    widget.film_sizes_list.findItems("14INX17IN", Qt.MatchFlag.MatchExactly)[0].setCheckState(Qt.CheckState.Checked)
    widget.formats_edit.setText("STANDARD\\1,1 STANDARD\\2,2; ROW\\1,2")
    widget.formats_edit.textEdited.emit(widget.formats_edit.text())
    widget.p_layout.setCurrentText("STANDARD\\2,2")
    widget.p_magnification.setCurrentText("CUBIC")
    widget.p_border.setText("white")
    widget.p_border.textEdited.emit("white")
    widget.p_per_session.setChecked(True)

    widget.add_printer()
    widget.name_edit.setText("Paper")
    widget.name_edit.textEdited.emit("Paper")
    printers = widget.printers()
    assert [p.name for p in printers] == ["Drystar", "Paper"]
    edited = printers[0]
    assert edited.ae_title == "DRYSTAR5300" and edited.color and edited.compatibility_single_image
    assert edited.film_sizes == ["8INX10IN", "14INX17IN"]
    assert edited.display_formats == ["STANDARD\\1,1", "STANDARD\\2,2", "ROW\\1,2"]
    preset = PrintPreset.from_dict(edited.defaults)
    assert preset.display_format == "STANDARD\\2,2" and preset.magnification == "CUBIC"
    assert preset.border_density == "WHITE" and preset.print_per_session and preset.bits == 12
    assert preset.min_density == 20 and preset.max_density is None
    assert widget.validation_errors() == []

    # What the widget returns persists through the settings file unchanged.
    settings = Settings(printers=printers)
    settings.save(tmp_path / "settings.json")
    loaded = Settings.load(tmp_path / "settings.json")
    assert json.dumps(asdict(loaded.printers[0])) == json.dumps(asdict(edited))

    widget.formats_edit.setText("STANDARD\\9")
    widget.formats_edit.textEdited.emit("STANDARD\\9")
    assert any("STANDARD\\9" in e for e in widget.validation_errors())
    assert "STANDARD\\9" in widget.error_label.text()
    widget.remove_printer()
    assert len(widget.printers()) == 1


@pytest.mark.network
def test_check_printer_reports_its_status(qtbot, full_printer: PrintServer) -> None:
    from viewer.ui.printer_settings import PrinterSettingsWidget

    printer = PrinterSettings(name="full", ae_title="IHEFULL", host="127.0.0.1", port=full_printer.port, color=True)
    widget = PrinterSettingsWidget([printer], calling_ae="LIGHTBOX")
    qtbot.addWidget(widget)
    widget.check_button.click()
    qtbot.waitUntil(lambda: "Printer" in widget.check_label.text(), timeout=20000)
    assert widget.check_label.text().startswith("Printer ready.") and "grayscale only" in widget.check_label.text()


def test_settings_dialog_printers_tab_saves_the_printer_list(qtbot, tmp_path) -> None:
    from viewer.core.context import AppContext
    from viewer.ui.settings_dialog import SettingsDialog

    ctx = AppContext.open(tmp_path / "home")
    dialog = SettingsDialog(ctx)
    qtbot.addWidget(dialog)
    labels = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert "Printers" in labels
    widget = dialog.printers_tab
    widget.add_printer()
    widget.name_edit.setText("Film room")
    widget.ae_edit.setText("DRYSTAR")
    widget.host_edit.setText("127.0.0.1")
    dialog.accept()
    saved = json.loads(ctx.settings_path.read_text())["printers"]
    assert [(p["name"], p["ae_title"]) for p in saved] == [("Film room", "DRYSTAR")]
    assert Settings.load(ctx.settings_path).printers[0].ae_title == "DRYSTAR"


def test_patient_identification_is_on_in_a_new_printers_preset(qtbot) -> None:
    from viewer.core.settings import PrinterSettings
    from viewer.print.job import PrintPreset
    from viewer.ui.printer_settings import PrinterSettingsWidget

    widget = PrinterSettingsWidget([PrinterSettings(name="film", ae_title="FILM")])
    qtbot.addWidget(widget)
    widget.list.setCurrentRow(0)
    assert widget.p_identify.isChecked()
    widget.p_identify.setChecked(False)
    (edited,) = widget.printers()
    assert PrintPreset.from_dict(edited.defaults).identify_patient is False
