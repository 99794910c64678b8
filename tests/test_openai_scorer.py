"""The OpenAI-compatible scorer against a local chat-completions server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from conftest import DATE, DEVICE, materialize_day

from watchme_pipeline.resources import OpenAIMoodScorer, mood_scorer_for
from watchme_pipeline.sample_data import CORRUPT, MISSING
from watchme_pipeline.scoring import TIME_POINTS
from watchme_pipeline.settings import load_deployment
from watchme_pipeline.slots import SLOTS

API_KEY = "sk-test-DO-NOT-LEAK-4242"


class ChatServer:
    """Answers POST /v1/chat/completions from a script of (status, content or error)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "auth": self.headers.get("Authorization")})
                status, content = server.script.pop(0) if server.script else (200, "{}")
                if status == 200:
                    payload = {"id": "c1", "object": "chat.completion", "created": 0,
                               "model": body["model"], "choices": [{
                                   "index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": content}}]}
                else:
                    payload = {"error": {"message": content, "type": "x", "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after-ms", "10")  # keep the client's backoff short
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def chat():
    server = ChatServer()
    yield server
    server.httpd.shutdown()


def good_reply(score: int = 150) -> str:
    return "```json\n" + json.dumps({
        "timePoints": list(TIME_POINTS), "emotionScores": [score] * 48, "averageScore": 999,
        "positiveHours": 99, "negativeHours": 0, "neutralHours": 0, "insights": "良い一日",
        "emotionChanges": [{"time": "09:00", "event": "朝の会話", "score": 40}]}) + "\n```"


def test_selected_by_environment():
    scorer = mood_scorer_for(load_deployment({
        "WATCHME_MOOD_SCORER": "openai", "WATCHME_LLM_MODEL": "m1",
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": API_KEY}))
    assert isinstance(scorer, OpenAIMoodScorer) and scorer.model == "m1"
    assert isinstance(scorer.api_key, dg.EnvVar) and API_KEY not in repr(scorer)
    assert mood_scorer_for(load_deployment({})).name() == "local"
    with pytest.raises(ValueError, match="WATCHME_MOOD_SCORER='gpt': use one of local, openai"):
        load_deployment({"WATCHME_MOOD_SCORER": "gpt"})


def test_request_shape_and_retries_on_429_and_500(chat):
    chat.script = [(429, "slow down"), (500, "oops"), (200, good_reply())]
    scorer = OpenAIMoodScorer(model="qwen2.5", base_url=chat.base_url, api_key=API_KEY)
    reply = scorer.score_day("PROMPT TEXT", [])
    assert "emotionScores" in reply
    assert len(chat.requests) == 3
    request = chat.requests[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "qwen2.5" and body["temperature"] == 0.0
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "PROMPT TEXT"


def test_a_server_without_json_mode_is_asked_again_without_it(chat):
    chat.script = [(400, "response_format is not supported"), (200, good_reply())]
    scorer = OpenAIMoodScorer(model="m", base_url=chat.base_url, api_key=API_KEY)
    scorer.score_day("P", [])
    assert "response_format" in chat.requests[0]["body"]
    assert "response_format" not in chat.requests[1]["body"]


@pytest.mark.slow  # a whole graph run / a fresh process with a real model
def test_the_day_is_scored_through_the_llm_and_validated(chat, resources, instance,
                                                         sample_day):
    chat.script = [(200, "not json at all"), (200, good_reply(150))]
    scorer = OpenAIMoodScorer(model="m", base_url=chat.base_url, api_key=API_KEY)
    result = materialize_day({**resources, "mood_scorer": scorer}, instance)
    assert result.success
    assert len(chat.requests) == 2  # one malformed reply, retried
    assert "[09-00]" in chat.requests[0]["body"]["messages"][1]["content"]
    row = resources["result_store"].read("vibe_whisper_summary", DEVICE, DATE).iloc[0]
    missing = MISSING | {CORRUPT}
    # Clamped to 100, null forced where there is no recording, figures recomputed.
    assert row.vibe_scores == [None if s in missing else 100 for s in SLOTS]
    assert row.average_score == 100.0 and row.positive_hours == 18.5
    assert row.scorer == "openai:m" and row.insights == "良い一日"


@pytest.mark.slow  # a whole graph run / a fresh process with a real model
def test_a_reply_that_stays_malformed_fails_with_the_raw_reply_and_no_key(chat, resources,
                                                                          instance, sample_day):
    chat.script = [(200, "I refuse")] * 3
    scorer = OpenAIMoodScorer(model="m", base_url=chat.base_url, api_key=API_KEY)
    materialize_day(resources, instance)  # the upstream assets, with the local scorer
    before = resources["result_store"].read("vibe_whisper_summary", DEVICE, DATE)
    result = materialize_day({**resources, "mood_scorer": scorer}, instance,
                             selection=["mood_chart"], raise_on_error=False)
    assert not result.success
    assert len(chat.requests) == 3
    logs = "\n".join(e.user_message for e in instance.all_logs(result.run_id))
    failure = [e for e in result.all_events if e.is_step_failure][0]
    logs += failure.event_specific_data.error.to_string()
    assert "'I refuse'" in logs and "no valid reply after 3 attempts" in logs
    assert API_KEY not in logs
    after = resources["result_store"].read("vibe_whisper_summary", DEVICE, DATE)
    assert after.vibe_scores.tolist() == before.vibe_scores.tolist()  # nothing half-valid
