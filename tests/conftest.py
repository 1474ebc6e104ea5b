"""Shared test fixtures: ``fake_openai``, a real local HTTP server speaking the OpenAI API
(completions for ``--endpoint``, chat for the probe's judge), whose replies a test writes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def fake_openai():
    """``fake_openai(reply) -> url`` starts a server on 127.0.0.1 and returns its base URL
    (``http://127.0.0.1:PORT/v1``). Each POST's JSON body and headers go to
    ``reply(body, headers)``, which returns ``(status, payload)``: a dict sent as JSON, or
    bytes sent as they are. The servers stop when the test ends."""
    servers = []

    def start(reply) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload = reply(body, self.headers)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
