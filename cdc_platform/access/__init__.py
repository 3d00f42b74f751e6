"""Who may use a shared deployment: users, their roles and their password hashes."""
