"""What every benchmark returns, and how bench/run_all.py writes them up: one row per measured metric."""

from __future__ import annotations

import html
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    metric: str
    ours: float
    reference: float | None  # what ours was compared with, measured in the same run (None: an absolute goal)
    unit: str  # of ours and reference
    goal: float | None  # the target for ``value`` (None: report only)
    higher_is_better: bool = True
    ratio: float | None = None  # ours / reference when the goal is a ratio; else None
    note: str = ""

    @property
    def value(self) -> float:
        """What the goal is about: the ratio when there is one, else ours."""
        return self.ratio if self.ratio is not None else self.ours

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def as_dict(self) -> dict:
        return {**asdict(self), "met": self.met}


def ratio_row(
    metric: str,
    ours: float,
    reference: float,
    unit: str,
    goal: float | None,
    *,
    higher_is_better: bool = True,
    note: str = "",
) -> Row:
    return Row(metric, ours, reference, unit, goal, higher_is_better, ours / reference, note)


def app_environment() -> dict[str, str]:
    """The environment for an app a benchmark starts: this one without MM_* settings (a login, preloading or a
    share link would change what is measured)."""
    return {name: value for name, value in os.environ.items() if not name.startswith("MM_")}


def markdown(rows: list[Row]) -> str:
    lines = ["| metric | ours | reference | ratio | goal | met |", "|---|---:|---:|---:|---:|:-:|"]
    for row in rows:
        reference = "" if row.reference is None else f"{row.reference:.4g} {row.unit}"
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        goal = "" if row.goal is None else ("≥ " if row.higher_is_better else "≤ ") + f"{row.goal:g}"
        met = {True: "yes", False: "**no**", None: "–"}[row.met]
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| {row.metric}{note} | {row.ours:.4g} {row.unit} | {reference} | {ratio} | {goal} | {met} |")
    return "\n".join(lines)


MAX_SCORE = 2.0  # bars stop here, so one goal beaten by far does not squash the others


def _score(row: Row) -> float:
    """How far a row got towards its goal: 1 = just met; a zero goal (no errors) is met or not."""
    if row.goal == 0 or row.value == 0:
        return MAX_SCORE if row.met else 0.0
    return row.value / row.goal if row.higher_is_better else row.goal / row.value


def svg(rows: list[Row], title: str) -> str:
    """A bar per metric that has a goal: how far it got, as a fraction of the goal (1 = just met)."""
    scored = [(row.metric, min(MAX_SCORE, _score(row))) for row in rows if row.goal is not None]
    bar_h, left, width, top = 22, 360, 420, 40
    scale = width / MAX_SCORE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
        f'height="{top + bar_h * len(scored) + 30}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, (metric, score) in enumerate(scored):
        y = top + i * bar_h
        colour = "#2e7d32" if score >= 1 else "#c62828"
        parts += [
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{html.escape(metric[:60])}</text>',
            f'<rect x="{left}" y="{y + 3}" width="{max(1.0, score * scale):.1f}" height="{bar_h - 6}" '
            f'fill="{colour}"/>',
            f'<text x="{left + score * scale + 4:.1f}" y="{y + 15}">{score:.2f}</text>',
        ]
    goal_x = left + scale
    parts += [
        f'<line x1="{goal_x:.1f}" y1="{top - 4}" x2="{goal_x:.1f}" y2="{top + bar_h * len(scored)}" '
        'stroke="black" stroke-dasharray="4 3"/>',
        f'<text x="{goal_x:.1f}" y="{top + bar_h * len(scored) + 18}" text-anchor="middle">goal</text>',
        "</svg>",
    ]
    return "\n".join(parts)
