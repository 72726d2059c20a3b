"""SMART on FHIR sandbox: a mock EHR and authorization server. FOR DEVELOPMENT AND TESTING ONLY.

Nothing in this package is fit to protect real records: users sign in by picking a name, and the
HTTP server is Werkzeug's development server. It exists so that the SMART app and the sync worker
can be exercised end to end on one machine, against an authorization server that rejects what real
EHRs reject (docs/design/smart-launch.md section 7) rather than one that accepts anything, and that can be
switched to behave like a particular real EHR or fail like one (``quirks.py``). Its state lives in
memory, or also in the EHR database with ``persist_state`` (``auth_state_mirror.py``).

Layout of one sandbox origin (``thrive sandbox serve``)::

    /                                       -> redirect to the EHR page
    /ehr/...                                sandbox EHR record viewer (launches the app in an iframe)
    /fhir/...                               the EHR's FHIR R4 API (thrive_fhir.store)
    /fhir/.well-known/smart-configuration   SMART discovery for that FHIR base
    /auth/authorize, /auth/token, /auth/introspect, /auth/jwks, /auth/login, ...
"""

DEV_ONLY_NOTICE = "Sandbox: for development and testing only. Synthetic data. Not for real patients."
