"""API key handlers: create, list and revoke keys of the caller's tenant."""
