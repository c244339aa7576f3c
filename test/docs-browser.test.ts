/**
 * /docs in a real browser (headless Chromium): the Authorize dialog offers one way in, logs in through
 * POST /token with an email and a password only, and "Try it out" then calls a bearer route with that token.
 * Runs wherever Chromium is installed (`apt-get install chromium`; .ci/run installs it), and always in CI.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type ScratchDatabase, scratchDatabase } from '../scripts/lib/scratch-database';
import { TEST_PASSWORD, testDatabaseUrl, uniqueEmail } from './helpers';
import { register, SERVER_TEST_TIMEOUT_MS, type ServerProcess, startServer } from './server-process';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const STEP_TIMEOUT_MS = 15_000; // a page step on a loaded machine; the tests' own timeout is far above their sum

describe.skipIf(!existsSync(CHROMIUM) && !process.env.CI)('/docs in Chromium', () => {
  let pglite: ScratchDatabase | undefined;
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;
  const email = uniqueEmail('swagger');
  const tokenRequests: { body: string | null; authorization?: string }[] = [];

  beforeAll(async () => {
    const databaseUrl = await testDatabaseUrl();
    if (!databaseUrl) pglite = await scratchDatabase('docs_browser');
    server = await startServer(databaseUrl ? { DATABASE_URL: databaseUrl } : (pglite as ScratchDatabase).env);
    await register(server.url, email);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    page = await browser.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/token') {
        tokenRequests.push({ body: request.postData(), authorization: request.headers().authorization });
      }
    });
    await page.goto(`${server.url}/docs`);
    await page.waitForSelector('.btn.authorize');
  }, SERVER_TEST_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await pglite?.drop();
  });

  test(
    'the Authorize dialog has one scheme, asking for username and password and nothing else (no client, no scopes)',
    async () => {
      await page.click('.btn.authorize');
      const dialog = page.locator('.modal-ux');
      await dialog.waitFor();
      expect(await dialog.locator('.auth-container').count()).toBe(1);
      expect(await dialog.locator('#oauth_username').isVisible()).toBe(true);
      expect(await dialog.locator('#oauth_password').isVisible()).toBe(true);
      for (const hidden of ['#password_type', 'input[id^="client_id"]', 'input[id^="client_secret"]', '.scope-def']) {
        expect(await dialog.locator(hidden).isVisible(), hidden).toBe(false);
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'logs in through POST /token with the email and password only, no client credentials',
    async () => {
      const dialog = page.locator('.modal-ux');
      await dialog.locator('#oauth_username').fill(email);
      await dialog.locator('#oauth_password').fill(TEST_PASSWORD);
      await dialog.locator('.auth-btn-wrapper .btn.modal-btn.auth.authorize').click();
      await dialog.getByText('Authorized').waitFor();
      expect(tokenRequests).toHaveLength(1);
      const form = new URLSearchParams(tokenRequests[0]?.body ?? '');
      expect(Object.fromEntries(form)).toEqual({ grant_type: 'password', username: email, password: TEST_PASSWORD });
      expect(tokenRequests[0]?.authorization).toBeUndefined();
      await dialog.locator('.btn-done').click();
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    '"Try it out" on GET /users/me then answers 200 with the logged-in user',
    async () => {
      const operation = page.locator('#operations-users-getMe');
      await operation.locator('.opblock-summary').click();
      await operation.locator('.try-out__btn').click();
      await operation.locator('.execute').click();
      const status = operation.locator('.live-responses-table .response .response-col_status');
      await status.waitFor();
      expect((await status.textContent())?.trim()).toBe('200');
      const body = operation.locator('.live-responses-table .response .response-col_description').first();
      expect(await body.textContent()).toContain(email);
    },
    SERVER_TEST_TIMEOUT_MS,
  );

  test(
    'the Schemas section names every schema by its type, none as array<any>',
    async () => {
      const schemas = await page.locator('section.models').textContent();
      expect(schemas).toContain('SessionsPublic');
      expect(schemas).not.toContain('array<any>');
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});
