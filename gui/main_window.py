"""The studio window: five pages, the project (new / open / save run folders, recent runs) and the
training life cycle. Engine work goes through ``EngineBridge``; this class only wires pages to it."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox, QTabWidget

from gui import settings
from gui.bridge import EngineBridge, RunSnapshot
from gui.catalog import DATA_DEFAULTS, UserError, is_run_folder, member_specs, validate_run
from gui.pages.data_page import DataPage
from gui.pages.gallery_page import GalleryPage
from gui.pages.members_page import DEFAULT_MEMBERS, MembersPage
from gui.pages.metrics_page import MetricsPage
from gui.pages.training_page import TrainingPage

PAGES = ("Data", "Members", "Training", "Gallery", "Metrics")
DEFAULT_SIZE = (1280, 800)


class _DataStillLoading(Exception):
    """Start was pressed before the data page had read its new settings."""


class MainWindow(QMainWindow):
    def __init__(self, preview_data: bool = True):
        super().__init__()
        self.bridge = EngineBridge(self)
        self.specs = member_specs()
        self.run_path: str | None = None      # an existing run folder; None while the run is only planned
        self.planned_path: str | None = None  # where a new run will be created ("Save run as…")
        self.run_config: dict[str, Any] | None = None
        self.has_checkpoint = False
        self.messages: list[str] = []
        self._closing = False
        self._close_requested_at: float | None = None
        self.last_close_seconds: float | None = None
        self._save_only = False
        self._start_when_data_read: int | None = None  # Start pressed while the data was being read
        self._ended: tuple[str, str, int] | None = None  # run, how its training ended, its target: for the reopen
        self._ended_text = ""  # the finished/stopped line of the training that runs now

        self.data_page = DataPage(self.bridge)
        self.members_page = MembersPage(self.data_page.raw)
        self.training_page = TrainingPage()
        self.gallery_page = GalleryPage(self.bridge)
        self.metrics_page = MetricsPage(self.bridge)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        for page, title in zip(self.pages(), PAGES):
            self.tabs.addTab(page, title)
        self.setCentralWidget(self.tabs)
        self._build_menus()
        self._connect()
        self._update_title()
        self._update_actions()
        self._restore_geometry()
        if preview_data:
            self.data_page.refresh()

    def pages(self):
        return (self.data_page, self.members_page, self.training_page, self.gallery_page, self.metrics_page)

    # -- menus and shortcuts -------------------------------------------------------------------------------
    def _action(self, menu: QMenu, text: str, slot, shortcut: QKeySequence | str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.new_action = self._action(file, "&New run", self.new_run, QKeySequence.StandardKey.New)
        self.open_action = self._action(file, "&Open run…", self.open_run_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = file.addMenu("Open &recent")
        self.save_action = self._action(file, "&Save run…", self.save_run, QKeySequence.StandardKey.Save)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        train = bar.addMenu("&Training")
        self.start_action = self._action(train, "&Start / continue", self.start_training, "Ctrl+Return")
        self.pause_action = self._action(train, "&Pause / resume", self.toggle_pause, "Ctrl+P")
        self.stop_action = self._action(train, "S&top and save", self.stop_training, "Ctrl+.")
        gallery = bar.addMenu("&Gallery")
        self._action(gallery, "&Previous seed", lambda: self.gallery_page.prev_seed.click(), "Alt+Left")
        self._action(gallery, "&Next seed", lambda: self.gallery_page.next_seed.click(), "Alt+Right")
        self._action(gallery, "&Export fused grid…", self.gallery_page.export_fused_grid, "Ctrl+E")
        self._action(gallery, "Export &selected image…", self.gallery_page.export_selected, "Ctrl+Shift+E")
        metrics = bar.addMenu("&Metrics")
        self._action(metrics, "&Evaluate", self.metrics_page.start, "F5")
        self._action(metrics, "&Cancel evaluation", self.metrics_page.cancel)
        view = bar.addMenu("&View")
        for index, title in enumerate(PAGES):
            self._action(view, title, lambda i=index: self.tabs.setCurrentIndex(i), f"Ctrl+{index + 1}")
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        runs = settings.recent_runs()
        for path in runs:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_run(p))
        if not runs:
            empty = self.recent_menu.addAction("(no recent runs)")
            empty.setEnabled(False)

    def recent_actions(self) -> list[QAction]:
        return [a for a in self.recent_menu.actions() if a.isEnabled()]

    def _connect(self) -> None:
        b = self.bridge
        b.sig_training_started.connect(self._training_started)
        b.sig_training_notes.connect(self.training_page.set_notes)
        b.sig_steps_logged.connect(self.training_page.add_steps)
        b.sig_preview_ready.connect(self.training_page.show_preview)
        b.sig_checkpoint_saved.connect(self._checkpoint_saved)
        b.sig_paused.connect(lambda step: self.training_page.set_state("paused", f"Paused at step {step:,}"))
        b.sig_resumed.connect(lambda _step: self.training_page.set_state("training"))
        b.sig_member_failed.connect(lambda m, s, text: self.show_message(f"Member {m} failed at step {s}", text))
        b.sig_save_failed.connect(lambda s, path, text: self.show_message(f"Could not save at step {s}",
                                                                          f"{path}: {text}"))
        b.sig_training_finished.connect(self._training_finished)
        b.sig_training_failed.connect(self._training_failed)
        b.sig_training_ended.connect(self._training_ended)
        b.sig_run_opened.connect(self._run_opened)
        b.sig_run_failed.connect(lambda text: self.show_message("Cannot open the run", text))
        tp = self.training_page
        tp.sig_start.connect(self.start_training)
        tp.sig_pause.connect(self.pause_training)
        tp.sig_resume.connect(self.resume_training)
        tp.sig_stop.connect(self.stop_training)
        self.data_page.sig_error.connect(self._data_failed)
        self.data_page.sig_loaded.connect(self._data_read)
        self.gallery_page.sig_error.connect(lambda text: self.show_message("Gallery", text))
        self.gallery_page.sig_exported.connect(lambda path: self.statusBar().showMessage(f"Exported {path}", 10000))
        self.metrics_page.sig_error.connect(lambda text: self.show_message("Evaluation", text))
        self.tabs.currentChanged.connect(self._page_shown)

    # -- messages ------------------------------------------------------------------------------------------
    def show_message(self, title: str, text: str, icon=QMessageBox.Icon.Warning) -> QMessageBox:
        """A message that does not block the event loop (training and tests go on behind it)."""
        self.messages.append(f"{title}: {text}")
        self.statusBar().showMessage(f"{title}: {text.splitlines()[0] if text else ''}", 15000)
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        return box

    @property
    def last_message(self) -> str:
        return self.messages[-1] if self.messages else ""

    def ask_stop_training(self) -> bool:
        answer = QMessageBox.question(
            self, "Training is running",
            "Stop training and close? A checkpoint is saved first, so the run can be continued later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def ask_run_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Open a Chorus run folder", str(settings.user_data_dir()))

    def ask_new_run_folder(self) -> str:
        return QFileDialog.getSaveFileName(self, "Save the new run as (a new folder)",
                                           str(settings.new_run_path()))[0]

    # -- the project -----------------------------------------------------------------------------------------
    def _update_title(self) -> None:
        name = Path(self.run_path).name if self.run_path else "new run"
        self.setWindowTitle(f"Chorus — {name}")

    def _update_actions(self) -> None:
        training = self.bridge.training
        for action in (self.new_action, self.open_action, self.save_action, self.recent_menu.menuAction()):
            action.setEnabled(not training)
        self.start_action.setEnabled(not training)
        self.pause_action.setEnabled(training)
        self.stop_action.setEnabled(training)

    def _lock(self, locked: bool) -> None:
        reason = ("This run's data and members are fixed: continue training it, or start a new run "
                  "(File ▸ New run) to change them.") if locked else ""
        self.data_page.set_read_only(locked)
        self.members_page.set_read_only(locked, reason)
        self.training_page.set_run_fixed(locked)

    def new_run(self) -> None:
        if self.bridge.training:
            self.show_message("Training is running", "Stop training before starting a new run.")
            return
        self.run_path = self.planned_path = self.run_config = None
        self.has_checkpoint, self._start_when_data_read = False, None  # a Start still waiting is dropped
        self._lock(False)
        self.data_page.set_config(dataclasses.asdict(DATA_DEFAULTS))
        self.members_page.set_members([{"kind": kind} for kind in DEFAULT_MEMBERS])
        self.training_page.set_members([], 0)
        self.training_page.set_state("idle")
        self.training_page.run_label.setText("")
        self.training_page.set_notes("")
        self.gallery_page.set_run(None, [])
        self.metrics_page.set_run(None)
        self._update_title()
        self.tabs.setCurrentIndex(0)

    def open_run_dialog(self) -> None:
        path = self.ask_run_folder()
        if path:
            self.open_run(path)

    def open_run(self, path: str | Path) -> None:
        if self.bridge.training:
            self.show_message("Training is running", "Stop training before opening another run.")
            return
        path = str(path)
        if not Path(path).is_dir():
            settings.forget_recent_run(path)
            self._fill_recent_menu()
            self.show_message("Cannot open the run", f"{path} does not exist (any more). Choose another folder.")
            return
        self.statusBar().showMessage(f"Opening {path}…")
        self.bridge.open_run(path)

    def _run_opened(self, snapshot: RunSnapshot) -> None:
        config = snapshot.config
        self.run_path, self.run_config, self.planned_path = snapshot.path, config, None
        self._start_when_data_read = None  # a new run's Start that waited for its data: not for this run
        self.has_checkpoint = snapshot.checkpoint is not None
        self.data_page.set_config(config["data"])
        self.members_page.set_members(config["members"])
        self._lock(True)
        train = config["train"]
        self.training_page.set_train_config(train)
        ended, self._ended = self._ended, None  # reopened after training here: its end message and target stay
        ended = ended[1:] if ended and ended[0] == snapshot.path else None
        target = ended[1] if ended else int(train["steps"])
        self.training_page.steps.setValue(max(target, snapshot.step))
        self._setup_training_rows(config)
        self.training_page.set_history(snapshot.curves, snapshot.previews, snapshot.step,
                                       self.training_page.steps.value(), snapshot.elapsed)
        self.training_page.run_label.setText(f"Run folder: {snapshot.path}")
        opened = f"Opened at step {snapshot.step:,}" if snapshot.checkpoint else "Opened (no checkpoint yet)"
        self.training_page.set_state("idle", ended[0] if ended else opened)
        self.gallery_page.set_run(snapshot.path if self.has_checkpoint else None, *self._gallery_members(config))
        self.gallery_page.set_classes(snapshot.classes)
        self.metrics_page.set_run(snapshot.path if self.has_checkpoint else None, snapshot.evals)
        self._remember(snapshot.path)
        self._update_title()
        self.statusBar().showMessage(ended[0] if ended else f"Opened {snapshot.path} at step {snapshot.step:,}", 10000)
        self._page_shown(self.tabs.currentIndex())

    def _remember(self, path: str) -> None:
        settings.add_recent_run(path)
        self._fill_recent_menu()

    def save_run(self) -> None:
        if self.bridge.training:
            self.statusBar().showMessage("Training saves a checkpoint every few steps and when it stops.", 10000)
            return
        if self.run_path is not None:
            self.statusBar().showMessage(f"The run is saved in {self.run_path}: checkpoints are written while "
                                         "it trains and when it stops.", 10000)
            return
        path = self.ask_new_run_folder()
        if not path:
            return
        if Path(path).exists() and any(Path(path).iterdir()):
            self.show_message("Cannot save the run here", f"{path} is not empty: choose a new folder name.")
            return
        self.planned_path = path
        self._save_only = True
        self.start_training(steps=0)

    def _gallery_members(self, config: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The run's members that sample images, and those that score them (vote)."""
        kinds = [m["kind"] for m in config["members"]]
        return [k for k in kinds if self.specs[k].can_sample], [k for k in kinds if self.specs[k].can_score]

    def _setup_training_rows(self, config: dict[str, Any]) -> None:
        members = [(m["kind"], self.specs[m["kind"]].title, self.specs[m["kind"]].can_sample)
                   for m in config["members"]]
        self.training_page.set_members(members, sum(int(m["batch_size"]) for m in config["members"]))

    # -- training --------------------------------------------------------------------------------------------
    def start_training(self, steps: int | None = None) -> None:
        if self.bridge.training:
            return
        steps = self.training_page.steps.value() if steps is None else steps
        self._start_when_data_read = None
        try:
            if self.run_path is None:
                try:
                    config = self._new_run_config()
                except _DataStillLoading:
                    self._start_when_data_read = steps
                    self.statusBar().showMessage("Reading the data first: training starts once it is read.", 10000)
                    return
                out = self.planned_path or str(settings.new_run_path())
                self._setup_training_rows(config)
                self.bridge.start_training(steps, config=config, out=out)
            else:
                if self.has_checkpoint and steps <= self.training_page.step:
                    raise UserError(f"the run is already at step {self.training_page.step:,}: raise 'steps per "
                                    "member' to continue training it")
                self.bridge.start_training(steps, run=self.run_path)
        except UserError as exc:
            self._save_only = False
            self.show_message("Cannot start training", str(exc))
            return
        self.training_page.set_state("starting")
        self._update_actions()

    @property
    def start_pending(self) -> bool:
        """Start was pressed while the data was being read: training starts once it is."""
        return self._start_when_data_read is not None

    def _data_read(self) -> None:
        steps, self._start_when_data_read = self._start_when_data_read, None
        if steps is not None and self.run_path is None:  # Start was pressed while the data was being read
            self.start_training(steps)

    def _data_failed(self, message: str) -> None:
        self.statusBar().showMessage(f"Data: {message}", 15000)
        if self._start_when_data_read is not None:
            self._start_when_data_read = None
            self._save_only = False
            self.tabs.setCurrentWidget(self.data_page)
            self.show_message("Cannot start training", f"the data cannot be used: {message}")

    def _new_run_config(self) -> dict[str, Any]:
        self.data_page.read_now()  # an empty path is refused at once; a path to read defers the start
        if self.data_page.error:
            self.tabs.setCurrentWidget(self.data_page)
            raise UserError(f"the data cannot be used: {self.data_page.error}")
        try:
            members = self.members_page.validate_all()
        except UserError:
            self.tabs.setCurrentWidget(self.members_page)
            raise
        if self.data_page.loading:  # its preview says whether the new settings can be used: start then
            raise _DataStillLoading()
        raw = {"data": self.data_page.raw(), "members": members, "train": self.training_page.train_raw()}
        return validate_run(raw)

    def pause_training(self) -> None:
        if self.bridge.training and not self.bridge.paused:
            self.bridge.pause_training()
            self.training_page.set_state("pausing")

    def resume_training(self) -> None:
        if self.bridge.training and self.bridge.paused:
            self.bridge.resume_training()

    def toggle_pause(self) -> None:
        if self.bridge.paused:
            self.resume_training()
        else:
            self.pause_training()

    def stop_training(self) -> None:
        if self.bridge.training:
            self.bridge.stop_training()
            self.training_page.set_state("stopping")

    def _training_started(self, run: str, step: int, total: int) -> None:
        fresh = self.run_path is None
        self.run_path = run
        if fresh:
            self.run_config = None
            self._lock(True)
            self._remember(run)
            self.gallery_page.set_run(None, *self._gallery_members({"members": self.members_page.raw()}))
            self.metrics_page.set_run(None)
        else:
            for row in self.training_page.rows.values():  # drop points past the checkpoint resumed from
                row.plot.truncate(step)
            for name, steps in self.training_page.logged.items():
                self.training_page.logged[name] = [s for s in steps if s <= step]
        self.training_page.set_started(run, step, total)
        self.training_page.set_state("paused" if self.bridge.paused else "training")
        self._update_title()

    def _checkpoint_saved(self, step: int, path: str) -> None:
        self.statusBar().showMessage(f"Checkpoint saved at step {step:,}: {path}", 5000)
        first = not self.has_checkpoint
        self.has_checkpoint = True
        if first and self.run_path is not None:
            self.gallery_page.set_run(self.run_path, self.gallery_page.sampling_members,
                                      self.gallery_page.scoring_members)
            self.metrics_page.set_run(self.run_path, self.metrics_page.history)
        if self.tabs.currentWidget() is self.gallery_page:
            self.gallery_page.schedule()
        self.metrics_page.checkpoint_saved(step)

    def _training_finished(self, step: int, reason: str) -> None:
        text = {"stopped": f"Stopped at step {step:,}; checkpoint saved",
                "failed": f"Stopped at step {step:,}: every member failed"}.get(reason, f"Finished: step {step:,}")
        self.training_page.set_state("idle", text)
        self.statusBar().showMessage(text, 10000)
        self._ended_text = text
        if reason == "failed":
            self.show_message("Training stopped", f"Every member failed and was paused at step {step:,}; the "
                              "messages before this one say why. Lower the learning rate or the batch size and "
                              "continue, or start a new run.")

    def _training_failed(self, message: str) -> None:
        self.training_page.set_state("idle", "Training failed")
        self.show_message("Training failed", message)

    def _training_ended(self) -> None:
        if self.training_page.state_name != "idle":
            self.training_page.set_state("idle")
        self._update_actions()
        if self._closing:
            self.last_close_seconds = time.monotonic() - (self._close_requested_at or time.monotonic())
            self.close()
            return
        if self.run_path is not None and is_run_folder(self.run_path):
            text = f"Saved the new run in {self.run_path}" if self._save_only else self._ended_text
            self._ended = (self.run_path, text, self.training_page.steps.value()) if text else None
            self.bridge.open_run(self.run_path)  # the saved state, exactly as a reopen shows it
        self._save_only, self._ended_text = False, ""

    def _page_shown(self, index: int) -> None:
        page = self.tabs.widget(index)
        if page is self.gallery_page and self.gallery_page.run and self.has_checkpoint \
                and (self.gallery_page.result is None or self.bridge.training):
            self.gallery_page.schedule()

    # -- geometry and closing ------------------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        geometry, state = settings.load_geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.bridge.training:
            event.ignore()
            if self._closing:
                return
            if not self.ask_stop_training():
                return
            self._closing = True
            self._close_requested_at = time.monotonic()
            self.stop_training()
            return
        settings.save_geometry(self.saveGeometry(), self.saveState())
        self.bridge.shutdown()
        event.accept()
