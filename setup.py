"""Build hook: copy the generated FHIR data into the wheel (everything else is in pyproject.toml).

The profiles' StructureDefinitions and the terminology JSON live at the top of the repository
(``profiles/generated/``, ``terminology/``), where ``scripts/build_profiles.py`` writes them and
where they are reviewed. The code needs them at run time, so a wheel carries a copy as package
data in ``thrive_fhir/_data/`` with the same layout (see ``thrive_fhir/project_data.py``, which
also lists what is copied). The copy is made here, at build time, so it cannot drift from the
source in git; ``tests/packaging/test_wheel.py`` checks the installed copy byte for byte.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


class build_py_with_fhir_data(build_py):
    def run(self):
        super().run()
        from thrive_fhir.project_data import SHIPPED

        target_root = Path(self.build_lib) / "thrive_fhir" / "_data"
        for folder, pattern in SHIPPED.items():
            files = sorted((ROOT / folder).glob(pattern))
            if not files:
                raise SystemExit(f"setup.py: no {pattern} in {folder}: run scripts/build_profiles.py first")
            out = target_root / folder
            out.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, out / f.name)


setup(cmdclass={"build_py": build_py_with_fhir_data})
