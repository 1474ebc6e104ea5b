"""Shared test helpers: ``fake_openai``, a real local HTTP server speaking the OpenAI API
(completions for ``--endpoint``, chat for the probe's judge), whose replies a test writes;
``one_line_error``, the check that a refused command said one line and exited 2."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def one_line_error(code: int, err: str) -> str:
    """A command refused the way every user mistake must be: exit code 2 and one line
    ``error: ...`` on stderr, no traceback. Returns that line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


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
