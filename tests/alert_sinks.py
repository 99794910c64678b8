"""Real receivers on loopback for the alert tests: an SMTP server (aiosmtpd) and an HTTP
webhook receiver, each recording what arrives."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import free_port


class SmtpSink:
    """aiosmtpd on 127.0.0.1; with ``user``/``password`` it requires that login (AUTH over
    plain text: loopback only)."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.received_at: list[float] = []  # time.time() of each message's arrival
        self.logins: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                sink.messages.append(email.message_from_bytes(envelope.original_content,
                                                               policy=email.policy.default))
                sink.received_at.append(time.time())
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
                  and auth_data.password.decode() == password)
            if ok:
                sink.logins.append(user or "")
            return AuthResult(success=ok)

        self.port = free_port()
        options = ({"authenticator": authenticate, "auth_required": True,
                    "auth_require_tls": False} if user else {})
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     **options)
        self.controller.start()

    def texts(self) -> list[str]:
        return [f"{m['Subject']}\n{m.get_content()}" for m in self.messages]

    def stop(self) -> None:
        self.controller.stop()


class WebhookSink:
    """A POST receiver on 127.0.0.1 under ``path``; answers ``fail_first`` requests with 500."""

    def __init__(self, path: str = "/hooks/T0KEN-s3cret", fail_first: int = 0) -> None:
        self.posts: list[dict] = []
        self.refused = 0
        self.fail_first = fail_first
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != path:
                    self.send_response(404)
                elif sink.refused < sink.fail_first:
                    sink.refused += 1
                    self.send_response(500)
                else:
                    sink.posts.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [p["text"] for p in self.posts]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
