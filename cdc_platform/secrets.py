"""Secret references and their resolution: the only module that reads a secret's value.

A spec names a secret by reference (an environment variable, or a file with an optional key). This
process resolves it only to open its own connections; Kafka Connect gets a config-provider
reference instead, which the worker resolves, so no password ever travels in a connector config.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cdc_platform.settings import read_properties
from cdc_platform.specs.models import EnvSecret, FileSecret, SecretRef


class SecretMissing(ValueError):
    pass


_SECRETISH = re.compile(r"(?i)(password|secret|token|credential)(\s*[=:]\s*)([^\s,;'\"}]+)")


def mask_secret_values(text: str) -> str:
    """``password=abc`` / ``secret: abc`` in free text (a trace, a detail) become ``password=********``."""
    return _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}********", text)


def _secret_path(ref: FileSecret, specs_dir: Path) -> Path:
    path = Path(ref.file)
    return path if path.is_absolute() else (specs_dir / path).resolve()


def resolve_secret(ref: SecretRef, specs_dir: Path) -> str:
    """The secret's value, for this process's own connections only. Never log or return it elsewhere."""
    if isinstance(ref, EnvSecret):
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretMissing(f"environment variable {ref.env} is not set")
        return value
    path = _secret_path(ref, specs_dir)
    if not path.exists():
        hint = ""
        if not Path(ref.file).is_absolute():
            hint = (f" (the path {ref.file!r} is relative to the specs directory {specs_dir}; a copied specs "
                    "directory needs an absolute path there, or CDC_STACK_DIR set to the stack's state "
                    "directory for the demo's ${CDC_STACK_DIR:-../.stack} paths)")  # fmt: skip
        raise SecretMissing(f"secret file {path} does not exist{hint}")
    if ref.key is None:
        return path.read_text().strip()
    values = read_properties(path)
    if ref.key not in values:
        raise SecretMissing(f"secret file {path} has no key {ref.key!r}")
    return values[ref.key]


def connect_reference(ref: SecretRef, specs_dir: Path) -> str:
    """The Kafka Connect config-provider reference for a secret; the worker resolves it, the REST API never sees it."""
    if isinstance(ref, EnvSecret):
        return f"${{env:{ref.env}}}"
    path = _secret_path(ref, specs_dir)
    if ref.key is None:
        return f"${{dir:{path.parent}:{path.name}}}"
    return f"${{file:{path}:{ref.key}}}"


def tls_root_cert(conn, specs_dir: Path) -> Path | None:
    """The connection's CA file as an absolute path (relative ones are relative to the specs dir)."""
    if not conn.tls.root_cert:
        return None
    path = Path(conn.tls.root_cert)
    return path if path.is_absolute() else (specs_dir / path).resolve()
