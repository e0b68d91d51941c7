"""A stored accuracy report (a JSON dict) as readable text for the command line."""

from __future__ import annotations

from typing import Any


def _ci(i: dict[str, Any] | None, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    if i is None:
        return "n/a"
    half = (i["high"] - i["low"]) / 2 * scale
    return f"{fmt.format(i['estimate'] * scale)} ± {fmt.format(half)}"


def summary_text(report: dict[str, Any]) -> str:
    """Error matrix (counts and area proportions), accuracies and the area-adjusted areas, each with ± the half
    width of its 95% confidence interval."""
    classes = report["classes"]
    lines = [f"accuracy report {report['version']} for {report['model_version']} (design {report['design_id']}, "
             f"seed {report['seed']}): {report['answered']} of {report['planned']} sample points answered",
             "", "error matrix, sample counts (rows: map, columns: reference)",
             f"{'':12}" + "".join(f"{c:>12}" for c in classes)]
    lines += [f"{c:12}" + "".join(f"{v:12d}" for v in row) for c, row in zip(classes, report["error_matrix_counts"],
                                                                            strict=True)]
    lines += ["", "error matrix, estimated area proportions", f"{'':12}" + "".join(f"{c:>12}" for c in classes)]
    lines += [f"{c:12}" + "".join(f"{v:12.5f}" for v in row)
              for c, row in zip(classes, report["error_matrix_proportions"], strict=True)]
    lines += ["", f"overall accuracy  {_ci(report['overall'])}", ""]
    lines.append(f"{'class':12} {'users':>15} {'producers':>15} {'mapped (ha)':>14} "
                 f"{'estimated area (ha), 95% CI':>30}")
    for c in report["per_class"]:
        lines.append(f"{c['name']:12} {_ci(c['users']):>15} {_ci(c['producers']):>15} {c['mapped_area']:14,.1f} "
                     f"{_ci(c['area'], fmt='{:,.1f}'):>30}")
    m = report["mining_area_ha"]
    lines += ["", f"disturbed (mining) area: {m['estimate']:,.1f} ha, 95% CI {m['low']:,.1f} – {m['high']:,.1f} ha "
              f"(mapped: {m['mapped']:,.1f} ha)"]
    return "\n".join(lines)
