"""Members page: add and remove members; each one's settings as widgets generated from the
parameters its class declares, checked by the engine as they are typed."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from gui.catalog import UserError, member_specs
from gui.widgets.member_editor import MemberEditor

DEFAULT_MEMBERS = ("dcgan", "vae")


class MembersPage(QWidget):
    sig_changed = Signal()

    def __init__(self, data_config: Callable[[], dict[str, Any]], parent: QWidget | None = None):
        super().__init__(parent)
        self.data_config = data_config
        self.specs = member_specs()
        self.editors: dict[str, MemberEditor] = {}
        self.read_only = False

        self.kind = QComboBox()
        self.kind.setPlaceholderText("every member is added")
        self.add_button = QPushButton("Add member")
        self.add_button.setToolTip("add the chosen member to the run")
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.hide()
        top = QHBoxLayout()
        intro = QLabel("Members train side by side on the same data; at each step of the run a member takes "
                       "its pace of optimizer steps.")
        intro.setWordWrap(True)
        top.addWidget(intro, 1)
        top.addWidget(self.kind)
        top.addWidget(self.add_button)

        self._list = QWidget()
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._list)
        makers = ", ".join(spec.title for spec in self.specs.values() if spec.can_sample)
        self.empty = QLabel(f"No members yet: add at least one generator ({makers}).")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)
        self.add_button.clicked.connect(lambda: self.add_member(self.kind.currentData()))
        for kind in DEFAULT_MEMBERS:
            self.add_member(kind)
        self._refresh_choices()

    # -- adding and removing ----------------------------------------------------------------------
    def add_member(self, kind: str | None, config: dict[str, Any] | None = None) -> MemberEditor | None:
        if kind is None or kind in self.editors or kind not in self.specs:
            return None
        editor = MemberEditor(self.specs[kind])
        if config:
            editor.set_config(config)
        editor.sig_remove.connect(self.remove_member)
        editor.sig_changed.connect(lambda e=editor: self._edited(e))
        self.editors[kind] = editor
        self._list_layout.insertWidget(self._list_layout.count() - 1, editor)
        editor.set_read_only(self.read_only)
        self._refresh_choices()
        self.sig_changed.emit()
        return editor

    def remove_member(self, kind: str) -> None:
        editor = self.editors.pop(kind, None)
        if editor is not None:
            editor.setParent(None)
            editor.deleteLater()
        self._refresh_choices()
        self.sig_changed.emit()

    def clear(self) -> None:
        for kind in list(self.editors):
            self.remove_member(kind)

    def _refresh_choices(self) -> None:
        self.kind.clear()
        for kind, spec in self.specs.items():
            if kind not in self.editors:
                self.kind.addItem(spec.title, kind)
        # with a placeholder set, a refilled combo selects nothing: it read "every member is added"
        # while members were left, and Add member added none
        self.kind.setCurrentIndex(0 if self.kind.count() else -1)
        can_add = self.kind.count() > 0 and not self.read_only
        self.kind.setEnabled(can_add)
        self.add_button.setEnabled(can_add)
        self.empty.setVisible(not self.editors)

    def _edited(self, editor: MemberEditor) -> None:
        editor.validate(self.data_config())
        self.sig_changed.emit()

    # -- values ------------------------------------------------------------------------------------
    def raw(self) -> list[dict[str, Any]]:
        return [editor.raw() for editor in self.editors.values()]

    def validate_all(self) -> list[dict[str, Any]]:
        """Every member's normalised settings, or UserError naming the first refused value."""
        if not self.editors:
            raise UserError("add at least one member on the Members page")
        data = self.data_config()
        configs, problems = [], []
        for editor in self.editors.values():
            config = editor.validate(data)
            if config is None:
                problems.append(editor.error)
            else:
                configs.append(config)
        if problems:
            raise UserError(problems[0])
        return configs

    def set_members(self, members: list[dict[str, Any]]) -> None:
        self.clear()
        for member in members:
            self.add_member(member["kind"], member)

    def set_read_only(self, read_only: bool, reason: str = "") -> None:
        self.read_only = read_only
        for editor in self.editors.values():
            editor.set_read_only(read_only)
        self.banner.setText(reason)
        self.banner.setVisible(bool(read_only and reason))
        self._refresh_choices()
