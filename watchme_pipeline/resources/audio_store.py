"""Where recordings live. The local folder is the embedded default; S3 (``s3_audio_store``,
imported only when configured: boto3 and dagster-aws cost a process ~100 MB) implements the
same API."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from watchme_pipeline.settings import Deployment


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: dt.datetime  # aware, UTC


class AudioStore(dg.ConfigurableResource):
    """The interface every audio store implements (keys are '/'-separated, relative)."""

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` under ``key``; return where it went (a path or a URI)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def kind(self) -> str:
        """The catalog's kind tag for this store."""
        return "folder"


class LocalAudioStore(AudioStore):
    """A folder laid out like the S3 bucket: ``{root}/files/{device}/{date}/{HH-MM}/audio.wav``."""

    root: str

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"unsafe key {key!r}")
        return Path(self.root, *parts)

    def list_objects(self, prefix: str = "") -> Iterator[StoredObject]:
        root = Path(self.root)
        base = root / prefix if prefix else root
        # List the deepest existing folder of the prefix, then filter on the full prefix.
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath, name)
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix) or name.startswith("."):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                yield StoredObject(
                    key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
                )

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        return str(path)

    def describe(self) -> str:
        return f"local folder {self.root}"


def audio_store_for(deployment: Deployment) -> AudioStore:
    """``s3://bucket/prefix`` → S3AudioStore (credentials as EnvVar); anything else → folder."""
    url = deployment.audio_store
    if not url.startswith("s3://"):
        return LocalAudioStore(root=url)
    bucket, _, prefix = url[len("s3://") :].partition("/")
    secrets = {var.lower(): dg.EnvVar(var) for var in deployment.aws_secrets_set}
    from watchme_pipeline.resources.s3_audio_store import S3AudioStore, TimedS3Resource

    return S3AudioStore(
        bucket=bucket, prefix=prefix,
        s3=TimedS3Resource(region_name=deployment.aws_region,
                           endpoint_url=deployment.aws_endpoint_url, **secrets),
    )
