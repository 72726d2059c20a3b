"""SMART launch: EHR and standalone launch and the OAuth callback (``routes``), token refresh
(``tokens``) and the FHIR client for the launching EHR (``ehr_client``).

Nothing is imported here, so that importing one of these modules never drags in the others (the
launch context imports ``tokens`` and ``ehr_client``; ``routes`` imports the launch context).
"""
