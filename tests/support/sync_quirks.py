"""Our store in quirks mode (``thrive store serve --quirks``): the behaviours of servers we cannot install
here (see thrive_fhir/store/quirks.py), as a real process on loopback."""

from __future__ import annotations

from tests.support.servers import OwnStoreProcess


class QuirksStoreProcess(OwnStoreProcess):
    kind = "thrive-store-quirks"

    def __init__(self, workdir, quirks: str, port: int | None = None, **kw):
        super().__init__(workdir, port, **kw)
        self.quirks = quirks

    def command(self) -> list[str]:
        return [*super().command(), "--quirks", self.quirks]


def create_patients(base_url: str, n: int, headers: dict | None = None) -> list[str]:
    """Patients created the way a server that assigns ids wants (POST); returns the store's ids."""
    import requests

    out = []
    for _ in range(n):
        r = requests.post(
            f"{base_url}/Patient",
            json={"resourceType": "Patient", "active": True},
            headers={"Content-Type": "application/fhir+json", **(headers or {})},
            timeout=30,
        )
        r.raise_for_status()
        out.append(r.headers["Location"].split("/Patient/", 1)[1].split("/")[0])
    return out
