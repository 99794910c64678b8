"""The audio store on S3 through dagster-aws (boto3 over HTTP)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from watchme_pipeline.resources.audio_store import AudioStore, StoredObject

# A body that stalls or breaks after the response headers is not retried by botocore (the
# request already succeeded); the store retries these itself.
TRANSIENT_BODY_ERRORS = (ReadTimeoutError, ResponseStreamingError, IncompleteReadError,
                         ConnectionClosedError)


class TimedS3Resource(S3Resource):
    """dagster-aws's ``S3Resource`` with socket time-outs.

    ``S3Resource`` leaves boto3's 60 s defaults; a stalled connection should fail in seconds
    and be retried (botocore's standard retry mode retries time-outs on the request, the
    store retries them on the body).
    """

    connect_timeout_s: float = Field(default=10.0, description="TCP connect time-out.")
    read_timeout_s: float = Field(
        default=20.0, description="Longest wait for the next bytes of a response.")

    def get_client(self) -> Any:
        session = boto3.session.Session(profile_name=self.profile_name)
        client = session.client(
            "s3", region_name=self.region_name, use_ssl=self.use_ssl, verify=self.verify,
            endpoint_url=self.endpoint_url, aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=Config(retries={"max_attempts": self.max_attempts, "mode": "standard"},
                          connect_timeout=self.connect_timeout_s,
                          read_timeout=self.read_timeout_s))
        if self.use_unsigned_session:
            from botocore import UNSIGNED
            client.meta.events.register("choose-signer.s3.*", lambda **_: UNSIGNED)
        return client


class S3AudioStore(AudioStore):
    """The WatchMe bucket through dagster-aws's ``S3Resource`` (boto3 over HTTP).

    ``s3`` carries region, endpoint and credentials; left unset, boto3 resolves them as it
    always does (``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``AWS_REGION``, the key pair,
    profiles, instance roles).
    """

    bucket: str
    prefix: str = ""
    s3: S3Resource
    read_attempts: int = Field(
        default=4, description="Tries per object when its body stalls or breaks mid-transfer.")

    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def _full(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def _relative(self, full_key: str) -> str:
        base = self.prefix.strip("/")
        return full_key[len(base) + 1 :] if base else full_key

    def list_objects(self, prefix: str = "", start_after: str | None = None
                     ) -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")  # 1,000 keys a page
        extra = {"StartAfter": self._full(start_after)} if start_after else {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full(prefix), **extra):
            for item in page.get("Contents", []):
                yield StoredObject(self._relative(item["Key"]), int(item["Size"]),
                                   item["LastModified"].astimezone(dt.UTC))

    def list_folders(self, prefix: str) -> list[str]:
        full = self._full(prefix.rstrip("/") + "/")
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            names += [p["Prefix"][len(full):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def read(self, key: str) -> bytes:
        uri = f"s3://{self.bucket}/{self._full(key)}"
        for attempt in range(1, self.read_attempts + 1):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
                return obj["Body"].read()
            except self.client.exceptions.NoSuchKey:
                raise FileNotFoundError(uri) from None
            except TRANSIENT_BODY_ERRORS as e:
                if attempt == self.read_attempts:
                    raise OSError(f"{uri}: read gave up after {attempt} tries, the last with "
                                  f"{type(e).__name__}") from e
                time.sleep(min(0.2 * 2**attempt, 5.0))  # back off, then read it again
        raise AssertionError("unreachable")

    def write(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        full = self._full(key)
        self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{full}"

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))  # absent: no error

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"

    def kind(self) -> str:
        return "s3"
