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

/** The one security scheme: Swagger UI's Authorize button logs in through POST /token with email and password. */
export const LOGIN_SCHEME = 'OAuth2Password';

const TAGS = [
  { name: 'auth', description: 'Register, log in (OAuth2 password and refresh grants), log out.' },
  { name: 'users', description: 'The authenticated user: profile, password, live sessions.' },
  {
    name: 'passkeys',
    description: 'WebAuthn passkeys: register one while logged in, log in with it (no password), remove it.',
  },
  {
    name: 'admin',
    description: "For the `admin` role: users, roles, disabling, the audit log; and the first admin's bootstrap.",
  },
  {
    name: 'oauth',
    description:
      'For other services: the JWKS and server metadata that verify our tokens alone, revocation (RFC 7009) ' +
      'and introspection (RFC 7662).',
  },
  {
    name: 'recovery',
    description:
      'By email: a forgotten password, verifying an address, a new link. No answer tells whether an address has an account.',
  },
  {
    name: 'mfa',
    description:
      'The second factor: TOTP with recovery codes. A login of a user with one answers 403 `mfa-required`, ' +
      'finished by `grant_type=mfa_otp` at POST /token.',
  },
  { name: 'health', description: 'Liveness and readiness probes, for load balancers and orchestrators.' },
  { name: 'operations', description: 'What operators scrape: Prometheus metrics of this instance.' },
];

/**
 * Swagger UI's password-flow dialog also offers a client id, a client secret and where to send them, none of
 * which this service uses (it is its own public client): they are hidden, and the login sends neither
 * (by default Swagger UI would send `Authorization: Basic` with an empty id and secret). So is its text
 * about choosing scopes: there are none.
 */
const SWAGGER_UI_PLUGIN = `() => ({
  statePlugins: { auth: { wrapActions: { authorizePassword: (authorize) => (auth) =>
    authorize({ ...auth, passwordType: 'request-body', clientId: '', clientSecret: '' }) } } },
})`;
const SWAGGER_UI_STYLE = `.auth-container .wrapper:has(> label[for="password_type"]),
.auth-container .wrapper:has(> label[for^="client_id"]),
.auth-container .wrapper:has(> label[for^="client_secret"]),
.auth-container .scope-def { display: none; }`;

const swaggerPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${TITLE} - Swagger UI</title>
    <link rel="stylesheet" href="${DOCS_ASSET_PREFIX}/swagger-ui-dist/swagger-ui.css" />
    <style>${SWAGGER_UI_STYLE}</style>
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="${DOCS_ASSET_PREFIX}/swagger-ui-dist/swagger-ui-bundle.js"></script>
    <script>
      window.onload = () => {
        window.ui = SwaggerUIBundle({
          url: '${OPENAPI_PATH}',
          dom_id: '#swagger-ui',
          persistAuthorization: true,
          displayOperationId: true,
          plugins: [${SWAGGER_UI_PLUGIN}],
        });
      };
    </script>
  </body>
</html>`;

type OpenAPIDocument = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>;

/**
 * Swagger UI labels an array schema whose items are a bare `$ref` as `array<any>` (SessionsPublic was). In
 * OpenAPI 3.1 (JSON Schema 2020-12) a `$ref` may have siblings, so each such item also says its type.
 */
function typedArrayItems(document: OpenAPIDocument): OpenAPIDocument {
  const schemas = (document.components?.schemas ?? {}) as Record<string, { type?: unknown; items?: unknown }>;
  for (const schema of Object.values(schemas)) {
    const items = schema.items as { $ref?: string } | undefined;
    const target = items?.$ref?.replace('#/components/schemas/', '');
    if (schema.type === 'array' && target && Object.keys(items ?? {}).length === 1) {
      schema.items = { ...items, type: schemas[target]?.type };
    }
  }
  return document;
}

/** /openapi.json (OpenAPI 3.1 from the zod route definitions), Swagger UI at /docs, ReDoc at /redoc. */
export function configureOpenAPI(app: OpenAPIHono<AppEnv>, version: string): void {
  // OAuth2's password flow, like FastAPI's OAuth2PasswordBearer: a client that knows OpenAPI (and Swagger UI)
  // logs in at tokenUrl with username and password, then sends the access token as a bearer token.
  app.openAPIRegistry.registerComponent('securitySchemes', LOGIN_SCHEME, {
    type: 'oauth2',
    description:
      'Log in with your email as `username` and your password; every request then carries the access token ' +
      'as `Authorization: Bearer <access_token>`. No client id or secret is needed.',
    flows: { password: { tokenUrl: '/token', refreshUrl: '/token', scopes: {} } },
  });
  // Built once, on the first request (every route is registered by then), instead of on every request.
  let document: ReturnType<typeof app.getOpenAPI31Document> | undefined;
  app.get(OPENAPI_PATH, (c) => {
    document ??= typedArrayItems(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: {
          title: TITLE,
          version,
          description:
            'User authentication: register, OAuth2 password login, JWT bearer tokens. ' +
            'Every error is `application/problem+json` (RFC 9457): branch on `type`, show `detail`.',
        },
        tags: TAGS,
      }),
    );
    return c.json(document);
  });

  for (const page of ['/docs', '/redoc']) {
    app.use(page, async (c, next) => {
      c.header('Content-Security-Policy', DOCS_CSP);
      await next();
    });
  }
  app.get('/docs', (c) => c.html(swaggerPage));
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
