"""The bucket's upload notifications: an SQS queue that S3 sends ``s3:ObjectCreated:*`` events
to (WATCHME_UPLOAD_QUEUE), read with boto3. dagster-aws has S3 and other AWS resources but no
SQS one, so this is a small ``ConfigurableResource`` of its own.

Delivery is at least once and unordered: the sensor notes every upload in the result store's
ledger before it deletes the message, and the ledger makes a duplicate harmless (see
``ResultStore.note_uploads``).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import boto3
import dagster as dg
from botocore.config import Config
from pydantic import PrivateAttr

from watchme_pipeline.settings import Deployment
from watchme_pipeline.slots import InvalidIdentifier, is_enrollment_key, parse_key

SEQUENCER_WIDTH = 32  # S3's sequencers are hex of varying length: padded, they sort as numbers


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt: str
    body: str


@dataclass
class ParsedNotice:
    uploads: list[dict]  # file_path, device_id, local_date, size, sequencer
    skipped: dict[str, str]  # key or message id -> reason
    other_events: int  # test events, deletions and other events: nothing to do


def parse_notifications(bodies: list[str], key_prefix: str = "") -> ParsedNotice:
    """S3 event notifications (direct, or wrapped by SNS) → the uploads they announce."""
    notice = ParsedNotice([], {}, 0)
    prefix = key_prefix.strip("/") + "/" if key_prefix.strip("/") else ""
    for body in bodies:
        try:
            event = json.loads(body)
            if isinstance(event, dict) and event.get("Type") == "Notification":
                event = json.loads(event["Message"])  # S3 -> SNS -> SQS
        except (ValueError, KeyError, TypeError):
            notice.skipped[body[:80]] = "not an S3 event notification (JSON)"
            continue
        if not isinstance(event, dict) or "Records" not in event:
            notice.other_events += 1  # s3:TestEvent and the like
            continue
        for record in event["Records"]:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                notice.other_events += 1
                continue
            obj = record.get("s3", {}).get("object", {})
            key = urllib.parse.unquote_plus(str(obj.get("key", "")))
            if prefix and not key.startswith(prefix):
                notice.skipped[key] = f"outside the audio store's prefix {prefix!r}"
                continue
            key = key[len(prefix):]
            if is_enrollment_key(key):  # read by the speakers stage, not a slot's recording
                continue
            try:
                parsed = parse_key(key)
            except InvalidIdentifier as exc:
                notice.skipped[key] = str(exc)
                continue
            notice.uploads.append({
                "file_path": key, "device_id": parsed.device_id, "local_date": parsed.date,
                "size": obj.get("size"),
                # S3 always sends a sequencer; without one (moto), the event's time orders.
                "sequencer": (str(obj["sequencer"]).rjust(SEQUENCER_WIDTH, "0")
                              if obj.get("sequencer") else str(record.get("eventTime", ""))),
            })
    return notice


class UploadQueue(dg.ConfigurableResource):
    """An SQS queue of the audio bucket's ``s3:ObjectCreated:*`` notifications."""

    queue_url: str
    key_prefix: str = ""  # the audio store's prefix inside the bucket
    region_name: str | None = None
    endpoint_url: str | None = None  # AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL
    aws_access_key_id: str | None = None  # give them as dg.EnvVar
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    visibility_timeout_s: int = 120  # a message a crashed tick took comes back after this

    _client: Any = PrivateAttr(default=None)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client(
                "sqs", region_name=self.region_name, endpoint_url=self.endpoint_url,
                aws_access_key_id=self.aws_access_key_id,
                aws_secret_access_key=self.aws_secret_access_key,
                aws_session_token=self.aws_session_token,
                config=Config(retries={"max_attempts": 5, "mode": "standard"},
                              connect_timeout=5, read_timeout=30))
        return self._client

    def receive(self, max_messages: int = 10) -> list[QueueMessage]:
        """Up to 10 messages, without waiting for more (the sensor's tick is short)."""
        reply = self.client.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=min(max_messages, 10),
            WaitTimeSeconds=0, VisibilityTimeout=self.visibility_timeout_s)
        return [QueueMessage(m["MessageId"], m["ReceiptHandle"], m["Body"])
                for m in reply.get("Messages", [])]

    def delete(self, messages: list[QueueMessage]) -> int:
        """Delete messages (after their uploads are noted); returns how many were deleted."""
        deleted = 0
        for start in range(0, len(messages), 10):
            batch = messages[start:start + 10]
            reply = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt}
                         for i, m in enumerate(batch)])
            deleted += len(reply.get("Successful", []))
        return deleted


def upload_queue_for(deployment: Deployment) -> UploadQueue | None:
    """The queue the deployment names (WATCHME_UPLOAD_QUEUE), or None: list the store."""
    if not deployment.upload_queue:
        return None
    prefix = ""
    if deployment.audio_store.startswith("s3://"):
        prefix = deployment.audio_store[len("s3://"):].partition("/")[2]
    secrets = {var.lower(): dg.EnvVar(var) for var in deployment.aws_secrets_set}
    return UploadQueue(queue_url=deployment.upload_queue, key_prefix=prefix,
                       region_name=deployment.aws_region,
                       endpoint_url=deployment.sqs_endpoint_url, **secrets)
