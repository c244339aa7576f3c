/**
 * The real WebAuthn ceremony in headless Chromium: Chromium's virtual authenticator (DevTools protocol
 * `WebAuthn.addVirtualAuthenticator`: CTAP2, internal, resident keys, user verification) answers the page's
 * navigator.credentials.create() and .get(), and the page talks to the service on its own origin
 * (http://localhost:<port>, RP id localhost). Registration, then a passwordless login whose tokens work.
 * Runs wherever Chromium is installed, and always in CI (as test/docs-browser.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { type Browser, type CDPSession, chromium, type Page } from 'playwright-core';
import { createTestApp, loginAs, type TestApp } from './helpers';
import { SERVER_TEST_TIMEOUT_MS } from './server-process';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-sync'];
const STEP_TIMEOUT_MS = 15_000; // a page step on a loaded machine; the test's own timeout is far above their sum
const PAGE_PATH = '/passkey-test';

// What a page of the service's origin runs, as README "Passkeys" shows it: the options as the service sends
// them, parsed by the browser, the credential's toJSON() sent back.
const PAGE = `<!doctype html><meta charset="utf-8"><title>passkeys</title><script>
const post = (path, body, token) => fetch(path, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: 'Bearer ' + token } : {}) },
  body: JSON.stringify(body),
});
window.registerPasskey = async (token, name) => {
  const options = await (await post('/webauthn/register/options', { name }, token)).json();
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
  });
  const res = await post('/webauthn/register/verify', credential.toJSON(), token);
  return { status: res.status, body: await res.json() };
};
window.loginWithPasskey = async () => {
  const options = await (await post('/webauthn/login/options', {})).json();
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
  });
  const res = await post('/webauthn/login/verify', credential.toJSON());
  return { status: res.status, body: await res.json() };
};
</script>`;

describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)('passkeys in Chromium', () => {
  let server: ReturnType<typeof Bun.serve>;
  let app: TestApp;
  let browser: Browser;
  let page: Page;
  let devtools: CDPSession;
  let authenticatorId: string;

  beforeAll(async () => {
    // The port comes first, so the app can be configured with the origin the page will have.
    let ready: TestApp | undefined;
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (request) =>
        new URL(request.url).pathname === PAGE_PATH
          ? new Response(PAGE, { headers: { 'Content-Type': 'text/html; charset=utf-8' } })
          : (ready as TestApp).fetch(request),
    });
    const origin = `http://localhost:${server.port}`;
    ({ app } = await createTestApp({ env: { WEBAUTHN_ORIGINS: origin } }));
    ready = app;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // localhost is the secure context WebAuthn needs over http; it must reach the IPv4 listener.
      args: [...CHROMIUM_FLAGS, '--host-resolver-rules=MAP localhost 127.0.0.1'],
    });
    page = await browser.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    devtools = await page.context().newCDPSession(page);
    await devtools.send('WebAuthn.enable');
    ({ authenticatorId } = await devtools.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
    await page.goto(`${origin}${PAGE_PATH}`);
  }, SERVER_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    server?.stop(true);
  });

  test(
    'registers a passkey, then logs in with it and no email; the tokens work on /users/me',
    async () => {
      const { token, email } = await loginAs(app);
      const registered = await page.evaluate(
        ([bearer, name]) =>
          (globalThis as unknown as { registerPasskey(t: string, n: string): Promise<unknown> }).registerPasskey(
            bearer,
            name,
          ),
        [token, 'Virtual authenticator'] as const,
      );
      expect(registered).toMatchObject({ status: 201, body: { name: 'Virtual authenticator' } });
      const { credentials } = await devtools.send('WebAuthn.getCredentials', { authenticatorId });
      expect(credentials).toHaveLength(1);
      expect(credentials[0]?.isResidentCredential).toBe(true);
      expect(credentials[0]?.rpId).toBe('localhost');

      const loggedIn = (await page.evaluate(() =>
        (globalThis as unknown as { loginWithPasskey(): Promise<unknown> }).loginWithPasskey(),
      )) as { status: number; body: { access_token: string; token_type: string } };
      expect(loggedIn.status).toBe(200);
      expect(loggedIn.body.token_type).toBe('bearer');
      const me = await app.request('/users/me', { headers: { Authorization: `Bearer ${loggedIn.body.access_token}` } });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { email: string }).email).toBe(email);
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
