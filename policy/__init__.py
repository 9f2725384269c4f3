"""Identity (credentials -> actor) and authorization (Casbin)."""
