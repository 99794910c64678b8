"""What a checkpoint is: one hash recipe for a local checkpoint (in model ids and in the names
of ONNX exports), its weight files and their size."""

from __future__ import annotations

import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".pt", ".bin", ".safetensors")
# Weights and the configuration that shapes them (label maps, dimensions) are identity.
HASHED_SUFFIXES = (*WEIGHT_SUFFIXES, ".json")


def checkpoint_files(path: Path, suffixes: tuple[str, ...] = HASHED_SUFFIXES) -> list[Path]:
    """The checkpoint's files with these suffixes, in a stable order (a file or a folder)."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    return [f for f in files if f.is_file() and f.suffix in suffixes]


def checkpoint_hash(path: Path) -> str:
    """12 hex digits of SHA-256 over each file's relative name and bytes."""
    digest = hashlib.sha256()
    for f in checkpoint_files(path):
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def weights_mb(path: Path) -> float:
    """The weight files' size on disk, MB (fp32 weights are resident at about that size)."""
    return sum(f.stat().st_size for f in checkpoint_files(path, WEIGHT_SUFFIXES)) / 2**20
