/**
 * Signing keys (API.md "Tokens"). Under ES256 or EdDSA the keys live in `signing_keys`: the public half is
 * published in the JWKS, the private half stored sealed with a key derived from SECRET_KEY (lib/key-crypto.ts).
 * A key's life, all derived from its row's timestamps, so every instance agrees without coordination:
 *   created (published) → activates (signs; the previous key stops) → retiring (published until the last token
 *   it signed has expired) → gone. `revokedAt` is the emergency stop: its tokens fail at once everywhere.
 * Under HS256 tokens are signed with SECRET_KEY itself and nothing is published.
 *
 * The KeyRing is one per instance (or Workers isolate): it caches the rows and the imported CryptoKeys, and
 * reloads when told (an invalidation), on a timer, or when a token names a kid it does not know.
 */
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { AccessChanges } from '../access/listener';
import type { Config } from '../config';
import type { Database } from '../db/database';
import { type SigningKeyRow, signingKeys } from '../db/schema';
import type { Clock } from '../lib/clock';
import { sha256 } from '../lib/crypto';
import {
  type AsymmetricAlgorithm,
  deriveKeyEncryptionKey,
  generateSigningKey,
  importPrivateKey,
  importPublicKey,
  type PublicJwk,
  seal,
  unseal,
} from '../lib/key-crypto';
import { DescribedError, describeError, type Logger } from '../lib/logger';
import { AppError } from '../lib/problems';

/** Clock skew allowed between instances and verifiers, in seconds (RFC 7519 §4.1.4 leaves it to us). */
export const CLOCK_SKEW_SECONDS = 60;
// Any constant works as long as every instance uses the same one: it names the lock, nothing else.
const KEY_LOCK_ID = 72_0_1_2027;
const MIN_RELOAD_INTERVAL_MS = 1_000; // an unknown kid reloads the keys at most this often (a flood of forged kids)

export type KeyState = 'pending' | 'active' | 'retiring' | 'expired' | 'revoked';

export interface KeyInfo {
  kid: string;
  alg: string;
  state: KeyState;
  createdAt: Date;
  activatesAt: Date;
  /** When a newer key took over signing; null while it signs or has not signed yet. */
  signedUntil: Date | null;
  /** When it leaves the JWKS: the last token it signed has expired. */
  unpublishAt: Date | null;
  revokedAt: Date | null;
}

/** A JWK Set member (RFC 7517 §4): the public key, its id, its algorithm, and what it is for. */
export type PublishedJwk = PublicJwk & { kid: string; alg: string; use: 'sig' };

export interface SigningKey {
  kid: string;
  alg: Config['JWT_ALGORITHM'];
  key: CryptoKey;
}

type KeyDeps = { config: Config; clock: Clock };

const seconds = (n: number) => n * 1000;

/** How long a key stays published after it stopped signing: one access-token lifetime, plus skew. */
const retiringMs = (config: Config) => seconds(config.ACCESS_TOKEN_EXPIRE_MINUTES * 60 + CLOCK_SKEW_SECONDS);

/** Every key with its state at `now`, newest activation last. */
export function describeKeys(rows: readonly SigningKeyRow[], { config, clock }: KeyDeps): KeyInfo[] {
  const now = clock.now().getTime();
  const live = rows.filter((row) => !row.revokedAt).sort((a, b) => a.activatesAt.getTime() - b.activatesAt.getTime());
  const activated = live.filter((row) => row.activatesAt.getTime() <= now);
  const infos = new Map<string, KeyInfo>();
  activated.forEach((row, i) => {
    const successor = activated[i + 1];
    const signedUntil = successor ? successor.activatesAt : null;
    const unpublishAt = signedUntil ? new Date(signedUntil.getTime() + retiringMs(config)) : null;
    const state: KeyState = !signedUntil
      ? 'active'
      : unpublishAt && unpublishAt.getTime() > now
        ? 'retiring'
        : 'expired';
    infos.set(row.kid, { ...pick(row), state, signedUntil, unpublishAt });
  });
  for (const row of live) {
    if (!infos.has(row.kid))
      infos.set(row.kid, { ...pick(row), state: 'pending', signedUntil: null, unpublishAt: null });
  }
  for (const row of rows) {
    if (row.revokedAt) infos.set(row.kid, { ...pick(row), state: 'revoked', signedUntil: null, unpublishAt: null });
  }
  return [...infos.values()].sort((a, b) => a.activatesAt.getTime() - b.activatesAt.getTime());
}

const pick = ({ kid, alg, createdAt, activatesAt, revokedAt }: SigningKeyRow) => ({
  kid,
  alg,
  createdAt,
  activatesAt,
  revokedAt,
});

const isAsymmetric = (alg: string): alg is AsymmetricAlgorithm => alg === 'ES256' || alg === 'EdDSA';

export interface KeyRing {
  readonly algorithm: Config['JWT_ALGORITHM'];
  /** The key that signs now. */
  signingKey(): Promise<SigningKey>;
  /**
   * The key a token names, for verification: null when unknown, revoked, or of another algorithm family. A kid
   * the ring does not know is looked up in `db` (a key another instance made moments ago), at most once a second.
   */
  verificationKey(kid: string, db?: Database): Promise<SigningKey | null>;
  /** The public keys to publish (RFC 7517 JWK Set members). */
  jwks(): PublishedJwk[];
  /** Reloads the rows from the database (after an invalidation, on a timer, at start). */
  reload(db: Database): Promise<void>;
  /** Drops a key at once (an invalidation said it was revoked), before the reload confirms it. */
  forget(kid: string): void;
}

/**
 * The instance's key ring. Under HS256 it holds one HMAC key derived from nothing but SECRET_KEY (its kid is
 * a hash of the key, so rotating SECRET_KEY changes the kid too); asymmetric keys come from the database.
 */
export function createKeyRing({ config, clock, logger }: KeyDeps & { logger: Logger }): KeyRing {
  const algorithm = config.JWT_ALGORITHM;
  let rows: SigningKeyRow[] = [];
  let lastReload = Number.NEGATIVE_INFINITY;
  const publicKeys = new Map<string, Promise<CryptoKey>>();
  const privateKeys = new Map<string, Promise<CryptoKey | null>>();
  let kek: Promise<CryptoKey> | undefined;
  const keyEncryptionKey = () => {
    kek ??= deriveKeyEncryptionKey(config.SECRET_KEY);
    return kek;
  };

  let hmac: Promise<SigningKey> | undefined;
  const hmacKey = () => {
    hmac ??= (async () => ({
      kid: `hs256-${(await sha256(`kid:${config.SECRET_KEY}`)).slice(0, 16)}`,
      alg: 'HS256' as const,
      key: await crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(config.SECRET_KEY),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['sign', 'verify'],
      ),
    }))();
    return hmac;
  };

  const privateKeyOf = (row: SigningKeyRow) => {
    let key = privateKeys.get(row.kid);
    if (!key) {
      key = (async () => {
        const pkcs8 = await unseal(await keyEncryptionKey(), row.kid, row.privateKey);
        return pkcs8 && isAsymmetric(row.alg) ? importPrivateKey(row.alg, pkcs8) : null;
      })();
      privateKeys.set(row.kid, key);
    }
    return key;
  };

  const publicKeyOf = (row: SigningKeyRow & { alg: AsymmetricAlgorithm }) => {
    let key = publicKeys.get(row.kid);
    if (!key) {
      key = importPublicKey(row.alg, row.publicJwk);
      publicKeys.set(row.kid, key);
    }
    return key;
  };

  const ring: KeyRing = {
    algorithm,

    async signingKey() {
      if (algorithm === 'HS256') return hmacKey();
      // The active key; should this instance be unable to open it (its SECRET_KEY differs from the one that
      // sealed it), the newest retiring key it can open, which verifiers still have in the JWKS.
      const states = describeKeys(rows, { config, clock });
      const candidates = [
        ...states.filter((k) => k.state === 'active'),
        ...states.filter((k) => k.state === 'retiring').reverse(),
      ];
      for (const [i, info] of candidates.entries()) {
        const row = rows.find((r) => r.kid === info.kid) as SigningKeyRow;
        const key = await privateKeyOf(row);
        if (!key) continue;
        if (i > 0)
          logger.warn('the active signing key cannot be opened with this SECRET_KEY; signing with an older one');
        // The key's own algorithm: after JWT_ALGORITHM changes, the old key signs until the new one activates.
        return { kid: row.kid, alg: row.alg as SigningKey['alg'], key };
      }
      logger.error('no usable signing key: check SECRET_KEY, or run `bun run cli keys rotate`', { algorithm });
      throw new AppError('no-signing-key');
    },

    async verificationKey(kid, db) {
      if (algorithm === 'HS256') {
        const key = await hmacKey();
        return kid === key.kid ? key : null;
      }
      let row = rows.find((r) => r.kid === kid);
      if (!row && db && clock.now().getTime() - lastReload >= MIN_RELOAD_INTERVAL_MS) {
        await ring.reload(db);
        row = rows.find((r) => r.kid === kid);
      }
      if (!row || row.revokedAt || !isAsymmetric(row.alg)) return null;
      return { kid, alg: row.alg, key: await publicKeyOf({ ...row, alg: row.alg }) };
    },

    jwks() {
      if (algorithm === 'HS256') return [];
      return describeKeys(rows, { config, clock })
        .filter((k) => k.state === 'pending' || k.state === 'active' || k.state === 'retiring')
        .flatMap((k) => {
          const row = rows.find((r) => r.kid === k.kid);
          return row ? [{ ...row.publicJwk, kid: row.kid, alg: row.alg, use: 'sig' as const }] : [];
        });
    },

    async reload(db) {
      lastReload = clock.now().getTime();
      rows = await db.select().from(signingKeys);
      for (const row of rows) {
        if (row.revokedAt) ring.forget(row.kid);
      }
    },

    forget(kid) {
      rows = rows.map((row) => (row.kid === kid && !row.revokedAt ? { ...row, revokedAt: clock.now() } : row));
      publicKeys.delete(kid);
      privateKeys.delete(kid);
    },
  };
  return ring;
}

type KeyServiceDeps = KeyDeps & { db: Database; keys: KeyRing; logger: Logger; access?: AccessChanges };

/** Runs `work` holding the keys' transaction-scoped advisory lock, so two instances never both make a key. */
function withKeyLock<T>(db: Database, work: (tx: Database) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${KEY_LOCK_ID})`);
    return work(tx);
  });
}

async function insertKey(
  tx: Database,
  { config }: KeyDeps,
  { alg, activatesAt, now }: { alg: AsymmetricAlgorithm; activatesAt: Date; now: Date },
): Promise<string> {
  const generated = await generateSigningKey(alg);
  const sealed = await seal(await deriveKeyEncryptionKey(config.SECRET_KEY), generated.kid, generated.pkcs8);
  generated.pkcs8.fill(0); // the plaintext private key lives no longer than it must
  await tx.insert(signingKeys).values({
    kid: generated.kid,
    alg,
    publicJwk: generated.publicJwk,
    privateKey: sealed,
    createdAt: now,
    activatesAt,
  });
  return generated.kid;
}

/**
 * At start: makes sure there is a key of JWT_ALGORITHM that this instance can sign with, and loads the ring.
 * The first key of a database signs at once (no verifier has cached anything yet). A change of algorithm, or
 * a SECRET_KEY that cannot open the active key (it was changed), makes a new key: published for one JWKS
 * max-age before it signs while another key can still sign, at once when none can.
 */
export async function ensureSigningKey(deps: KeyServiceDeps): Promise<void> {
  const { db, keys, config, clock, logger } = deps;
  if (config.JWT_ALGORITHM === 'HS256') return;
  const alg = config.JWT_ALGORITHM;
  // Usable: of JWT_ALGORITHM, signing now or about to, and openable with this instance's SECRET_KEY.
  const hasUsableKey = async (rows: SigningKeyRow[]) => {
    const kek = await deriveKeyEncryptionKey(config.SECRET_KEY);
    for (const info of describeKeys(rows, { config, clock })) {
      if (info.alg !== alg || (info.state !== 'active' && info.state !== 'pending')) continue;
      const row = rows.find((r) => r.kid === info.kid) as SigningKeyRow;
      if (await unseal(kek, row.kid, row.privateKey)) return true;
    }
    return false;
  };
  if (await hasUsableKey(await db.select().from(signingKeys))) {
    await keys.reload(db);
    return;
  }
  const created = await withKeyLock(db, async (tx) => {
    const rows = await tx.select().from(signingKeys);
    if (await hasUsableKey(rows)) return null; // another instance made one meanwhile
    const now = clock.now();
    const someoneSigns = describeKeys(rows, { config, clock }).some((k) => k.state === 'active');
    if (someoneSigns) logger.warn('no signing key of JWT_ALGORITHM opens with this SECRET_KEY: making one', { alg });
    // With another key signing meanwhile, published first for a JWKS max-age; with none, it signs at once —
    // from a little before now, so an instance whose clock runs behind this one's does not see it as pending.
    const activatesAt = someoneSigns
      ? new Date(now.getTime() + seconds(config.JWKS_MAX_AGE_SECONDS))
      : new Date(now.getTime() - seconds(CLOCK_SKEW_SECONDS));
    return insertKey(tx, deps, { alg, activatesAt, now });
  });
  await keys.reload(db);
  if (created) logger.info('signing key created', { kid: created, alg });
  await deps.access?.committed([{ kind: 'keys' }]);
}

/**
 * `cli keys rotate` (and KEY_ROTATION_DAYS): a new key of JWT_ALGORITHM, published now and signing once every
 * verifier's cached JWKS has it (JWKS_MAX_AGE_SECONDS); the old key stops signing then and stays published
 * until its last token has expired. No request fails on the way.
 */
export async function rotateSigningKey(
  deps: KeyServiceDeps,
  {
    unlessActivatedAfter,
  }: { /** KEY_ROTATION_DAYS: skip when the newest key is younger */ unlessActivatedAfter?: Date } = {},
): Promise<KeyInfo | null> {
  const { db, config, clock } = deps;
  if (config.JWT_ALGORITHM === 'HS256') throw new HS256KeysError();
  const alg = config.JWT_ALGORITHM;
  const kid = await withKeyLock(db, async (tx) => {
    const now = clock.now();
    if (unlessActivatedAfter) {
      // Checked inside the lock: of instances deciding at once, the first rotates and the others see its key.
      const newest = describeKeys(await tx.select().from(signingKeys), { config, clock })
        .filter((k) => k.state === 'active' || k.state === 'pending')
        .at(-1);
      if (newest && newest.activatesAt > unlessActivatedAfter) return null;
    }
    return insertKey(tx, deps, {
      alg,
      now,
      activatesAt: new Date(now.getTime() + seconds(config.JWKS_MAX_AGE_SECONDS)),
    });
  });
  if (!kid) return null;
  await deps.keys.reload(db);
  await deps.access?.committed([{ kind: 'keys' }]);
  return (await listSigningKeys(deps)).find((k) => k.kid === kid) ?? null;
}

/**
 * `cli keys retire KID`, the emergency path: every token the key signed fails at once, on every instance
 * (the invalidation, and the bearer check's key lookup where an instance has no listener). Retiring the key
 * that signs makes a successor that signs at once: verifiers that cached the JWKS fetch it again when they
 * meet its unknown kid.
 */
export async function retireSigningKey(deps: KeyServiceDeps, { kid }: { kid: string }): Promise<KeyInfo[]> {
  const { db, config, clock } = deps;
  const found = await withKeyLock(db, async (tx) => {
    const now = clock.now();
    const [row] = await tx
      .update(signingKeys)
      .set({ revokedAt: now })
      .where(and(eq(signingKeys.kid, kid), isNull(signingKeys.revokedAt)))
      .returning();
    if (!row) return false;
    const rows = await tx.select().from(signingKeys);
    const signs = describeKeys(rows, { config, clock }).some((k) => k.state === 'active' || k.state === 'pending');
    if (!signs && config.JWT_ALGORITHM !== 'HS256') {
      await insertKey(tx, deps, { alg: config.JWT_ALGORITHM, activatesAt: now, now });
    }
    return true;
  });
  if (!found) throw new UnknownKeyError(kid);
  deps.keys.forget(kid);
  await deps.keys.reload(db);
  await deps.access?.committed([{ kind: 'key', kid }, { kind: 'keys' }]);
  return listSigningKeys(deps);
}

export async function listSigningKeys({ db, config, clock }: KeyServiceDeps): Promise<KeyInfo[]> {
  return describeKeys(await db.select().from(signingKeys), { config, clock });
}

/**
 * KEY_ROTATION_DAYS: rotates when the newest key activated that long ago. Every instance may call it; the
 * advisory lock and the re-check inside make exactly one rotate.
 */
export async function rotateIfDue(deps: KeyServiceDeps): Promise<KeyInfo | null> {
  const { config, clock } = deps;
  if (config.KEY_ROTATION_DAYS === 0 || config.JWT_ALGORITHM === 'HS256') return null;
  const dueBefore = new Date(clock.now().getTime() - config.KEY_ROTATION_DAYS * 24 * 60 * 60 * 1000);
  return rotateSigningKey(deps, { unlessActivatedAfter: dueBefore });
}

const KEY_RELOAD_INTERVAL_MS = 60_000; // a backstop: every key change is announced (migration 0003's trigger)
const ROTATION_CHECK_INTERVAL_MS = 60 * 60_000;

/**
 * For long-running instances: reloads the keys now and then (so a key another instance made becomes known
 * even if its announcement was missed), and rotates on KEY_ROTATION_DAYS. Workers start no timers.
 */
export function startKeyMaintenance(deps: KeyServiceDeps): { stop(): void } {
  const { db, keys, logger } = deps;
  const warn = (what: string) => (error: unknown) => logger.warn(what, { error: describeError(error) });
  const reload = setInterval(
    () => void keys.reload(db).catch(warn('could not reload the signing keys')),
    KEY_RELOAD_INTERVAL_MS,
  );
  const rotate = setInterval(() => {
    rotateIfDue(deps)
      .then((rotated) => rotated && logger.info('signing key rotated on schedule', { kid: rotated.kid }))
      .catch(warn('scheduled key rotation failed; the next check retries'));
  }, ROTATION_CHECK_INTERVAL_MS);
  for (const timer of [reload, rotate]) (timer as { unref?: () => void }).unref?.();
  return {
    stop() {
      clearInterval(reload);
      clearInterval(rotate);
    },
  };
}

export class UnknownKeyError extends DescribedError {
  override name = 'UnknownKeyError';
  constructor(kid: string) {
    super(`no signing key ${kid} that is not retired already; see \`bun run cli keys list\``);
  }
}

export class HS256KeysError extends DescribedError {
  override name = 'HS256KeysError';
  constructor() {
    super('JWT_ALGORITHM=HS256 signs with SECRET_KEY: there are no keys to rotate (change SECRET_KEY instead)');
  }
}
