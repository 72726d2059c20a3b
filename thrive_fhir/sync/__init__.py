"""The sync worker: pushes the local outbox to the shared cross-agency FHIR store (docs/design/sync.md)."""
