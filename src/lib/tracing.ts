/**
 * Traces, as one small interface: the request middleware, the database clients and the hasher open spans
 * here and never see OpenTelemetry. Off by default (noTracer); observability/otel.ts implements it, loaded
 * only when OTEL_EXPORTER_OTLP_ENDPOINT is set, so a service without tracing never loads the SDK.
 */
export type SpanAttributes = Record<string, string | number | boolean>;

export type SpanKind = 'server' | 'client' | 'internal';

export interface Span {
  /** Names it once known (a request's span is named by its route, matched inside it). */
  rename(name: string): void;
  setAttributes(attributes: SpanAttributes): void;
  /** Marks it failed without an exception (a request answered 5xx), by a reason of a fixed set. */
  fail(reason: string): void;
  /** Ends the span; an error marks it failed (by its class only: messages can carry input). */
  end(error?: unknown): void;
}

export interface Tracer {
  /** A span, child of the active one, that the caller ends. */
  start(name: string, kind: SpanKind, attributes?: SpanAttributes): Span;
  /**
   * Runs `work` with a new span active, so the spans started inside it are its children; ends it after.
   * `traceparent` (W3C Trace Context, from a request's header) makes it a child of the caller's span.
   */
  run<T>(name: string, kind: SpanKind, work: (span: Span) => Promise<T>, traceparent?: string): Promise<T>;
}

/** A span that records nothing: what noTracer hands out. */
export const noSpan: Span = { rename: () => {}, setAttributes: () => {}, fail: () => {}, end: () => {} };

export const noTracer: Tracer = {
  start: () => noSpan,
  run: (_name, _kind, work) => work(noSpan),
};
