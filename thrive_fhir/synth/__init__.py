"""Deterministic synthetic THRIVE population, streamed to NDJSON with ground truth.

``generate(n_patients, seed, out_dir, as_of=date)`` writes ``<Type>.ndjson`` files and
``ground_truth.json`` (counted from the written resources; see :mod:`thrive_fhir.synth.truth` for
the definitions). The whole timeline is placed relative to ``as_of`` (default
:data:`DEFAULT_AS_OF`, fixed so seeds reproduce). The CLI is
``thrive synth --patients N --seed S --out DIR [--as-of YYYY-MM-DD]``.
"""

from .story import DEFAULT_AS_OF
from .truth import DEFINITIONS, GroundTruth, classify
from .writer import GROUND_TRUTH, MAX_PATIENTS, SynthError, generate

__all__ = [
    "DEFAULT_AS_OF",
    "DEFINITIONS",
    "GROUND_TRUTH",
    "MAX_PATIENTS",
    "GroundTruth",
    "SynthError",
    "classify",
    "generate",
]
