import { describe, expect, test } from 'bun:test';
import { createTestApp, expectProblem, json, TEST_BASE_URL } from './helpers';

const { app } = await createTestApp();

// Every endpoint of API.md that exists today.
const DOCUMENTED: [method: string, path: string][] = [
  ['post', '/register'],
  ['post', '/token'],
  ['get', '/welcome'],
  ['get', '/users/me'],
  ['get', '/health'],
  ['get', '/ready'],
];

interface OpenAPIDocument {
  openapi: string;
  paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
  components: { securitySchemes: Record<string, Record<string, unknown>> };
}

const spec = async () => (await (await app.request('/openapi.json')).json()) as OpenAPIDocument;

/** The src/href of every <script> and <link> in a page. */
function referencedAssets(html: string): string[] {
  const tags = html.match(/<(script|link)\b[^>]*>/gi) ?? [];
  return tags.flatMap((tag) => {
    const url = /\s(?:src|href)="([^"]*)"/i.exec(tag)?.[1];
    return url === undefined ? [] : [url];
  });
}

const EXPECTED_TYPE: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css' };

describe('GET /openapi.json', () => {
  test('serves an OpenAPI 3.1 document as JSON', async () => {
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('application/json');
    expect((await json<{ openapi: string }>(res)).openapi).toMatch(/^3\.1\.\d+$/);
  });

  test.each(DOCUMENTED)('documents %s %s', async (method, path) => {
    expect((await spec()).paths[path]?.[method]).toBeDefined();
  });

  // Needs the app's route table, which only an in-process app has.
  test.skipIf(TEST_BASE_URL !== undefined)('documents every API route the app serves', async () => {
    const { paths } = await spec();
    const served = app.routes.filter(
      (route) => route.method !== 'ALL' && !/^\/(docs|redoc|vendor|openapi\.json)\b/.test(route.path),
    );
    expect(served.length).toBeGreaterThanOrEqual(DOCUMENTED.length);
    for (const route of served) {
      const openApiPath = route.path.replace(/:(\w+)/g, '{$1}'); // Hono's /users/:id is OpenAPI's /users/{id}
      expect(paths[openApiPath]?.[route.method.toLowerCase()], route.path).toBeDefined();
    }
  });

  test('declares one security scheme: the OAuth2 password flow against /token', async () => {
    const { securitySchemes } = (await spec()).components;
    expect(Object.keys(securitySchemes)).toEqual(['OAuth2Password']);
    expect(securitySchemes.OAuth2Password).toMatchObject({
      type: 'oauth2',
      flows: { password: { tokenUrl: '/token' } },
    });
  });

  test('marks the bearer routes as secured by it', async () => {
    const { paths } = await spec();
    for (const path of ['/users/me', '/welcome']) {
      expect(paths[path]?.get?.security).toEqual([{ OAuth2Password: [] }]);
    }
  });
});

describe.each(['/docs', '/redoc'])('GET %s', (page) => {
  test('serves an HTML page', async () => {
    const res = await app.request(page);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('text/html');
  });

  test('loads no script or stylesheet from another origin', async () => {
    const assets = referencedAssets(await (await app.request(page)).text());
    expect(assets.length).toBeGreaterThan(0);
    for (const url of assets) expect(url).not.toMatch(/^(https?:)?\/\//i);
  });

  test('serves every asset it references itself, with the right content type', async () => {
    const assets = referencedAssets(await (await app.request(page)).text());
    expect(assets.length).toBeGreaterThan(0);
    for (const url of assets) {
      const res = await app.request(url);
      expect(res.status, url).toBe(200);
      const extension = /\.[a-z]+$/.exec(url)?.[0] ?? '';
      expect(res.headers.get('Content-Type'), url).toStartWith(EXPECTED_TYPE[extension] ?? '(unknown extension)');
      expect((await res.text()).length, url).toBeGreaterThan(1000);
    }
  });
});

describe('docs assets', () => {
  test('the served ReDoc bundle no longer fetches its logo from cdn.redoc.ly', async () => {
    const html = await (await app.request('/redoc')).text();
    const [bundle] = referencedAssets(html).filter((url) => url.endsWith('.js'));
    const res = await app.request(bundle ?? '(no script)');
    expect(res.status).toBe(200);
    expect(await res.text()).not.toContain('cdn.redoc.ly');
  });

  test('the ReDoc logo is served locally as SVG', async () => {
    const res = await app.request('/vendor/redoc/logo-mini.svg');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toStartWith('image/svg+xml');
  });

  test.each([
    '/vendor/swagger-ui-dist/package.json',
    '/vendor/../package.json',
    '/vendor/%2e%2e/package.json',
    '/vendor/swagger-ui-dist/..%2f..%2fpackage.json',
    '/vendor/redoc/package.json',
  ])('%s is 404 problem+json: only the listed files are reachable', async (path) => {
    await expectProblem(await app.request(path), 404);
  });
});
