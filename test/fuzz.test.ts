/**
 * Property-based fuzzing of the whole HTTP surface (fast-check): random and hostile bodies, headers, paths and
 * query strings at every endpoint, anonymous and with a valid user or admin token. Whatever arrives, the answer
 * is below 500, every non-2xx is RFC 9457 problem+json whose `status` matches, the contract's headers are there,
 * no hash leaves the service and no request hangs.
 *
 * fast-check prints the seed and the shrunk counterexample of a failure; replay it with
 * `FUZZ_SEED=<seed> bun test test/fuzz.test.ts`, or run longer with `FUZZ_RUNS=5000`.
 */
import { describe, expect, test } from 'bun:test';
import fc from 'fast-check';
import { sign } from 'hono/jwt';
import {
  createTestApp,
  decodeJwt,
  loginAs,
  loginAsAdmin,
  loginSession,
  registerUser,
  TEST_BASE_URL,
  TEST_PASSWORD,
  TEST_SECRET_KEY,
  uniqueEmail,
} from './helpers';

const REQUEST_LIMIT_MS = 5_000;
const RUNS = Number(process.env.FUZZ_RUNS) || 300;
const CONTROL_IN_PATH = /%(?:[01][0-9a-f]|7f)/i;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const PROPERTY_TIMEOUT_MS = 60_000;
const BODY_LIMIT_BYTES = 64 * 1024;

const { app, deps } = await createTestApp();
const user = await loginAs(app);
const admin = await loginAsAdmin(app, deps);
// The only account the admin fuzzing may disable, demote or delete; the fuzzers' own accounts are spared.
const victim = await registerUser(app);
// Logs out (and so ends its session) on every successful POST /logout: it gets a fresh session each time.
const leaver = await registerUser(app);
const userClaims = decodeJwt(user.token).payload as { sub: string; sid: string; iss: string; aud: string };
const adminSid = String(decodeJwt(admin.token).payload.sid);
const PROTECTED_IDS = new Set([user.user.id, admin.user.id, leaver.user.id]);

type Auth = 'none' | 'user' | 'admin' | 'leaver';
interface Endpoint {
  method: string;
  path: string;
  auth: Auth;
  body?: 'json' | 'form';
}

interface Operation {
  security?: unknown[];
  tags?: string[];
  requestBody?: { content: Record<string, unknown> };
}
const doc = (await (await app.request('/openapi.json')).json()) as {
  paths: Record<string, Record<string, Operation>>;
};

/** Who calls an operation: its tag and security say (POST /logout gets a session of its own to end). */
function authOf(path: string, operation: Operation): Auth {
  if (path === '/logout') return 'leaver';
  if (!operation.security) return 'none';
  return operation.tags?.includes('admin') ? 'admin' : 'user';
}

/** Every operation of the OpenAPI document, so a route is fuzzed from the day it is added; and the docs pages. */
const ENDPOINTS: Endpoint[] = [
  ...Object.entries(doc.paths).flatMap(([path, operations]) =>
    Object.entries(operations).map(([method, operation]) => ({
      method: method.toUpperCase(),
      // A session's id is a UUID (sessionSegment), a user's an integer (userIdSegment).
      path: path.startsWith('/users/me/sessions/') ? path.replace('{id}', '{session}') : path,
      auth: authOf(path, operation),
      body: operation.requestBody
        ? 'application/x-www-form-urlencoded' in operation.requestBody.content
          ? ('form' as const)
          : ('json' as const)
        : undefined,
    })),
  ),
  { method: 'GET', path: '/openapi.json', auth: 'none' },
  { method: 'GET', path: '/docs', auth: 'none' },
  { method: 'GET', path: '/redoc', auth: 'none' },
];

// ---------------------------------------------------------------------------------------------------------------
// Sending and checking

interface FuzzRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: RequestInit['body'];
  /** Which valid token to send, if the request has no Authorization of its own. */
  auth?: Auth;
}

let responses = 0;
const statuses = new Map<number, number>();

async function tokenFor(auth: Auth | undefined): Promise<string | undefined> {
  if (auth === 'user') return user.token;
  if (auth === 'admin') return admin.token;
  if (auth === 'leaver') return (await loginSession(app, leaver.email, TEST_PASSWORD)).token;
  return undefined;
}

function describeRequest(req: FuzzRequest): string {
  const body =
    req.body === undefined || req.body === null
      ? ''
      : typeof req.body === 'string'
        ? ` body=${JSON.stringify(req.body.slice(0, 300))}${req.body.length > 300 ? `… (${req.body.length} chars)` : ''}`
        : ` body=<${req.body.constructor.name}>`;
  return `${req.method} ${req.path.slice(0, 300)} headers=${JSON.stringify(req.headers ?? {})} auth=${req.auth}${body}`;
}

/** Sends one request and asserts everything the contract promises about any response. */
async function sendAndCheck(req: FuzzRequest): Promise<Response> {
  const headers = new Headers(req.headers);
  const token = headers.has('Authorization') ? undefined : await tokenFor(req.auth);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${REQUEST_LIMIT_MS} ms`)), REQUEST_LIMIT_MS);
  });
  let res: Response;
  try {
    res = await Promise.race([app.request(req.path, { method: req.method, headers, body: req.body }), hung]);
  } catch (error) {
    throw new Error(`${describeRequest(req)}: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  responses++;
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  const text = await res.clone().text();
  const fail = (why: string) => {
    throw new Error(
      `${describeRequest(req)}\n→ ${res.status} ${res.headers.get('Content-Type')}: ${why}\n${text.slice(0, 500)}`,
    );
  };
  if (res.status >= 500) fail('a 5xx for client input');
  if (res.headers.get('X-Content-Type-Options') !== 'nosniff') fail('no X-Content-Type-Options: nosniff');
  if (!res.headers.get('X-Request-Id')) fail('no X-Request-Id');
  if (/\$2[aby]\$\d\d\$/.test(text)) fail('a bcrypt hash in the response');
  if (res.status < 200 || res.status >= 300) {
    if (!res.headers.get('Content-Type')?.startsWith('application/problem+json')) fail('not problem+json');
    if (req.method === 'HEAD') return res;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
    } catch {
      return fail('problem body is not JSON');
    }
    if (typeof body.type !== 'string' || typeof body.title !== 'string' || typeof body.detail !== 'string') {
      fail('missing type/title/detail');
    }
    if (body.status !== res.status) fail(`body status ${body.status} is not the response status`);
    if (/\n\s+at\s/.test(String(body.detail))) fail('a stack trace in detail');
  }
  return res;
}

const run = <Ts extends unknown[]>(property: fc.IAsyncPropertyWithHooks<Ts>, numRuns = RUNS) =>
  fc.assert(property, { numRuns, seed: SEED });

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

/** Values a header can carry at all (fetch refuses NUL, CR, LF and code points past U+00FF). */
/** Percent-encoding that survives lone surrogates (sent as U+FFFD, as a browser would). */
const encode = (s: string) => encodeURIComponent(s.toWellFormed());

const isHeaderSafe = (value: string) => /^[\t\x20-\x7e\x80-\xff]*$/.test(value);
const headerValue = fc.string({ unit: 'binary-ascii', maxLength: 200 }).filter(isHeaderSafe);

const SQLISH = [
  "' OR '1'='1",
  "admin'--",
  "'; DROP TABLE users; --",
  '1; SELECT pg_sleep(10)',
  "' UNION SELECT password_hash FROM users --",
  '%',
  '_',
  '\\',
  "\\'",
  '$1',
  '$$',
  "E'\\x00'",
  'NULL',
  '1e309',
];
const HOSTILE_STRINGS = [
  ...SQLISH,
  '',
  ' ',
  '\u0000',
  'a\u0000b@example.com',
  '\u0007\u001b[31m',
  '\u202e\u200b\ufeff',
  '\ud800',
  '\udfff\ud800',
  '😀'.repeat(40),
  'é'.repeat(37),
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  '<script>alert(1)</script>',
  '../../etc/passwd',
  '{{7*7}}',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell probe, literally
  '${jndi:ldap://x}',
  'a'.repeat(1025),
  'ADMIN@EXAMPLE.COM',
  `${'a'.repeat(64)}@${'b'.repeat(190)}.com`,
];
/** Characters that break naive code: NUL and other controls, lone surrogates, quotes, wildcards, escapes. */
const SPIKES = [
  '\u0000',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u2028',
  '\ud800',
  '\udc00',
  "'",
  '"',
  '%',
  '_',
  '\\',
  '\n',
];
/** A plausible value (an email, a word) with a few of those characters spliced in. */
const spiked = fc
  .tuple(
    fc.oneof(fc.emailAddress(), fc.string({ maxLength: 20 })),
    fc.array(fc.tuple(fc.nat(), fc.constantFrom(...SPIKES)), { minLength: 1, maxLength: 3 }),
  )
  .map(([base, spikes]) =>
    spikes.reduce((s, [at, spike]) => s.slice(0, at % (s.length + 1)) + spike + s.slice(at % (s.length + 1)), base),
  );
const hostileString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: spiked },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.emailAddress() },
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 31, 2 ** 53, -0, [], {}),
);

const utf8 = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
};
const INVALID_UTF8 = [
  [0xff],
  [0xc3, 0x28],
  [0xe2, 0x28, 0xa1],
  [0xed, 0xa0, 0x80],
  [0xf0, 0x28, 0x8c, 0x28],
  [0xc0, 0xaf],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0x80],
].map((bytes) => new Uint8Array(bytes));

/** A JSON object with the fields an endpoint reads, each one hostile or absent, plus stray and pollution keys. */
const jsonObjectText = fc
  .record(
    {
      email: hostileValue,
      password: hostileValue,
      current_password: hostileValue,
      new_password: hostileValue,
      role: fc.oneof(fc.constantFrom('user', 'admin', 'root', 'ADMIN', ''), hostileValue),
      disabled: fc.oneof(fc.boolean(), hostileValue),
      extra: hostileValue,
    },
    { requiredKeys: [] },
  )
  .chain((fields) =>
    fc
      .subarray([
        '"__proto__": {"role": "admin", "isAdmin": true, "polluted": 1}',
        '"constructor": {"prototype": {"polluted": 1}}',
        '"__proto__": null',
        '"prototype": {"polluted": 1}',
        '"email": "dup@example.com"',
      ])
      .map((keys) => {
        const base = JSON.stringify(fields);
        if (keys.length === 0) return base;
        return base === '{}' ? `{${keys.join(',')}}` : `{${keys.join(',')},${base.slice(1)}`;
      }),
  );

const deepJson = fc
  .record({ depth: fc.integer({ min: 50, max: 30_000 }), kind: fc.constantFrom('array', 'object', 'unclosed') })
  .map(({ depth, kind }) =>
    kind === 'array'
      ? `${'['.repeat(depth)}${']'.repeat(depth)}`
      : kind === 'object'
        ? `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
        : '['.repeat(depth),
  );

/** Strings around the body limit: just under it (a 4xx for the content) and just over it (413). */
const hugeJson = fc
  .record({
    size: fc.integer({ min: BODY_LIMIT_BYTES - 2_000, max: BODY_LIMIT_BYTES + 2_000 }),
    field: fc.constantFrom('email', 'password', 'junk'),
  })
  .map(({ size, field }) => {
    const skeleton = JSON.stringify({ email: 'big@example.com', password: 'a fine passphrase', [field]: '' });
    return skeleton.replace(`"${field}":""`, `"${field}":"${'x'.repeat(Math.max(0, size - skeleton.length))}"`);
  });

const invalidUtf8Json = fc
  .tuple(fc.constantFrom(...INVALID_UTF8), fc.constantFrom('email', 'password', 'new_password', 'username'))
  .map(([bytes, field]) =>
    concat(utf8(`{"${field}":"a`), bytes, utf8('b@example.com","password":"a fine passphrase"}')),
  );

const weirdJsonText = fc.constantFrom(
  '',
  ' ',
  'null',
  '[]',
  '"string"',
  '1e999',
  '-0',
  'true',
  '{',
  '{"email":}',
  '{"email": "a@b.c",}',
  '\ufeff{"email":"a@b.co","password":"a fine passphrase"}',
  '{"email":"a@b.co","password":"a fine passphrase"}garbage',
  '{"email":"\\u0000@b.co","password":"a\\u0000fine passphrase"}',
  '{"email":"\\ud800@b.co","password":"\\udfff fine passphrase"}',
  '{"email":"a@b.co","email":"b@b.co","password":"a fine passphrase"}',
);

const jsonBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: jsonObjectText },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: deepJson },
  { weight: 1, arbitrary: hugeJson },
  { weight: 1, arbitrary: invalidUtf8Json },
  { weight: 1, arbitrary: weirdJsonText },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
);

/** The token form's own fields (each hostile or absent) plus stray ones. */
/** Usually there, sometimes missing: a field the form needs. */
const usually = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 5 });
/** Usually missing, sometimes there: a field that changes the grant (and so skips the password path). */
const rarely = <T>(arb: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
const formFields = fc
  .tuple(
    fc.record({
      username: usually(
        fc.oneof({ weight: 4, arbitrary: hostileString }, { weight: 1, arbitrary: fc.constant(user.email) }),
      ),
      password: usually(
        fc.oneof({ weight: 4, arbitrary: hostileString }, { weight: 1, arbitrary: fc.constant(TEST_PASSWORD) }),
      ),
      grant_type: rarely(fc.oneof(fc.constantFrom('password', 'refresh_token', 'PASSWORD', ''), hostileString)),
      refresh_token: rarely(fc.oneof(fc.constant(user.refreshToken.replace(/.$/, 'x')), hostileString)),
      scope: rarely(hostileString),
    }),
    fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor'), hostileString), hostileString, { maxKeys: 2 }),
  )
  .map(([known, stray]) => {
    const fields: Record<string, string> = { ...stray };
    for (const [key, value] of Object.entries(known)) if (value !== undefined) fields[key] = value;
    return fields;
  });

const urlencodedBody = fc.oneof(
  formFields.map((fields) => new URLSearchParams(fields).toString()),
  fc.constantFrom(
    'username=a%40b.co&password=%',
    'username=%E0%A4%A&password=x',
    'username=a&username=b&password=x',
    'grant_type=refresh_token&refresh_token=.',
    'grant_type=refresh_token&refresh_token=00000000-0000-0000-0000-000000000000.x',
    'grant_type=client_credentials',
    '&&&==&',
    'username=%00&password=%00%00%00%00%00%00%00%00',
  ),
  fc.string({ unit: 'binary', maxLength: 200 }),
);

const BOUNDARY = '----fuzzboundary';
const multipartText = fc.record({
  fields: formFields,
  terminated: fc.boolean(),
  crlf: fc.boolean(),
  header: fc.oneof(
    { weight: 4, arbitrary: fc.constant((name: string) => `Content-Disposition: form-data; name="${name}"`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        (name: string) =>
          `Content-Disposition: form-data; name="${name}"; filename="x.txt"\r\nContent-Type: text/plain`,
        (name: string) => `Content-Disposition: form-data; name=${name}`,
        () => 'Content-Disposition: attachment',
        () => '',
      ),
    },
  ),
});
const multipartBody = multipartText.map(({ fields, terminated, crlf, header }) => {
  const eol = crlf ? '\r\n' : '\n';
  const parts = Object.entries(fields).map(([k, v]) => `--${BOUNDARY}${eol}${header(k)}${eol}${eol}${v}${eol}`);
  return `${parts.join('')}${terminated ? `--${BOUNDARY}--${eol}` : ''}`;
});

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/problem+json',
  'application/merge-patch+json',
  'application/vnd.api+json',
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'multipart/form-data',
  'multipart/form-data; boundary=',
  `multipart/form-data; boundary=${BOUNDARY}`,
  `multipart/form-data; boundary="${BOUNDARY}"`,
  'multipart/form-data; boundary=wrong',
  `multipart/form-data; boundary=${'b'.repeat(300)}`,
  'multipart/mixed; boundary=x',
  'text/plain',
  'text/html',
  'application/xml',
  'application/octet-stream',
  '*/*',
  '',
  ';',
  'application/',
  'json',
];
const contentType = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: headerValue },
  { weight: 1, arbitrary: headerValue.map((b) => `multipart/form-data; boundary=${b}`) },
);

/** A body with the content type it claims to be; the fuzz then keeps, drops or swaps that type. */
const typedBody = fc.oneof(
  jsonBody.map((body) => ({ body, type: 'application/json' })),
  urlencodedBody.map((body) => ({ body, type: 'application/x-www-form-urlencoded' })),
  multipartBody.map((body) => ({ body, type: `multipart/form-data; boundary=${BOUNDARY}` })),
);

const b64url = (value: string | Uint8Array) => Buffer.from(value).toString('base64url');
const b64urlSegment = fc.uint8Array({ maxLength: 120 }).map(b64url);
const now = () => Math.floor(deps.clock.now().getTime() / 1000);

/** Tokens a client could forge without the key: random triples, alg none, other algorithms, a wrong key. */
const forgedToken: fc.Arbitrary<() => Promise<string>> = fc.oneof(
  fc.tuple(b64urlSegment, b64urlSegment, b64urlSegment).map((parts) => async () => parts.join('.')),
  fc.constantFrom('none', 'None', 'NONE', 'nOnE', '').map((alg) => async () => {
    const header = b64url(JSON.stringify({ alg, typ: 'JWT' }));
    const payload = b64url(JSON.stringify({ ...userClaims, exp: now() + 600 }));
    return `${header}.${payload}.`;
  }),
  fc.constantFrom('HS384', 'HS512').map((alg) => async () => {
    const payload = { ...userClaims, iat: now(), nbf: now(), exp: now() + 600, jti: crypto.randomUUID() };
    return sign(payload, TEST_SECRET_KEY, alg as 'HS384' | 'HS512');
  }),
  fc.string({ minLength: 32, maxLength: 40 }).map((key) => async () => {
    const payload = { ...userClaims, iat: now(), nbf: now(), exp: now() + 600, jti: crypto.randomUUID() };
    return sign(payload, key, 'HS256');
  }),
  // Never the last character: its low bits are base64 padding, and flipping them can leave the signature intact.
  fc.nat({ max: user.token.length - 2 }).map((i) => async () => {
    const c = user.token[i] === 'A' ? 'B' : 'A';
    return `${user.token.slice(0, i)}${c}${user.token.slice(i + 1)}`;
  }),
);

const authorization = fc.oneof(
  headerValue,
  forgedToken.map((make) => async () => `Bearer ${await make()}`),
  fc.constantFrom(
    'Bearer',
    'Bearer ',
    'bearer  x',
    'Basic dXNlcjpwYXNz',
    'Bearer a.b.c d.e.f',
    `Bearer ${'a'.repeat(5000)}`,
    `Token ${user.token}`,
  ),
);

// ---------------------------------------------------------------------------------------------------------------
// Paths

const userIdSegment = fc.oneof(
  fc.constant(String(victim.user.id)),
  fc.integer({ min: -5, max: 2 ** 31 + 5 }).map((n) => String(PROTECTED_IDS.has(n) ? victim.user.id : n)),
  fc.constantFrom('0', '-1', '1.5', '1e3', '0x10', '2147483648', '99999999999999999999', 'NaN', 'me', '%20', '1%00'),
  hostileString.map(encode),
);
const sessionSegment = fc.oneof(
  fc.uuid().map(String),
  fc.constant(adminSid),
  fc.constant(adminSid.toUpperCase()),
  hostileString.map(encode),
);

function concretePath(endpoint: Endpoint, id: string, session: string): string {
  return endpoint.path.replace('{id}', id).replace('{session}', session);
}

const HOSTILE_PATHS = [
  '/%2e%2e/%2e%2e/etc/passwd',
  '/users/%2e%2e/audit',
  '/users/me/..%2f..%2faudit',
  '/vendor/..%2f..%2fpackage.json',
  '/vendor/%2e%2e/%2e%2e/package.json',
  '/vendor/swagger-ui-dist/..%2f..%2f..%2fpackage.json',
  '/vendor/__proto__',
  '/vendor/constructor',
  '/%00',
  '/users/%00',
  '/%',
  '/%zz',
  '/%E0%A4%A',
  '/users/%E0%A4%A',
  '/users/me/sessions/%E0%A4%A',
  '/vendor/%E0%A4%A',
  '/users/%C0%AF',
  '/users/me/sessions/%ED%A0%80',
  '/register%00',
  '/REGISTER',
  '/register/',
  '//register',
  '/users//me',
  '/users/me/',
  '/docs/',
  '/openapi.json/',
  `/${'a'.repeat(10_000)}`,
  `/users/${'9'.repeat(5_000)}`,
  `/users/me/sessions/${'%41'.repeat(3_000)}`,
  '/пользователи/я',
  '/users/%F0%9F%98%80',
];
// TRACE only in-process: the Fetch standard forbids it in fetch(), so over real HTTP (the cross-runtime
// suite) clients mangle it (Bun's fetch drops the body; wrangler's dev proxy answers garbage).
const METHODS = [
  'GET',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'HEAD',
  'PROPFIND',
  ...(TEST_BASE_URL ? [] : ['TRACE']),
];

const randomPath = fc.oneof(
  fc.constantFrom(...HOSTILE_PATHS),
  fc.webPath(),
  fc.array(fc.webSegment(), { minLength: 1, maxLength: 6 }).map((s) => `/${s.join('/')}`),
  fc
    .tuple(
      fc.constantFrom('/users', '/users/me', '/users/me/sessions', '/vendor', '/docs', '/audit', '/token'),
      fc.oneof(hostileString.map(encode), fc.webSegment(), fc.string({ unit: 'grapheme', maxLength: 20 })),
    )
    .map(([prefix, segment]) => `${prefix}/${segment}`),
  fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => `/${encode(s)}`),
);

/** A random segment may spell the id of a fuzzing account: aim admin writes at the victim instead. */
const spareProtected = (path: string) =>
  path.replace(/^\/users\/0*(\d+)(?=$|[/?#])/, (whole, id: string) =>
    PROTECTED_IDS.has(Number(id)) ? `/users/${victim.user.id}` : whole,
  );

const isRequestablePath = (path: string) => {
  try {
    new URL(path, 'http://localhost');
    return true;
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Query strings

const queryString = fc.oneof(
  fc.webQueryParameters(),
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom('limit', 'offset', 'user_id', 'all', 'email', 'limit[]', '__proto__', 'constructor'),
          hostileString,
        ),
        fc.oneof(
          fc.constantFrom(
            '-1',
            '0',
            '1',
            '100',
            '101',
            '1e3',
            '1e309',
            'NaN',
            'Infinity',
            '0x10',
            '99999999999999999999',
            'true',
            'TRUE',
            '',
            '%',
            '%00',
            '%E0%A4%A',
          ),
          hostileString,
        ),
      ),
      { maxLength: 6 },
    )
    .map((pairs) => pairs.map(([k, v]) => `${encode(k)}=${v.startsWith('%') ? v : encode(v)}`).join('&')),
  fc.constantFrom(
    'limit=1&limit=2',
    'a=1&&&b',
    '=&=',
    '%',
    `q=${'x'.repeat(8_000)}`,
    'email=%25',
    'email=\\',
    'all=true&all=false',
  ),
);

// ---------------------------------------------------------------------------------------------------------------

describe('fuzzing every endpoint', () => {
  test(
    'random and malicious bodies under random content types never get a 5xx or a non-problem error',
    async () => {
      await run(
        fc.asyncProperty(
          // Mostly the endpoints that read a body; every other one gets bodies too.
          fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom(...ENDPOINTS.filter((e) => e.body)) },
            { weight: 1, arbitrary: fc.constantFrom(...ENDPOINTS) },
          ),
          fc.option(typedBody, { nil: undefined, freq: 6 }),
          fc.oneof(
            { weight: 3, arbitrary: fc.constant('matching' as const) },
            { weight: 2, arbitrary: contentType },
            { weight: 1, arbitrary: fc.constant(undefined) },
          ),
          fc.constantFrom<Auth | 'endpoint'>('endpoint', 'endpoint', 'endpoint', 'none', 'user'),
          userIdSegment,
          sessionSegment,
          async (endpoint, typed, typeChoice, auth, id, session) => {
            // GET and HEAD cannot carry a body in fetch; the body still reaches every other method.
            const method = endpoint.method;
            const sendBody = method === 'GET' || method === 'HEAD' ? undefined : typed?.body;
            const type = typeChoice === 'matching' ? typed?.type : typeChoice;
            await sendAndCheck({
              method,
              path: concretePath(endpoint, id, session),
              headers: type === undefined ? {} : { 'Content-Type': type },
              body: sendBody as RequestInit['body'] | undefined,
              auth:
                auth === 'endpoint' ? endpoint.auth : auth === 'user' && endpoint.auth === 'leaver' ? 'leaver' : auth,
            });
          },
        ),
        RUNS * 2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  test(
    'login forms at POST /token: urlencoded, multipart with good and bad boundaries, FormData',
    async () => {
      const formData = formFields.map((fields) => {
        const form = new FormData();
        for (const [key, value] of Object.entries(fields)) form.append(key, value);
        return form;
      });
      await run(
        fc.asyncProperty(
          fc.oneof(
            urlencodedBody.map((body) => ({ body, type: 'application/x-www-form-urlencoded' })),
            multipartBody.map((body) => ({ body, type: `multipart/form-data; boundary=${BOUNDARY}` })),
            // fetch writes the boundary itself: the fields are the only thing wrong.
            formData.map((body) => ({ body, type: undefined })),
          ),
          fc.option(contentType, { nil: undefined, freq: 4 }),
          async ({ body, type }, otherType) => {
            const sentType = otherType ?? type;
            await sendAndCheck({
              method: 'POST',
              path: '/token',
              headers: sentType === undefined ? {} : { 'Content-Type': sentType },
              body,
            });
          },
        ),
      );
      // A well-formed multipart form built by fetch itself logs in, so the property above really parses forms.
      const form = new FormData();
      form.set('username', user.email);
      form.set('password', TEST_PASSWORD);
      expect((await sendAndCheck({ method: 'POST', path: '/token', body: form })).status).toBe(200);
    },
    PROPERTY_TIMEOUT_MS,
  );

  test(
    'random headers: Content-Type, Authorization (forged, alg none, wrong key, garbage), X-Request-Id, Accept',
    async () => {
      await run(
        fc.asyncProperty(
          fc.constantFrom(...ENDPOINTS),
          fc.option(authorization, { nil: undefined }),
          fc.option(contentType, { nil: undefined }),
          fc.option(headerValue, { nil: undefined }),
          fc.option(fc.oneof(headerValue, fc.constantFrom('application/xml', '*/*', 'text/html;q=0')), {
            nil: undefined,
          }),
          userIdSegment,
          sessionSegment,
          fc.option(jsonObjectText, { nil: undefined }),
          async (endpoint, auth, type, requestId, accept, id, session, body) => {
            const headers: Record<string, string> = {};
            if (auth !== undefined) headers.Authorization = typeof auth === 'string' ? auth : await auth();
            if (type !== undefined) headers['Content-Type'] = type;
            if (requestId !== undefined) headers['X-Request-Id'] = requestId;
            if (accept !== undefined) headers.Accept = accept;
            const path = concretePath(endpoint, id, session);
            const res = await sendAndCheck({
              method: endpoint.method,
              path,
              headers,
              body: endpoint.body ? body : undefined,
              auth: endpoint.auth,
            });
            // No forged or garbled Authorization header ever authenticates (404: an empty path segment; 400:
            // a path with an encoded control character, which nginx refuses before any instance sees it).
            const unauthenticated = CONTROL_IN_PATH.test(path) ? [400, 401, 404] : [401, 404];
            if (auth !== undefined && endpoint.auth !== 'none') expect(unauthenticated).toContain(res.status);
          },
        ),
        RUNS * 2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  test(
    'tokens signed with the real key but one to three hostile claims are refused or honoured, never a 5xx',
    async () => {
      // Only a holder of SECRET_KEY can make these; they stand for tokens of an older version or of another
      // service sharing the key. Each starts as the fuzzing user's valid token and has a few claims replaced.
      const REMOVED = Symbol('removed');
      const claim = fc.oneof(
        fc.constantFrom(
          REMOVED,
          null,
          0,
          -1,
          1.5,
          2 ** 31,
          2 ** 31 - 1,
          9_999_999_999,
          1e308,
          '0',
          '-1',
          '01',
          '2147483647',
          '2147483648',
          '9999999999',
          '1e3',
          ' 1',
          'NaN',
          [],
          {},
          true,
        ),
        hostileString,
        fc.uuid().map(String),
      );
      const CLAIMS = ['sub', 'sid', 'exp', 'nbf', 'iat', 'jti', 'iss', 'aud', 'role'] as const;
      // Ids and times near the edges of what the database columns and JSON numbers hold, for the claims that
      // become query parameters or are compared with the clock.
      const idLike = fc.oneof(
        fc.nat().map(String),
        fc.bigInt({ min: 2n ** 31n - 2n, max: 10n ** 10n }).map(String), // past PostgreSQL's integer
        fc.bigInt({ min: 0n, max: 10n ** 20n }).map(String),
        fc.constantFrom('2147483647', '2147483648', '4294967296', '9999999999'),
      );
      const timeLike = fc.oneof(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.double());
      const hostileFor = (name: (typeof CLAIMS)[number]) =>
        name === 'sub'
          ? fc.oneof(idLike, claim)
          : name === 'exp' || name === 'nbf' || name === 'iat'
            ? fc.oneof(timeLike, claim)
            : claim;
      const overrides = fc
        .uniqueArray(fc.constantFrom(...CLAIMS), { minLength: 1, maxLength: 3 })
        .chain((names) => fc.tuple(...names.map((name) => fc.tuple(fc.constant(name), hostileFor(name)))));
      await run(
        fc.asyncProperty(
          // Not /logout: a token with the user's own sub and sid is valid and would end the fuzzers' session.
          fc.constantFrom(...ENDPOINTS.filter((e) => e.auth !== 'none' && e.auth !== 'leaver')),
          overrides,
          userIdSegment,
          sessionSegment,
          async (endpoint, changes, id, session) => {
            const claims: Record<string, unknown> = {
              ...userClaims,
              iat: now(),
              nbf: now(),
              exp: now() + 600,
              jti: crypto.randomUUID(),
            };
            for (const [name, value] of changes) {
              if (value === REMOVED) delete claims[name];
              else claims[name] = value;
            }
            const token = await sign(claims, TEST_SECRET_KEY, 'HS256');
            await sendAndCheck({
              method: endpoint.method,
              path: concretePath(endpoint, id, session),
              headers: { Authorization: `Bearer ${token}` },
            });
          },
        ),
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  test(
    'random paths (encoded traversal, broken percent-encoding, very long, unicode) under every method',
    async () => {
      await run(
        fc.asyncProperty(
          fc.constantFrom(...METHODS),
          randomPath.filter(isRequestablePath),
          fc.constantFrom<Auth>('none', 'user', 'admin'),
          async (method, path, auth) => {
            const res = await sendAndCheck({ method, path: spareProtected(path), auth });
            // Nothing outside the docs assets is ever served from disk.
            if (res.status === 200) expect(await res.clone().text()).not.toContain('"devDependencies"');
          },
        ),
        RUNS * 2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  test(
    'random and hostile query strings at every endpoint',
    async () => {
      await run(
        fc.asyncProperty(
          fc.constantFrom(...ENDPOINTS),
          queryString,
          userIdSegment,
          sessionSegment,
          async (e, q, id, s) => {
            await sendAndCheck({
              method: e.method,
              path: `${concretePath(e, id, s)}?${q}`,
              headers: e.body === 'json' ? { 'Content-Type': 'application/json' } : {},
              body: e.body === 'json' ? '{}' : undefined,
              auth: e.auth,
            });
          },
        ),
        RUNS * 2,
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  test('registration with prototype-pollution keys creates a plain user and pollutes nothing', async () => {
    const email = uniqueEmail('proto');
    const body = `{"__proto__": {"role": "admin", "polluted": 1}, "constructor": {"prototype": {"polluted": 1}}, "role": "admin", "email": "${email}", "password": "a fine passphrase"}`;
    const res = await sendAndCheck({
      method: 'POST',
      path: '/register',
      headers: { 'Content-Type': 'application/json' },
      body,
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { role: string }).role).toBe('user');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).role).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  test('after all that, the fuzzers were really authenticated, and nothing polluted Object.prototype', async () => {
    expect((await sendAndCheck({ method: 'GET', path: '/users/me', auth: 'user' })).status).toBe(200);
    expect((await sendAndCheck({ method: 'GET', path: '/users', auth: 'admin' })).status).toBe(200);
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(responses).toBeGreaterThan(RUNS * 5);
    // Every kind of answer was reached: successes, validation failures, auth failures, size limits.
    for (const status of [200, 400, 401, 404, 422]) expect(statuses.get(status) ?? 0).toBeGreaterThan(0);
  });
});
