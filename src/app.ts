import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { matchedRoutes } from 'hono/route';
import { secureHeaders } from 'hono/secure-headers';
import packageJson from '../package.json' with { type: 'json' };
import type { AppEnv } from './app-env';
import { isDatabaseUnavailable } from './db/errors';
import type { AppDeps } from './deps';
import { describeError } from './lib/logger';
import { AppError, PROBLEM_CONTENT_TYPE, type ProblemCode, problemResponse } from './lib/problems';
import { RequestAbandoned } from './lib/request-meta';
import type { Span } from './lib/tracing';
import { requestDeadline } from './middleware/deadline';
import { requestMeta } from './middleware/request-meta';
import { configureOpenAPI } from './openapi';
import { adminRoutes } from './routes/admin';
import { authRoutes } from './routes/auth';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { mfaRoutes } from './routes/mfa';
import { oauthRoutes } from './routes/oauth';
import { passkeyRoutes } from './routes/passkeys';
import { recoveryRoutes } from './routes/recovery';
import { createRouter } from './routes/router';
import { userRoutes } from './routes/users';
import { createServiceContext } from './services/context';

/**
 * Builds the whole HTTP API around injected dependencies. Pure: no env, no filesystem, no runtime
 * globals, so Bun, Node, Deno and Workers entries (and tests) all serve this same app.
 */
export function createApp(deps: AppDeps) {
  const { config, tracer } = deps;
  const ctx = createServiceContext(deps);
  const app = createRouter();

  app.use(requestId());
  app.use(async (c, next) => {
    c.set('ctx', ctx);
    const started = performance.now();
    // One server span per request (a child of the caller's when it sends `traceparent`): the database's and
    // the hasher's spans started inside are its children.
    await tracer.run(
      'HTTP',
      'server',
      async (span) => {
        await next();
        // requestId() sets the header before the handler runs, but responses built whole (problems from
        // onError, notFound, bodyLimit, validation) replace it; every response must carry it (API.md).
        c.header('X-Request-Id', c.var.requestId);
        observeRequest(c, span, (performance.now() - started) / 1000);
      },
      c.req.header('traceparent'),
    );
  });
  // API responses are JSON only: no scripts, no framing. /docs and /redoc set their own CSP first.
  app.use(
    secureHeaders({
      overwrite: false,
      contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
      referrerPolicy: 'no-referrer',
      xFrameOptions: 'DENY',
      crossOriginEmbedderPolicy: false,
    }),
  );
  if (config.CORS_ORIGINS.length > 0) {
    app.use(
      cors({
        origin: config.CORS_ORIGINS,
        allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'Retry-After', 'WWW-Authenticate'],
        maxAge: 600,
      }),
    );
  }
  app.use(requestDeadline(config.REQUEST_TIMEOUT_MS));
  app.use(requestMeta); // after the deadline: the meta carries its signal
  app.use(
    bodyLimit({
      maxSize: config.BODY_LIMIT_BYTES,
      onError: () =>
        problemResponse('body-too-large', {
          detail: `The request body is larger than ${config.BODY_LIMIT_BYTES} bytes`,
        }),
    }),
  );

  // userRoutes before adminRoutes: /users/me must match before /users/{id}.
  const routes = app
    .route('/', healthRoutes)
    .route('/', metricsRoutes)
    .route('/', authRoutes)
    .route('/', oauthRoutes)
    .route('/', recoveryRoutes)
    .route('/', passkeyRoutes)
    .route('/', userRoutes)
    .route('/', mfaRoutes)
    .route('/', adminRoutes);
  configureOpenAPI(app, packageJson.version);

  app.notFound((c) => {
    const allowed = allowedMethods(app.routes, c.req.path);
    if (allowed.length > 0) {
      return problemResponse('method-not-allowed', {
        detail: `${c.req.method} is not allowed here`,
        headers: { Allow: allowed.join(', ') },
      });
    }
    return problemResponse('no-route', { detail: `No route for ${c.req.method} ${c.req.path}` });
  });
  app.onError(handleError);
  return routes;
}

/** The app's type, for a typed `hono/client`: `hc<AppType>('http://localhost:8000')`. */
export type AppType = ReturnType<typeof createApp>;

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** An answered request in the metrics, on its span and in the log. */
function observeRequest(c: Context<AppEnv>, span: Span, seconds: number): void {
  const { metrics, logger } = c.var.ctx;
  const { status } = c.res;
  const method = METHODS.has(c.req.method) ? c.req.method : 'OTHER';
  const route = routeTemplate(c);
  metrics.request({ method, route, status }, seconds);
  span.rename(`${method} ${route}`);
  span.setAttributes({ 'http.request.method': method, 'http.route': route, 'http.response.status_code': status });
  // OpenTelemetry's HTTP conventions: a server span fails on 5xx only (a 4xx is the client's).
  if (status >= 500) {
    span.setAttributes({ 'error.type': String(status) });
    span.fail(String(status));
  }
  logger.info('request', {
    method: c.req.method,
    path: c.req.path,
    status,
    ms: Math.round(seconds * 10_000) / 10,
    requestId: c.var.requestId,
    userId: c.var.user?.id,
  });
}

/**
 * The route the request matched, as registered (`/users/:id`), for metrics and span names: never the raw
 * URL, which carries ids and any path a scanner tries; `unmatched` when no route did.
 */
function routeTemplate(c: Context<AppEnv>): string {
  // From the handler that answered on: a middleware for every path (the body limit, say) answers for the
  // route that would have run next, and of two routes that match (`/users/me`, `/users/:id`) the first wins.
  const routes = matchedRoutes(c);
  for (let i = c.req.routeIndex; i < routes.length; i++) {
    const route = routes[i];
    if (route && route.method !== 'ALL') return route.path;
  }
  return 'unmatched';
}

function allowedMethods(routes: { method: string; path: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === 'ALL') continue;
    const pattern = new RegExp(`^${route.path.replace(/\/\*$/, '/.*').replace(/:[^/]+/g, '[^/]+')}$`);
    if (pattern.test(path)) methods.add(route.method);
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** hono's own failures (a body it cannot parse, a content type it does not take) by their status. */
const HTTP_EXCEPTION_PROBLEMS: Record<number, ProblemCode> = {
  400: 'malformed-request',
  404: 'no-route',
  405: 'method-not-allowed',
  413: 'body-too-large',
  415: 'unsupported-media-type',
};

/**
 * The one place every thrown error becomes a response. A database that is down is a 503 to retry; our own
 * AppErrors are answered as the catalogue says; anything else is a 500 whose message never reaches the
 * client nor the log (messages can carry input: a password, a query's parameters).
 */
function handleError(err: Error, c: Context<AppEnv>): Response {
  const { logger } = c.var.ctx;
  if (isDatabaseUnavailable(err)) {
    logger.warn('database unavailable', { requestId: c.var.requestId, error: describeError(err) });
    return problemResponse('database-unavailable');
  }
  if (err instanceof AppError) {
    if (err.code === 'overloaded') c.var.ctx.metrics.overloaded('hash_admission');
    if (err.code === 'timeout') c.var.ctx.metrics.overloaded('deadline');
    return problemResponse(err.code, err.options);
  }
  // The request was answered already (its timeout) or its client has gone, and its work stopped: nobody
  // receives this answer, and it is no fault.
  if (err instanceof RequestAbandoned) return problemResponse('timeout');
  if (err instanceof HTTPException) {
    // Already a problem (ours, e.g. the request timeout with its Retry-After): send it as built.
    if (err.res?.headers.get('Content-Type')?.startsWith(PROBLEM_CONTENT_TYPE)) return err.res;
    const code = HTTP_EXCEPTION_PROBLEMS[err.status];
    if (code) return problemResponse(code, err.message ? { detail: err.message } : {});
  }
  // The frames locate the bug; the message stays out.
  const frames = err.stack?.split('\n').slice(1).join('\n');
  logger.error('unhandled error', { requestId: c.var.requestId, error: describeError(err), stack: frames });
  return problemResponse('internal');
}
