"""The real data sets of the accuracy benchmark and how each is split honestly.

Each set's README in ../shared/datasets says which images show the same physical part (or
location, module, sheet); a part's images stay on one side of the train/test split, and the
same part key is given to training (TrainConfig.group_by / group_size) so that its own
validation split is honest too. The rules are fixed here, once, for every configuration.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DATASETS = Path(os.environ.get("QC_DATASETS", Path(__file__).resolve().parents[2]
                               / "shared" / "datasets"))

BSDATA_LOCATION = r"^\d+_\d+_(\d+_\d+)_"  # 01_<time>_<position>_<angle>_crop_<n>
PIPED_SHEET = r"_(\d+)_\d+$"  # ..._<NN>_<k>: NN is the sheet the patch was cut from
# BSData: the one location that never pitted plus every 4th pitted location (sorted), so the
# test holds 4 of 14 pitted locations (the README's "hold out whole locations").
BSDATA_TEST = {"477500_315", "305000_090", "430000_180", "517500_315", "635000_270"}


@dataclass(frozen=True)
class BenchSet:
    """One data set of the benchmark: where it is, its family and its part rule."""

    name: str  # e.g. "piped/PA_BDP01_TL"
    family: str  # kolektorsdd | bsdata | piped | elpv/mono | elpv/poly
    group_by: str | None = None  # regex: first group is the part key
    group_size: int | None = None  # or: first number in the stem // group_size
    base: Path | None = None  # where the set lives (default: the shared datasets folder)

    @property
    def root(self) -> Path:
        return (self.base or DATASETS) / self.name

    def part(self, stem: str) -> str:
        """The part key of an image (its file stem), as training's group_keys computes it."""
        if self.group_by:
            m = re.search(self.group_by, stem)
            return m.group(1) if m else stem
        return str(int(re.search(r"\d+", stem).group()) // self.group_size)

    def is_test(self, stem: str) -> bool:
        """Whether an image belongs to the held-out test split (by its part)."""
        part = self.part(stem)
        if self.family == "kolektorsdd":  # parts are NNN // 8; every third part is test
            return int(part) % 3 == 0
        if self.family == "bsdata":
            return part in BSDATA_TEST
        if self.family == "piped":  # the README's rule: sheet NN % 4 == 0
            return int(part) % 4 == 0
        # ELPV (and any other numbered set): cells are numbered module by module, (n // 60) is
        # the module: every fifth module is test (the last fifth of the numbers would hold 4
        # cracked mono cells only: too few to measure anything)
        return int(part) % 5 == 1


PIPED_TYPES = ("PA_BDP01_TL", "PA_BFT01_TL", "PA_BRG01_RL", "PA_BRG02_RL", "PA_BRG03_TL",
               "PA_BTN01_RL", "PA_FLR01_TL", "PA_FLR02_TL", "PA_FVN01_TL", "PA_FVN02_RL",
               "PA_GLA01_TL", "PA_ZPB01_RL")
SETS = (
    BenchSet("kolektorsdd", "kolektorsdd", group_size=8),
    BenchSet("bsdata", "bsdata", group_by=BSDATA_LOCATION),
    *(BenchSet(f"piped/{t}", "piped", group_by=PIPED_SHEET) for t in PIPED_TYPES),
    BenchSet("elpv/mono", "elpv/mono", group_size=60),
    BenchSet("elpv/poly", "elpv/poly", group_size=60),
)
FAMILIES = ("kolektorsdd", "bsdata", "piped", "elpv/mono", "elpv/poly")


def available(sets=SETS) -> list[BenchSet]:
    """The sets present on this machine."""
    return [s for s in sets if (s.root / "good").is_dir()]
