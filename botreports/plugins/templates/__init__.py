"""Report templates: the built-in catalog, the checks a user's template must
pass, and the sandbox its layout renders in."""
