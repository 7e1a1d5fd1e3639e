"""A run folder: run.json, metrics.jsonl, checkpoints/, samples/, eval/ (docs/architecture.md, "Run folder")."""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from engine import __version__
from engine.config import SCHEMA_VERSION, RunConfig
from engine.members.registry import run_config
from engine.errors import UserError
from engine.store.checkpoints import list_checkpoints


@dataclass
class RunFolder:
    path: Path
    config: RunConfig
    run_id: str
    fingerprint: str
    num_classes: int = 0
    class_names: tuple[str, ...] = ()  # the data's class names (() in a run made before they were kept)

    def class_index(self, asked: str | int) -> int:
        """The index of a class named by its name (any case) or its index, for ``sample --class``."""
        if self.num_classes < 2:
            raise UserError(f"run {self.path} has no classes (its images had no labels), so --class cannot be used")
        text = str(asked).strip()
        names = [name.lower() for name in self.class_names]
        if text.lower() in names:
            return names.index(text.lower())
        if text.lstrip("-").isdigit() and 0 <= int(text) < self.num_classes:
            return int(text)
        known = ", ".join(self.class_names) if self.class_names else f"0–{self.num_classes - 1}"
        raise UserError(f"run {self.path} has no class {text!r} (it has: {known})")

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_log(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def evals(self) -> Path:
        return self.path / "eval"

    def write_eval_report(self, report: Mapping[str, Any]) -> Path:
        """Save an evaluation report (``EvalReport.to_json()``) as ``eval/step-NNNNNNN-nN.json``,
        atomically: a reader (the window's metrics page, a script) never sees half a file. The CLI and
        the window both save through here."""
        path = self.evals / f"step-{int(report['step']):07d}-n{int(report['n'])}.json"
        temp = path.with_suffix(".json.tmp")
        try:
            self.evals.mkdir(parents=True, exist_ok=True)
            with temp.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(report, indent=1, default=_json_default))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except OSError as exc:
            raise UserError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
        return path

    def read_eval_reports(self) -> list[dict[str, Any]]:
        """Every readable evaluation report, oldest step first (a damaged one is skipped)."""
        reports = []
        for file in sorted(self.evals.glob("*.json")):
            try:
                report = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(report, dict) and isinstance(report.get("members"), dict):
                reports.append(report)
        return sorted(reports, key=lambda r: r.get("step", 0) if isinstance(r.get("step"), int) else 0)

    def latest_checkpoint(self) -> Path | None:
        found = list_checkpoints(self.checkpoints)
        return found[-1] if found else None

    @classmethod
    def create(cls, path: Path, config: RunConfig, fingerprint: str, num_classes: int,
               class_names: tuple[str, ...] = ()) -> "RunFolder":
        path = Path(path)
        if (path / "run.json").exists():
            raise UserError(f"{path} already holds a run; use 'resume {path}' or choose another --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None
        run = cls(path, config, uuid.uuid4().hex[:12], fingerprint, num_classes, tuple(class_names))
        document = {
            "schema": SCHEMA_VERSION, "chorus": __version__, "run_id": run.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dataset_fingerprint": fingerprint,
            "num_classes": num_classes, "class_names": list(class_names),
            "config": config.to_dict(),
        }
        temp = path / "run.json.tmp"
        try:
            with temp.open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(document, indent=1))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path / "run.json")
        except OSError as exc:
            raise UserError(f"cannot write {path / 'run.json'}: {exc.strerror or exc}") from None
        return run

    @classmethod
    def open(cls, path: Path) -> "RunFolder":
        path = Path(path)
        file = path / "run.json"
        if not path.is_dir():
            raise UserError(f"run folder not found: {path}")
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path} is not a Chorus run folder (no run.json)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{file} is damaged: {exc}") from None
        except OSError as exc:
            raise UserError(f"cannot read {file}: {exc.strerror or exc}") from None
        if not isinstance(document, dict) or "config" not in document:
            raise UserError(f"{file} is damaged: no config")
        schema = document.get("schema")
        if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA_VERSION:
            raise UserError(f"{file} was written by a newer Chorus (schema {schema}); this one reads "
                            f"schema {SCHEMA_VERSION}. Update Chorus to open it.")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise UserError(f"{file} is damaged: schema version {schema!r}")
        raw = document["config"]
        if isinstance(raw, dict) and isinstance(raw.get("data"), dict) and "holdout" not in raw["data"]:
            raw["data"]["holdout"] = 0.0  # made before folders held images out: it trained on all of them
        try:
            config = run_config(raw)
        except UserError as exc:
            raise UserError(f"{file} holds a config this Chorus cannot use: {exc}") from None
        if not config.data.resolved:
            raise UserError(f"{file} is damaged: its data size or channels is 'auto'")
        num_classes = document.get("num_classes", 0)
        if not isinstance(num_classes, int) or num_classes < 0:
            raise UserError(f"{file} is damaged: num_classes {num_classes!r}")
        class_names = document.get("class_names", [])
        if not isinstance(class_names, list) or not all(isinstance(name, str) for name in class_names) \
                or len(class_names) not in (0, num_classes):
            raise UserError(f"{file} is damaged: class_names {class_names!r}")
        return cls(path, config, str(document.get("run_id", "")), str(document.get("dataset_fingerprint", "")),
                   num_classes, tuple(class_names))

    def append_metrics(self, records: list[dict[str, Any]]) -> None:
        with self.metrics_log.open("a", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")

    def truncate_metrics(self, step: int | Mapping[str, int]) -> None:
        """On resume, drop log lines past the checkpoint so the curve continues without repeats.

        ``step`` is one step for all, or each member's own step (a member paused by failures is
        behind the others). Lines cut short by a crash are dropped too.
        """
        if not self.metrics_log.exists():
            return
        steps = step if isinstance(step, Mapping) else {}
        floor = min(steps.values(), default=0) if steps else int(step)  # type: ignore[arg-type]
        kept = []
        for line in self.metrics_log.read_text(encoding="utf-8", errors="replace").splitlines():
            record = _record(line)
            if record is not None and record[1] <= steps.get(record[0], floor):
                kept.append(line)
        temp = self.metrics_log.with_suffix(".jsonl.tmp")
        try:
            temp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(temp, self.metrics_log)
        except OSError as exc:
            raise UserError(f"cannot rewrite {self.metrics_log} before resuming: {exc.strerror or exc}") from None

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_log.exists():
            return []
        records = []
        for line in self.metrics_log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(record, dict):
                records.append(record)
        return records


def _json_default(value: Any) -> Any:
    """numpy scalars as numbers, paths as text; anything else by its repr (a report never fails to save)."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _record(line: str) -> tuple[str, int] | None:
    """(member, step) of one log line; None for a line cut by a crash or otherwise unreadable."""
    try:
        record = json.loads(line)
        return str(record.get("member", "")), int(record["step"])
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None
