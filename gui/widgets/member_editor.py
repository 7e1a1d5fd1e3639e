"""One member's settings: optimizer, learning rate, betas or momentum, batch size, and the member's
own declared parameters. Every edit is checked by the engine's validation; a refused value is
marked and the engine's reason is shown under the card."""
from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from gui.catalog import OPTIMIZERS, PACE_RANGE, MemberSpec, UserError, validate_member
from gui.widgets.param_form import ParamForm

INVALID_STYLE = "border: 1px solid #d9534f;"
# the engine's config-file names of the fields → the labels this editor shows
FIELD_LABELS = (("optim lr", "learning rate"), ("optim betas[0]", "beta 1"), ("optim betas[1]", "beta 2"),
                ("optim betas", "betas"), ("optim momentum", "momentum"), ("optim weight_decay", "weight decay"),
                ("optim name", "optimizer"), ("batch_size", "batch size"), ("pace", "pace"))
BOUNDS = ((r"must be > ", "must be greater than "), (r"must be >= ", "must be at least "),
          (r"must be <= ", "must be at most "))


def plain_reason(message: str, title: str) -> str:
    """'[members.dcgan] optim lr must be > 0.0, got '0'' → 'DCGAN: learning rate must be greater than 0, got '0''."""
    text = re.sub(r"^\[members\.\w+\]\s*", "", message)
    for raw, label in FIELD_LABELS:
        text = text.replace(raw, label)
    for raw, words in BOUNDS:
        text = re.sub(raw + r"(-?[\d.]+(?:e-?\d+)?)\b", lambda m, w=words: w + f"{float(m[1]):g}", text)
    return f"{title}: {text}"
ERROR_COLOR = "#d9534f"


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class MemberEditor(QGroupBox):
    sig_remove = Signal(str)
    sig_changed = Signal()

    def __init__(self, spec: MemberSpec, parent: QWidget | None = None):
        super().__init__(f"{spec.title}  ·  {spec.kind}", parent)
        self.spec = spec
        self.kind = spec.kind
        self.valid = True
        self.error = ""
        self.optimizer = QComboBox()
        self.optimizer.addItems(OPTIMIZERS)
        self.lr = QLineEdit()
        self.beta1, self.beta2 = QLineEdit(), QLineEdit()
        self.momentum = QLineEdit()
        self.weight_decay = QLineEdit()
        self.batch_size = QLineEdit()
        self.pace = QLineEdit()
        self.lr.setPlaceholderText("> 0, e.g. 2e-4")
        self.batch_size.setPlaceholderText("1 – 65536")
        low, high = PACE_RANGE
        self.pace.setPlaceholderText(f"{low:g} – {high:g}")
        self.pace.setToolTip("optimizer steps this member takes per step of the run: above 1 for a cheap member "
                             "that keeps improving, below 1 for one that gains little from more")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip(f"remove {spec.kind} from this run")
        self.params = ParamForm(spec.params, style="text")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error_label.hide()

        betas = QHBoxLayout()
        betas.setContentsMargins(0, 0, 0, 0)
        betas.addWidget(self.beta1)
        betas.addWidget(self.beta2)
        self._betas_row = QWidget()
        self._betas_row.setLayout(betas)
        optim_form = QFormLayout()
        optim_form.addRow("optimizer", self.optimizer)
        optim_form.addRow("learning rate", self.lr)
        optim_form.addRow("betas", self._betas_row)
        optim_form.addRow("momentum", self.momentum)
        optim_form.addRow("weight decay", self.weight_decay)
        optim_form.addRow("batch size", self.batch_size)
        optim_form.addRow("pace", self.pace)
        self._optim_form = optim_form
        columns = QHBoxLayout()
        columns.addLayout(optim_form, 1)
        columns.addWidget(self.params, 1)
        header = QHBoxLayout()
        header.addWidget(QLabel(_describe(spec)), 1)
        header.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addLayout(columns)
        layout.addWidget(self.error_label)

        self.set_config({"optim": spec.optim, "batch_size": spec.batch_size, "pace": spec.pace})
        self.optimizer.currentTextChanged.connect(self._optimizer_changed)
        for edit in self._edits():
            edit.editingFinished.connect(self.sig_changed)
        self.params.sig_changed.connect(self.sig_changed)
        self.remove_button.clicked.connect(lambda: self.sig_remove.emit(self.kind))
        self._optimizer_changed(self.optimizer.currentText())

    def _edits(self) -> list[QLineEdit]:
        return [self.lr, self.beta1, self.beta2, self.momentum, self.weight_decay, self.batch_size, self.pace]

    def _optimizer_changed(self, name: str) -> None:
        sgd = name == "sgd"
        self._optim_form.setRowVisible(self._betas_row, not sgd)
        self._optim_form.setRowVisible(self.momentum, sgd)
        self.sig_changed.emit()

    # -- values ------------------------------------------------------------------------------------
    def raw(self) -> dict[str, Any]:
        """The settings as typed; the engine converts and checks them."""
        return {
            "kind": self.kind,
            "optim": {"name": self.optimizer.currentText(), "lr": self.lr.text().strip(),
                      "betas": [self.beta1.text().strip(), self.beta2.text().strip()],
                      "momentum": self.momentum.text().strip(), "weight_decay": self.weight_decay.text().strip()},
            "batch_size": self.batch_size.text().strip(),
            "pace": self.pace.text().strip(),
            "params": self.params.values(),
        }

    def set_config(self, config: dict[str, Any]) -> None:
        optim = config.get("optim", {})
        if "name" in optim:
            self.optimizer.setCurrentText(optim["name"])
        if "lr" in optim:
            self.lr.setText(_number_text(optim["lr"]))
        if "betas" in optim:
            self.beta1.setText(_number_text(optim["betas"][0]))
            self.beta2.setText(_number_text(optim["betas"][1]))
        if "momentum" in optim:
            self.momentum.setText(_number_text(optim["momentum"]))
        if "weight_decay" in optim:
            self.weight_decay.setText(_number_text(optim["weight_decay"]))
        if "batch_size" in config:
            self.batch_size.setText(str(config["batch_size"]))
        if "pace" in config:
            self.pace.setText(_number_text(float(config["pace"])))
        if config.get("params"):
            self.params.set_values(dict(config["params"]))

    def validate(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The normalised settings, or None with the engine's reason shown and the field marked."""
        for edit in self._edits():
            edit.setStyleSheet("")
        for field in self.params.fields.values():
            field.setStyleSheet("")
        try:
            config = validate_member(self.raw(), data)
        except UserError as exc:
            self.valid, self.error = False, plain_reason(str(exc), self.spec.title)
            self.error_label.setText(f"Refused: {self.error}")
            self.error_label.show()
            culprit = self._field_named_in(str(exc))
            if culprit is not None:
                culprit.setStyleSheet(INVALID_STYLE)
            return None
        self.valid, self.error = True, ""
        self.error_label.hide()
        return config

    def _field_named_in(self, message: str) -> QWidget | None:
        checks = [(" lr ", self.lr), ("betas[0]", self.beta1), ("betas[1]", self.beta2), (" betas ", self.beta1),
                  (" momentum", self.momentum), ("weight_decay", self.weight_decay),
                  ("batch_size", self.batch_size), (" pace ", self.pace)]
        padded = f" {message} "
        for needle, field in checks:
            if needle in padded:
                return field
        for name, field in self.params.fields.items():
            if f" {name} " in padded:
                return field
        return None

    def set_read_only(self, read_only: bool) -> None:
        for edit in self._edits():
            edit.setReadOnly(read_only)
        self.optimizer.setEnabled(not read_only)
        self.params.set_read_only(read_only)
        self.remove_button.setVisible(not read_only)


def _describe(spec: MemberSpec) -> str:
    if not spec.can_sample:
        return "Scores realism and supplies the evaluation features; makes no images."
    return "Makes images; trained on the same data as the others, at its own pace of steps."
