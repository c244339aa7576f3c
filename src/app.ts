import { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { secureHeaders } from 'hono/secure-headers';
import { timeout } from 'hono/timeout';
import packageJson from '../package.json' with { type: 'json' };
import type { AppDeps, AppEnv } from './deps';
import { handleError, problem, RETRY_SOON } from './lib/errors';
import { defaultHook } from './lib/validation';
import { configureOpenAPI } from './openapi';
import { adminRoutes } from './routes/admin';
import { authRoutes } from './routes/auth';
import { healthRoutes } from './routes/health';
import { userRoutes } from './routes/users';

/**
 * Builds the whole HTTP API around injected dependencies. Pure: no env, no filesystem, no runtime
 * globals, so Bun, Node, Deno and Workers entries (and tests) all serve this same app.
 */
export function createApp(deps: AppDeps) {
  const { config, logger } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook });

  app.use(requestId());
  app.use(async (c, next) => {
    c.set('deps', deps);
    const started = performance.now();
    await next();
    // requestId() sets the header before the handler runs, but responses built whole (problems from
    // onError, notFound, bodyLimit, validation) replace it; every response must carry it (API.md).
    c.header('X-Request-Id', c.var.requestId);
    logger.info('request', {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
      requestId: c.var.requestId,
      userId: c.var.user?.id,
    });
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
  app.use(
    timeout(
      config.REQUEST_TIMEOUT_MS,
      () =>
        new HTTPException(503, {
          res: problem(503, 'The request took too long; try again shortly', { headers: RETRY_SOON }),
        }),
    ),
  );
  app.use(
    bodyLimit({
      maxSize: config.BODY_LIMIT_BYTES,
      onError: () => problem(413, `The request body is larger than ${config.BODY_LIMIT_BYTES} bytes`),
    }),
  );

  // userRoutes before adminRoutes: /users/me must match before /users/{id}.
  const routes = app.route('/', healthRoutes).route('/', authRoutes).route('/', userRoutes).route('/', adminRoutes);
  configureOpenAPI(app, packageJson.version);

  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length > 0) {
      return problem(405, `${c.req.method} is not allowed here`, { headers: { Allow: allowed.join(', ') } });
    }
    return problem(404, `No route for ${c.req.method} ${c.req.path}`);
  });
  app.onError(handleError);
  return routes;
}

/** The app's type, for a typed `hono/client`: `hc<AppType>('http://localhost:8000')`. */
export type AppType = ReturnType<typeof createApp>;

function allowedMethods(app: OpenAPIHono<AppEnv>, path: string): string[] {
  const methods = new Set<string>();
  for (const route of app.routes) {
    if (route.method === 'ALL') continue;
    const pattern = new RegExp(`^${route.path.replace(/\/\*$/, '/.*').replace(/:[^/]+/g, '[^/]+')}$`);
    if (pattern.test(path)) methods.add(route.method);
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}
