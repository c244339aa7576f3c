/**
 * Input that must not reach storage as it came: strings that are not well-formed UTF-16 (422, one check in
 * the router's validation hook for every field), and usernames that are not emails in the audit log.
 */
import { describe, expect, test } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { auditEvents } from '../src/db/schema';
import { bearer, createTestApp, expectProblem, loginAs, postJson, TEST_PASSWORD, uniqueEmail } from './helpers';

const { app, deps } = await createTestApp();
const LONE_SURROGATE = '\ud800';

describe('ill-formed UTF-16 is a 422', () => {
  test('a password with a lone surrogate, which UTF-8 would turn into U+FFFD and so collide', async () => {
    // JSON.stringify writes the lone surrogate as the escape \ud800, as a client would.
    const res = await postJson(app, '/register', {
      email: uniqueEmail(),
      password: `${LONE_SURROGATE}${TEST_PASSWORD}`,
    });
    const problem = await expectProblem(res, 422, 'validation');
    expect(problem.errors).toEqual([{ pointer: '#/password', detail: expect.stringContaining('Unicode') }]);
  });

  test('in any field: an email, a new password', async () => {
    const email = `${LONE_SURROGATE}${uniqueEmail()}`;
    await expectProblem(await postJson(app, '/register', { email, password: TEST_PASSWORD }), 422, 'validation');
    const { token } = await loginAs(app);
    const res = await app.request('/users/me/password', {
      method: 'PUT',
      headers: { ...bearer(token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ current_password: TEST_PASSWORD, new_password: `new passphrase ${LONE_SURROGATE}` }),
    });
    const problem = await expectProblem(res, 422, 'validation');
    expect(problem.errors?.[0]?.pointer).toBe('#/new_password');
  });

  test('a well-formed astral character (a surrogate pair) is fine', async () => {
    const res = await postJson(app, '/register', { email: uniqueEmail(), password: `${TEST_PASSWORD} 🦆` });
    expect(res.status).toBe(201);
  });
});

describe('the audit log keeps the typed username only when it is an email', () => {
  async function failedLoginDetails(username: string) {
    const agent = `audit-username-${crypto.randomUUID()}`;
    const res = await app.request('/token', {
      method: 'POST',
      headers: { 'User-Agent': agent },
      body: new URLSearchParams({ username, password: 'not the password' }),
    });
    expect(res.status).toBe(401);
    const [row] = await deps.db
      .select({ details: auditEvents.details })
      .from(auditEvents)
      .where(and(eq(auditEvents.event, 'login_failed'), eq(auditEvents.userAgent, agent)));
    return row?.details;
  }

  test('a password typed into the username field is not recorded', async () => {
    const typed = `my secret password ${crypto.randomUUID()}`;
    const details = await failedLoginDetails(typed);
    expect(details).toEqual({});
    expect(JSON.stringify(details)).not.toContain(typed);
  });

  test('an email is recorded, normalized', async () => {
    const email = uniqueEmail('typed');
    expect(await failedLoginDetails(`  ${email.toUpperCase()} `)).toEqual({ email });
  });
});
