"""Field checks: the observed states and the 1–5 disturbance scale (docs/validation.md)."""

from __future__ import annotations

from amberwatch.errors import InputError

STATES: tuple[str, ...] = ("active", "abandoned", "recultivated", "not_mining")

# Degree of disturbance of the land, as a field team rates it on site.
DISTURBANCE_SCALE: dict[int, tuple[str, str]] = {
    1: ("minimal: soil surface intact, at most a few filled test holes, vegetation closed",
        "мінімальне: ґрунт цілий, щонайбільше кілька засипаних пробних ям, рослинність суцільна"),
    2: ("light: scattered pits under 2 m across, topsoil mostly in place, vegetation over most of the area",
        "слабке: поодинокі ями до 2 м, родючий шар здебільшого на місці, рослинність на більшій частині"),
    3: ("moderate: dense pits or washed sand over a quarter to half of the area, topsoil stripped in patches",
        "помірне: густі ями або намитий пісок на чверті–половині площі, родючий шар місцями знятий"),
    4: ("heavy: most of the area dug or washed, bare sand, standing water in pits, trees down",
        "сильне: більша частина площі перекопана або розмита, голий пісок, вода в ямах, повалені дерева"),
    5: ("destroyed: continuous craters and ponds, no topsoil or vegetation, drainage changed",
        "знищене: суцільні вирви й ставки, немає родючого шару й рослинності, змінений водний режим"),
}


def check_state(state: str) -> str:
    if state not in STATES:
        raise InputError(f"state {str(state)[:20]!r} is not one of {', '.join(STATES)}")
    return state


def check_disturbance(value: int) -> int:
    if value not in DISTURBANCE_SCALE:
        raise InputError(f"disturbance {value!r} is not on the 1-5 scale")
    return value
