import { swaggerUI } from '@hono/swagger-ui';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from './app-env';
import { DOCS_ASSET_PREFIX, DOCS_ASSETS, REDOC_LOGO_PATH, REDOC_LOGO_SVG } from './docs/assets';
import { problemResponse } from './lib/problems';

export const OPENAPI_PATH = '/openapi.json';
const TITLE = 'hono-postgres-auth';
const ASSET_CACHE = 'public, max-age=86400';

// The doc pages run inline bootstrap scripts and ReDoc renders in a blob worker; everything else is same-origin.
export const DOCS_CSP =
  "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
  "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

const redocPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${TITLE} - ReDoc</title>
  </head>
  <body>
    <redoc spec-url="${OPENAPI_PATH}"></redoc>
    <script src="${DOCS_ASSET_PREFIX}/redoc/redoc.standalone.js"></script>
  </body>
</html>`;

/** /openapi.json (OpenAPI 3.1 from the zod route definitions), Swagger UI at /docs, ReDoc at /redoc. */
export function configureOpenAPI(app: OpenAPIHono<AppEnv>, version: string): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'Bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An access token from POST /token',
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'IntrospectionClient', {
    type: 'http',
    scheme: 'basic',
    description: 'INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET (RFC 6749 §2.3.1), for POST /introspect',
  });
  // Lets Swagger UI's Authorize button log in with email and password, like FastAPI's OAuth2PasswordBearer.
  app.openAPIRegistry.registerComponent('securitySchemes', 'OAuth2Password', {
    type: 'oauth2',
    flows: { password: { tokenUrl: '/token', scopes: {} } },
  });
  app.doc31(OPENAPI_PATH, {
    openapi: '3.1.0',
    info: {
      title: TITLE,
      version,
      description:
        'User authentication: register, OAuth2 password login, JWT bearer tokens. ' +
        'Every error is `application/problem+json` (RFC 9457).',
    },
  });

  for (const page of ['/docs', '/redoc']) {
    app.use(page, async (c, next) => {
      c.header('Content-Security-Policy', DOCS_CSP);
      await next();
    });
  }
  app.get(
    '/docs',
    swaggerUI({
      url: OPENAPI_PATH,
      baseUrl: DOCS_ASSET_PREFIX,
      title: `${TITLE} - Swagger UI`,
      persistAuthorization: true,
    }),
  );
  app.get('/redoc', (c) => c.html(redocPage));

  const cache = new Map<string, Promise<string | null>>();
  app.get(`${DOCS_ASSET_PREFIX}/*`, async (c) => {
    const path = c.req.path;
    if (path === REDOC_LOGO_PATH)
      return c.body(REDOC_LOGO_SVG, 200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': ASSET_CACHE });
    const asset = DOCS_ASSETS[path];
    if (!asset) return problemResponse('no-route', { detail: 'No such asset' });
    let text = cache.get(path);
    if (!text) {
      text = c.var.ctx
        .readAsset(asset.module)
        .then((t) => (t !== null && asset.rewrite ? asset.rewrite(t) : t))
        .catch(() => null);
      cache.set(path, text);
    }
    const body = await text;
    if (body === null) return problemResponse('no-route', { detail: 'This runtime does not serve the docs assets' });
    return c.body(body, 200, { 'Content-Type': asset.contentType, 'Cache-Control': ASSET_CACHE });
  });
}
