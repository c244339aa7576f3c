/**
 * Account recovery and email, end to end: every flow goes through a real SMTP server on loopback and the
 * link in the mail it received (API.md "Account recovery and email").
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { auditEvents, mailOutbox, users } from '../src/db/schema';
import {
  bearer,
  createTestApp,
  createTestClock,
  expectProblem,
  expectUnauthorized,
  json,
  login,
  loginSession,
  postJson,
  refresh,
  TEST_DATABASE_URL,
  TEST_PASSWORD,
  type TestApp,
  uniqueEmail,
} from './helpers';
import { createMailTestApp, rowsTo, stopMailSenders } from './support/mail';
import { linkToken, type SinkMessage, type SmtpSink, startSmtpSink } from './support/smtp-sink';

// Each test waits for real mail over SMTP, and the first also warms up the hasher and the database.
setDefaultTimeout(30_000);

const NEW_PASSWORD = 'a brand new passphrase';
const MINUTE_MS = 60_000;

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterEach(stopMailSenders);
afterAll(() => sink.close());

const mailTo = (email: string, subject: string) => sink.waitFor((m) => m.to === email && m.subject.includes(subject));
const resetMail = (email: string) => mailTo(email, 'Reset your');
const verifyMail = (email: string) => mailTo(email, 'Confirm your email address');

async function register(app: TestApp, email = uniqueEmail()) {
  const res = await postJson(app, '/register', { email, password: TEST_PASSWORD });
  expect(res.status).toBe(201);
  return { email, user: await json(res) };
}

function put(app: TestApp, path: string, body: unknown, token: string) {
  return app.request(path, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', ...bearer(token) },
    body: JSON.stringify(body),
  });
}

const forgot = (app: TestApp, email: string, headers: Record<string, string> = {}) =>
  postJson(app, '/password/forgot', { email }, headers);
const reset = (app: TestApp, token: string, password = NEW_PASSWORD) =>
  postJson(app, '/password/reset', { token, new_password: password });
const verify = (app: TestApp, token: string) => postJson(app, '/email/verify', { token });

describe('password reset', () => {
  test('the mailed link sets a new password, ends every session and mails a notice', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const { email, user } = await register(app);
    const session = await loginSession(app, email);

    const res = await forgot(app, email);
    expect(res.status).toBe(202);
    expect(await reset(app, linkToken(await resetMail(email)))).toHaveProperty('status', 204);

    await expectUnauthorized(await app.request('/users/me', { headers: bearer(session.token) }));
    await expectProblem(await refresh(app, session.refreshToken), 400, 'invalid-refresh-token');
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(401);
    expect((await login(app, email, NEW_PASSWORD)).status).toBe(200);
    const notice = await mailTo(email, 'password was changed');
    expect(notice.text).toContain('signed out');
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(['password_reset_requested', 'password_reset']));
  });

  test('a reset ends the sessions on every instance', async () => {
    const { app } = await createMailTestApp({ sink });
    const other = (await createTestApp()).app; // a second instance on the same database
    const { email } = await register(app);
    const session = await loginSession(other, email);
    await forgot(app, email);
    expect((await reset(app, linkToken(await resetMail(email)))).status).toBe(204);
    await expectUnauthorized(await other.request('/users/me', { headers: bearer(session.token) }));
    await expectProblem(await refresh(other, session.refreshToken), 400, 'invalid-refresh-token');
  });

  test('a link works once', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    await forgot(app, email);
    const token = linkToken(await resetMail(email));
    expect((await reset(app, token)).status).toBe(204);
    await expectProblem(await reset(app, token, 'yet another passphrase'), 400, 'invalid-token');
    expect((await login(app, email, NEW_PASSWORD)).status).toBe(200);
  });

  test('two resets racing with one link: exactly one succeeds', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    await forgot(app, email);
    const token = linkToken(await resetMail(email));
    const results = await Promise.all([reset(app, token, 'first of two passphrases'), reset(app, token)]);
    expect(results.map((r) => r.status).sort()).toEqual([204, 400]);
  });

  test('a link expires after PASSWORD_RESET_EXPIRE_MINUTES', async () => {
    const clock = createTestClock();
    const { app } = await createMailTestApp({ sink, clock, env: { PASSWORD_RESET_EXPIRE_MINUTES: '30' } });
    const first = await register(app);
    const second = await register(app);
    await forgot(app, first.email);
    await forgot(app, second.email);
    const [early, late] = [linkToken(await resetMail(first.email)), linkToken(await resetMail(second.email))];
    clock.advance(29 * MINUTE_MS);
    expect((await reset(app, early)).status).toBe(204);
    clock.advance(1 * MINUTE_MS);
    await expectProblem(await reset(app, late), 400, 'invalid-token');
  });

  test('unknown, malformed and wrong-purpose tokens get the same 400', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const verifyToken = linkToken(await verifyMail(email));
    const bodies = [];
    for (const token of ['x'.repeat(43), 'not a token', '', verifyToken]) {
      bodies.push(await expectProblem(await reset(app, token), 400, 'invalid-token'));
    }
    expect(new Set(bodies.map((b) => JSON.stringify(b))).size).toBe(1);
    await forgot(app, email);
    await expectProblem(await verify(app, linkToken(await resetMail(email))), 400, 'invalid-token');
  });

  test('a new password that breaks the policy is a 422 and leaves the link usable', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    await forgot(app, email);
    const token = linkToken(await resetMail(email));
    await expectProblem(await reset(app, token, 'password'), 422, 'validation');
    await expectProblem(await reset(app, token, 'short'), 422, 'validation');
    expect((await reset(app, token)).status).toBe(204);
  });

  test("a disabled user's link stops working", async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const { email, user } = await register(app);
    await forgot(app, email);
    const token = linkToken(await resetMail(email));
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, user.id));
    await expectProblem(await reset(app, token), 400, 'invalid-token');
  });

  test('using one link spends the other reset links of the user', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    await forgot(app, email);
    await forgot(app, email);
    await sink.waitFor(() => sink.to(email).filter((m) => m.subject.includes('Reset')).length === 2);
    const [first, second] = sink.to(email).filter((m) => m.subject.includes('Reset')) as [SinkMessage, SinkMessage];
    expect((await reset(app, linkToken(second))).status).toBe(204);
    await expectProblem(await reset(app, linkToken(first)), 400, 'invalid-token');
  });

  test('a reset lifts the lock that failed logins put on the account', async () => {
    const { app } = await createMailTestApp({ sink, env: { RATE_LIMIT_LOGIN_FAILURES: '2' } });
    const { email } = await register(app);
    await login(app, email, 'wrong password 1');
    await login(app, email, 'wrong password 2');
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(429);
    await forgot(app, email);
    expect((await reset(app, linkToken(await resetMail(email)))).status).toBe(204);
    expect((await login(app, email, NEW_PASSWORD)).status).toBe(200);
  });
});

describe('changing the password', () => {
  test('PUT /users/me/password mails the notice too, and leaves the address unverified', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const { token } = await loginSession(app, email);
    const body = { current_password: TEST_PASSWORD, new_password: NEW_PASSWORD };
    expect((await put(app, '/users/me/password', body, token)).status).toBe(204);
    const notice = await mailTo(email, 'password was changed');
    expect(notice.text).toContain('signed out');
    const { token: fresh } = await loginSession(app, email, NEW_PASSWORD);
    const me = await json(await app.request('/users/me', { headers: bearer(fresh) }));
    expect(me).toMatchObject({ email, email_verified: false }); // knowing the password proves no mailbox
  });
});

describe('POST /password/forgot does not tell which addresses have accounts', () => {
  /** Each request's statements, in order, as the database received them (parameters left out). */
  async function countingApp() {
    const statements: string[] = [];
    const hashes: string[] = [];
    const { deps } = await createMailTestApp({ sink });
    const logger = { logQuery: (query: string) => statements.push(query) };
    const { drizzle: wrap } = TEST_DATABASE_URL
      ? await import('drizzle-orm/postgres-js')
      : await import('drizzle-orm/pglite');
    const schema = await import('../src/db/schema');
    // The same client under a second Drizzle instance that logs every statement: instrumentation, not a fake.
    const counted = (wrap as unknown as (config: object) => typeof deps.db)({
      client: (deps.db as unknown as { $client: unknown }).$client,
      schema,
      casing: 'snake_case',
      logger,
    });
    const hasher = {
      hash(password: string) {
        hashes.push('hash');
        return deps.hasher.hash(password);
      },
      verify(password: string, hash: string) {
        hashes.push('verify');
        return deps.hasher.verify(password, hash);
      },
    };
    const { app } = await createTestApp({
      env: { EMAIL_VERIFICATION: 'optional' },
      db: counted,
      hasher,
      clock: deps.clock,
    });
    return {
      app,
      db: deps.db,
      measure: async (request: () => Promise<Response> | Response) => {
        statements.length = 0;
        hashes.length = 0;
        const res = await request();
        return { res, statements: [...statements], hashes: [...hashes] };
      },
    };
  }

  test('an unknown, a disabled and a known address get the same status, body and headers', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const known = await register(app);
    const disabled = await register(app);
    await deps.db.update(users).set({ disabled: true }).where(eq(users.id, disabled.user.id));
    const answers = [];
    for (const email of [uniqueEmail('nobody'), disabled.email, known.email]) {
      const res = await forgot(app, email);
      const headers = [...res.headers].filter(([name]) => name !== 'x-request-id');
      answers.push(JSON.stringify({ status: res.status, body: await res.json(), headers }));
    }
    expect(answers[0]).toContain('"status":202');
    expect(new Set(answers).size).toBe(1);
    // Each request queued one row; the sender mails only the known, enabled address and skips the others.
    await resetMail(known.email);
    for (const email of [disabled.email]) {
      const rows = await rowsTo(deps.db, email, (r) =>
        r.some((m) => m.template === 'password-reset' && m.status === 'skipped'),
      );
      expect(rows.filter((m) => m.template === 'password-reset').map((m) => m.status)).toEqual(['skipped']);
    }
    expect(sink.to(disabled.email).filter((m) => m.subject.includes('Reset'))).toEqual([]);
  });

  test('they cost the same work: the same statements in the same order, and no password hash', async () => {
    const { app, db, measure } = await countingApp();
    const known = await register(app);
    const disabled = await register(app);
    await db.update(users).set({ disabled: true }).where(eq(users.id, disabled.user.id));
    const work = [];
    for (const email of [uniqueEmail('nobody'), disabled.email, known.email]) {
      const { res, statements, hashes } = await measure(() => forgot(app, email));
      expect(res.status).toBe(202);
      expect(hashes).toEqual([]);
      work.push(statements);
    }
    expect(work[0]?.length).toBeGreaterThanOrEqual(2); // the audit event and the queued mail
    expect(work[1]).toEqual(work[0] as string[]);
    expect(work[2]).toEqual(work[0] as string[]);
    // The same rows, too: one queued mail for each address, whatever the account.
    const nobody = uniqueEmail('nobody');
    await measure(() => forgot(app, nobody));
    for (const email of [nobody, disabled.email, known.email]) {
      const rows = await db.select().from(mailOutbox).where(eq(mailOutbox.recipient, email));
      expect(rows.filter((m) => m.template === 'password-reset')).toHaveLength(1);
    }
    // And the work did what it must: the known address got a link, the others nothing.
    await resetMail(known.email);
  });

  test('an unknown address is audited too, without a user', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const email = uniqueEmail('nobody');
    await forgot(app, email);
    const events = await deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.event, 'password_reset_requested')));
    const event = events.find((e) => (e.details as { email?: string }).email === email);
    expect(event?.userId).toBeNull();
  });

  test('at most 3 requests per address per hour, known or not, from any IP', async () => {
    const { app } = await createMailTestApp({ sink });
    for (const email of [uniqueEmail('nobody'), (await register(app)).email]) {
      for (let i = 0; i < 3; i++) expect((await forgot(app, email)).status).toBe(202);
      const limited = await forgot(app, email);
      await expectProblem(limited, 429, 'rate-limited');
      expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThan(0);
    }
  });

  test('RATE_LIMIT_RECOVERY_PER_IP requests per client IP per hour', async () => {
    const { app } = await createMailTestApp({ sink, env: { RATE_LIMIT_RECOVERY_PER_IP: '2' } });
    expect((await forgot(app, uniqueEmail())).status).toBe(202);
    expect((await postJson(app, '/email/verify/resend', { email: uniqueEmail() })).status).toBe(202);
    await expectProblem(await forgot(app, uniqueEmail()), 429, 'rate-limited');
  });
});

describe('address verification', () => {
  test('registration mails a link; following it sets email_verified', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const { email, user } = await register(app);
    expect(user.email_verified).toBe(false);
    expect((await verify(app, linkToken(await verifyMail(email)))).status).toBe(204);
    const { token } = await loginSession(app, email);
    expect((await json(await app.request('/users/me', { headers: bearer(token) }))).email_verified).toBe(true);
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.map((e) => e.event)).toContain('email_verified');
  });

  test('EMAIL_VERIFICATION=off queues no verification mail', async () => {
    const { app, deps } = await createMailTestApp({ sink, env: { EMAIL_VERIFICATION: 'off' } });
    const { email } = await register(app);
    expect(await deps.db.select().from(mailOutbox).where(eq(mailOutbox.recipient, email))).toEqual([]);
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  test('EMAIL_VERIFICATION=required: login answers 403 until the address is verified', async () => {
    const { app } = await createMailTestApp({ sink, env: { EMAIL_VERIFICATION: 'required' } });
    const { email } = await register(app);
    await expectProblem(await login(app, email, TEST_PASSWORD), 403, 'email-unverified');
    await expectProblem(await login(app, email, 'a wrong password'), 401, 'invalid-credentials');
    // Locked out, the user asks for a new link by address.
    expect((await postJson(app, '/email/verify/resend', { email })).status).toBe(202);
    await sink.waitFor(() => sink.to(email).filter((m) => m.subject.includes('Confirm your email')).length === 2);
    const latest = sink.to(email).at(-1) as SinkMessage;
    expect((await verify(app, linkToken(latest))).status).toBe(204);
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  test('resend with a bearer token mails a new link; the earlier one stays valid', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const first = linkToken(await verifyMail(email));
    const { token } = await loginSession(app, email);
    const res = await app.request('/email/verify/resend', { method: 'POST', headers: bearer(token) });
    expect(res.status).toBe(202);
    await sink.waitFor(() => sink.to(email).length === 2);
    expect(linkToken(sink.to(email)[1] as SinkMessage)).not.toBe(first);
    expect((await verify(app, first)).status).toBe(204);
  });

  test('resend by address: the same answer for unknown, verified and unverified; only the last gets mail', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const verified = await register(app);
    await verify(app, linkToken(await verifyMail(verified.email)));
    const unverified = await register(app);
    const answers = [];
    for (const email of [uniqueEmail('nobody'), verified.email, unverified.email]) {
      const res = await postJson(app, '/email/verify/resend', { email });
      answers.push(JSON.stringify({ status: res.status, body: await res.json() }));
    }
    expect(answers[0]).toContain('"status":202');
    expect(new Set(answers).size).toBe(1);
    await sink.waitFor(() => sink.to(unverified.email).length === 2);
    // The verified address's request was queued like the others, then skipped: no second mail.
    const rows = await rowsTo(deps.db, verified.email, (r) => r.length === 2 && r.every((m) => m.status !== 'pending'));
    expect(rows.map((m) => m.status).sort()).toEqual(['sent', 'skipped']);
    expect(sink.to(verified.email)).toHaveLength(1);
  });

  test('resend needs a bearer token or an address; a bad bearer token is a 401', async () => {
    const { app } = await createMailTestApp({ sink });
    const none = await postJson(app, '/email/verify/resend', {});
    expect((await expectProblem(none, 422, 'validation')).errors?.[0]?.pointer).toBe('#/email');
    const bad = await app.request('/email/verify/resend', { method: 'POST', headers: bearer('nonsense') });
    await expectUnauthorized(bad);
  });
});

describe('changing the address', () => {
  test('a link to the new address moves the account; the old address gets a notice', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const { email, user } = await register(app);
    const { token } = await loginSession(app, email);
    const newEmail = uniqueEmail('moved');
    const res = await put(app, '/users/me/email', { new_email: newEmail, current_password: TEST_PASSWORD }, token);
    expect(res.status).toBe(202);
    const notice = await mailTo(email, 'change of your');
    expect(notice.text).not.toContain(newEmail); // masked: the notice names the address only partly
    const confirm = await mailTo(newEmail, 'Confirm your new email');
    // Nothing changes before the link is used.
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
    expect((await verify(app, linkToken(confirm))).status).toBe(204);
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(401);
    const moved = await loginSession(app, newEmail);
    const me = await json(await app.request('/users/me', { headers: bearer(moved.token) }));
    expect(me).toMatchObject({ id: user.id, email: newEmail, email_verified: true });
    const events = await deps.db.select().from(auditEvents).where(eq(auditEvents.userId, user.id));
    expect(events.find((e) => e.event === 'email_changed')?.details).toEqual({ from: email, to: newEmail });
  });

  test('links mailed to the old address stop working once the account moved', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const oldVerify = linkToken(await verifyMail(email));
    await forgot(app, email);
    const oldReset = linkToken(await resetMail(email));
    const { token } = await loginSession(app, email);
    const newEmail = uniqueEmail('moved');
    await put(app, '/users/me/email', { new_email: newEmail, current_password: TEST_PASSWORD }, token);
    expect((await verify(app, linkToken(await mailTo(newEmail, 'Confirm your new email')))).status).toBe(204);
    await expectProblem(await reset(app, oldReset), 400, 'invalid-token');
    await expectProblem(await verify(app, oldVerify), 400, 'invalid-token');
  });

  test('a wrong current password is a 400 and mails nothing', async () => {
    const { app, deps } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const { token } = await loginSession(app, email);
    const newEmail = uniqueEmail('moved');
    const res = await put(app, '/users/me/email', { new_email: newEmail, current_password: 'not my password' }, token);
    await expectProblem(res, 400, 'wrong-password');
    expect(await deps.db.select().from(mailOutbox).where(eq(mailOutbox.recipient, newEmail))).toEqual([]);
  });

  test('wrong current passwords count like failed logins and are audited: a stolen token is no oracle', async () => {
    const { app, deps } = await createMailTestApp({ sink, env: { RATE_LIMIT_LOGIN_FAILURES: '2' } });
    const { email, user } = await register(app);
    const { token } = await loginSession(app, email);
    const change = (current_password: string) =>
      put(app, '/users/me/email', { new_email: uniqueEmail('moved'), current_password }, token);
    await expectProblem(await change('guess one'), 400, 'wrong-password');
    await expectProblem(await change('guess two'), 400, 'wrong-password');
    await expectProblem(await change(TEST_PASSWORD), 429, 'rate-limited'); // even the right one, for now
    await expectProblem(await login(app, email, TEST_PASSWORD), 429, 'rate-limited'); // one lock for both
    const failed = await deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.userId, user.id), eq(auditEvents.event, 'password_change_failed')));
    expect(failed.map((e) => e.details)).toEqual([{ action: 'email_change' }, { action: 'email_change' }]);
  });

  test('an address another account has is answered only by the link: 409, and nothing changes', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const taken = uniqueEmail('taken');
    const { token } = await loginSession(app, email);
    const res = await put(app, '/users/me/email', { new_email: taken, current_password: TEST_PASSWORD }, token);
    expect(res.status).toBe(202); // the same answer as for a free address
    const confirm = linkToken(await mailTo(taken, 'Confirm your new email'));
    await register(app, taken); // someone registers it before the link is used
    await expectProblem(await verify(app, confirm), 409, 'email-taken');
    expect((await login(app, email, TEST_PASSWORD)).status).toBe(200);
  });

  test('the current address is a 422', async () => {
    const { app } = await createMailTestApp({ sink });
    const { email } = await register(app);
    const { token } = await loginSession(app, email);
    const res = await put(
      app,
      '/users/me/email',
      { new_email: email.toUpperCase(), current_password: TEST_PASSWORD },
      token,
    );
    expect((await expectProblem(res, 422, 'validation')).errors?.[0]?.pointer).toBe('#/new_email');
  });
});

describe('mail content', () => {
  test('text and HTML parts, links from PUBLIC_URL whatever the Host header, no remote content', async () => {
    const { app } = await createMailTestApp({
      sink,
      env: {
        PUBLIC_URL: 'https://auth.example.org/',
        APP_NAME: 'Example ID',
        MAIL_FROM: 'Example <id@mail.example.org>',
      },
    });
    const email = uniqueEmail();
    await app.request('/register', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Host: 'evil.example' },
      body: JSON.stringify({ email, password: TEST_PASSWORD }),
    });
    const mail = await verifyMail(email);
    expect(mail.subject).toContain('Example ID');
    expect(mail.text).toContain('https://auth.example.org/email/verify?token=');
    expect(mail.html).toContain('href="https://auth.example.org/email/verify?token=');
    expect(`${mail.text}${mail.html}`).not.toContain('evil.example');
    expect(mail.html).not.toMatch(/<img|src=|url\(/i);
    expect(mail.messageId).toMatch(/^<[0-9a-f-]{36}@mail\.example\.org>$/);
    expect(mail.headers.get('auto-submitted')).toBe('auto-generated');
    expect(mail.headers.get('from')).toMatchObject({ value: [{ address: 'id@mail.example.org', name: 'Example' }] });
  });
});
