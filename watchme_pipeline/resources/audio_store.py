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

    def list_objects(self, prefix: str = "", start_after: str | None = None
                     ) -> Iterator[StoredObject]:
        """Objects under ``prefix`` in key order, only those after ``start_after`` if given
        (S3's StartAfter: the layout sorts a device's keys by date, so this lists recent days
        without the device's history)."""
        raise NotImplementedError

    def list_folders(self, prefix: str) -> list[str]:
        """The names of the "folders" directly under ``prefix`` (S3's CommonPrefixes)."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store ``data`` under ``key``; return where it went (a path or a URI)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Delete the object; one already gone is fine (a forget or retention resumed)."""
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

    def list_objects(self, prefix: str = "", start_after: str | None = None
                     ) -> Iterator[StoredObject]:
        root = Path(self.root)
        base = root / prefix if prefix else root
        # List the deepest existing folder of the prefix, then filter on the full prefix.
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            if start_after:  # skip folders whose every key sorts before start_after
                rel = Path(dirpath).relative_to(root).as_posix()
                rel = "" if rel == "." else rel + "/"
                dirnames[:] = [d for d in dirnames if f"{rel}{d}/" > start_after
                               or start_after.startswith(f"{rel}{d}/")]
            for name in sorted(filenames):
                path = Path(dirpath, name)
                key = path.relative_to(root).as_posix()
                if not key.startswith(prefix) or name.startswith("."):
                    continue
                if start_after and key <= start_after:
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:  # deleted while listing
                    continue
                yield StoredObject(
                    key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)
                )

    def list_folders(self, prefix: str) -> list[str]:
        folder = Path(self.root, *[p for p in prefix.split("/") if p])
        if not folder.is_dir():
            return []
        return sorted(e.name for e in os.scandir(folder)
                      if e.is_dir() and not e.name.startswith("."))

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see half a file
        return str(path)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        root = Path(self.root).resolve()
        for folder in path.parents:  # empty folders go too: a device's folder says it exists
            if folder.resolve() == root or not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()

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
