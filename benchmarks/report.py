"""Render a Results object as a Markdown table: one row per figure, one column per tool."""

from __future__ import annotations

from .common import Figure, Results

__all__ = ["format_value", "markdown_table"]

TOOLS = ("envship", "venv-pack", "cluster-pack", "pex")
RATIO_TO = ("venv-pack", "cluster-pack", "pex")


def format_value(fig: Figure | None) -> str:
    if fig is None:
        return ""
    v = fig.value
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if v is None:
        return "–"
    if isinstance(v, str):
        return v if len(v) < 40 else v[:37] + "…"
    if fig.unit == "B":
        for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.3g} {unit}"
        return f"{int(v)} B"
    if fig.unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"
    return f"{v:g} {fig.unit}"


def _ratio(a: Figure | None, b: Figure | None) -> str:
    if a is None or b is None or a.unit != b.unit or a.unit not in ("s", "B", "ms"):
        return ""
    if isinstance(a.value, (bool, str)) or isinstance(b.value, (bool, str)):
        return ""
    if not a.value or not b.value:
        return ""
    return f"{a.value / b.value:.3g}"


def markdown_table(results: Results) -> str:
    """The figures as a Markdown table plus a numbered list of the notes."""
    steps: list[str] = []
    for fig in results.figures:
        if fig.step not in steps:
            steps.append(fig.step)
    others = sorted({f.tool for f in results.figures} - set(TOOLS))
    header = ["figure", *TOOLS, "other", *(f"envship / {t}" for t in RATIO_TO)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for step in steps:
        cells = [step]
        figs = {t: results.get(step, t) for t in (*TOOLS, *others)}
        cells += [format_value(figs[t]) for t in TOOLS]
        cells.append("; ".join(f"{t}: {format_value(figs[t])}" for t in others if figs[t]))
        cells += [_ratio(figs["envship"], figs[t]) for t in RATIO_TO]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {f.step} / {f.tool}: {f.note}" + (f" (runs: {len(f.samples)})" if f.samples
                                                    else "")
             for f in results.figures if f.note]
    return "\n".join(lines) + "\n\nNotes:\n" + "\n".join(notes) + "\n"
