"""An HTTP server on 127.0.0.1 standing in for Telegram, a webhook or an Apprise receiver in tests."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


def reply_json(handler, status, document, headers=None):
    """Answer a BaseHTTPRequestHandler's request with `document` as JSON."""
    payload = json.dumps(document).encode()
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


@dataclass
class Request:
    path: str
    headers: dict
    body: dict
    status: int


class FakeServer:
    """An HTTP server on 127.0.0.1 that records each POST (a JSON or form body) and answers from a script.

    `script` answers first (status, JSON body, headers), then `answer(path)`. With `down`
    set it closes each connection without answering, as a dead link would look.
    """

    def __init__(self, answer):
        self.requests, self.script, self.down, self.dropped = [], [], False, 0
        self.answer = answer
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.down:
                    server.dropped += 1
                    self.close_connection = True
                    return
                status, body, headers = server.script.pop(0) if server.script else server.answer(self.path)
                form = self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded")
                body_in = dict(parse_qsl(raw.decode())) if form else json.loads(raw)
                server.requests.append(Request(self.path, dict(self.headers), body_in, status))
                reply_json(self, status, body, headers)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def delivered(self):
        return [request for request in self.requests if 200 <= request.status < 300]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
