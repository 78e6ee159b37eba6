"""Build the processor's deployment zip: deterministic, cached by content hash.

Deterministic (sorted entries, fixed timestamps and modes) so the same sources give the same
CodeSha256 and `lambda` can skip UpdateFunctionCode. The vendored requirements are installed
once per requirements hash for the Lambda runtime's platform, not this machine's.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipelinectl.errors import PipelineError

RUNTIME = "python3.12"
HANDLER = "lambda_src.handler.lambda_handler"
TARGET = ("--platform", "manylinux2014_x86_64", "--python-version", "3.12",
          "--implementation", "cp", "--only-binary=:all:")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKIP_DIRS = {"__pycache__", "tests"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".md")
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # Lambda's limit for a zip sent in the request


@dataclass(frozen=True)
class Artifact:
    data: bytes
    sha256: str  # base64, as Lambda reports CodeSha256
    files: int
    from_cache: bool

    @property
    def size(self) -> int:
        return len(self.data)


def source_dir() -> Path:
    spec = importlib.util.find_spec("lambda_src")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise PipelineError("The processor package lambda_src is not installed; reinstall "
                            "pipelinectl.")
    return Path(locations[0])


def cache_dir() -> Path:
    base = os.environ.get("PIPELINECTL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pipelinectl")
    return Path(base)


def build(src: Path | None = None) -> Artifact:
    src = src or source_dir()
    deps = vendored_dependencies(src / "requirements.txt")
    files = sorted(_walk(deps, "") + _walk(src, "lambda_src/"))
    digest = hashlib.sha256()
    for arcname, path in files:
        digest.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    cached = cache_dir() / "zips" / f"{digest.hexdigest()[:32]}.zip"
    if cached.exists():
        data = cached.read_bytes()
        return Artifact(data, _code_sha(data), len(files), from_cache=True)
    data = _zip(files)
    if len(data) > DIRECT_UPLOAD_LIMIT:
        raise PipelineError(
            f"The processor zip is {len(data) // 2**20} MB, over Lambda's 50 MB limit for a "
            "direct upload; trim lambda_src/requirements.txt."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(cached, data)
    return Artifact(data, _code_sha(data), len(files), from_cache=False)


def vendored_dependencies(requirements: Path) -> Path:
    """Install requirements for the Lambda platform into a cache folder named by their hash."""
    text = requirements.read_text(encoding="utf-8") if requirements.exists() else ""
    key = hashlib.sha256((text + " ".join(TARGET)).encode()).hexdigest()[:16]
    target = cache_dir() / "deps" / key
    if target.exists():
        return target
    if not text.strip():
        target.mkdir(parents=True, exist_ok=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=target.parent))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile", "--target", str(staging), *TARGET, "-r", str(requirements)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(
            f"pip could not vendor the processor's requirements ({last}); check access to "
            "PyPI (or PIP_INDEX_URL) and re-run."
        )
    try:
        staging.rename(target)
    except OSError:  # another process won the race: use its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _walk(root: Path, prefix: str) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not d.endswith(".egg-info") and not d.startswith("."))
        for filename in filenames:
            if filename.endswith(SKIP_SUFFIXES) or filename.startswith("."):
                continue
            path = Path(dirpath) / filename
            found.append((prefix + path.relative_to(root).as_posix(), path))
    return found


def _zip(files: list[tuple[str, Path]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for arcname, path in files:
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _code_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
