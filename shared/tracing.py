"""One trace per task (OpenTelemetry): setup, W3C context in NATS headers, span helpers.

The gateway starts a task's root span at spawn; its context travels as ``traceparent``
(and ``tracestate``) headers on the JetStream task message, on every gitops and gates
request (``shared.bus.request``) and on kill orders, and each service continues the
trace from the headers it receives. Spans carry ``mosaic.agent_id`` and
``mosaic.task_id`` (a child inherits them from its parent in the same process), never a
secret: no key, token, prompt, tool output, environment value or repository URL (which
may embed credentials) is ever set as an attribute, and a command is recorded only as
its program name (``command_word``).

Setup is per process (``setup``, called by the process entry points): with neither
``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` nor
``MOSAIC_TRACES`` no provider is installed and every helper here is OpenTelemetry's
no-op (no span is recorded). ``MOSAIC_TRACES`` (on by default) publishes the finished
spans of tasks on NATS for the gateway (``shared.spanbus``); the OTLP endpoint adds a
batch exporter over OTLP/HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import shlex
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.spanbus import Publisher, SpanBus

log = logging.getLogger(__name__)

AGENT_ID = "mosaic.agent_id"
TASK_ID = "mosaic.task_id"
SERVICE = "mosaic.service"
INHERITED = (AGENT_ID, TASK_ID)
"""Attributes a span takes from its parent in the same process."""

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PROPAGATOR = TraceContextTextMapPropagator()
"""Only ``traceparent``/``tracestate`` cross the bus: no baggage (it could carry content)."""


class TracingSettings(BaseSettings):
    """Where finished spans go. The OTLP variables are OpenTelemetry's own names."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mosaic_traces: bool = True
    """Publish the spans of tasks on ``mosaic.traces.spans`` for ``GET /agents/{id}/trace``."""
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None

    def otlp(self) -> bool:
        """Whether an OTLP endpoint is configured."""
        return bool(self.otel_exporter_otlp_endpoint or self.otel_exporter_otlp_traces_endpoint)


@dataclass
class _Installed:
    provider: TracerProvider
    bus: SpanBus | None


_installed: _Installed | None = None
"""OpenTelemetry's tracer provider is process-global and can be set once; so is this."""


class _InheritIds(SpanProcessor):
    """Gives a span the agent and task ids of its parent in the same process, so a tool
    or model span deep in the spawner is still a span of its task."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        parent = trace.get_current_span(parent_context)
        if not isinstance(parent, ReadableSpan) or parent.attributes is None:
            return
        own = span.attributes or {}
        for key in INHERITED:
            value = parent.attributes.get(key)
            if value is not None and key not in own:
                span.set_attribute(key, value)


def setup(service: str, settings: TracingSettings | None = None) -> TracerProvider | None:
    """Install this process's tracer provider for ``service``; None when nothing would
    receive spans (then tracing stays OpenTelemetry's no-op). Idempotent per process."""
    global _installed
    if _installed is not None:
        return _installed.provider
    settings = settings or TracingSettings()
    if not settings.mosaic_traces and not settings.otlp():
        return None
    resource = Resource.create(
        {
            "service.name": f"mosaic-{service}",
            "service.instance.id": f"{service}-{socket.gethostname()}-{os.getpid()}",
            SERVICE: service,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_InheritIds())
    bus = SpanBus(service, AGENT_ID) if settings.mosaic_traces else None
    if bus is not None:
        provider.add_span_processor(bus)
    if settings.otlp():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _installed = _Installed(provider, bus)
    log.info(
        "tracing on for %s (spans of tasks on NATS: %s, OTLP: %s)",
        service,
        bus is not None,
        settings.otlp(),
    )
    return provider


def install(provider: TracerProvider, bus: SpanBus | None = None) -> None:
    """Install a provider built elsewhere (tests: an in-memory exporter); once per process."""
    global _installed
    if _installed is None:
        trace.set_tracer_provider(provider)
        provider.add_span_processor(_InheritIds())
        if bus is not None:
            provider.add_span_processor(bus)
        _installed = _Installed(provider, bus)


def publish_spans_with(broker: Publisher) -> None:
    """Let the span bus publish on ``broker``'s connection (a FastStream ``NatsBroker``);
    nothing happens when tracing is off or spans do not go on NATS."""
    if _installed is not None and _installed.bus is not None:
        _installed.bus.use(broker)


_TRACER = trace.get_tracer("mosaic")
"""OpenTelemetry's proxy: it follows the provider ``setup`` installs later."""


def tracer() -> trace.Tracer:
    """The tracer every Mosaic span comes from."""
    return _TRACER


def _attributes(
    agent_id: str | None, task_id: str | None, extra: Mapping[str, AttributeValue | None] | None
) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    if agent_id:
        out[AGENT_ID] = agent_id
    if task_id:
        out[TASK_ID] = task_id
    for key, value in (extra or {}).items():
        if value is not None:
            out[key] = value
    return out


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    agent_id: str | None = None,
    task_id: str | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Iterator[Span]:
    """A span around the block, current inside it (children and headers follow it).

    An exception marks it ``ERROR`` with the exception's type only (its message may hold
    user content); a cancellation (a kill, a shutdown) marks it ``cancelled``.
    """
    with tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=_attributes(agent_id, task_id, attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except asyncio.CancelledError:
            current.set_status(Status(StatusCode.ERROR, "cancelled"))
            raise
        except Exception as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def serving(
    name: str,
    headers: Mapping[str, str] | None,
    *,
    agent_id: str | None = None,
    task_id: str | None = None,
    kind: SpanKind = SpanKind.SERVER,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> AbstractContextManager[Span]:
    """A span continuing the trace whose context came in ``headers`` (a request, a task
    message, a kill order); a new trace when they carry none."""
    return span(
        name,
        kind=kind,
        parent=extract(headers),
        agent_id=agent_id,
        task_id=task_id,
        attributes=attributes,
    )


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Add ``attributes`` to the current span (a no-op outside a recorded one)."""
    trace.get_current_span().set_attributes(attributes)


def inject(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``, ``tracestate``)."""
    carrier = dict(headers or {})
    _PROPAGATOR.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried in NATS ``headers`` (an empty context when none)."""
    return _PROPAGATOR.extract(dict(headers or {}))


def current_traceparent() -> str | None:
    """The current span's ``traceparent``, to continue its trace later (a kill)."""
    return inject().get("traceparent")


def parent_from(traceparent: str | None) -> Context | None:
    """A context whose span is the one ``traceparent`` names; None for none."""
    if not traceparent:
        return None
    return extract({"traceparent": traceparent})


def current_trace_id() -> str | None:
    """The current trace's id (32 hex digits), None outside a recorded trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id inside a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``)."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    return parts[1]


def command_word(command: str) -> str:
    """What a span may say about a command line: its program's name only.

    The command is user content: leading ``NAME=value`` assignments (values may be
    secrets) and every argument are dropped, and a path is shortened to its last part.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    for word in words:
        if _ASSIGNMENT.match(word):
            continue  # an environment assignment, not the program
        program = word.rsplit("/", 1)[-1]
        return program[:40] if program.isprintable() else "(unprintable)"
    return "(empty)"


@contextmanager
def model_call(system: str, model: str) -> Iterator[Span]:
    """A span around one Messages API call (the SDK's retries inside it)."""
    with span(
        f"model {model}",
        kind=SpanKind.CLIENT,
        attributes={"gen_ai.system": system, "gen_ai.request.model": model},
    ) as current:
        yield current


def model_sdk_options(client_type: type) -> dict[str, Any]:
    """Keyword arguments for a model SDK client (``AsyncAnthropic``) that turn off its own
    spans and its trace headers to the model API.

    ``model_call`` is the span of a call. The SDK's own would read
    ``ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE``, and with ``content`` it would put
    prompts, tool input and file contents into the trace; the trace context has no
    business reaching a third party either. An SDK without the option gets nothing.
    """
    if "open_telemetry" not in inspect.signature(client_type).parameters:
        return {}
    return {"open_telemetry": {"traces": {"enabled": False}, "propagation": False}}


def record_usage(
    current: Span,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    stop_reason: str | None = None,
) -> None:
    """Token counts (and why the model stopped) on a model call's span."""
    current.set_attributes(
        {
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            "mosaic.usage.cache_read_tokens": cache_read,
            "mosaic.usage.cache_write_tokens": cache_write,
        }
    )
    if stop_reason:
        current.set_attribute("gen_ai.response.finish_reasons", [stop_reason])
