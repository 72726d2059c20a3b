"""Streaming NDJSON output: one file per resource type, written patient by patient.

Each patient's resources are built, written and forgotten before the next patient starts, so
memory use does not grow with the population (measured in ``benchmarks/synth_memory.py``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import IO

from .directory import build_directory
from .ids import NhsNumbers, directory_rng, patient_rng
from .story import DEFAULT_AS_OF, DEVICE_REF, PatientStory, Timeline
from .truth import GroundTruth

GROUND_TRUTH = "ground_truth.json"
#: Every file this generator may write (so ``overwrite`` removes only its own files).
TYPES = (
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "HealthcareService",
    "Device",
    "Patient",
    "RelatedPerson",
    "EpisodeOfCare",
    "Observation",
    "Goal",
    "CarePlan",
    "CareTeam",
    "Consent",
    "Flag",
    "ServiceRequest",
    "Task",
    "Provenance",
)
MAX_PATIENTS = 900_000  # the 999 test range holds ~909,000 valid NHS numbers
#: Earliest as-of day accepted: keeps birth dates (up to ~21 years before) well inside the calendar.
MIN_AS_OF = date(2000, 1, 1)
MAX_AS_OF = date(9000, 1, 1)  # leaves room for review and consent end dates after it


class SynthError(Exception):
    """A problem with the request (bad numbers, an unusable folder): one readable sentence."""


def _dumps(resource: dict) -> str:
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":"))


class NdjsonSink:
    """Appends resources to ``<Type>.ndjson`` files and feeds each one to the ground-truth tally."""

    def __init__(self, out_dir: Path, truth: GroundTruth) -> None:
        self.out_dir = out_dir
        self.truth = truth
        self.files: dict[str, IO[str]] = {}

    def write(self, resource: dict) -> None:
        rt = resource["resourceType"]
        f = self.files.get(rt)
        if f is None:
            f = self.files[rt] = open(self.out_dir / f"{rt}.ndjson", "w", encoding="utf-8", newline="\n")
        f.write(_dumps(resource))
        f.write("\n")
        self.truth.observe(resource)

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Create the folder, refuse to mix two populations, and check we can write there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    ours = [out_dir / GROUND_TRUTH] + [out_dir / f"{t}.ndjson" for t in TYPES]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise SynthError(f"{out_dir} already holds a synthetic population; choose an empty folder or pass --overwrite")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise SynthError(f"cannot write to {out_dir}")
    for p in existing:
        p.unlink()


def generate(
    n_patients: int,
    seed: int,
    out_dir: str | os.PathLike,
    *,
    provenance: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    as_of: date = DEFAULT_AS_OF,
) -> dict:
    """Write the population and ``ground_truth.json``; return the ground truth.

    ``as_of`` is the day the data is "as of": referrals fall in the three years before it, nothing
    happens on or after it, and recent safety plans and consents are still in date on it. It is
    never read from the clock (the CLI and the demo pass today's date explicitly).

    Deterministic: the same ``n_patients``, ``seed``, ``provenance`` and ``as_of`` give
    byte-identical files. An ``as_of`` after today gives records dated in the future, which the
    validator's ``app-future-date`` rule refuses unless its clock is set to match.
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, int) or n_patients < 1:
        raise SynthError("the number of patients must be a whole number of at least 1")
    if n_patients > MAX_PATIENTS:
        raise SynthError(f"at most {MAX_PATIENTS:,} patients: the NHS test number range holds no more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SynthError("the seed must be a whole number")
    if isinstance(as_of, datetime) or not isinstance(as_of, date):
        raise SynthError("the as-of day must be a date (YYYY-MM-DD)")
    if not MIN_AS_OF <= as_of <= MAX_AS_OF:
        raise SynthError(f"the as-of day must be between {MIN_AS_OF.isoformat()} and {MAX_AS_OF.isoformat()}")
    timeline = Timeline(as_of)
    out = Path(out_dir)
    prepare_out_dir(out, overwrite)

    truth = GroundTruth(as_of)
    sink = NdjsonSink(out, truth)
    try:
        directory = build_directory(directory_rng(seed), n_patients, staff_start=timeline.staff_start)
        for resource in directory.resources:
            sink.write(resource)
        if provenance:
            sink.write(
                {
                    "resourceType": "Device",
                    "id": DEVICE_REF.split("/", 1)[1],
                    "status": "active",
                    "deviceName": [{"name": "THRIVE-FHIR app (synthetic deployment)", "type": "user-friendly-name"}],
                }
            )
        truth.end_patient()  # directory resources carry no patient facts; start clean
        nhs = NhsNumbers(seed)
        for index in range(n_patients):
            story = PatientStory(
                patient_rng(seed, index), index, directory, nhs.take(), provenance=provenance, timeline=timeline
            )
            for resource in story.tell():
                sink.write(resource)
            truth.end_patient()
            if progress is not None and (index + 1) % 1000 == 0:
                progress(index + 1)
    finally:
        sink.close()

    result = {
        "generator": {
            "command": "thrive synth",
            "patients": n_patients,
            "seed": seed,
            "provenance": provenance,
            "cutoff": as_of.isoformat(),  # nothing happens on or after this day (= as_of)
            "as_of": as_of.isoformat(),
        },
        **truth.as_dict(),
    }
    with open(out / GROUND_TRUTH, "w", encoding="utf-8", newline="\n") as f:
        json.dump(result, f, indent=2, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    return result
