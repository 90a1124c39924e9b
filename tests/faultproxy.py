"""A fault-injecting HTTP proxy on 127.0.0.1, in front of the moto server, for the fault tests.

For a seeded fraction of DynamoDB requests it does what a flaky link or a busy DynamoDB does:

- `throttle`: HTTP 400 ThrottlingException (the request never reaches the table);
- `provisioned`: HTTP 400 ProvisionedThroughputExceededException (likewise);
- `500`: HTTP 500 InternalServerError (likewise);
- `partial`: BatchWriteItem only: forwards a random part of the batch (possibly none) and
  answers the rest as `UnprocessedItems`. Honest as DynamoDB is: what it returns as
  unprocessed was not written;
- `reset`: closes the connection with a TCP RST before forwarding anything;
- `delay`: holds the request until its client gives up on it (its read timeout fires and it
  closes the connection), then forwards it all the same (a write that lands although its
  caller gave up and retries: the worst case). The proxy waits for the hang-up itself, not
  for a guess at the client's timeout, so a slow machine can't turn it into a plain request;
- `drop`: forwards the request, then resets the connection instead of answering (a write
  that landed but whose acknowledgement was lost).

`hold(operation, number)` holds a request in flight on purpose: the `number`-th request of
`operation` (and every later one) waits in the proxy, forwarded or not, until `release()`,
and an event tells the test it is there (so a test can kill its client at that moment).

Every request is logged (operation, parsed JSON body, fault, the PutRequest keys forwarded),
and optionally checked with tests/strict_dynamodb.py. It serves only loopback clients and
forwards only to a loopback upstream.
"""

import http.client
import http.server
import json
import random
import select
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FAULTS = ("throttle", "provisioned", "500", "partial", "reset", "delay", "drop")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
ERROR_BODIES = {
    "throttle": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "provisioned": (400, "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded."),
    "500": (500, "InternalServerError", "Internal server error"),
}


class Hold:
    """What FaultProxy.hold returns: `reached` is set once the `number`-th request of
    `operation` (0-based, counted from the hold) is held; `held` logs every request held."""

    def __init__(self, operation, number, forward):
        self.operation = operation
        self.number = number
        self.forward = forward
        self.seen = 0
        self.reached = threading.Event()
        self.released = threading.Event()
        self.held = []

    def wait(self, process, timeout=120.0):
        """True once the request is held; False if `process` (its client) ended first or
        `timeout` seconds passed (a bound for a hang, not a guess at how long a run takes)."""
        deadline = time.monotonic() + timeout
        while not self.reached.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                return self.reached.is_set()
        return True


@dataclass
class Logged:
    operation: str
    body: dict
    fault: str = None
    forwarded_keys: list = field(default_factory=list)  # (table, pk, sk) of PutRequests sent on
    status: int = None
    started: float = 0.0
    gave_up: bool = None  # delay: whether the client hung up before the request was forwarded


class FaultProxy:
    """`with FaultProxy(upstream, rate=0.2, seed=1) as proxy:` then use `proxy.url`.

    `faults` weights the kinds drawn for a faulty request (default: all but delay and drop);
    `scripted` maps a request number (0-based, counted over all requests) to a fault to
    inject there whatever the draw, e.g. {7: "delay"}; `delay` bounds how long a delayed
    request waits for its client to hang up (a client that never gives up gets it forwarded
    then); `checker(operation, body)` may return problems to record in `violations`.
    """

    def __init__(self, upstream, rate=0.0, seed=0, faults=None, scripted=None, delay=120.0,
                 checker=None, only=None):
        parts = urlsplit(upstream)
        if parts.hostname not in LOOPBACK:
            raise ValueError(f"the fault proxy forwards only to loopback, not {upstream}")
        self.upstream = (parts.hostname, parts.port)
        self.rate = rate
        self.random = random.Random(seed)
        self.faults = dict(faults or {"throttle": 1, "provisioned": 1, "500": 1, "partial": 2, "reset": 1})
        self.scripted = dict(scripted or {})
        self.delay = delay
        self.checker = checker
        self.only = set(only) if only else None  # operations eligible for drawn faults
        self.log = []
        self.violations = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.gate = None
        self.server = None
        self.thread = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self):
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- what tests count ----------------------------------------------------------------------

    def requests(self, operation=None):
        with self.lock:
            return [entry for entry in self.log if operation is None or entry.operation == operation]

    def fault_counts(self):
        counts = {}
        for entry in self.requests():
            counts[entry.fault or "none"] = counts.get(entry.fault or "none", 0) + 1
        return counts

    def forwarded_keys(self):
        """Every (table, pk, sk) forwarded to moto in a BatchWriteItem, one entry per sending."""
        return [key for entry in self.requests("BatchWriteItem") for key in entry.forwarded_keys]

    def reset(self):
        with self.lock:
            self.log.clear()

    def hold(self, operation, number, forward=False):
        """Hold the `number`-th `operation` request from now on (0-based) and every later one
        until release(); returns a Hold whose `reached` event is set when that request arrives.

        With `forward` the held request reaches the upstream first (written, its answer
        withheld); without, it never does. The requests before it pass as usual. A held
        request's client is meant to be killed: on release its connection is reset.
        """
        self.release()
        with self.lock:
            self.gate = Hold(operation, number, forward)
            return self.gate

    def release(self):
        with self.lock:
            gate, self.gate = self.gate, None
        if gate is not None:
            gate.released.set()

    def wait_idle(self, timeout=120.0):
        """Wait until no request is being handled (a delayed one may still be on its way)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return True
            time.sleep(0.05)
        return False

    # --- decisions -------------------------------------------------------------------------------

    def _decide(self, operation):
        with self.lock:
            number = len(self.log)
            if number in self.scripted:
                return number, self.scripted[number]
            eligible = self.only is None or operation in self.only
            if not eligible or self.random.random() >= self.rate:
                return number, None
            kinds = [k for k in self.faults if k != "partial" or operation == "BatchWriteItem"]
            return number, self.random.choices(kinds, weights=[self.faults[k] for k in kinds])[0]

    def _gate(self, operation, entry):
        """The Hold that holds this request, or None if it passes."""
        with self.lock:
            gate = self.gate
            if gate is None or operation != gate.operation:
                return None
            position, gate.seen = gate.seen, gate.seen + 1
            if position < gate.number:
                return None
            entry.fault = "held"
            gate.held.append(entry)
            return gate

    def _split(self, count):
        with self.lock:
            return self.random.randrange(0, count)  # how many of the batch DynamoDB takes


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a reset client is part of the game
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    owner = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, OSError):
            pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def do_GET(self):
        self._proxy()

    def do_POST(self):
        self._proxy()

    def do_PUT(self):
        self._proxy()

    def _proxy(self):
        with self.owner.lock:
            self.owner.in_flight += 1
        try:
            self._handle_request()
        finally:
            with self.owner.lock:
                self.owner.in_flight -= 1

    def _handle_request(self):
        owner = self.owner
        if self.client_address[0] not in LOOPBACK:
            self._reset()
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        operation = target.split(".", 1)[1] if target.startswith("DynamoDB_") else self.command
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        number, fault = owner._decide(operation)
        entry = Logged(operation, body, fault, started=time.monotonic())
        if owner.checker is not None and target.startswith("DynamoDB_"):
            problems = owner.checker(operation, body)
            if problems:
                with owner.lock:
                    owner.violations.extend(problems)
        with owner.lock:
            owner.log.append(entry)
        gate = owner._gate(operation, entry)
        if gate is not None:
            self._hold(gate, entry, operation, body, raw)
            return

        if fault in ERROR_BODIES:
            status, code, message = ERROR_BODIES[fault]
            document = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
            self._answer(status, json.dumps(document).encode(), entry)
            return
        if fault == "reset":
            self._reset()
            return
        if fault == "delay":
            entry.gave_up = self._wait_for_hang_up(owner.delay)
        unprocessed = None
        if fault == "partial" and operation == "BatchWriteItem":
            body, unprocessed = self._take_part(body)
            raw = json.dumps(body).encode()
        if operation == "BatchWriteItem":
            entry.forwarded_keys = put_keys(body)
        if unprocessed is not None and not body["RequestItems"]:
            document = {"UnprocessedItems": unprocessed}  # DynamoDB took none of it
            self._answer(200, json.dumps(document).encode(), entry)
            return
        status, headers, payload = self._forward(raw)
        if unprocessed:
            document = json.loads(payload)
            document.setdefault("UnprocessedItems", {})
            for table, requests in unprocessed.items():
                document["UnprocessedItems"].setdefault(table, []).extend(requests)
            payload = json.dumps(document).encode()
        if fault == "drop":
            self._reset()
            return
        self._answer(status, payload, entry, headers)

    def _hold(self, gate, entry, operation, body, raw):
        """Forward the gate's own request if it says so, tell the test, wait for release."""
        first = entry is gate.held[0]
        if first and gate.forward:
            self._forward(raw)
            if operation == "BatchWriteItem":
                entry.forwarded_keys = put_keys(body)
        if first:
            gate.reached.set()
        gate.released.wait(timeout=600)  # a bound in case a test forgets to release
        self._reset()

    def _wait_for_hang_up(self, bound):
        """True once the client closed or reset the connection, False after `bound` seconds.
        The client sends nothing more while it waits for this answer: readable means gone."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable:
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True
        return False

    def _take_part(self, body):
        """(the part forwarded, the rest as UnprocessedItems) of a BatchWriteItem body."""
        forwarded, unprocessed = {}, {}
        for table, requests in body.get("RequestItems", {}).items():
            taken = self.owner._split(len(requests))
            if taken:
                forwarded[table] = requests[:taken]
            unprocessed[table] = requests[taken:]
        return dict(body, RequestItems=forwarded), unprocessed

    def _forward(self, raw):
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
            headers["Content-Length"] = str(len(raw))
            connection.request(self.command, self.path, body=raw, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _answer(self, status, payload, entry, headers=()):
        entry.status = status
        skip = {"content-length", "connection", "transfer-encoding", "x-amz-crc32", "date", "server"}
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in skip:
                self.send_header(name, value)
        if not headers:
            self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amz-crc32", str(zlib.crc32(payload) & 0xFFFFFFFF))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _reset(self):
        """Close with RST (SO_LINGER 0), as a dropped NAT mapping or a dying link does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


# --- what the fault tests share ---------------------------------------------------------------

def put_keys(body):
    """(table, pk, sk) of each PutRequest of a BatchWriteItem body."""
    return [(table, r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"])
            for table, requests in body.get("RequestItems", {}).items()
            for r in requests if "PutRequest" in r]


def wire_checker(prefix):
    """A checker for FaultProxy: tests/strict_dynamodb.py on each request body as sent."""
    from tests import strict_dynamodb

    schemas = strict_dynamodb.project_schemas(prefix)

    def check(operation, body):
        return strict_dynamodb.check(operation, body, schemas)

    return check


def stored_keys(client, table):
    """Every (pk, sk) of the reading items in `table` (registry, latest items and markers of new
    hours left out), by Scan."""
    keys, kwargs = [], {"TableName": table, "ProjectionExpression": "pk, sk"}
    while True:
        page = client.scan(**kwargs)
        keys += [(item["pk"]["S"], item["sk"]["S"]) for item in page["Items"]
                 if item["sk"]["S"].startswith("time#")]
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_items(client, table):
    items, kwargs = [], {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def buffer_state(directory):
    """{'pending': [...], 'bad': [...], 'held': [...], 'temps': [...]} of a buffer directory."""
    import os

    def names(path, keep):
        try:
            return sorted(name for name in os.listdir(path) if keep(name))
        except FileNotFoundError:
            return []

    return {
        "pending": names(directory, lambda n: n.endswith(".json") and not n.startswith(".")),
        "bad": names(f"{directory}/bad", lambda n: True),
        "held": names(f"{directory}/held", lambda n: n.endswith(".json")),
        "temps": names(directory, lambda n: n.startswith(".tmp-")),
    }
