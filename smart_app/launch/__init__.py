"""SMART launch: EHR and standalone launch, callback, token refresh, the EHR FHIR client."""

from .routes import bp, refresh_launch_tokens

__all__ = ["bp", "refresh_launch_tokens"]
