"""SeaweedFS's S3 gateway as the stack's S3 server (``CDC_S3_SERVER=seaweedfs``): a real, persistent
S3 implementation next to moto's in-memory mock, for the S3 target's tests and for trying the
lake on a server that behaves like one.

SeaweedFS is not in Debian and publishes no jar; it is built once from the Go module proxy. Its
``go.mod`` has ``replace`` directives, so ``go install module@version`` refuses it: the module's
source is downloaded (``go mod download``), copied and built as the main module. Cold, with the
module and build caches empty, that took about 6 minutes here; with them warm (another checkout
on the same machine), 15 s. The binary is kept under the stack's cache, which ``stack reset``
keeps.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from cdc_platform.settings import StackSettings
from cdc_platform.stack.errors import StackError

MODULE = "github.com/seaweedfs/seaweedfs"
#: the Go module proxy lists no tagged release of this module; the pseudo-version it serves
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
#: where Go lives when it is not on PATH (the Go project's own tarball layout)
GO_FALLBACK = Path("/usr/local/go/bin/go")
BUILD_TIMEOUT_SECONDS = 1800


def weed_binary(settings: StackSettings) -> Path:
    return settings.cache_dir / "seaweedfs" / VERSION / "weed"


def go_binary() -> Path | None:
    found = shutil.which("go")
    if found:
        return Path(found)
    return GO_FALLBACK if GO_FALLBACK.exists() else None


def _writable(root: Path) -> None:
    """The module cache's files are read-only; the copy is built in and then removed."""
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _go(go: Path, args: list[str], cwd: Path | None, what: str) -> str:
    try:
        done = subprocess.run([str(go), *args], cwd=cwd, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_SECONDS, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{what} did not finish within {BUILD_TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0:
        raise StackError(f"{what} failed ({go} {' '.join(args[:2])}):\n{done.stderr.strip()[-2000:]}")
    return done.stdout


def ensure_seaweedfs(settings: StackSettings, echo=print) -> Path:
    """The ``weed`` binary, built from the module proxy the first time."""
    target = weed_binary(settings)
    if target.exists():
        return target
    go = go_binary()
    if go is None:
        raise StackError(
            "CDC_S3_SERVER=seaweedfs builds SeaweedFS with Go, and no `go` was found on PATH or at "
            f"{GO_FALLBACK}. Install Go (1.24 or later), or unset CDC_S3_SERVER to use moto."
        )
    echo(
        f"Building SeaweedFS {VERSION} from the Go module proxy (once; minutes when Go's caches are cold) ..."
    )
    downloaded = json.loads(
        _go(go, ["mod", "download", "-json", f"{MODULE}@{VERSION}"], None, "Downloading SeaweedFS")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seaweedfs-build-", dir=target.parent) as scratch:
        source = Path(scratch) / "src"
        shutil.copytree(downloaded["Dir"], source, symlinks=True)
        _writable(source)
        partial = target.with_name("weed.partial")
        _go(
            go,
            ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./weed"],
            source,
            "Building SeaweedFS",
        )
        partial.rename(target)
    return target
