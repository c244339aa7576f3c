import { describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { COMMON_PASSWORDS_MODULE, commonPasswordsModule } from '../scripts/build-common-passwords';
import {
  CONTAINS_EMAIL_NAME,
  checkPasswordPolicy,
  loadCommonPasswords,
  sortedLines,
  TOO_COMMON,
} from '../src/lib/password-policy';
import {
  bearer,
  createTestApp,
  expectProblem,
  login,
  loginAs,
  postJson,
  TEST_PASSWORD,
  type TestApp,
  uniqueEmail,
} from './helpers';

const { app } = await createTestApp();

// On the common-password list, and at least 8 characters, so only the blocklist can refuse them.
const COMMON = ['password123', 'iloveyou', 'Password1', 'QWERTYUIOP'];

function changePassword(app: TestApp, token: string, newPassword: string, currentPassword = TEST_PASSWORD) {
  return app.request('/users/me/password', {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    body: JSON.stringify({ current_password: currentPassword, new_password: newPassword }),
  });
}

describe('sortedLines', () => {
  test('finds exactly the lines of a sorted text, first and last included', () => {
    const words = ['a', 'ab', 'abc', 'b', 'ba', 'c', 'zz'];
    const lines = sortedLines(words.join('\n'));
    for (const word of words) expect(lines.has(word), word).toBe(true);
    for (const word of ['', 'aa', 'abcd', 'bb', 'd', 'z', 'zzz', 'a\nab']) expect(lines.has(word), word).toBe(false);
    expect(sortedLines('').has('')).toBe(false);
    expect(sortedLines('only').has('only')).toBe(true);
  });
});

describe('the blocklist', () => {
  test('is the zxcvbn-ts common-password list, regenerated for the installed version of the package', async () => {
    const { default: passwords } = await import('@zxcvbn-ts/language-common/dist/passwords.json.mjs');
    expect(passwords.length).toBeGreaterThan(40_000);
    // After an upgrade of the package: `bun scripts/build-common-passwords.ts`.
    expect(readFileSync(COMMON_PASSWORDS_MODULE, 'utf8')).toBe(commonPasswordsModule(passwords));
    const list = await loadCommonPasswords();
    const missing = passwords.filter((password) => !list.has(password.toLowerCase()));
    expect(missing).toEqual([]);
  });

  test('holds nothing else, and not the passphrases the tests use', async () => {
    const list = await loadCommonPasswords();
    for (const word of ['', 'a', '~~~~~~~~~~', ' password', 'password ', 'pa55w0rd-hpa', 'password\n123456']) {
      expect(list.has(word), JSON.stringify(word)).toBe(false);
    }
    expect(list.has('password')).toBe(true);
    expect(list.has(TEST_PASSWORD)).toBe(false);
    expect(list.has('correct horse battery staple')).toBe(false);
  });

  test('is checked case-insensitively', async () => {
    expect(await checkPasswordPolicy('PassWord123', 'x@example.com')).toBe(TOO_COMMON);
  });
});

describe('POST /register', () => {
  for (const password of COMMON) {
    test(`refuses the common password ${JSON.stringify(password)} with a 422 that says why`, async () => {
      const res = await postJson(app, '/register', { email: uniqueEmail(), password });
      const body = await expectProblem(res, 422);
      expect(body.type).toBe('/problems/validation');
      expect(body.errors).toEqual([{ pointer: '#/password', detail: TOO_COMMON }]);
      expect(body.detail).toBe(`password: ${TOO_COMMON}`);
    });
  }

  test('accepts a password that is not on the list', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: 'violet tugboat sings' });
    expect(res.status).toBe(201);
  });

  test("refuses a password containing the email's local part, case-insensitively", async () => {
    const email = `Gwendolyn.${Date.now().toString(36)}@example.com`;
    const local = email.split('@')[0] as string;
    const res = await postJson(app, '/register', { email, password: `my ${local.toUpperCase()} pass!` });
    const body = await expectProblem(res, 422);
    expect(body.errors).toEqual([{ pointer: '#/password', detail: CONTAINS_EMAIL_NAME }]);
    expect(body.detail).toContain('email name');
  });

  test('refuses a password containing the local part without its +tag', async () => {
    const res = await postJson(app, '/register', {
      email: `zebedee+${Date.now().toString(36)}@example.com`,
      password: 'zebedee likes trains',
    });
    expect((await expectProblem(res, 422)).errors?.[0]?.detail).toBe(CONTAINS_EMAIL_NAME);
  });

  test('accepts a password sharing only two letters with a short local part', async () => {
    // "al" is below the 3-character floor, so "alpine meadow stream" is fine for al@…
    const email = `al@${Date.now().toString(36)}.example.com`;
    const res = await postJson(app, '/register', { email, password: 'alpine meadow stream' });
    expect(res.status).toBe(201);
  });

  test('accepts a password sharing two letters, not the whole local part', async () => {
    const email = uniqueEmail('quinn');
    const res = await postJson(app, '/register', { email, password: 'quiet lagoon harbor' });
    expect(res.status).toBe(201);
  });

  test('gives one reason at a time: a too-short password is refused for its length only', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: '123456' });
    const body = await expectProblem(res, 422);
    expect(body.errors).toEqual([{ pointer: '#/password', detail: 'Password must be at least 8 characters' }]);
  });

  test('still screens the password when the email is missing', async () => {
    const res = await postJson(app, '/register', { password: 'password123' });
    const body = await expectProblem(res, 422);
    expect(body.errors).toContainEqual({ pointer: '#/email', detail: 'Field is required' });
    expect(body.errors).toContainEqual({ pointer: '#/password', detail: TOO_COMMON });
  });
});

describe('PUT /users/me/password', () => {
  test('refuses a common new password with a 422 on #/new_password, and the old password still works', async () => {
    const { email, token } = await loginAs(app);
    const body = await expectProblem(await changePassword(app, token, 'iloveyou123'), 422);
    expect(body.type).toBe('/problems/validation');
    expect(body.errors).toEqual([{ pointer: '#/new_password', detail: TOO_COMMON }]);
    expect(body.detail).toBe(`new_password: ${TOO_COMMON}`);
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  test("refuses a new password containing the caller's email name", async () => {
    const email = `archibald-${Date.now().toString(36)}@example.com`;
    const { token } = await loginAs(app, email);
    const name = email.split('@')[0] as string;
    const body = await expectProblem(await changePassword(app, token, `${name} forever`), 422);
    expect(body.errors).toEqual([{ pointer: '#/new_password', detail: CONTAINS_EMAIL_NAME }]);
  });

  test('accepts an uncommon new password', async () => {
    const { email, token } = await loginAs(app);
    expect((await changePassword(app, token, 'granite pelican drift')).status).toBe(204);
    expect((await login(app, email, 'granite pelican drift')).status).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  test('still describes the register body', async () => {
    const res = await app.request('/openapi.json');
    const doc = (await res.json()) as { components: { schemas: Record<string, { properties?: object }> } };
    expect(Object.keys(doc.components.schemas.UserRegister?.properties ?? {})).toEqual(['email', 'password']);
  });
});
