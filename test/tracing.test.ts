/**
 * OpenTelemetry traces from a real server process, exported over OTLP/HTTP to a receiver written here:
 * each request is a server span named by its route, with the database's and the hasher's spans as its
 * children (the right trace, the right parent), and no parameter of a query in any attribute.
 */
import { afterAll, expect, test } from 'bun:test';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { createHashPool } from '../src/hashing/pool';
import { startTracing } from '../src/observability/otel';
import {
  createTestApp,
  expectProblem,
  login,
  POSTGRES_ADMIN_URL,
  registerUser,
  TEST_PASSWORD,
  uniqueEmail,
} from './helpers';
import { SERVER_TEST_TIMEOUT_MS, startServer, stopAll } from './server-process';

afterAll(stopAll, SERVER_TEST_TIMEOUT_MS);

type Value = { stringValue?: string; intValue?: string | number; boolValue?: boolean };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number; message?: string };
  attributes?: { key: string; value: Value }[];
}
interface OtlpExport {
  resourceSpans: {
    resource?: { attributes?: { key: string; value: Value }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

const SPAN_KIND_SERVER = 2; // OTLP's SpanKind enum
const SPAN_KIND_CLIENT = 3;
const STATUS_CODE_ERROR = 2;

/** The collector's side: POST /v1/traces, OTLP/HTTP with JSON bodies (what exporter-trace-otlp-http sends). */
function otlpReceiver() {
  const exports: OtlpExport[] = [];
  const contentTypes: string[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      if (request.method !== 'POST' || url.pathname !== '/v1/traces') return new Response(null, { status: 404 });
      contentTypes.push(request.headers.get('Content-Type') ?? '');
      exports.push((await request.json()) as OtlpExport);
      return Response.json({ partialSuccess: {} });
    },
  });
  return { server, exports, contentTypes };
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value?.stringValue ?? (value?.intValue === undefined ? value?.boolValue : Number(value.intValue));
};

test(
  'with OTEL_EXPORTER_OTLP_ENDPOINT, a login is a server span with database and password-check children',
  async () => {
    const receiver = otlpReceiver();
    const database = await scratchDatabase('tracing', { adminUrl: POSTGRES_ADMIN_URL, migrate: 'in-process' });
    try {
      const server = await startServer({
        ...database.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.server.port}`,
        OTEL_SERVICE_NAME: 'auth-under-test',
      });
      const email = uniqueEmail('traced');
      const registered = await fetch(`${server.url}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password: TEST_PASSWORD }),
      });
      expect(registered.status).toBe(201);
      const token = await fetch(`${server.url}/token`, {
        method: 'POST',
        body: new URLSearchParams({ username: email, password: TEST_PASSWORD }),
      });
      expect(token.status).toBe(200);
      // A graceful stop exports what is buffered.
      expect(await server.stop()).toBe(0);

      expect(receiver.contentTypes.length).toBeGreaterThan(0);
      for (const type of receiver.contentTypes) expect(type).toStartWith('application/json');
      const resources = receiver.exports.flatMap((e) => e.resourceSpans);
      const names = resources.map(
        (r) => r.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue,
      );
      expect(new Set(names)).toEqual(new Set(['auth-under-test']));
      const spans = resources.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));

      const login = spans.find((s) => s.name === 'POST /token');
      expect(login).toBeDefined();
      if (!login) return;
      expect(login.kind).toBe(SPAN_KIND_SERVER);
      expect(login.parentSpanId || undefined).toBeUndefined();
      expect(attribute(login, 'http.route')).toBe('/token');
      expect(attribute(login, 'http.response.status_code')).toBe(200);
      const children = spans.filter((s) => s.parentSpanId === login.spanId);
      for (const child of children) expect(child.traceId).toBe(login.traceId);
      expect(children.map((s) => s.name)).toContain('password verify');
      const queries = children.filter((s) => s.name.startsWith('db '));
      expect(queries.length).toBeGreaterThan(1);
      for (const query of queries) {
        expect(query.kind).toBe(SPAN_KIND_CLIENT);
        expect(attribute(query, 'db.system.name')).toBe('postgresql');
      }
      expect(queries.map((s) => attribute(s, 'db.operation.name'))).toContain('SELECT');

      const register = spans.find((s) => s.name === 'POST /register');
      expect(register).toBeDefined();
      const registerChildren = spans.filter((s) => s.parentSpanId === register?.spanId);
      expect(registerChildren.map((s) => s.name)).toContain('password hash');
      expect(registerChildren.some((s) => s.name === 'db INSERT')).toBe(true);
      expect(register?.traceId).not.toBe(login.traceId);

      // Statements as written, with placeholders: the email and the password appear in no span.
      const exported = JSON.stringify(receiver.exports);
      expect(exported).not.toContain(email);
      expect(exported).not.toContain(TEST_PASSWORD);
    } finally {
      receiver.server.stop(true);
      await database.drop();
    }
  },
  SERVER_TEST_TIMEOUT_MS,
);

test('a request answered 5xx is a failed server span; a 4xx is not', async () => {
  const receiver = otlpReceiver();
  const tracing = startTracing({ endpoint: `http://127.0.0.1:${receiver.server.port}`, serviceName: 'in-process' });
  // A worker that holds its thread as long as a `slow:<ms> …` password says (test/fixtures): past the deadline.
  const hasher = createHashPool(new URL('./fixtures/slow-hash-worker.ts', import.meta.url), {
    cost: 4,
    threads: 1,
    expectedHashMs: 1,
  });
  try {
    const password = 'slow:600 correct horse';
    const { email } = await registerUser((await createTestApp()).app, uniqueEmail('traced-slow'), password);
    const { app } = await createTestApp({ env: { REQUEST_TIMEOUT_MS: '300' }, hasher, tracer: tracing.tracer });
    await expectProblem(await login(app, email, password), 503, 'timeout');
    const { app: quick } = await createTestApp({ tracer: tracing.tracer });
    await expectProblem(await login(quick, email, 'a wrong guess'), 401, 'invalid-credentials');
    await Bun.sleep(700); // the slow hash ends, and its span with it
    await tracing.flush();
    const spans = receiver.exports.flatMap((e) => e.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
    const logins = spans.filter((s) => s.name === 'POST /token');
    expect(logins.map((s) => attribute(s, 'http.response.status_code')).sort()).toEqual([401, 503]);
    const failed = logins.find((s) => attribute(s, 'http.response.status_code') === 503);
    const refused = logins.find((s) => attribute(s, 'http.response.status_code') === 401);
    expect(failed?.status?.code).toBe(STATUS_CODE_ERROR);
    expect(attribute(failed as OtlpSpan, 'error.type')).toBe('503');
    expect(refused?.status?.code).not.toBe(STATUS_CODE_ERROR);
  } finally {
    await tracing.shutdown();
    await hasher.close();
    receiver.server.stop(true);
  }
}, 30_000);

test('a request that sends traceparent joins the caller’s trace; a malformed one starts its own', async () => {
  const receiver = otlpReceiver();
  const tracing = startTracing({ endpoint: `http://127.0.0.1:${receiver.server.port}`, serviceName: 'in-process' });
  try {
    const { app } = await createTestApp({ tracer: tracing.tracer });
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpanId = '00f067aa0ba902b7';
    const joined = await app.request('/health', { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } });
    expect(joined.status).toBe(200);
    await app.request('/ready', { headers: { traceparent: `00-${'0'.repeat(32)}-${callerSpanId}-01` } });
    await tracing.flush();
    const spans = receiver.exports.flatMap((e) => e.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
    const health = spans.find((s) => s.name === 'GET /health');
    expect(health?.traceId).toBe(traceId);
    expect(health?.parentSpanId).toBe(callerSpanId);
    const ready = spans.find((s) => s.name === 'GET /ready');
    expect(ready?.traceId).not.toBe('0'.repeat(32));
    expect(ready?.parentSpanId || undefined).toBeUndefined();
  } finally {
    await tracing.shutdown();
    receiver.server.stop(true);
  }
});
