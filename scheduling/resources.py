"""Pure: what a deployment asks for and a cluster has, in exact decimals (cores, GB) and whole GPUs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: Decimal
    ram: Decimal
    gpu: int

    @classmethod
    def zero(cls) -> Resources:
        return cls(_ZERO, _ZERO, 0)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.ram + other.ram, self.gpu + other.gpu)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.ram - other.ram, self.gpu - other.gpu)

    def fits_in(self, other: Resources) -> bool:
        return self.cpu <= other.cpu and self.ram <= other.ram and self.gpu <= other.gpu

    def meet(self, other: Resources) -> Resources:
        """Per resource, the smaller of the two."""
        return Resources(min(self.cpu, other.cpu), min(self.ram, other.ram), min(self.gpu, other.gpu))

    def shortfall(self, available: Resources) -> Resources:
        return Resources(
            max(self.cpu - available.cpu, _ZERO),
            max(self.ram - available.ram, _ZERO),
            max(self.gpu - available.gpu, 0),
        )

    def is_nonnegative(self) -> bool:
        return self.cpu >= 0 and self.ram >= 0 and self.gpu >= 0


def total(demands: Iterable[Resources]) -> Resources:
    # Summing components directly avoids allocating one Resources per running deployment.
    cpu, ram, gpu = _ZERO, _ZERO, 0
    for d in demands:
        cpu += d.cpu
        ram += d.ram
        gpu += d.gpu
    return Resources(cpu, ram, gpu)
