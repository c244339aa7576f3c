/**
 * Steady load that checks every answer it gets: `clients` loops, each walking journeys of register → log in
 * → /users/me → /users/me/sessions → log out → /users/me again, against one or several base URLs. For the
 * pooler test, `bun run cluster:faults` and the bench. Every answer is classed:
 * - `ok`: what the journey expects (201, 200 with the right email, 204, 401 after logout);
 * - `unavailable`: a 503/502/504 or a connection error, which a client retries (a fault may cause these);
 * - `late`: a token just logged out still accepted — by another instance that had not heard of the logout
 *   yet (API.md allows 1 s, at p99) — and refused when asked again after that bound;
 * - `wrong`: anything else — a valid token answered 401, a revoked one accepted past the bound, a 500,
 *   another user's data. A fault must never cause one.
 * Registrations answered 201 and tokens whose logout answered 204 are kept, so a caller can check afterwards
 * that no acknowledged write was lost and no revoked token is accepted.
 */

export type Outcome = 'ok' | 'unavailable' | 'late' | 'wrong';

export interface Answer {
  /** When the answer came (or the request failed): a fault's window holds what it caused. */
  at: number;
  step: string;
  status: number;
  outcome: Outcome;
}

export interface LoadResult {
  answers: Answer[];
  /** Accounts whose registration answered 201. */
  registered: { email: string; password: string }[];
  /** Access tokens whose logout answered 204: revoked. */
  revoked: string[];
  /** The first few wrong answers, described, for the report. */
  wrongs: string[];
  /** The first few refusals, described. */
  refusals: string[];
}

const PASSWORD = 'correct horse battery staple';
const REQUEST_TIMEOUT_MS = 15_000;
const UNAVAILABLE = new Set([502, 503, 504]);
const KEPT_WRONGS = 20;
const REVOCATION_BOUND_MS = 1_000; // API.md "Revocation without a database round trip": 1 s at p99
const RETRY_DELAY_MS = 100; // after a refusal, as a client backs off: a dead server is not hammered

export interface LoadOptions {
  /** Base URLs, chosen in turn per request. */
  urls: string[];
  clients: number;
  /** Stops starting journeys when it aborts (journeys in flight finish). */
  signal?: AbortSignal;
  /** Stops after this many journeys per client, when given. */
  journeys?: number;
  tag?: string;
}

let sequence = 0;

export async function runLoad({ urls, clients, signal, journeys, tag = 'load' }: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { answers: [], registered: [], revoked: [], wrongs: [], refusals: [] };
  let next = 0;
  const base = () => urls[next++ % urls.length] as string;

  /** One request; the answer is classed by `expect` unless the server could not answer. */
  const call = async (
    step: string,
    path: string,
    init: RequestInit,
    expect: (status: number, body: Record<string, unknown>) => boolean,
  ): Promise<{ body: Record<string, unknown> | null; answer: Answer }> => {
    let status: number;
    let text: string;
    try {
      const res = await fetch(`${base()}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      status = res.status;
      text = await res.text();
    } catch {
      const answer: Answer = { at: Date.now(), step, status: 0, outcome: 'unavailable' };
      result.answers.push(answer);
      return { body: null, answer };
    }
    let body: Record<string, unknown> = {};
    try {
      body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      // Not JSON (nginx's own error pages): judged by the status alone.
    }
    const good = expect(status, body);
    const outcome: Outcome = good ? 'ok' : UNAVAILABLE.has(status) ? 'unavailable' : 'wrong';
    const answer: Answer = { at: Date.now(), step, status, outcome };
    result.answers.push(answer);
    if (outcome === 'unavailable' && result.refusals.length < KEPT_WRONGS) {
      result.refusals.push(`${step} ${path} → ${status} ${text.slice(0, 160)}`);
    }
    if (outcome === 'wrong' && result.wrongs.length < KEPT_WRONGS && !(step === 'revoked' && status === 200)) {
      result.wrongs.push(`${step} ${path} → ${status} ${text.slice(0, 200)}`);
    }
    return { body: good ? body : null, answer };
  };

  const journey = async (client: number) => {
    const email = `${tag}-${process.pid}-${client}-${++sequence}-${Date.now().toString(36)}@example.com`;
    const { body: registered } = await call(
      'register',
      '/register',
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email, password: PASSWORD }),
      },
      (status) => status === 201,
    );
    if (!registered) return;
    result.registered.push({ email, password: PASSWORD });
    const { body: login } = await call(
      'login',
      '/token',
      { method: 'POST', body: new URLSearchParams({ username: email, password: PASSWORD }) },
      (status, body) => status === 200 && typeof body.access_token === 'string',
    );
    if (!login) return;
    const token = login.access_token as string;
    const auth = { headers: { Authorization: `Bearer ${token}` } };
    await call('me', '/users/me', auth, (status, body) => status === 200 && body.email === email);
    await call('sessions', '/users/me/sessions', auth, (status) => status === 200);
    const { body: loggedOut } = await call(
      'logout',
      '/logout',
      { method: 'POST', ...auth },
      (status) => status === 204,
    );
    if (!loggedOut) return;
    result.revoked.push(token);
    const { answer: first } = await call('revoked', '/users/me', auth, (status) => status === 401);
    if (first.status !== 200) return;
    // Accepted at once: by an instance that may not have heard yet. Past the bound it must refuse.
    await Bun.sleep(REVOCATION_BOUND_MS);
    const { body: refused } = await call('revoked-again', '/users/me', auth, (status) => status === 401);
    if (refused) first.outcome = 'late';
    else if (result.wrongs.length < KEPT_WRONGS) result.wrongs.push('revoked /users/me → 200 past the 1 s bound');
  };

  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let done = 0; !signal?.aborted && (journeys === undefined || done < journeys); done++) {
        const before = result.answers.length;
        await journey(client);
        if (result.answers.slice(before).some((answer) => answer.outcome === 'unavailable')) {
          await Bun.sleep(RETRY_DELAY_MS);
        }
      }
    }),
  );
  return result;
}

/** Answers by outcome within [from, to). */
export function tally(answers: Answer[], from = 0, to = Number.POSITIVE_INFINITY) {
  const counts = { ok: 0, unavailable: 0, late: 0, wrong: 0, total: 0 };
  for (const answer of answers) {
    if (answer.at < from || answer.at >= to) continue;
    counts[answer.outcome]++;
    counts.total++;
  }
  return counts;
}

/** Statuses of `answers` as "200×31 401×2". */
export function statusSummary(answers: Answer[]): string {
  const counts = new Map<string, number>();
  for (const { step, status } of answers) counts.set(`${step} ${status}`, (counts.get(`${step} ${status}`) ?? 0) + 1);
  return [...counts].map(([key, count]) => `${key}×${count}`).join(', ');
}
