"""OAuth 2.0 error values (RFC 6749 section 5.2 / 4.1.2.1, RFC 7662) raised inside the sandbox."""

from __future__ import annotations


class OAuthError(Exception):
    """An OAuth error response: ``error`` is the exact registered code clients and tests match on."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)
