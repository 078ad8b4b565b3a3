"""OTLP export when an endpoint is set, nothing at all when tracing is off.

Each case runs ``shared.tracing.setup`` in a fresh Python process (OpenTelemetry's
provider is set once per process) against a local HTTP server that receives OTLP/HTTP
the way a collector does; its protobuf body is decoded with OpenTelemetry's own types.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
from shared import tracing
from opentelemetry import trace
provider = tracing.setup("probe")
with tracing.span("probe span", agent_id="a1", task_id="t1") as span:
    recording = span.is_recording()
    with tracing.span("child"):
        pass
print("installed" if provider is not None else "none", recording)
if provider is not None:
    provider.shutdown()  # flushes the batch exporter
"""


class Collector:
    """Receives ``POST /v1/traces`` and keeps each decoded request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, ExportTraceServiceRequest]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = ExportTraceServiceRequest()
                message.ParseFromString(body)
                received.append((self.path, message))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MOSAIC_TRACES"))}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_spans_go_to_the_otlp_endpoint_when_one_is_set(collector: Collector) -> None:
    assert probe(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, MOSAIC_TRACES="false") == (
        "installed True"
    )
    [(path, request)] = collector.requests
    assert path == "/v1/traces"
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "mosaic-probe"
    assert resource["mosaic.service"] == "probe"
    spans = {s.name: s for scope in resource_spans.scope_spans for s in scope.spans}
    assert set(spans) == {"probe span", "child"}
    assert spans["child"].parent_span_id == spans["probe span"].span_id
    child = {a.key: a.value.string_value for a in spans["child"].attributes}
    assert child == {"mosaic.agent_id": "a1", "mosaic.task_id": "t1"}  # inherited


def test_with_tracing_off_nothing_is_installed_or_recorded(collector: Collector) -> None:
    assert probe(MOSAIC_TRACES="false") == "none False"
    assert collector.requests == []
