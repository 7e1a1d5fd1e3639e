"""Controls generated from declared parameters (engine ``Param``): no per-member or per-strategy code.

Two styles:

* ``"text"`` (members): numbers are typed into line edits and handed to the engine's validation as
  typed, so a refused value comes back with the engine's reason; choices are combo boxes and
  booleans check boxes.
* ``"slider"`` (fusion strategies): bounded floats are sliders, bounded ints spin boxes, and a
  per-member parameter (weights) becomes one slider per sampling member plus a mode picker
  (default / named modes such as ``auto`` / custom).
"""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QSlider,
                               QSpinBox, QVBoxLayout, QWidget)

from gui.catalog import Param

SLIDER_STEPS = 100
WEIGHT_MAX = 10.0   # per-member sliders span 0..10 (only ratios matter for weights)


def _label(param: Param) -> str:
    return param.name.replace("_", " ")


def _range_hint(param: Param) -> str:
    if param.low is None and param.high is None:
        return ""
    low = "" if param.low is None else f"{param.low:g}"
    high = "" if param.high is None else f"{param.high:g}"
    return f"{low} – {high}"


class ValueSlider(QWidget):
    """A horizontal slider over [low, high] in SLIDER_STEPS steps with its value shown beside it."""

    sig_changed = Signal()

    def __init__(self, low: float, high: float, value: float, decimals: int = 2, parent=None):
        super().__init__(parent)
        self.low, self.high, self.decimals = float(low), float(high), decimals
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.readout = QLabel()
        self.readout.setMinimumWidth(44)
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.readout)
        self.set_value(value)
        self.slider.valueChanged.connect(self._moved)

    def value(self) -> float:
        """The value as shown beside the slider (a 0.4 default stays 0.4, not 0.4022), within its range."""
        exact = self.low + (self.high - self.low) * self.slider.value() / SLIDER_STEPS
        return min(self.high, max(self.low, round(exact, self.decimals)))

    def set_value(self, value: float) -> None:
        span = self.high - self.low
        position = 0 if span <= 0 else round((float(value) - self.low) / span * SLIDER_STEPS)
        self.slider.setValue(max(0, min(SLIDER_STEPS, position)))
        self.readout.setText(f"{self.value():.{self.decimals}f}")

    def _moved(self, _position: int) -> None:
        self.readout.setText(f"{self.value():.{self.decimals}f}")
        self.sig_changed.emit()


class MemberWeights(QWidget):
    """A per-member parameter: a mode (default, a named mode, custom) and one slider per member."""

    sig_changed = Signal()
    CUSTOM = "custom"
    DEFAULT = "default"

    def __init__(self, param: Param, members: list[str], parent=None):
        super().__init__(parent)
        self.param = param
        self.mode = QComboBox()
        self.mode.addItems([self.DEFAULT, *[str(c) for c in (param.choices or ())], self.CUSTOM])
        self.mode.setToolTip("default: the strategy's own choice (equal weights); custom: the sliders below")
        low = max(0.0, param.low if param.low is not None else 0.0)
        high = min(WEIGHT_MAX, param.high if param.high is not None else WEIGHT_MAX)
        self.sliders: dict[str, ValueSlider] = {}
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        for name in members:
            slider = ValueSlider(low, high, 1.0, decimals=1)
            slider.sig_changed.connect(self._slid)
            self.sliders[name] = slider
            form.addRow(name, slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.mode)
        layout.addLayout(form)
        self.mode.currentTextChanged.connect(lambda _text: self.sig_changed.emit())

    def _slid(self) -> None:
        if self.mode.currentText() != self.CUSTOM:
            self.mode.blockSignals(True)
            self.mode.setCurrentText(self.CUSTOM)
            self.mode.blockSignals(False)
        self.sig_changed.emit()

    def value(self) -> Any:
        mode = self.mode.currentText()
        if mode == self.DEFAULT:
            return None
        if mode == self.CUSTOM:
            return {name: slider.value() for name, slider in self.sliders.items()}
        return mode

    def set_value(self, value: Any) -> None:
        self.blockSignals(True)
        if isinstance(value, dict):
            for name, number in value.items():
                if name in self.sliders:
                    self.sliders[name].set_value(float(number))
            self.mode.setCurrentText(self.CUSTOM)
        elif value is None:
            self.mode.setCurrentText(self.DEFAULT)
        else:
            self.mode.setCurrentText(str(value))
        self.blockSignals(False)


class ParamForm(QWidget):
    sig_changed = Signal()

    def __init__(self, params: tuple[Param, ...], style: str = "text", members: list[str] | None = None,
                 values: dict[str, Any] | None = None, parent=None, scorers: list[str] | None = None):
        super().__init__(parent)
        self.params = {p.name: p for p in params}
        self.style = style
        self.fields: dict[str, QWidget] = {}
        self.layout_ = QFormLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for param in params:
            field = self._make(param, (scorers if param.scorers else members) or [])
            field.setToolTip(param.help)
            self.fields[param.name] = field
            label = QLabel(_label(param))
            label.setToolTip(param.help)
            self.layout_.addRow(label, field)
        if values:
            self.set_values(values)
        if not params:
            self.layout_.addRow(QLabel("no parameters"))

    def _make(self, param: Param, members: list[str]) -> QWidget:
        if param.per_member:
            field = MemberWeights(param, members)
            field.sig_changed.connect(self.sig_changed)
            return field
        if param.choices is not None:
            field = QComboBox()
            choices = [c for c in param.choices if not param.member_choice or c == "auto" or c in members]
            field.addItems([str(c) for c in choices or param.choices])  # a member choice: the run's own
            field.setCurrentText(str(param.default))  # kept when offered, else the first
            field.currentTextChanged.connect(lambda _t: self.sig_changed.emit())
            return field
        if isinstance(param.default, bool):
            field = QCheckBox()
            field.setChecked(bool(param.default))
            field.toggled.connect(lambda _c: self.sig_changed.emit())
            return field
        bounded = param.low is not None and param.high is not None
        if self.style == "slider" and bounded and isinstance(param.default, int) and param.high - param.low <= 10_000:
            field = QSpinBox()
            field.setRange(int(param.low), int(param.high))
            field.setValue(int(param.default))
            field.valueChanged.connect(lambda _v: self.sig_changed.emit())
            return field
        if self.style == "slider" and bounded and isinstance(param.default, float) and math.isfinite(param.high):
            field = ValueSlider(param.low, param.high, param.default)
            field.sig_changed.connect(self.sig_changed)
            return field
        field = QLineEdit("" if param.default is None else f"{param.default:g}"
                          if isinstance(param.default, float) else str(param.default))
        field.setPlaceholderText(_range_hint(param))
        field.editingFinished.connect(self.sig_changed)
        return field

    def values(self) -> dict[str, Any]:
        """Raw values: text stays text (the engine converts and range-checks it)."""
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            if isinstance(field, MemberWeights):
                value = field.value()
                if value is not None:
                    out[name] = value
            elif isinstance(field, QComboBox):
                param = self.params[name]
                text = field.currentText()
                out[name] = next((c for c in param.choices if str(c) == text), text)
            elif isinstance(field, QCheckBox):
                out[name] = field.isChecked()
            elif isinstance(field, (QSpinBox, ValueSlider)):
                out[name] = field.value()
            else:
                out[name] = field.text().strip()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            field = self.fields.get(name)
            if field is None:
                continue
            field.blockSignals(True)
            if isinstance(field, MemberWeights):
                field.set_value(value)
            elif isinstance(field, QComboBox):
                field.setCurrentText(str(value))
            elif isinstance(field, QCheckBox):
                field.setChecked(bool(value))
            elif isinstance(field, QSpinBox):
                field.setValue(int(value))
            elif isinstance(field, ValueSlider):
                field.set_value(float(value))
            else:
                field.setText(f"{value:g}" if isinstance(value, float) else str(value))
            field.blockSignals(False)

    def set_read_only(self, read_only: bool) -> None:
        for field in self.fields.values():
            if isinstance(field, QLineEdit):
                field.setReadOnly(read_only)
            else:
                field.setEnabled(not read_only)
