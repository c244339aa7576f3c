/**
 * Two instances of this service on one PostgreSQL database, the way a cluster runs them (README "Revocation
 * without a database round trip"), both serving GET /users/me load from wrk the whole time:
 *
 * - **Revocation lag.** For each of REVOCATIONS sessions, logged in on A and remembered by B (B has answered
 *   one GET /users/me with it, so B's live view holds it): A logs it out, and B is asked again and again
 *   until it refuses the token. The lag is from A's answer to B's first 401, as a client would see it.
 * - **Rotation under load.** `bun run cli keys rotate` (a new key, signing JWKS_MAX_AGE_SECONDS later), while
 *   a client logs in on A and uses each new token on B; every request of it and of wrk must succeed, and
 *   the new tokens must come to carry the new key's `kid`.
 */
import { freePort, runProcess, type ServerProcess } from '../lib/processes';
import { startRuntime } from '../lib/runtimes';
import { scratchDatabase } from '../lib/scratch-database';
import { log } from './log';
import { ADMIN_URL } from './machine';
import { type SeededUsers, seed } from './seed';
import { type Percentiles, percentiles } from './stats';
import { type WrkResult, wrk } from './wrk';

export const REVOCATIONS = 200;
/** How long the rotation's new key waits before it signs: short, so the run sees it take over. */
const ROTATION_PUBLISH_S = 3;
/** A poll of B that never sees the revocation gives up after this long (the bound is 1 s). */
const LAG_GIVE_UP_MS = 5_000;

export interface TokenFigures {
  lagMs: Percentiles;
  loadDuringRevocations: WrkResult[];
  rotation: {
    load: WrkResult[];
    logins: number;
    failures: string[];
    kidBefore: string;
    kidAfter: string;
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const kidOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string }).kid;

async function login(base: string, users: SeededUsers, i: number): Promise<string> {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    body: new URLSearchParams({ username: `${users.prefix}${i % users.count}@example.com`, password: users.password }),
  });
  if (res.status !== 200) throw new Error(`POST /token answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

const meStatus = async (base: string, token: string) =>
  (await fetch(`${base}/users/me`, { headers: bearer(token) })).status;

/** Milliseconds from A's logout answer until B refuses the token. */
async function revocationLag(a: string, b: string, token: string): Promise<number> {
  if ((await meStatus(b, token)) !== 200) throw new Error('B refused a live session before its logout');
  const res = await fetch(`${a}/logout`, { method: 'POST', headers: bearer(token) });
  if (res.status !== 204) throw new Error(`POST /logout answered ${res.status}`);
  const loggedOut = performance.now();
  for (;;) {
    const status = await meStatus(b, token);
    const lag = performance.now() - loggedOut;
    if (status === 401) return lag;
    if (status !== 200) throw new Error(`B answered ${status} while the revocation travelled`);
    if (lag > LAG_GIVE_UP_MS) throw new Error(`B still accepted a revoked token after ${LAG_GIVE_UP_MS} ms`);
  }
}

/** Logs in `count` sessions on `base`, two at a time (bcrypt-bound: one per core). */
async function loginMany(base: string, users: SeededUsers, count: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i += 2) {
    tokens.push(...(await Promise.all([login(base, users, i), login(base, users, i + 1)])));
  }
  return tokens.slice(0, count);
}

/** Both measurements on two fresh instances of one fresh database; everything is stopped and dropped after. */
export async function measureTokens(
  env: (url: string) => Record<string, string>,
  users: SeededUsers,
  seconds: number,
): Promise<TokenFigures> {
  const db = await scratchDatabase('bench_tokens', { adminUrl: ADMIN_URL });
  const servers: ServerProcess[] = [];
  try {
    const instanceEnv = { ...env(db.url as string), JWKS_MAX_AGE_SECONDS: String(ROTATION_PUBLISH_S) };
    const start = async (name: string) => {
      // A port of its own choosing is polled: at LOG_LEVEL=warn the entry does not log `listening`.
      const server = await startRuntime('bun', {
        env: { ...instanceEnv, PORT: String(freePort()) },
        timeoutMs: 60_000,
      });
      servers.push(server);
      log(`tokens: instance ${name} on ${server.url}`);
      return server.url;
    };
    const a = await start('A'); // migrates the database; B finds it migrated
    const b = await start('B');
    const token = await seed({ name: 'tokens', base: a, db }, users);
    const load = (secs: number) =>
      Promise.all([a, b].map((base) => wrk(`${base}/users/me`, { conns: 25, secs, token, users })));

    log(`tokens: ${REVOCATIONS} sessions logged in on A`);
    const sessions = await loginMany(a, users, REVOCATIONS);
    log(`tokens: ${REVOCATIONS} revocations on A, each awaited on B, both under load`);
    const revocationLoad = load(seconds);
    await Bun.sleep(1000); // the load is up before the first revocation
    const lags: number[] = [];
    for (const session of sessions) lags.push(await revocationLag(a, b, session));
    const loadDuringRevocations = await revocationLoad;

    log(`tokens: keys rotate under load (the new key signs after ${ROTATION_PUBLISH_S} s)`);
    const kidBefore = kidOf(await login(a, users, 0));
    const rotationSecs = Math.max(seconds, ROTATION_PUBLISH_S + 6);
    const rotationLoad = load(rotationSecs);
    const failures: string[] = [];
    let logins = 0;
    let kidAfter = kidBefore;
    const client = (async () => {
      const until = performance.now() + (rotationSecs - 1) * 1000;
      while (performance.now() < until) {
        try {
          const fresh = await login(a, users, logins++);
          kidAfter = kidOf(fresh);
          const status = await meStatus(b, fresh);
          if (status !== 200) failures.push(`B answered ${status} to a token of kid ${kidAfter}`);
        } catch (error) {
          failures.push(String(error));
        }
      }
    })();
    await Bun.sleep(1000);
    const rotate = await runProcess(['bun', 'scripts/cli.ts', 'keys', 'rotate'], { env: instanceEnv });
    if (rotate.code !== 0) throw new Error(`keys rotate exited with ${rotate.code}: ${rotate.stderr}`);
    const [rotationWrk] = await Promise.all([rotationLoad, client]);
    return {
      lagMs: percentiles(lags),
      loadDuringRevocations,
      rotation: { load: rotationWrk, logins, failures, kidBefore, kidAfter },
    };
  } finally {
    await Promise.all(servers.map((server) => server.stop({ group: true })));
    await db.drop();
  }
}
