"""Deterministic synthetic THRIVE population, streamed to NDJSON with ground truth.

``generate(n_patients, seed, out_dir)`` writes ``<Type>.ndjson`` files and ``ground_truth.json``
(counted from the written resources; see :mod:`thrive_fhir.synth.truth` for the definitions).
The CLI is ``thrive synth --patients N --seed S --out DIR``.
"""

from .truth import DEFINITIONS, GroundTruth, classify
from .writer import GROUND_TRUTH, MAX_PATIENTS, SynthError, generate

__all__ = ["DEFINITIONS", "GROUND_TRUTH", "MAX_PATIENTS", "GroundTruth", "SynthError", "classify", "generate"]
