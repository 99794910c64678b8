"""The Supabase REST backend at the HTTP level: the `supabase` client against a local handler
that records each request and answers as PostgREST would. (Contract-tested, not run against a
live Supabase.)"""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from watchme_pipeline.resources import ResultStoreError, SupabaseResultStore

FAKE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
T0 = dt.datetime(2025, 7, 18, 0, 0, tzinfo=dt.UTC)


class PostgREST:
    """Records requests; answers from a queue of (status, body), else 200/201 with []."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, object]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                recorder.requests.append({
                    "method": self.command, "path": url.path,
                    "query": parse_qsl(url.query, keep_blank_values=True),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": json.loads(body) if body else None,
                })
                status, payload = (recorder.replies.pop(0) if recorder.replies
                                   else (201 if self.command == "POST" else 200, []))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def rest():
    server = PostgREST()
    yield server
    server.server.shutdown()


@pytest.fixture
def store(rest) -> SupabaseResultStore:
    return SupabaseResultStore(url=rest.url, key=FAKE_KEY)


def rows(n: int) -> list[dict]:
    return [{"device_id": "dev-1", "date": "2025-07-18", "time_block": f"09-{i * 30:02d}",
             "transcription": "おはよう", "model": "m", "processed_at": T0} for i in range(n)]


def test_replace_partition_deletes_stale_slots_then_upserts_on_the_primary_key(store, rest):
    store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", rows(2))
    delete, upsert = rest.requests
    assert (delete["method"], delete["path"]) == ("DELETE", "/rest/v1/vibe_whisper")
    assert delete["query"] == [("device_id", "eq.dev-1"), ("date", "eq.2025-07-18"),
                               ("time_block", 'not.in.("09-00","09-30")')]
    assert (upsert["method"], upsert["path"]) == ("POST", "/rest/v1/vibe_whisper")
    assert ("on_conflict", "device_id,date,time_block") in upsert["query"]
    assert "resolution=merge-duplicates" in upsert["headers"]["prefer"]
    assert upsert["headers"]["apikey"] == FAKE_KEY
    assert upsert["json"][0] == {"device_id": "dev-1", "date": "2025-07-18",
                                 "time_block": "09-00", "transcription": "おはよう",
                                 "model": "m", "processed_at": "2025-07-18T00:00:00+00:00"}


def test_nan_is_sent_as_null(store, rest):
    store.replace_partition("emotion_superb", "dev-1", "2025-07-18", [
        {"device_id": "dev-1", "date": "2025-07-18", "time_block": "09-00",
         "neutral": float("nan"), "happy": float("inf"), "angry": 0.5, "sad": 0.1}],
        only_keys=True)
    (upsert,) = rest.requests
    assert upsert["json"] == [{"device_id": "dev-1", "date": "2025-07-18",
                               "time_block": "09-00", "neutral": None, "happy": None,
                               "angry": 0.5, "sad": 0.1}]


def test_register_keeps_statuses_and_set_status_filters_by_keys(store, rest):
    store.register_recordings([{"device_id": "dev-1", "recorded_at": T0, "local_date": "2025-07-18",
                                "time_block": "09-00", "file_path": "files/x/audio.wav",
                                "file_size": 3, "duration_s": 1.0, "sample_rate": 16000,
                                "decodes": True}])
    store.set_status("dev-1", ["files/x/audio.wav"], "transcriptions", "failed", "x.wav: broken")
    register, update = rest.requests
    assert ("on_conflict", "device_id,file_path") in register["query"]
    assert not any(k.endswith("_status") for k in register["json"][0])  # statuses untouched
    assert (update["method"], update["path"]) == ("PATCH", "/rest/v1/audio_files")
    assert update["query"] == [("device_id", "eq.dev-1"),
                               ("file_path", "in.(files/x/audio.wav)")]
    assert update["json"]["transcriptions_status"] == "failed"
    assert update["json"]["error"] == "x.wav: broken"


def test_read_filters_orders_and_parses(store, rest):
    rest.replies.append((200, [{"device_id": "dev-1", "date": "2025-07-18",
                                "time_block": "09-00", "transcription": "はい", "model": "m",
                                "processed_at": "2025-07-18T00:00:00+00:00"}]))
    df = store.read("vibe_whisper", "dev-1", "2025-07-18")
    (get,) = rest.requests
    assert get["query"] == [("select", "*"), ("device_id", "eq.dev-1"),
                            ("date", "eq.2025-07-18"), ("order", "time_block.asc")]
    assert df.transcription.tolist() == ["はい"] and df.processed_at.iloc[0] == T0


def test_postgrest_errors_name_the_table_and_code(store, rest):
    rest.replies.append((400, {"code": "23502", "details": None, "hint": None,
                               "message": 'null value in column "time_block" violates '
                                          "not-null constraint"}))
    with pytest.raises(ResultStoreError) as err:
        store.replace_partition("vibe_whisper", "dev-1", "2025-07-18", rows(1), only_keys=True)
    assert str(err.value).startswith("vibe_whisper: PostgREST error 23502: null value")
    assert FAKE_KEY not in str(err.value)
