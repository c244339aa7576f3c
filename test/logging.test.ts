import { expect, test } from 'bun:test';
import { createLogger } from '../src/lib/logger';
import { bearer, createTestApp, json, login, postJson, TEST_PASSWORD, TEST_SECRET_KEY, uniqueEmail } from './helpers';

test('logs one JSON line per request with method, path, status, ms, request id and the user id when known', async () => {
  const lines: string[] = [];
  const { app } = await createTestApp({ logger: createLogger('info', (line) => lines.push(line)) });
  const email = uniqueEmail('log');
  const registered = await json<{ id: number }>(await postJson(app, '/register', { email, password: TEST_PASSWORD }));
  const { access_token } = await json<{ access_token: string }>(await login(app, email, TEST_PASSWORD));
  lines.length = 0;
  await app.request('/users/me', { headers: { ...bearer(access_token), 'X-Request-Id': 'trace-me-123' } });
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0] as string)).toMatchObject({
    level: 'info',
    msg: 'request',
    method: 'GET',
    path: '/users/me',
    status: 200,
    requestId: 'trace-me-123',
    userId: registered.id,
  });
  expect(typeof JSON.parse(lines[0] as string).ms).toBe('number');
});

test('never logs a password, hash, token or secret, also on failures', async () => {
  const lines: string[] = [];
  const { app, deps } = await createTestApp({ logger: createLogger('debug', (line) => lines.push(line)) });
  const email = uniqueEmail('secret');
  const password = 'unmistakable-Password-9731';
  const newPassword = 'another-unmistakable-Password-4412';
  await postJson(app, '/register', { email, password });
  await login(app, email, 'a-wrong-password-for-the-log');
  const tokens = await json<{ access_token: string; refresh_token: string }>(await login(app, email, password));
  await app.request('/token', {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
  });
  await app.request('/users/me', { headers: bearer(`${tokens.access_token}tampered`) });
  await app.request('/users/me/password', {
    method: 'PUT',
    headers: { ...bearer(tokens.access_token), 'Content-Type': 'application/json' },
    body: JSON.stringify({ current_password: password, new_password: newPassword }),
  });
  // An unexpected fault whose message carries the password: only a generic line may be logged.
  const failing = await createTestApp({
    logger: createLogger('debug', (line) => lines.push(line)),
    hasher: { hash: async (pw) => Promise.reject(new Error(`boom ${pw}`)), verify: deps.hasher.verify },
  });
  expect((await postJson(failing.app, '/register', { email: uniqueEmail(), password })).status).toBe(500);

  const log = lines.join('\n');
  expect(lines.length).toBeGreaterThan(5);
  for (const secret of [
    password,
    newPassword,
    'a-wrong-password-for-the-log',
    tokens.access_token,
    tokens.refresh_token,
    TEST_SECRET_KEY,
  ]) {
    expect(log).not.toContain(secret);
  }
  expect(log).not.toContain(tokens.refresh_token.split('.')[1] as string);
  expect(log).not.toMatch(/\$2[aby]\$/); // no bcrypt hash
});
