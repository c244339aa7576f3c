/**
 * The Tracer of lib/tracing.ts on the OpenTelemetry SDK, exporting OTLP over HTTP (JSON) to
 * OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`. Loaded by a dynamic import only when that is set
 * (runtimes/bootstrap.ts), so a service without tracing never loads the SDK.
 *
 * Nothing is registered globally: the provider, its tracer and the active span (an AsyncLocalStorage of
 * this tracer's own, which Bun, Node and Deno all have) belong to this instance, like its metrics.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type Context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import packageJson from '../../package.json' with { type: 'json' };
import type { SpanKind as OurKind, Span, Tracer } from '../lib/tracing';

const KINDS: Record<OurKind, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
};

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/; // W3C Trace Context §3.2, version 00
const SAMPLED = 0x01;

/** The caller's span from a `traceparent` header, or undefined for none or one that is not well formed. */
function remoteParent(header: string | undefined): Context | undefined {
  const match = header === undefined ? null : TRACEPARENT.exec(header.trim());
  if (!match) return undefined;
  const [, traceId = '', spanId = '', flags = '00'] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined; // all zeros is invalid (§3.2.2.3, §3.2.2.4)
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & SAMPLED,
    isRemote: true,
  });
}

export interface Tracing {
  tracer: Tracer;
  /** Exports what is buffered now. */
  flush(): Promise<void>;
  /** Exports what is left and stops. */
  shutdown(): Promise<void>;
}

export function startTracing({ endpoint, serviceName }: { endpoint: string; serviceName: string }): Tracing {
  const exporter = new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'service.version': packageJson.version }),
    spanProcessors: [new BatchSpanProcessor({ exporter })],
  });
  const otel = provider.getTracer(packageJson.name, packageJson.version);
  const active = new AsyncLocalStorage<Context>();

  const wrap = (span: ReturnType<typeof otel.startSpan>): Span => ({
    rename: (name) => span.updateName(name),
    setAttributes: (attributes) => span.setAttributes(attributes),
    fail: (reason) => span.setStatus({ code: SpanStatusCode.ERROR, message: reason }),
    end(error) {
      // The class only: an error's message can carry input (a query's parameters).
      if (error !== undefined) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : typeof error });
      }
      span.end();
    },
  });

  const tracer: Tracer = {
    start: (name, kind, attributes) =>
      wrap(otel.startSpan(name, { kind: KINDS[kind], attributes }, active.getStore() ?? ROOT_CONTEXT)),
    async run(name, kind, work, traceparent) {
      const parent = active.getStore() ?? remoteParent(traceparent) ?? ROOT_CONTEXT;
      const span = otel.startSpan(name, { kind: KINDS[kind] }, parent);
      const wrapped = wrap(span);
      try {
        const result = await active.run(trace.setSpan(parent, span), () => work(wrapped));
        wrapped.end();
        return result;
      } catch (error) {
        wrapped.end(error);
        throw error;
      }
    },
  };
  return { tracer, flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() };
}
