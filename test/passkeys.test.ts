/**
 * Passkeys end to end over HTTP, with the software authenticator of test/support/webauthn.ts: registration,
 * passwordless and email-first login, several passkeys, removal; and each attack a relying party must stop,
 * with a response that only the guard under test refuses.
 */
import { describe, expect, test } from 'bun:test';
import {
  bearer,
  createTestApp,
  expectProblem,
  json,
  loginAs,
  loginAsAdmin,
  postJson,
  type TestApp,
  uniqueEmail,
} from './helpers';
import { loginWithOtp, totpUser } from './support/mfa';
import { b64url, FLAGS, SoftwareAuthenticator, type StoredCredential } from './support/webauthn';

const ORIGIN = 'http://localhost:8000';
const { app, deps, clock } = await createTestApp({ env: { WEBAUTHN_ORIGINS: ORIGIN } });
const admin = await loginAsAdmin(app, deps);

type CreationOptions = Parameters<SoftwareAuthenticator['create']>[0] & {
  authenticatorSelection?: { residentKey?: string; userVerification?: string };
  excludeCredentials?: { id: string }[];
};
type RequestOptions = Parameters<SoftwareAuthenticator['get']>[0] & {
  userVerification?: string;
  allowCredentials?: { id: string }[];
};
interface TokenBody {
  access_token: string;
  refresh_token: string;
  token_type: string;
}

const registrationOptions = async (token: string, body: unknown = {}, on: TestApp = app) => {
  const res = await postJson(on, '/webauthn/register/options', body, bearer(token));
  expect(res.status).toBe(200);
  return json<CreationOptions>(res);
};
const verifyRegistration = (token: string, response: unknown, on: TestApp = app) =>
  postJson(on, '/webauthn/register/verify', response, bearer(token));
const loginOptions = async (body: unknown = {}, on: TestApp = app) => {
  const res = await postJson(on, '/webauthn/login/options', body);
  expect(res.status).toBe(200);
  return json<RequestOptions>(res);
};
const verifyLogin = (response: unknown, on: TestApp = app) => postJson(on, '/webauthn/login/verify', response);

/** A new user with one registered passkey on a new authenticator. */
async function userWithPasskey(authenticator = new SoftwareAuthenticator(ORIGIN), name?: string) {
  const user = await loginAs(app);
  const res = await verifyRegistration(
    user.token,
    authenticator.create(await registrationOptions(user.token, name ? { name } : {})),
  );
  expect(res.status).toBe(201);
  const passkey = await json<{ id: string; name: string; created_at: string }>(res);
  return { ...user, authenticator, passkey };
}

/** A login with the authenticator's passkey: its token (amr ["webauthn"]) is what step-up asks for once a user has one. */
async function passkeyToken(authenticator: SoftwareAuthenticator, on: TestApp = app) {
  const res = await verifyLogin(authenticator.get(await loginOptions({}, on)), on);
  expect(res.status).toBe(200);
  return (await json<TokenBody>(res)).access_token;
}

const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { sub: string; amr: string[] };

async function auditEvents(userId: number) {
  const res = await app.request(`/audit?user_id=${userId}&limit=100`, { headers: bearer(admin.token) });
  return (await json<{ items: { event: string; details: Record<string, unknown> }[] }>(res)).items;
}

/** Expects the one 401 every failed passkey login gets. */
async function expectLoginRefused(res: Response) {
  const problem = await expectProblem(res, 401, 'passkey-login-failed');
  expect(problem.detail).toBe('Passkey login failed');
}

describe('registering a passkey', () => {
  test('options require user verification, prefer a discoverable credential and name the RP', async () => {
    const { token } = await loginAs(app);
    const options = await registrationOptions(token);
    expect(options.rp).toEqual({ id: 'localhost', name: 'hono-postgres-auth' });
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'preferred', userVerification: 'required' });
    expect(options.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(options.excludeCredentials).toEqual([]);
  });

  test('answers 201 {id, name, created_at} and excludes the passkey from the next registration', async () => {
    const { authenticator, passkey } = await userWithPasskey(undefined, 'Laptop');
    expect(passkey.name).toBe('Laptop');
    expect(passkey.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isNaN(Date.parse(passkey.created_at))).toBe(false);
    const next = await registrationOptions(await passkeyToken(authenticator));
    expect(next.excludeCredentials?.length).toBe(1);
  });

  test('is refused (400) without user verification', async () => {
    const { token } = await loginAs(app);
    const response = new SoftwareAuthenticator(ORIGIN).create(await registrationOptions(token), {
      flags: FLAGS.UP | FLAGS.AT,
    });
    await expectProblem(await verifyRegistration(token, response), 400, 'passkey-rejected');
  });

  test('is refused (400) from an origin not configured', async () => {
    const { token } = await loginAs(app);
    const response = new SoftwareAuthenticator(ORIGIN).create(await registrationOptions(token), {
      origin: 'http://localhost:8001',
    });
    await expectProblem(await verifyRegistration(token, response), 400, 'passkey-rejected');
  });

  test('is refused (400) for a challenge of another user, which stays usable by its own', async () => {
    const alice = await loginAs(app);
    const bob = await loginAs(app);
    const options = await registrationOptions(alice.token);
    const authenticator = new SoftwareAuthenticator(ORIGIN);
    await expectProblem(await verifyRegistration(bob.token, authenticator.create(options)), 400, 'passkey-rejected');
    expect((await verifyRegistration(alice.token, authenticator.create(options))).status).toBe(201);
  });

  test('spends its challenge: the same response again is refused', async () => {
    const { token } = await loginAs(app);
    const options = await registrationOptions(token);
    const authenticator = new SoftwareAuthenticator(ORIGIN);
    expect((await verifyRegistration(token, authenticator.create(options))).status).toBe(201);
    // Now that the user has a passkey, adding another needs a login with it (step-up).
    const stepped = await passkeyToken(authenticator);
    await expectProblem(await verifyRegistration(stepped, authenticator.create(options)), 400, 'passkey-rejected');
  });

  test('needs a bearer token', async () => {
    await expectProblem(await postJson(app, '/webauthn/register/options', {}), 401, 'not-authenticated');
  });

  test('answers malformed client data with 400, and a body that is no RegistrationResponseJSON with 422', async () => {
    const { token } = await loginAs(app);
    const response = new SoftwareAuthenticator(ORIGIN).create(await registrationOptions(token));
    const garbled = { ...response, response: { ...response.response, clientDataJSON: 'bm90IGpzb24' } };
    await expectProblem(await verifyRegistration(token, garbled), 400, 'passkey-rejected');
    const named = await postJson(app, '/webauthn/register/options', { name: 'a\u0000b' }, bearer(token));
    expect((await expectProblem(named, 422)).errors?.[0]?.pointer).toBe('#/name');
    const problem = await expectProblem(await verifyRegistration(token, { ...response, type: 'password' }), 422);
    expect(problem.errors?.[0]?.pointer).toBe('#/type');
  });
});

describe('logging in with a passkey', () => {
  test('discoverable (no email): a token pair whose amr is ["webauthn"], working on /users/me', async () => {
    const { authenticator, user } = await userWithPasskey();
    const options = await loginOptions();
    expect(options.allowCredentials ?? []).toEqual([]);
    expect(options.userVerification).toBe('required');
    const res = await verifyLogin(authenticator.get(options));
    expect(res.status).toBe(200);
    expect(res.headers.get('Cache-Control')).toBe('no-store');
    const tokens = await json<TokenBody>(res);
    expect(tokens.token_type).toBe('bearer');
    expect(claimsOf(tokens.access_token)).toMatchObject({ sub: String(user.id), amr: ['webauthn'] });
    const me = await app.request('/users/me', { headers: bearer(tokens.access_token) });
    expect((await json<{ id: number }>(me)).id).toBe(user.id);
    const refreshed = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    });
    expect(refreshed.status).toBe(200);
  });

  test('with an email: the options list that account’s passkeys, and any of them logs in', async () => {
    const { email, authenticator, user } = await userWithPasskey();
    const token = await passkeyToken(authenticator);
    const second = new SoftwareAuthenticator(ORIGIN);
    expect((await verifyRegistration(token, second.create(await registrationOptions(token)))).status).toBe(201);
    const options = await loginOptions({ email: email.toUpperCase() });
    const listed = (options.allowCredentials ?? []).map((credential) => credential.id).sort();
    const held = [authenticator, second].map((each) => b64url((each.credentials[0] as StoredCredential).id));
    expect(listed).toEqual(held.sort());
    for (const each of [authenticator, second]) {
      const res = await verifyLogin(each.get(await loginOptions({ email })));
      expect(claimsOf((await json<TokenBody>(res)).access_token).sub).toBe(String(user.id));
    }
  });

  test('an email without passkeys gets the same made-up credential each time, not an empty list', async () => {
    const email = uniqueEmail('nobody');
    const first = await loginOptions({ email });
    const again = await loginOptions({ email });
    expect(first.allowCredentials?.length).toBe(1);
    expect(again.allowCredentials).toEqual(first.allowCredentials);
    expect(first.challenge).not.toBe(again.challenge);
  });

  test('audits the login as login_succeeded with its amr', async () => {
    const { authenticator, user } = await userWithPasskey();
    expect((await verifyLogin(authenticator.get(await loginOptions()))).status).toBe(200);
    const event = (await auditEvents(user.id)).find((item) => item.event === 'login_succeeded');
    expect(event?.details.amr).toEqual(['webauthn']);
  });

  test('a challenge is accepted on another instance than the one that made it', async () => {
    const { authenticator } = await userWithPasskey();
    const other = await createTestApp({ env: { WEBAUTHN_ORIGINS: ORIGIN } });
    expect((await verifyLogin(authenticator.get(await loginOptions()), other.app)).status).toBe(200);
  });
});

describe('passkey login attacks', () => {
  test('a replayed login response is refused: each challenge is single use', async () => {
    // An authenticator without a counter (synced passkeys keep 0), so only the spent challenge stops the replay.
    const { authenticator } = await userWithPasskey(new SoftwareAuthenticator(ORIGIN, 0));
    const response = authenticator.get(await loginOptions());
    expect((await verifyLogin(response)).status).toBe(200);
    await expectLoginRefused(await verifyLogin(response));
  });

  test('of two concurrent uses of one response, exactly one logs in', async () => {
    const { authenticator } = await userWithPasskey(new SoftwareAuthenticator(ORIGIN, 0));
    const response = authenticator.get(await loginOptions());
    const statuses = await Promise.all(
      [verifyLogin(response), verifyLogin(response)].map(async (r) => (await r).status),
    );
    expect(statuses.sort()).toEqual([200, 401]);
  });

  test('an expired challenge is refused', async () => {
    const { authenticator } = await userWithPasskey(new SoftwareAuthenticator(ORIGIN, 0));
    const response = authenticator.get(await loginOptions());
    clock.advance(5 * 60 * 1000); // the ceremony's 5 minutes
    await expectLoginRefused(await verifyLogin(response));
  });

  test('a sign counter that goes back is refused and audited as a possible clone', async () => {
    const { authenticator, user, passkey } = await userWithPasskey();
    expect((await verifyLogin(authenticator.get(await loginOptions(), { counter: 5 }))).status).toBe(200);
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions(), { counter: 3 })));
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions(), { counter: 5 })));
    const clones = (await auditEvents(user.id)).filter((item) => item.event === 'passkey_counter_rollback');
    expect(clones.map((item) => item.details)).toContainEqual({
      passkey_id: passkey.id,
      stored_counter: 5,
      presented_counter: 3,
    });
    expect((await verifyLogin(authenticator.get(await loginOptions(), { counter: 6 }))).status).toBe(200);
  });

  test('a counter of 0 is refused once the stored counter is non-zero', async () => {
    const { authenticator } = await userWithPasskey();
    expect((await verifyLogin(authenticator.get(await loginOptions()))).status).toBe(200); // counter 1
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions(), { counter: 0 })));
  });

  test('a response without user verification (UV flag) is refused', async () => {
    const { authenticator } = await userWithPasskey();
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions(), { flags: FLAGS.UP })));
  });

  test('a response from another origin is refused', async () => {
    const { authenticator } = await userWithPasskey();
    const response = authenticator.get(await loginOptions(), { origin: 'https://localhost.evil.example' });
    await expectLoginRefused(await verifyLogin(response));
  });

  test('authenticator data for another RP id is refused', async () => {
    const { authenticator } = await userWithPasskey();
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions(), { rpId: 'evil.example' })));
  });

  test('a bad signature is refused', async () => {
    const { authenticator } = await userWithPasskey();
    const response = authenticator.get(await loginOptions());
    const signature = Buffer.from(response.response.signature, 'base64url');
    signature[signature.length - 1] = (signature.at(-1) as number) ^ 1;
    const forged = { ...response, response: { ...response.response, signature: signature.toString('base64url') } };
    await expectLoginRefused(await verifyLogin(forged));
  });

  test("another user's credential is refused for a challenge bound to an email", async () => {
    const alice = await userWithPasskey();
    const bob = await userWithPasskey();
    const options = await loginOptions({ email: alice.email });
    // Bob's authenticator answers Alice's options with his own credential.
    const response = bob.authenticator.get(options, {}, bob.authenticator.credentials[0]);
    await expectLoginRefused(await verifyLogin(response));
  });

  test("a user handle that is not the credential owner's is refused", async () => {
    const alice = await userWithPasskey();
    const bob = await userWithPasskey();
    const response = alice.authenticator.get(await loginOptions(), {
      userHandle: Buffer.from(String(bob.user.id)).toString('base64url'),
    });
    await expectLoginRefused(await verifyLogin(response));
  });

  test('a removed passkey no longer logs in; removing it again, or removing another user’s, is a 404', async () => {
    const { authenticator, passkey } = await userWithPasskey();
    const token = await passkeyToken(authenticator);
    const other = await loginAs(app);
    const remove = (id: string, as: string) =>
      app.request(`/users/me/passkeys/${id}`, { method: 'DELETE', headers: bearer(as) });
    await expectProblem(await remove(passkey.id, other.token), 404, 'not-found');
    expect((await remove(passkey.id, token)).status).toBe(204);
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions())));
    await expectProblem(await remove(passkey.id, token), 404, 'not-found');
    expect((await registrationOptions(token)).excludeCredentials).toEqual([]);
  });

  test('a disabled user cannot log in, with the same answer as for an unknown credential', async () => {
    const { authenticator, user } = await userWithPasskey();
    const patched = await app.request(`/users/${user.id}`, {
      method: 'PATCH',
      headers: { ...bearer(admin.token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ disabled: true }),
    });
    expect(patched.status).toBe(200);
    const disabled = await verifyLogin(authenticator.get(await loginOptions()));
    const stranger = new SoftwareAuthenticator(ORIGIN); // a credential this service never registered
    stranger.create({ challenge: 'AA', rp: { id: 'localhost', name: 'elsewhere' }, user: { id: 'AA', name: 'x' } });
    const unknown = await verifyLogin(stranger.get(await loginOptions()));
    await expectLoginRefused(disabled);
    await expectLoginRefused(unknown);
    const failed = (await auditEvents(user.id)).find((item) => item.event === 'login_failed');
    expect(failed?.details).toEqual({ method: 'webauthn', reason: 'disabled' });
  });

  test('malformed responses are a 401 or a 422, never a 500', async () => {
    const { authenticator } = await userWithPasskey();
    const response = authenticator.get(await loginOptions());
    const garbled = { ...response, response: { ...response.response, clientDataJSON: 'e30' } }; // "{}"
    await expectLoginRefused(await verifyLogin(garbled));
    const truncated = { ...response, response: { ...response.response, authenticatorData: 'AAAA' } };
    await expectLoginRefused(await verifyLogin(truncated));
    const nulChallenge = authenticator.get(await loginOptions(), { challenge: 'a\u0000b' });
    await expectLoginRefused(await verifyLogin(nulChallenge));
    await expectProblem(await verifyLogin({ ...response, response: { signature: 'AA' } }), 422);
    await expectProblem(await postJson(app, '/webauthn/login/options', { email: '\u0000a@a.aa' }), 422);
    await expectProblem(await postJson(app, '/webauthn/login/verify', '{"id":'), 400);
  });
});

describe('passkey login rate limits', () => {
  test('options and verification count against RATE_LIMIT_LOGIN_PER_IP, like POST /token', async () => {
    const limited = await createTestApp({ env: { WEBAUTHN_ORIGINS: ORIGIN, RATE_LIMIT_LOGIN_PER_IP: '2' } });
    expect((await postJson(limited.app, '/webauthn/login/options', {})).status).toBe(200);
    await expectProblem(await postJson(limited.app, '/webauthn/login/verify', { id: 'x' }), 422);
    const refused = await postJson(limited.app, '/webauthn/login/options', {});
    await expectProblem(refused, 429, 'rate-limited');
    expect(Number(refused.headers.get('Retry-After'))).toBeGreaterThan(0);
  });
});

describe('passkeys as a second factor', () => {
  const STEP_MS = 30_000; // one TOTP step: each code works once
  const now = () => clock.now();
  const send = (method: string, path: string, token: string, body?: unknown, on: TestApp = app) =>
    on.request(path, {
      method,
      headers: { ...bearer(token), 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const mfaOf = async (token: string) =>
    json<{ passkeys: { id: string; name: string; created_at: string; last_used_at: string | null }[] }>(
      await send('GET', '/users/me/mfa', token),
    );

  test('GET /users/me/mfa lists the passkeys, oldest first, with when each was last used', async () => {
    const { authenticator, passkey } = await userWithPasskey(undefined, 'Laptop');
    const token = await passkeyToken(authenticator);
    clock.advance(1000); // the app's clock stands still otherwise: the second passkey is a second younger
    const phone = new SoftwareAuthenticator(ORIGIN);
    const second = await verifyRegistration(token, phone.create(await registrationOptions(token, { name: 'Phone' })));
    expect(second.status).toBe(201);
    expect((await verifyLogin(authenticator.get(await loginOptions()))).status).toBe(200);
    const { passkeys } = await mfaOf(token);
    expect(passkeys.map(({ name }) => name)).toEqual(['Laptop', 'Phone']);
    expect(passkeys[0]).toEqual({
      id: passkey.id,
      name: 'Laptop',
      created_at: passkey.created_at,
      last_used_at: now().toISOString(),
    });
    expect(passkeys[1]?.last_used_at).toBeNull();
  });

  test('the password alone no longer logs in a user whose only factor is a passkey: 403 naming webauthn', async () => {
    const { email, password, authenticator, user } = await userWithPasskey();
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: email, password }),
    });
    const problem = (await expectProblem(res, 403, 'mfa-required')) as unknown as { methods: string[]; detail: string };
    expect(problem.methods).toEqual(['webauthn']);
    expect(problem.detail).toContain('/webauthn/login/options');
    // The client finishes with the passkey, and no password at all.
    const tokens = await json<TokenBody>(await verifyLogin(authenticator.get(await loginOptions({ email }))));
    expect(claimsOf(tokens.access_token)).toMatchObject({ sub: String(user.id), amr: ['webauthn'] });
  });

  test('with TOTP and a passkey, adding or removing a passkey needs step-up, and a passkey login gives it', async () => {
    const user = await totpUser(app, now); // user.token: the enrolling session's, amr ["pwd"]
    await expectProblem(
      await send('POST', '/webauthn/register/options', user.token, {}),
      401,
      'insufficient-user-authentication',
    );
    clock.advance(STEP_MS);
    const { token } = await loginWithOtp(app, user, now());
    const authenticator = new SoftwareAuthenticator(ORIGIN);
    const created = await verifyRegistration(token, authenticator.create(await registrationOptions(token)));
    const { id } = await json<{ id: string }>(created);
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: user.email, password: user.password }),
    });
    expect(((await expectProblem(res, 403, 'mfa-required')) as unknown as { methods: string[] }).methods).toEqual([
      'otp',
      'webauthn',
    ]);
    await expectProblem(
      await send('DELETE', `/users/me/passkeys/${id}`, user.token),
      401,
      'insufficient-user-authentication',
    );

    const passkeyLogin = await json<TokenBody>(await verifyLogin(authenticator.get(await loginOptions())));
    const changed = await send('PUT', '/users/me/password', passkeyLogin.access_token, {
      current_password: user.password,
      new_password: 'quiet violet ferry lantern',
    });
    expect(changed.status).toBe(204);
  });

  test("the admin's DELETE /users/{id}/mfa removes the passkeys too", async () => {
    const { email, password, authenticator, user } = await userWithPasskey();
    expect((await send('DELETE', `/users/${user.id}/mfa`, admin.token)).status).toBe(204);
    await expectLoginRefused(await verifyLogin(authenticator.get(await loginOptions())));
    const res = await app.request('/token', {
      method: 'POST',
      body: new URLSearchParams({ username: email, password }),
    });
    expect(res.status).toBe(200); // no factor left: the password logs in again
    expect((await mfaOf((await json<TokenBody>(res)).access_token)).passkeys).toEqual([]);
  });

  test('under MFA_REQUIRED_FOR_ADMINS an admin enrols with a passkey, and its login opens the admin routes', async () => {
    const strict = await createTestApp({ env: { WEBAUTHN_ORIGINS: ORIGIN, MFA_REQUIRED_FOR_ADMINS: 'true' } });
    const enrolling = await loginAsAdmin(strict.app, strict.deps);
    await expectProblem(
      await send('GET', '/users', enrolling.token, undefined, strict.app),
      403,
      'mfa-enrolment-required',
    );
    const authenticator = new SoftwareAuthenticator(ORIGIN);
    const options = await registrationOptions(enrolling.token, {}, strict.app);
    expect((await verifyRegistration(enrolling.token, authenticator.create(options), strict.app)).status).toBe(201);
    const res = await verifyLogin(authenticator.get(await loginOptions({}, strict.app)), strict.app);
    const { access_token } = await json<TokenBody>(res);
    expect((await send('GET', '/users', access_token, undefined, strict.app)).status).toBe(200);
  });
});
