/**
 * What generated clients (openapi-typescript, orval, Kiota) and /docs read from /openapi.json: a stable name
 * for every operation, one way to log in, described tags, named schemas, examples that are true to their
 * schemas, and for each route the failures that route really answers.
 */
import { describe, expect, test } from 'bun:test';
import { z } from 'zod';
import { PROBLEMS, type ProblemCode, problemType } from '../src/lib/problems';
import { bearer, createTestApp, loginAs, loginAsAdmin, postJson, registerUser, uniqueEmail } from './helpers';

type Schema = Record<string, unknown>;
interface MediaType {
  schema?: Schema;
  example?: unknown;
  examples?: Record<string, { value: unknown }>;
}
interface Operation {
  operationId?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; schema?: Schema; example?: unknown }[];
  requestBody?: { content: Record<string, MediaType> };
  responses: Record<string, { description: string; content?: Record<string, MediaType> }>;
}
interface Document {
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes: Record<string, Schema> };
}

const { app, deps } = await createTestApp();
const doc = (await (await app.request('/openapi.json')).json()) as Document;
const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, operation]) => ({ path, method, operation, name: `${method} ${path}` })),
);

/** A validator for a schema of this document: its `$ref`s resolve against components.schemas. */
function validatorFor(schema: Schema): z.ZodType {
  const local = (node: unknown) =>
    JSON.parse(JSON.stringify(node).replaceAll('"#/components/schemas/', '"#/$defs/')) as Schema;
  return z.fromJSONSchema({ ...local(schema), $defs: local(doc.components.schemas) } as never, {
    defaultTarget: 'draft-2020-12',
  });
}

/** Every `example` on a schema node, with the node it must satisfy; `where` names it for a failure message. */
function schemaExamples(schema: unknown, where: string): { where: string; schema: Schema; value: unknown }[] {
  if (schema === null || typeof schema !== 'object') return [];
  const node = schema as Schema;
  const found: { where: string; schema: Schema; value: unknown }[] = [];
  if ('example' in node) {
    const { example, ...rest } = node;
    found.push({ where, schema: rest, value: example });
  }
  for (const [key, child] of Object.entries((node.properties as Record<string, unknown>) ?? {})) {
    found.push(...schemaExamples(child, `${where}.${key}`));
  }
  if (node.items) found.push(...schemaExamples(node.items, `${where}[]`));
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    for (const [i, child] of ((node[key] as unknown[]) ?? []).entries()) {
      found.push(...schemaExamples(child, `${where}.${key}[${i}]`));
    }
  }
  return found;
}

/** Every example a reader of /docs sees: on media types (request and response bodies), parameters and schemas. */
function documentedExamples() {
  const found: { where: string; schema: Schema; value: unknown }[] = [];
  const ofMedia = (where: string, media: MediaType) => {
    if (!media.schema) return;
    if (media.example !== undefined) found.push({ where, schema: media.schema, value: media.example });
    for (const [name, { value }] of Object.entries(media.examples ?? {})) {
      found.push({ where: `${where} (${name})`, schema: media.schema, value });
    }
  };
  for (const { name, operation } of operations) {
    for (const [type, media] of Object.entries(operation.requestBody?.content ?? {}))
      ofMedia(`${name} body ${type}`, media);
    for (const [status, response] of Object.entries(operation.responses)) {
      for (const [type, media] of Object.entries(response.content ?? {})) ofMedia(`${name} ${status} ${type}`, media);
    }
    for (const parameter of operation.parameters ?? []) {
      if (parameter.example !== undefined && parameter.schema) {
        found.push({ where: `${name} ?${parameter.name}`, schema: parameter.schema, value: parameter.example });
      }
      found.push(...schemaExamples(parameter.schema, `${name} ?${parameter.name}`));
    }
  }
  for (const [schemaName, schema] of Object.entries(doc.components.schemas)) {
    found.push(...schemaExamples(schema, schemaName));
  }
  return found;
}

const isSuccess = (status: string) => status.startsWith('2');

describe('operations', () => {
  test('every operation has an operationId: unique, camelCase', () => {
    const ids = operations.map(({ operation }) => operation.operationId);
    for (const [i, id] of ids.entries()) expect(id, operations[i]?.name).toMatch(/^[a-z][a-zA-Z0-9]*$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('every operation has a tag, and every tag is declared with a description', () => {
    const declared = new Map((doc.tags ?? []).map((tag) => [tag.name, tag.description]));
    for (const { name, operation } of operations) {
      expect(operation.tags?.length, name).toBeGreaterThan(0);
      for (const tag of operation.tags ?? []) expect(declared.get(tag), `${name}: tag ${tag}`).toBeTruthy();
    }
  });

  test('every secured operation uses the one security scheme (optionally, where a token is optional)', () => {
    const schemes = Object.keys(doc.components.securitySchemes);
    expect(schemes).toHaveLength(1);
    const scheme = { [schemes[0] as string]: [] };
    for (const { name, operation } of operations.filter(({ operation }) => operation.security)) {
      // `{}` first is OpenAPI's "or no token at all": POST /email/verify/resend takes one or an address.
      const required = operation.security?.[0] && Object.keys(operation.security[0]).length > 0;
      expect(operation.security, name).toEqual(required ? [scheme] : [{}, scheme]);
    }
  });

  test('every request and response body is a named component schema', () => {
    for (const { name, operation } of operations) {
      const bodies = [
        ...Object.values(operation.requestBody?.content ?? {}),
        ...Object.values(operation.responses).flatMap((response) => Object.values(response.content ?? {})),
      ];
      for (const media of bodies) expect(media.schema?.$ref, name).toStartWith('#/components/schemas/');
    }
  });

  test('SessionsPublic is an array of the named SessionPublic, its items typed beside the $ref (for Swagger UI)', () => {
    expect(doc.components.schemas.SessionsPublic).toEqual({
      type: 'array',
      items: { $ref: '#/components/schemas/SessionPublic', type: 'object' },
    });
  });

  test('the 201 of POST /register shows a user who has not logged in yet', () => {
    const created = doc.paths['/register']?.post?.responses['201']?.content?.['application/json'];
    expect(created?.example).toMatchObject({ role: 'user', disabled: false, last_login_time: null });
  });
});

describe('examples', () => {
  test('the validator refuses an example that breaks its schema', () => {
    const user = validatorFor({ $ref: '#/components/schemas/UserPublic' });
    const example = doc.paths['/register']?.post?.responses['201']?.content?.['application/json']?.example;
    expect(user.safeParse(example).success).toBe(true);
    expect(user.safeParse({ ...(example as object), id: 'one' }).success).toBe(false);
    expect(user.safeParse({ ...(example as object), role: 'root' }).success).toBe(false);
    expect(validatorFor({ $ref: '#/components/schemas/Problem409' }).safeParse({ status: 409 }).success).toBe(false);
  });

  test('every documented example validates against its schema', () => {
    const examples = documentedExamples();
    expect(examples.length).toBeGreaterThan(50);
    const failures = examples
      .filter(({ schema, value }) => !validatorFor(schema).safeParse(value).success)
      .map(({ where, value }) => `${where}: ${JSON.stringify(value)}`);
    expect(failures).toEqual([]);
  });

  test("each error response shows one example per problem it declares, each of that response's status", () => {
    for (const { name, operation } of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (isSuccess(status)) continue;
        const examples = Object.entries(response.content?.['application/problem+json']?.examples ?? {});
        expect(examples.length, `${name} ${status}`).toBeGreaterThan(0);
        for (const [code, { value }] of examples) {
          const problem = value as { type: string; status: number };
          expect(PROBLEMS[code as ProblemCode]?.status as number, `${name} ${status} ${code}`).toBe(Number(status));
          expect(problem.status, `${name} ${status} ${code}`).toBe(Number(status));
          expect(problem.type, `${name} ${status} ${code}`).toBe(problemType(code as ProblemCode));
        }
      }
    }
  });

  test('the bearer routes document the bearer failures, not the login failure', () => {
    const unauthorized = doc.paths['/users/me']?.get?.responses['401']?.content?.['application/problem+json'];
    expect(Object.keys(unauthorized?.examples ?? {}).sort()).toEqual(['invalid-access-token', 'not-authenticated']);
    const login = doc.paths['/token']?.post?.responses['401']?.content?.['application/problem+json'];
    expect(Object.keys(login?.examples ?? {})).toContain('invalid-credentials');
  });
});

describe('documented failures are the real ones', () => {
  /** The actual answer must be a status the route documents, and one of the problems it lists for it. */
  async function expectDocumented(method: string, path: string, res: Response) {
    const operation = doc.paths[path]?.[method];
    expect(operation, `${method} ${path}`).toBeDefined();
    const body = (await res.json()) as { type: string };
    const examples = operation?.responses[String(res.status)]?.content?.['application/problem+json']?.examples ?? {};
    const where = `${method} ${path} answered ${res.status} ${body.type}`;
    expect(
      Object.values(examples).some(({ value }) => (value as { type: string }).type === body.type),
      where,
    ).toBe(true);
  }

  test('every secured operation, called without a token, answers a 401 it documents', async () => {
    const secured = operations.filter(({ operation }) => operation.security);
    expect(secured.length).toBeGreaterThan(5);
    for (const { method, path } of secured) {
      const url = path.replace('{id}', path.includes('sessions') ? crypto.randomUUID() : '1');
      await expectDocumented(method, path, await app.request(url, { method: method.toUpperCase() }));
    }
  });

  test('every operation with a JSON body answers malformed JSON with a 400 it documents', async () => {
    const { token } = await loginAs(app);
    const withJson = operations.filter(({ operation }) => operation.requestBody?.content['application/json']);
    expect(withJson.length).toBeGreaterThan(3);
    for (const { method, path } of withJson) {
      const res = await app.request(path.replace('{id}', '1'), {
        method: method.toUpperCase(),
        headers: { ...bearer(token), 'Content-Type': 'application/json' },
        body: '{"email":',
      });
      await expectDocumented(method, path, res);
    }
  });

  test('the failures particular to each route are among its documented ones', async () => {
    const user = await loginAs(app);
    const admin = await loginAsAdmin(app, deps);
    const taken = (await registerUser(app)).email;
    const form = (fields: Record<string, string>) => ({ method: 'POST', body: new URLSearchParams(fields) });
    const cases: [method: string, path: string, res: Response | Promise<Response>][] = [
      ['post', '/register', postJson(app, '/register', { email: taken, password: 'a fine passphrase' })],
      ['post', '/register', postJson(app, '/register', { email: 'not an email', password: 'x' })],
      ['post', '/token', app.request('/token', form({ username: taken, password: 'not the password' }))],
      ['post', '/token', app.request('/token', form({ grant_type: 'client_credentials' }))],
      ['post', '/token', app.request('/token', form({ grant_type: 'refresh_token', refresh_token: 'x.y' }))],
      [
        'put',
        '/users/me/password',
        app.request('/users/me/password', {
          method: 'PUT',
          headers: { ...bearer(user.token), 'Content-Type': 'application/json' },
          body: JSON.stringify({ current_password: 'not the password', new_password: 'a new passphrase' }),
        }),
      ],
      [
        'delete',
        '/users/me/sessions/{id}',
        app.request(`/users/me/sessions/${crypto.randomUUID()}`, { method: 'DELETE', headers: bearer(user.token) }),
      ],
      ['get', '/users', app.request('/users', { headers: bearer(user.token) })],
      ['get', '/users/{id}', app.request('/users/2147483647', { headers: bearer(admin.token) })],
      ['get', '/users/{id}', app.request('/users/abc', { headers: bearer(admin.token) })],
      [
        'patch',
        '/users/{id}',
        app.request(`/users/${admin.user.id}`, {
          method: 'PATCH',
          headers: { ...bearer(admin.token), 'Content-Type': 'application/json' },
          body: JSON.stringify({ role: 'root' }),
        }),
      ],
      ['get', '/audit', app.request('/audit?limit=1000', { headers: bearer(admin.token) })],
      [
        'post',
        '/bootstrap/admin',
        postJson(app, '/bootstrap/admin', { token: 'guessed', email: uniqueEmail(), password: 'a fine passphrase' }),
      ],
    ];
    for (const [method, path, res] of cases) await expectDocumented(method, path, await res);
  });
});
