"""The OIDC issuer: signing keys, JWKS, discovery document, tokens."""
