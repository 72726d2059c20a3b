"""Seeded local ids and NHS numbers for the synthetic population.

Never ``uuid.uuid4()`` or the global ``random``: the same seed must give the same bytes. Each patient
gets its own ``random.Random`` seeded from (seed, index), so patients are independent of each other
and the output does not depend on how much was generated before.
"""

from __future__ import annotations

import random
import uuid

from ..ids import nhs_number_check_digit

#: Nine-digit stems available after the 999 prefix (000000..999999).
_STEMS = 10**6
#: Multiplier coprime with 10**6: scatters consecutive patients over the test range.
_SCATTER = 7919


def local_id(rng: random.Random) -> str:
    """A UUID in version-4 form, drawn from ``rng`` (the business identifier value)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def patient_rng(seed: int, index: int) -> random.Random:
    """The random stream of one patient (string seeds hash with SHA-512: stable across runs)."""
    return random.Random(f"thrive-synth/{seed}/patient/{index}")  # noqa: S311 - seeded synthetic data, not security


def directory_rng(seed: int) -> random.Random:
    return random.Random(f"thrive-synth/{seed}/directory")  # noqa: S311 - seeded synthetic data, not security


class NhsNumbers:
    """Distinct test-range NHS numbers (999 + six digits + modulus-11 check digit).

    Walks the million stems in a seed-dependent scattered order and skips the ~1 in 11 stems that
    have no valid check digit, so about 909,000 distinct numbers exist per run.
    """

    CAPACITY = 909_000

    def __init__(self, seed: int) -> None:
        self._offset = random.Random(f"thrive-synth/{seed}/nhs").randrange(_STEMS)  # noqa: S311 - test-range NHS numbers, not security
        self._next = 0

    def take(self) -> str:
        while self._next < _STEMS:
            stem = f"999{(self._next * _SCATTER + self._offset) % _STEMS:06d}"
            self._next += 1
            check = nhs_number_check_digit(stem)
            if check is not None:
                return f"{stem}{check}"
        raise RuntimeError("the NHS test number range is exhausted")
