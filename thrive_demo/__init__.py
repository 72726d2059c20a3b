"""``thrive demo``: every part of THRIVE-FHIR on one machine (development and testing only).

The top of the dependency chain: library ``thrive_fhir`` <- app ``smart_app`` <- this entry package.
It is the only package that imports both the sandbox (library) and the clinician app, which is why
it is neither of them. Its command is registered in the ``thrive.commands`` entry-point group.
"""
