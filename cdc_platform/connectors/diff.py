"""Comparing connector configs: a stable hash, secrets masked, and the keys that changed (pure)."""

from __future__ import annotations

import hashlib
import json

SECRET_MASK = "********"


def config_hash(config: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def mask(config: dict[str, str]) -> dict[str, str]:
    """Config-provider references are already safe; anything else under a secret-looking key is masked."""
    out = {}
    for key, value in config.items():
        secret_key = any(word in key.lower() for word in ("password", "secret", "token", "credential"))
        out[key] = value if not secret_key or value.startswith("${") else SECRET_MASK
    return out


def config_diff(old: dict[str, str] | None, new: dict[str, str]) -> dict[str, dict[str, str | None]]:
    old = mask(old or {})
    new = mask(new)
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }
