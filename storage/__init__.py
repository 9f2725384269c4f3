"""Database access: engine, table definitions, migrations and small stores."""
