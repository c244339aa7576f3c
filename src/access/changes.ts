/**
 * What ends or changes access, as every instance hears of it (API.md "Revocation without a database round
 * trip"). On PostgreSQL and PGlite the database itself announces each change: triggers on `users`,
 * `sessions` and `signing_keys` (migration 0003) NOTIFY the channel in the changing transaction, so the
 * message goes out exactly when it commits — whoever wrote the row (a service, the CLI, an operator's SQL).
 * With INVALIDATION_BUS=redis the services publish to Redis after they commit.
 */

export const ACCESS_CHANNEL = 'hpa_access';

export type AccessChange =
  /** A user's row changed (role, disabled, password, email, last login) or went: drop them and their sessions. */
  | { kind: 'user'; userId: number }
  /** A session was revoked, ended or deleted. */
  | { kind: 'session'; sessionId: string; userId: number }
  /** A signing key was revoked: every token it signed fails. */
  | { kind: 'key'; kid: string }
  /** Signing keys were added or changed: reload them. */
  | { kind: 'keys' };

/** A change with the time it was published (ms since the epoch), for the invalidation lag. */
export interface AccessMessage {
  change: AccessChange;
  publishedAt: number;
}

/**
 * The wire format, shared by the triggers (json_build_object in SQL) and the Redis publisher:
 * `{"k":"u","u":1,"t":…}`, `{"k":"s","s":"<uuid>","u":1,"t":…}`, `{"k":"key","kid":"…","t":…}`, `{"k":"keys","t":…}`.
 */
export function encodeAccessMessage({ change, publishedAt }: AccessMessage): string {
  const t = publishedAt;
  switch (change.kind) {
    case 'user':
      return JSON.stringify({ k: 'u', u: change.userId, t });
    case 'session':
      return JSON.stringify({ k: 's', s: change.sessionId, u: change.userId, t });
    case 'key':
      return JSON.stringify({ k: 'key', kid: change.kid, t });
    case 'keys':
      return JSON.stringify({ k: 'keys', t });
  }
}

/** The message in a payload, or null for anything else (a payload we did not write is ignored, never trusted). */
export function decodeAccessMessage(payload: string): AccessMessage | null {
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const { k, u, s, kid, t } = raw as Record<string, unknown>;
  const publishedAt = typeof t === 'number' && Number.isFinite(t) ? t : Number.NaN;
  if (k === 'u' && Number.isInteger(u)) return { change: { kind: 'user', userId: u as number }, publishedAt };
  if (k === 's' && typeof s === 'string' && Number.isInteger(u)) {
    return { change: { kind: 'session', sessionId: s, userId: u as number }, publishedAt };
  }
  if (k === 'key' && typeof kid === 'string') return { change: { kind: 'key', kid }, publishedAt };
  if (k === 'keys') return { change: { kind: 'keys' }, publishedAt };
  return null;
}
