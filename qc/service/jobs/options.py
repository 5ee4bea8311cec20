"""A job's training options, checked against training's own lists (the `qc train` command's
choices and defaults, the dataset minimums), so they never drift from the CLI.

training/ needs torch; on a web server installed without the train extra these answer None and
the worker (which has torch) checks instead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from qc.imaging import parse_size
from qc.service.errors import ServiceError

# What a job may set, besides mode and size: small runs for tests and quick trials.
INT_OPTIONS = {"epochs": (1, 1000), "views": (1, 16), "folds": (2, 20),
               "seed": (0, 2**31 - 1)}
FLOAT_OPTIONS = {"max_minutes": (0.0, 24 * 60.0)}


@dataclass(frozen=True)
class TrainingChoices:
    """What `qc train` accepts, read from the command itself."""

    modes: tuple[str, ...]
    default_mode: str
    min_good: dict[str, int]  # per mode
    min_defect: dict[str, int]


@functools.cache
def training_choices() -> TrainingChoices | None:
    """The modes, default mode and minimums of the installed training code (None: no torch)."""
    try:
        from training import anomaly_fit, data
        from training.commands import train
    except ImportError:
        return None
    mode = next(p for p in train.params if p.name == "mode")
    modes = tuple(mode.type.choices)
    min_good = {m: data.MIN_GOOD for m in modes}
    min_defect = {m: data.MIN_DEFECT for m in modes}
    for m in modes:
        if m != "supervised":  # anomaly (and auto, which can fall back to it) train on good only
            min_good[m], min_defect[m] = anomaly_fit.MIN_GOOD, 0
    return TrainingChoices(modes, str(mode.default), min_good, min_defect)


def parse_options(form) -> dict:
    """A job's options from a form: mode, size and the few tuning knobs (400 on bad values)."""
    choices = training_choices()
    mode = (form.get("mode") or "").strip()
    if not mode:
        if choices is None:
            raise ServiceError("give mode (this server cannot read training's default: no torch)")
        mode = choices.default_mode
    if choices is not None and mode not in choices.modes:
        raise ServiceError(f"mode must be one of {', '.join(choices.modes)}, not {mode!r}")
    if choices is None and not mode.isidentifier():
        raise ServiceError(f"mode {mode!r} is not a training mode")
    options: dict = {"mode": mode}
    if form.get("size"):
        try:
            options["size"] = list(parse_size(form["size"]))
        except ValueError as exc:
            raise ServiceError(f"size: {exc}") from None
        if not all(16 <= s <= 1024 for s in options["size"]):
            raise ServiceError("size must be 16 to 1024 pixels per side")
    for name, (low, high) in {**INT_OPTIONS, **FLOAT_OPTIONS}.items():
        value = form.get(name)
        if value in (None, ""):
            continue
        kind = int if name in INT_OPTIONS else float
        try:
            number = kind(value)
        except ValueError:
            raise ServiceError(f"{name} must be a number, not {value!r}") from None
        if not low <= number <= high:
            raise ServiceError(f"{name} must be {low} to {high}")
        options[name] = number
    return options


def check_counts(mode: str, good: int, defects: int) -> None:
    """400 when there are fewer images than training needs for the mode."""
    choices = training_choices()
    if choices is None:
        return
    need_good, need_defect = choices.min_good.get(mode, 0), choices.min_defect.get(mode, 0)
    problems = []
    if good < need_good:
        problems.append(f"{good} good images (need at least {need_good})")
    if defects < need_defect:
        problems.append(f"{defects} defect images (need at least {need_defect} for {mode} mode)")
    if problems:
        raise ServiceError("too few images to train: " + "; ".join(problems)
                           + ": review more results, teach photos at the station or upload a zip")
