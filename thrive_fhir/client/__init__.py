"""HTTP clients: the FHIR REST client and SMART Backend Services tokens (sync), the SMART app launch."""
