"""Printer list editor (a Settings tab): film printers, what they support, and each one's default preset."""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.core.settings import PrinterSettings
from viewer.print.film import FILM_SIZE_IDS, DisplayFormat, FilmError, standard_formats
from viewer.print.job import (
    DECIMATE_CROP,
    FILM_DESTINATIONS,
    MAGNIFICATION_TYPES,
    MEDIUM_TYPES,
    POLARITIES,
    PRIORITIES,
    PrintPreset,
)
from viewer.ui.workers import run_in_background


def _split(text: str) -> list[str]:
    """Comma-separated values (media names contain spaces)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _split_formats(text: str) -> list[str]:
    """Display formats contain commas themselves, so they are separated by spaces or semicolons."""
    return [part.strip().upper() for part in text.replace(";", " ").split() if part.strip()]


class PrinterSettingsWidget(QWidget):
    """Edit a list of `PrinterSettings`. `printers()` returns the edited copies; nothing is saved here."""

    changed = Signal()

    def __init__(
        self, printers: list[PrinterSettings] | None = None, parent: QWidget | None = None, *, calling_ae: str = ""
    ) -> None:
        super().__init__(parent)
        self.setObjectName("printerSettings")
        self._printers: list[PrinterSettings] = [copy.deepcopy(p) for p in (printers or [])]
        self._current = -1
        self._loading = False
        self.calling_ae = calling_ae or "LIGHTBOX"

        self.list = QListWidget()
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.check_button = QPushButton("Check printer")
        list_buttons = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.check_button):
            list_buttons.addWidget(button)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addLayout(list_buttons)
        self.check_label = QLabel("")
        self.check_label.setObjectName("printerCheck")
        self.check_label.setWordWrap(True)
        left.addWidget(self.check_label)

        # --- the printer itself
        self.name_edit = QLineEdit()
        self.ae_edit = QLineEdit()
        self.ae_edit.setMaxLength(16)
        self.host_edit = QLineEdit()
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.color_check = QCheckBox("Colour printer (Basic Color Print Management)")
        self.tls_check = QCheckBox("Use TLS")
        self.film_sizes_list = QListWidget()
        self.film_sizes_list.setMaximumHeight(130)
        for size in FILM_SIZE_IDS:
            item = QListWidgetItem(size)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.film_sizes_list.addItem(item)
        self.media_edit = QLineEdit()
        self.media_edit.setPlaceholderText(", ".join(MEDIUM_TYPES))
        self.formats_edit = QLineEdit()
        self.formats_edit.setPlaceholderText("empty: STANDARD\\1,1 … STANDARD\\4,6; e.g. STANDARD\\2,2 ROW\\1,2")
        self.supports_12bit_check = QCheckBox("Accepts 12-bit images")
        self.supports_plut_check = QCheckBox("Supports Presentation LUT")
        self.compat_check = QCheckBox("Compatibility: send one composed STANDARD\\1,1 image per film")
        self.timeout_spin = QDoubleSpinBox()
        self.timeout_spin.setRange(5, 600)
        self.timeout_spin.setSuffix(" s")
        printer_form = QFormLayout()
        printer_form.addRow("Name", self.name_edit)
        printer_form.addRow("AE title", self.ae_edit)
        printer_form.addRow("Host", self.host_edit)
        printer_form.addRow("Port", self.port_spin)
        printer_form.addRow(self.color_check)
        printer_form.addRow(self.tls_check)
        printer_form.addRow("Film sizes", self.film_sizes_list)
        printer_form.addRow("Media", self.media_edit)
        printer_form.addRow("Layouts", self.formats_edit)
        printer_form.addRow(self.supports_12bit_check)
        printer_form.addRow(self.supports_plut_check)
        printer_form.addRow(self.compat_check)
        printer_form.addRow("Timeout", self.timeout_spin)
        printer_box = QGroupBox("Printer")
        printer_box.setLayout(printer_form)

        # --- the default preset
        self.p_film_size = QComboBox()
        self.p_film_size.addItems(list(FILM_SIZE_IDS))
        self.p_orientation = QComboBox()
        self.p_orientation.addItems(["PORTRAIT", "LANDSCAPE"])
        self.p_layout = QComboBox()
        self.p_layout.setEditable(True)
        self.p_layout.addItems(standard_formats())
        self.p_magnification = QComboBox()
        self.p_magnification.addItems(list(MAGNIFICATION_TYPES))
        self.p_smoothing = QLineEdit()
        self.p_border = QLineEdit()
        self.p_border.setPlaceholderText("BLACK, WHITE or hundredths of OD")
        self.p_empty = QLineEdit()
        self.p_empty.setPlaceholderText("BLACK, WHITE or hundredths of OD")
        self.p_min_density = QSpinBox()
        self.p_min_density.setRange(-1, 500)
        self.p_min_density.setSpecialValueText("printer default")
        self.p_max_density = QSpinBox()
        self.p_max_density.setRange(-1, 500)
        self.p_max_density.setSpecialValueText("printer default")
        self.p_trim = QComboBox()
        self.p_trim.addItems(["", "YES", "NO"])
        self.p_polarity = QComboBox()
        self.p_polarity.addItems(list(POLARITIES))
        self.p_config = QLineEdit()
        self.p_config.setPlaceholderText("e.g. PERCEPTION_LUT=KANAMORI")
        self.p_resolution = QComboBox()
        self.p_resolution.setEditable(True)
        self.p_resolution.addItems(["", "STANDARD", "HIGH"])
        self.p_bits = QComboBox()
        self.p_bits.addItems(["8", "12"])
        self.p_plut = QCheckBox("Use Presentation LUT")
        self.p_identify = QCheckBox("Patient name, ID and study date on every film")
        self.p_annotation = QCheckBox("Ask for the printer's annotation boxes")
        self.p_copies = QSpinBox()
        self.p_copies.setRange(1, 99)
        self.p_priority = QComboBox()
        self.p_priority.addItems(list(PRIORITIES))
        self.p_medium = QComboBox()
        self.p_medium.setEditable(True)
        self.p_medium.addItems(list(MEDIUM_TYPES))
        self.p_destination = QComboBox()
        self.p_destination.setEditable(True)
        self.p_destination.addItems(list(FILM_DESTINATIONS))
        self.p_decimate = QComboBox()
        self.p_decimate.addItems(list(DECIMATE_CROP))
        self.p_true_size = QCheckBox("True size (Requested Image Size from pixel spacing)")
        self.p_per_session = QCheckBox("Print the whole session at once (N-ACTION on the film session)")
        preset_form = QFormLayout()
        preset_form.addRow("Film size", self.p_film_size)
        preset_form.addRow("Orientation", self.p_orientation)
        preset_form.addRow("Layout", self.p_layout)
        preset_form.addRow("Magnification", self.p_magnification)
        preset_form.addRow("Smoothing", self.p_smoothing)
        preset_form.addRow("Border density", self.p_border)
        preset_form.addRow("Empty image density", self.p_empty)
        preset_form.addRow("Min density", self.p_min_density)
        preset_form.addRow("Max density", self.p_max_density)
        preset_form.addRow("Trim", self.p_trim)
        preset_form.addRow("Polarity", self.p_polarity)
        preset_form.addRow("Configuration info", self.p_config)
        preset_form.addRow("Resolution", self.p_resolution)
        preset_form.addRow("Bit depth", self.p_bits)
        preset_form.addRow(self.p_plut)
        preset_form.addRow(self.p_identify)
        preset_form.addRow(self.p_annotation)
        preset_form.addRow("Copies", self.p_copies)
        preset_form.addRow("Priority", self.p_priority)
        preset_form.addRow("Medium", self.p_medium)
        preset_form.addRow("Destination", self.p_destination)
        preset_form.addRow("Decimate/crop", self.p_decimate)
        preset_form.addRow(self.p_true_size)
        preset_form.addRow(self.p_per_session)
        preset_box = QGroupBox("Default preset")
        preset_box.setLayout(preset_form)

        self.error_label = QLabel("")
        self.error_label.setObjectName("printerError")
        self.error_label.setStyleSheet("color: #c33")
        right_widget = QWidget()
        right = QVBoxLayout(right_widget)
        right.addWidget(printer_box)
        right.addWidget(preset_box)
        right.addWidget(self.error_label)
        self.editor = QScrollArea()
        self.editor.setWidgetResizable(True)
        self.editor.setWidget(right_widget)

        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addWidget(self.editor, 2)

        self.list.currentRowChanged.connect(self._select)
        self.add_button.clicked.connect(self.add_printer)
        self.remove_button.clicked.connect(self.remove_printer)
        self.check_button.clicked.connect(self.check_printer)
        for widget in self._editors():
            signal = _change_signal(widget)
            if signal is not None:
                signal.connect(self._edited)
        self.film_sizes_list.itemChanged.connect(self._edited)
        self._reload_list()

    # ------------------------------------------------------------------ public
    def printers(self) -> list[PrinterSettings]:
        self._store_current()
        return [copy.deepcopy(p) for p in self._printers]

    def set_printers(self, printers: list[PrinterSettings]) -> None:
        self._printers = [copy.deepcopy(p) for p in printers]
        self._current = -1
        self._reload_list()

    def validation_errors(self) -> list[str]:
        errors: list[str] = []
        for printer in self.printers():
            label = printer.name or printer.ae_title or "(unnamed printer)"
            if not printer.ae_title:
                errors.append(f"{label}: the AE title is empty")
            if not printer.host:
                errors.append(f"{label}: the host is empty")
            for fmt in printer.display_formats:
                try:
                    DisplayFormat.parse(fmt)
                except FilmError as exc:
                    errors.append(f"{label}: {exc}")
            try:
                PrintPreset.from_dict(printer.defaults).validate()
            except FilmError as exc:
                errors.append(f"{label}: default preset: {exc}")
        return errors

    def add_printer(self) -> None:
        self._store_current()
        number = len(self._printers) + 1
        self._printers.append(
            PrinterSettings(name=f"Printer {number}", ae_title="PRINTER", defaults=PrintPreset().to_dict())
        )
        self._reload_list(select=len(self._printers) - 1)
        self.changed.emit()

    def remove_printer(self) -> None:
        row = self.list.currentRow()
        if 0 <= row < len(self._printers):
            del self._printers[row]
            self._current = -1
            self._reload_list(select=min(row, len(self._printers) - 1))
            self.changed.emit()

    def check_printer(self) -> None:
        """Printer N-GET in the background; the answer (status explained) is shown under the list."""
        from viewer.print.scu import query_printer_status

        self._store_current()
        if not (0 <= self._current < len(self._printers)):
            return
        printer = copy.deepcopy(self._printers[self._current])
        self.check_label.setText(f"Asking {printer.ae_title} at {printer.host}:{printer.port}…")

        def shown(result: Any) -> None:
            from viewer.print.statuses import explain_printer_status

            colour = "accepts colour" if result.color else "grayscale only"
            text = explain_printer_status(result.printer_status, result.printer_status_info)
            self.check_label.setText(f"{text} ({colour})" + "".join(f"\n{w}" for w in result.warnings))

        run_in_background(
            query_printer_status,
            printer,
            calling_ae=printer.calling_ae_title or self.calling_ae,
            timeout_s=min(printer.timeout_s, 15.0),
            on_result=shown,
            on_error=lambda exc: self.check_label.setText(str(exc)),
        )

    # ------------------------------------------------------------------ internals
    def _editors(self) -> list[QWidget]:
        return list(self.editor.widget().findChildren(QWidget))

    def _reload_list(self, select: int = 0) -> None:
        self._loading = True
        self.list.clear()
        for printer in self._printers:
            self.list.addItem(printer.name or printer.ae_title or "(unnamed)")
        self._loading = False
        self.editor.setEnabled(bool(self._printers))
        self.remove_button.setEnabled(bool(self._printers))
        self.check_button.setEnabled(bool(self._printers))
        if self._printers:
            self.list.setCurrentRow(max(0, select))

    def _select(self, row: int) -> None:
        if self._loading:
            return
        self._store_current()
        self._current = row
        if 0 <= row < len(self._printers):
            self._load(self._printers[row])

    def _edited(self, *_args: Any) -> None:
        if self._loading:
            return
        self._store_current()
        row = self._current
        if 0 <= row < len(self._printers) and self.list.item(row) is not None:
            printer = self._printers[row]
            self.list.item(row).setText(printer.name or printer.ae_title or "(unnamed)")
        errors = self.validation_errors()
        self.error_label.setText("\n".join(errors))
        self.changed.emit()

    def _load(self, printer: PrinterSettings) -> None:
        self._loading = True
        try:
            self.name_edit.setText(printer.name)
            self.ae_edit.setText(printer.ae_title)
            self.host_edit.setText(printer.host)
            self.port_spin.setValue(int(printer.port))
            self.color_check.setChecked(printer.color)
            self.tls_check.setChecked(printer.use_tls)
            for i in range(self.film_sizes_list.count()):
                item = self.film_sizes_list.item(i)
                checked = item.text() in printer.film_sizes
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            self.media_edit.setText(", ".join(printer.media))
            self.formats_edit.setText(" ".join(printer.display_formats))
            self.supports_12bit_check.setChecked(printer.supports_12bit)
            self.supports_plut_check.setChecked(printer.supports_presentation_lut)
            self.compat_check.setChecked(printer.compatibility_single_image)
            self.timeout_spin.setValue(float(printer.timeout_s))
            preset = PrintPreset.from_dict(printer.defaults)
            self.p_film_size.setCurrentText(preset.film_size)
            self.p_orientation.setCurrentText(preset.orientation)
            self.p_layout.setCurrentText(preset.display_format)
            self.p_magnification.setCurrentText(preset.magnification)
            self.p_smoothing.setText(preset.smoothing)
            self.p_border.setText(preset.border_density)
            self.p_empty.setText(preset.empty_image_density)
            self.p_min_density.setValue(-1 if preset.min_density is None else preset.min_density)
            self.p_max_density.setValue(-1 if preset.max_density is None else preset.max_density)
            self.p_trim.setCurrentText(preset.trim)
            self.p_polarity.setCurrentText(preset.polarity or "NORMAL")
            self.p_config.setText(preset.configuration_information)
            self.p_resolution.setCurrentText(preset.requested_resolution)
            self.p_bits.setCurrentText(str(preset.bits))
            self.p_plut.setChecked(preset.use_presentation_lut)
            self.p_annotation.setChecked(preset.annotation_box)
            self.p_identify.setChecked(preset.identify_patient)
            self.p_copies.setValue(preset.copies)
            self.p_priority.setCurrentText(preset.priority)
            self.p_medium.setCurrentText(preset.medium_type)
            self.p_destination.setCurrentText(preset.film_destination)
            self.p_decimate.setCurrentText(preset.decimate_crop)
            self.p_true_size.setChecked(preset.requested_image_size)
            self.p_per_session.setChecked(preset.print_per_session)
        finally:
            self._loading = False

    def _store_current(self) -> None:
        row = self._current
        if self._loading or not (0 <= row < len(self._printers)):
            return
        printer = self._printers[row]
        printer.name = self.name_edit.text().strip()
        printer.ae_title = self.ae_edit.text().strip()
        printer.host = self.host_edit.text().strip()
        printer.port = self.port_spin.value()
        printer.color = self.color_check.isChecked()
        printer.use_tls = self.tls_check.isChecked()
        printer.film_sizes = [
            self.film_sizes_list.item(i).text()
            for i in range(self.film_sizes_list.count())
            if self.film_sizes_list.item(i).checkState() == Qt.CheckState.Checked
        ]
        printer.media = _split(self.media_edit.text())
        printer.display_formats = _split_formats(self.formats_edit.text())
        printer.supports_12bit = self.supports_12bit_check.isChecked()
        printer.supports_presentation_lut = self.supports_plut_check.isChecked()
        printer.compatibility_single_image = self.compat_check.isChecked()
        printer.timeout_s = self.timeout_spin.value()
        preset = PrintPreset.from_dict(printer.defaults)
        preset.film_size = self.p_film_size.currentText()
        preset.orientation = self.p_orientation.currentText()
        preset.display_format = self.p_layout.currentText().strip()
        preset.magnification = self.p_magnification.currentText()
        preset.smoothing = self.p_smoothing.text().strip()
        preset.border_density = self.p_border.text().strip().upper()
        preset.empty_image_density = self.p_empty.text().strip().upper()
        preset.min_density = None if self.p_min_density.value() < 0 else self.p_min_density.value()
        preset.max_density = None if self.p_max_density.value() < 0 else self.p_max_density.value()
        preset.trim = self.p_trim.currentText()
        preset.polarity = self.p_polarity.currentText()
        preset.configuration_information = self.p_config.text().strip()
        preset.requested_resolution = self.p_resolution.currentText().strip().upper()
        preset.bits = int(self.p_bits.currentText())
        preset.use_presentation_lut = self.p_plut.isChecked()
        preset.annotation_box = self.p_annotation.isChecked()
        preset.identify_patient = self.p_identify.isChecked()
        preset.copies = self.p_copies.value()
        preset.priority = self.p_priority.currentText()
        preset.medium_type = self.p_medium.currentText().strip()
        preset.film_destination = self.p_destination.currentText().strip()
        preset.decimate_crop = self.p_decimate.currentText()
        preset.requested_image_size = self.p_true_size.isChecked()
        preset.print_per_session = self.p_per_session.isChecked()
        printer.defaults = preset.to_dict()


def _change_signal(widget: QWidget) -> Any:
    if isinstance(widget, QLineEdit):
        return widget.textEdited
    if isinstance(widget, QComboBox):
        return widget.currentTextChanged
    if isinstance(widget, QSpinBox | QDoubleSpinBox):
        return widget.valueChanged
    if isinstance(widget, QCheckBox):
        return widget.toggled
    return None
