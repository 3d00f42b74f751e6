"""Where the stack's databases keep their files when the checkout sits in a private directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cdc_platform.stack.prerequisites import database_root, traversable_by_others


def test_state_dir_reachable_by_others_is_used_as_is():
    public = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp_path lives under a 0700 directory
    try:
        public.chmod(0o755)
        assert database_root(public / "stack", "cdcstack") == public / "stack"
        assert database_root(public / "stack", None) == public / "stack"
    finally:
        shutil.rmtree(public)


def test_private_checkout_moves_database_files_and_links_them(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    state = private / "checkout" / ".stack"
    assert not traversable_by_others(state)
    root = database_root(state, "cdcstack")
    try:
        assert str(root).startswith("/var/lib/cdc-platform/")
        assert (state / "dbroot").resolve() == root.resolve()
        assert database_root(state, "cdcstack") == root  # stable
        assert database_root(state, None) == state  # not root: our own files, no move
    finally:
        shutil.rmtree(root, ignore_errors=True)
