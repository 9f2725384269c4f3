"""API key contracts: tenant admins create, list and revoke their tenant's keys."""

from specs.keys.create_key import CreateKey
from specs.keys.list_keys import ListKeys, ListKeysV1
from specs.keys.revoke_key import RevokeKey

__all__ = ["CreateKey", "ListKeys", "ListKeysV1", "RevokeKey"]
