"""A fake Telegram Bot API on 127.0.0.1 for the bot's tests: it hands out queued updates
(getUpdates, with Telegram's offset rule) and records every call, a sendPhoto's multipart
form parsed (fields and the file's bytes)."""

import email.parser
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakehttp import reply_json

BOT_USERNAME = "blackout_test_bot"


def parse_multipart(content_type, body):
    """{name: str or (filename, bytes, type)} of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    assert message.is_multipart(), content_type
    form = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True)
        filename = part.get_filename()
        form[name] = (filename, data, part.get_content_type()) if filename else data.decode()
    return form


class FakeBotApi:
    def __init__(self, token):
        self.token, self.updates, self.calls, self.webhook = token, [], [], {}
        self.forget_confirmed = True  # False: hand out old updates again, as after a lost confirmation
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                prefix = f"/bot{fake.token}/"
                if not self.path.startswith(prefix):
                    return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                method = self.path[len(prefix):]
                kind = self.headers.get("Content-Type", "")
                body = parse_multipart(kind, raw) if kind.startswith("multipart/") else json.loads(raw or b"{}")
                with fake.lock:
                    fake.calls.append((method, body))
                    status, answer = fake.answer(method, body)
                self.reply(status, answer)

            def reply(self, status, document):
                reply_json(self, status, document)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def answer(self, method, body):
        if method == "getMe":
            return 200, {"ok": True, "result": {"id": int(self.token.split(":")[0]), "is_bot": True,
                                                "first_name": "Blackout", "username": BOT_USERNAME}}
        if method == "getUpdates":
            offset = int(body.get("offset") or 0)
            # Telegram forgets the updates before the offset: they are confirmed
            if self.forget_confirmed:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return 200, {"ok": True, "result": list(self.updates)}
        if method in ("sendMessage", "sendPhoto"):
            return 200, {"ok": True, "result": {"message_id": len(self.calls), "chat": {"id": int(body["chat_id"])}}}
        if method == "setWebhook":
            self.webhook = {"url": body["url"], "has_custom_certificate": False, "pending_update_count": 0,
                            "allowed_updates": body.get("allowed_updates"), "secret": body.get("secret_token")}
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        if method == "getWebhookInfo":
            info = {k: v for k, v in self.webhook.items() if k != "secret"}
            return 200, {"ok": True, "result": info or {"url": "", "pending_update_count": 0}}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def sent(self):
        """[(method, chat_id, text or caption, photo bytes or None)] of the answers sent."""
        with self.lock:
            return [(method, str(body["chat_id"]), body.get("text") or body.get("caption"),
                     body["photo"][1] if method == "sendPhoto" else None)
                    for method, body in self.calls if method in ("sendMessage", "sendPhoto")]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
