"""Plain-text / Markdown tables of evaluation reports (CLI output, docs/quality.md)."""
from __future__ import annotations

from engine.evaluation import EvalReport, MetricRow

COLUMNS = ("FD", "FD÷floor", "KID×10³", "precision", "recall", "density", "coverage", "copies", "samples/s")


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cells(row: MetricRow) -> list[str]:
    return [f"{row.fd:.2f}", f"{row.fd_ratio:.2f}", f"{1000 * row.kid:.2f} ± {1000 * row.kid_std:.2f}",
            f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.density:.3f}", f"{row.coverage:.3f}",
            "—" if row.memorisation is None else f"{row.memorisation:.1%}", f"{row.samples_per_s:.0f}"]


def eval_table(report: EvalReport) -> str:
    rows = [[f"member `{name}`", *_cells(row)] for name, row in report.members.items()]
    rows += [[f"fusion `{name}`", *_cells(row)] for name, row in report.fusions.items()]
    text = markdown_table(["", *COLUMNS], rows)
    text += f"\n\nfloor FD (real training images vs {report.reference}): {report.floor_fd:.2f}; n = {report.n}; " \
            f"step {report.step}; features: {report.features}"
    test = report.memorisation
    text += (f"\ncopies: {test['test']} (threshold {test['threshold']:.3g})" if test.get("test")
             else f"\ncopies: not measured ({test.get('why', 'no held-out images')})")
    for label, reason in report.skipped.items():
        text += f"\nskipped {label}: {reason}"
    if report.per_class is not None:
        text += "\n\n" + per_class_table(report)
    return text


def per_class_table(report: EvalReport) -> str:
    """FD per class: a row per member or fusion asked for one class at a time, a column per class."""
    table = report.per_class
    classes = [name for name in table.classes if name in table.n]
    rows = [[f"`{row}`", *(f"{by_class[name]:.1f}" for name in classes)] for row, by_class in table.fd.items()]
    text = "FD per class (samples per class: " + ", ".join(f"{name} {table.n[name]}" for name in classes) + \
           "; reference images: " + ", ".join(f"{name} {table.reference[name]}" for name in classes) + ")\n\n"
    text += markdown_table(["", *classes], rows)
    if table.accuracy:
        text += "\n\nShare of each row's images the evaluation judge classifies as the class asked for " \
                "(reference: the held-out real images)\n\n"
        text += markdown_table(["", *classes], [[f"`{row}`", *(f"{shares[name]:.1%}" for name in classes)]
                                                for row, shares in table.accuracy.items()])
    for label, reason in table.skipped.items():
        text += f"\nper class, skipped {label}: {reason}"
    return text
