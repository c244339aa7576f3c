import { z } from 'zod';
import { MAX_BCRYPT_COST, MIN_BCRYPT_COST } from './hashing/bcrypt';
import { type Cidr, parseCidr, type TrustProxy } from './lib/ip';
import { DescribedError, LOG_LEVELS } from './lib/logger';

export const RATE_LIMIT_STORES = ['memory', 'postgres', 'redis'] as const;
export const EMAIL_VERIFICATION_MODES = ['off', 'optional', 'required'] as const;
export const PREPARED_STATEMENTS = ['auto', 'on', 'off'] as const;
export type PreparedStatements = (typeof PREPARED_STATEMENTS)[number];
const MIN_SECRET_KEY_BYTES = 32; // HS256 wants a key at least as long as its 256-bit output (RFC 7518 §3.2)
const MIN_CLIENT_SECRET_BYTES = 16; // 128 bits: not guessable online

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);
// The default sits inside the preprocess: outside, `PORT=` (empty, as .env files and compose leave it) would
// reach z.coerce.number() as undefined, become NaN and refuse to start instead of meaning "unset".
const integer = (min: number, max: number, fallback: number) =>
  z.preprocess(emptyAsUndefined, z.coerce.number().int().min(min).max(max).default(fallback));
const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());
const MAX_PROXY_HOPS = 16;
const ON = ['1', 'true', 'yes', 'on'];
const OFF = ['0', 'false', 'no', 'off'];

/** TRUST_PROXY: off, on (one proxy), a hop count, or the comma-separated networks of the trusted proxies. */
const trustProxy = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .default('false')
    .transform((text, ctx): TrustProxy => {
      const value = text.trim().toLowerCase();
      if (OFF.includes(value)) return false;
      if (ON.includes(value)) return true;
      if (/^\d+$/.test(value) && Number(value) <= MAX_PROXY_HOPS) return Number(value);
      const networks = value.split(',').map((entry) => [entry.trim(), parseCidr(entry)] as const);
      const bad = networks.find(([entry, network]) => entry === '' || network === null);
      if (bad) {
        ctx.addIssue({
          code: 'custom',
          message: `must be off, a hop count (1–${MAX_PROXY_HOPS}) or a comma-separated list of CIDRs; "${bad[0]}" is none of them`,
        });
        return z.NEVER;
      }
      return networks.map(([, network]) => network as Cidr);
    }),
);

const optionalUrl = (protocols: RegExp, what: string) =>
  z.preprocess(emptyAsUndefined, z.string().regex(protocols, `must be ${what}`).optional());

/** Where the data lives, and how to hash: all that the operator CLI needs. */
export const CliConfigSchema = z.object({
  DATABASE_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
  ),
  // Behind a transaction pooler: `auto` turns named prepared statements off when it detects one (README "Poolers").
  DATABASE_PREPARED_STATEMENTS: z.preprocess(emptyAsUndefined, z.enum(PREPARED_STATEMENTS).default('auto')),
  // A direct connection for LISTEN and the migration lock, when DATABASE_URL goes through a pooler.
  DATABASE_LISTEN_URL: optionalUrl(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL'),
  PGLITE_DIR: z.preprocess(emptyAsUndefined, z.string().default('./data')),
  BCRYPT_COST: integer(MIN_BCRYPT_COST, MAX_BCRYPT_COST, 12),
  EMAIL_VERIFICATION: z.preprocess(emptyAsUndefined, z.enum(EMAIL_VERIFICATION_MODES).default('optional')),
  REFRESH_TOKEN_IDLE_DAYS: integer(1, 365, 7), // a session unused this long can no longer be refreshed (cli prune too)
});

export const JWT_ALGORITHMS = ['ES256', 'EdDSA', 'HS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export const INVALIDATION_BUSES = ['postgres', 'redis'] as const;
const DEFAULT_NAME = 'hono-postgres-auth';

const optionalInteger = (min: number, max: number) =>
  z.preprocess(emptyAsUndefined, z.coerce.number().int().min(min).max(max).optional());

/** A yes/no setting; unset (or empty) is undefined, so a default can depend on another setting. */
const optionalFlag = z.preprocess(
  emptyAsUndefined,
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      if (text === undefined) return undefined;
      const value = text.trim().toLowerCase();
      if (ON.includes(value)) return true;
      if (OFF.includes(value)) return false;
      ctx.addIssue({ code: 'custom', message: `must be on or off (${[...ON, ...OFF].join(', ')})` });
      return z.NEVER;
    }),
);

const ConfigFields = CliConfigSchema.extend({
  NODE_ENV: z.preprocess(emptyAsUndefined, z.enum(['development', 'production', 'test']).default('development')),
  SECRET_KEY: optionalString,
  // Asymmetric by default, so other services verify tokens from the JWKS without holding a secret (API.md "Tokens").
  JWT_ALGORITHM: z.preprocess(emptyAsUndefined, z.enum(JWT_ALGORITHMS).default('ES256')),
  // Unset: 15 minutes under ES256/EdDSA (verifiers elsewhere honour revocation only at expiry), 30 under HS256.
  ACCESS_TOKEN_EXPIRE_MINUTES: optionalInteger(1, 24 * 60),
  REFRESH_TOKEN_EXPIRE_DAYS: integer(1, 365, 14),
  // Unset: PUBLIC_URL when that is set (RFC 8414 §2: the issuer is the server's URL), else the service's name.
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: z.preprocess(emptyAsUndefined, z.string().default(DEFAULT_NAME)),
  JWKS_MAX_AGE_SECONDS: integer(0, 24 * 60 * 60, 300), // how long verifiers may cache the JWKS
  KEY_ROTATION_DAYS: integer(0, 3650, 0), // rotate the signing key this often; 0 = only by `cli keys rotate`
  PUBLIC_CLIENT_ID: z.preprocess(emptyAsUndefined, z.string().max(128).default(DEFAULT_NAME)),
  INTROSPECTION_CLIENT_ID: optionalString,
  INTROSPECTION_CLIENT_SECRET: optionalString,
  // Cross-instance revocation (API.md "Revocation without a database round trip").
  INVALIDATION_BUS: z.preprocess(emptyAsUndefined, z.enum(INVALIDATION_BUSES).default('postgres')),
  ACCESS_VIEW_MAX_ENTRIES: integer(0, 10_000_000, 100_000), // users + sessions kept in memory; 0 = no view
  HOST: z.preprocess(emptyAsUndefined, z.string().default('0.0.0.0')),
  PORT: integer(0, 65535, 8000),
  TRUST_PROXY: trustProxy,
  CORS_ORIGINS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .default('')
      .transform((s) =>
        s
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean),
      ),
  ),
  BODY_LIMIT_BYTES: integer(1024, 16 * 1024 * 1024, 64 * 1024),
  REQUEST_TIMEOUT_MS: integer(100, 10 * 60 * 1000, 10_000),
  LOG_LEVEL: z.preprocess(emptyAsUndefined, z.enum(LOG_LEVELS).default('info')),
  // Brute-force protection (OWASP Authentication Cheat Sheet); 0 turns a limit off.
  RATE_LIMIT_STORE: z.preprocess(emptyAsUndefined, z.enum(RATE_LIMIT_STORES).default('memory')),
  REDIS_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
  ),
  RATE_LIMIT_LOGIN_PER_IP: integer(0, 1_000_000, 20), // POST /token requests per client IP per minute
  RATE_LIMIT_LOGIN_FAILURES: integer(0, 1_000_000, 5), // failed logins per account before it is locked
  RATE_LIMIT_LOCKOUT_SECONDS: integer(1, 24 * 60 * 60, 15 * 60), // the failure window, and so the lockout
  RATE_LIMIT_REGISTER_PER_IP: integer(0, 1_000_000, 10), // POST /register requests per client IP per hour
  // Account recovery and email (README "Email").
  RATE_LIMIT_RECOVERY_PER_IP: integer(0, 1_000_000, 10), // mail-sending recovery requests per client IP per hour
  PUBLIC_URL: z.preprocess(
    emptyAsUndefined,
    z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .refine((s) => !/[?#]/.test(s), 'must not have a query or fragment')
      .transform((s) => s.replace(/\/+$/, ''))
      .optional(),
  ),
  APP_NAME: z.preprocess(emptyAsUndefined, z.string().max(100).default('hono-postgres-auth')),
  SMTP_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^smtps?:\/\/[^/]/, 'must be an smtp:// or smtps:// URL (smtp://user:pass@host:587)')
      .optional(),
  ),
  MAIL_FROM: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^\s*(?:[^<>]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)\s*$/, 'must be `address` or `Name <address>`')
      .optional(),
  ),
  PASSWORD_RESET_EXPIRE_MINUTES: integer(5, 24 * 60, 30),
  MAIL_MAX_ATTEMPTS: integer(1, 100, 8), // delivery attempts before a message is dead
  MAIL_SEND_TIMEOUT_SECONDS: integer(1, 600, 60), // the longest one SMTP delivery may take
  // The account-wide limits on failures from addresses the account has not logged in from (README "Rate limiting").
  RATE_LIMIT_ACCOUNT_FAILURES: integer(0, 1_000_000, 20), // per RATE_LIMIT_LOCKOUT_SECONDS
  RATE_LIMIT_ACCOUNT_FAILURES_PER_DAY: integer(0, 1_000_000, 100),
  RATE_LIMIT_KNOWN_ADDRESS_DAYS: integer(0, 365, 30), // how long a successful login's address stays known; 0: never
  REFRESH_REUSE_GRACE_SECONDS: integer(0, 300, 10), // a just-rotated token presented again: 401, family kept
  MAX_SESSIONS_PER_USER: integer(1, 10_000, 20), // live sessions per user; a new login ends the least recently used
  // Unset: on when NODE_ENV=production. An admin without a second factor may then only enrol one (README "Second factor").
  MFA_REQUIRED_FOR_ADMINS: optionalFlag,
  // Passkeys (README "Passkeys"). Unset: PUBLIC_URL's host and origin, else localhost and http://localhost:PORT.
  WEBAUTHN_RP_ID: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/, 'must be a lower-case domain name')
      .optional(),
  ),
  WEBAUTHN_ORIGINS: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean),
      )
      .optional(),
  ),
  WEBAUTHN_RP_NAME: z.preprocess(emptyAsUndefined, z.string().max(100).default(DEFAULT_NAME)),
  // Operations (README "Operations"): /metrics answers this bearer token; unset, only loopback clients.
  METRICS_TOKEN: optionalString,
  // OpenTelemetry's own variables: traces go out over OTLP/HTTP only when the endpoint is set.
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl(
    /^https?:\/\/[^/]/,
    'an http:// or https:// URL (the collector, e.g. http://localhost:4318)',
  ),
  OTEL_SERVICE_NAME: z.preprocess(emptyAsUndefined, z.string().max(200).default(DEFAULT_NAME)),
});

/**
 * The relying party's id and the origins its ceremonies may come from, defaults filled in. A browser signs
 * for the RP id it was given and reports the page's origin; an origin outside the RP id's domain could never
 * complete a ceremony, so such a configuration is refused at start.
 */
function relyingParty(config: {
  WEBAUTHN_RP_ID?: string;
  WEBAUTHN_ORIGINS?: string[];
  PUBLIC_URL?: string;
  PORT: number;
}): { rpId: string; origins: string[] } {
  const publicUrl = config.PUBLIC_URL === undefined ? undefined : new URL(config.PUBLIC_URL);
  return {
    rpId: config.WEBAUTHN_RP_ID ?? publicUrl?.hostname ?? 'localhost',
    origins: config.WEBAUTHN_ORIGINS ?? [publicUrl?.origin ?? `http://localhost:${config.PORT}`],
  };
}

/** Why `origin` cannot serve passkeys for `rpId`, or null. */
function originProblem(origin: string, rpId: string): string | null {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return `"${origin}" is not an origin (scheme://host[:port])`;
  }
  if (url.origin !== origin) return `"${origin}" is not an origin (scheme://host[:port], no path): ${url.origin}?`;
  const host = url.hostname;
  if (host !== rpId && !host.endsWith(`.${rpId}`)) {
    return `"${origin}" is not on WEBAUTHN_RP_ID "${rpId}" or a subdomain of it`;
  }
  // Browsers offer WebAuthn only in a secure context: https, or http on localhost (WebAuthn §5.1.3).
  const local = host === 'localhost' || host.endsWith('.localhost');
  if (url.protocol !== 'https:' && !local) return `"${origin}" must be https (http only on localhost)`;
  return null;
}

/** Every setting the service reads, by its environment name. */
export const CONFIG_KEYS = Object.keys(ConfigFields.shape) as (keyof typeof ConfigFields.shape)[];

export const ConfigSchema = ConfigFields.superRefine((config, ctx) => {
  if (config.NODE_ENV === 'production' && config.EMAIL_VERIFICATION === 'required' && !config.SMTP_URL) {
    ctx.addIssue({
      code: 'custom',
      path: ['SMTP_URL'],
      message: 'is required in production when EMAIL_VERIFICATION=required: without it no one could verify and log in',
    });
  }
  const bytes = config.SECRET_KEY === undefined ? 0 : new TextEncoder().encode(config.SECRET_KEY).length;
  if (config.NODE_ENV === 'production' && bytes < MIN_SECRET_KEY_BYTES) {
    ctx.addIssue({
      code: 'custom',
      path: ['SECRET_KEY'],
      message: `is required in production and must be at least ${MIN_SECRET_KEY_BYTES} bytes (e.g. \`openssl rand -base64 48\`)`,
    });
  } else if (config.NODE_ENV === 'production' && config.SECRET_KEY !== undefined) {
    const weakness = secretKeyWeakness(config.SECRET_KEY);
    if (weakness) {
      ctx.addIssue({
        code: 'custom',
        path: ['SECRET_KEY'],
        message: `${weakness}; production needs a random one (e.g. \`openssl rand -base64 48\`)`,
      });
    }
  } else if (config.SECRET_KEY !== undefined && bytes < MIN_SECRET_KEY_BYTES) {
    ctx.addIssue({
      code: 'custom',
      path: ['SECRET_KEY'],
      message: `must be at least ${MIN_SECRET_KEY_BYTES} bytes`,
    });
  }
  if ((config.INTROSPECTION_CLIENT_ID === undefined) !== (config.INTROSPECTION_CLIENT_SECRET === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: [config.INTROSPECTION_CLIENT_ID === undefined ? 'INTROSPECTION_CLIENT_ID' : 'INTROSPECTION_CLIENT_SECRET'],
      message: 'is required with INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET: set both or neither',
    });
  }
  if (
    config.INTROSPECTION_CLIENT_SECRET !== undefined &&
    new TextEncoder().encode(config.INTROSPECTION_CLIENT_SECRET).length < MIN_CLIENT_SECRET_BYTES
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['INTROSPECTION_CLIENT_SECRET'],
      message: `must be at least ${MIN_CLIENT_SECRET_BYTES} bytes`,
    });
  }
  if (
    config.METRICS_TOKEN !== undefined &&
    new TextEncoder().encode(config.METRICS_TOKEN).length < MIN_CLIENT_SECRET_BYTES
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['METRICS_TOKEN'],
      message: `must be at least ${MIN_CLIENT_SECRET_BYTES} bytes (e.g. \`openssl rand -hex 24\`)`,
    });
  }
  // Only what an operator set for passkeys is held to their rules: an http PUBLIC_URL (an internal service, a
  // test rig on 127.0.0.1) must not keep a deployment that never uses passkeys from starting; there the
  // browser refuses the ceremony instead.
  const { rpId, origins } = relyingParty(config);
  const chosen = config.WEBAUTHN_RP_ID !== undefined || config.WEBAUTHN_ORIGINS !== undefined;
  for (const origin of chosen ? origins : []) {
    const problem = originProblem(origin, rpId);
    if (problem) ctx.addIssue({ code: 'custom', path: ['WEBAUTHN_ORIGINS'], message: problem });
  }
}).transform((config) => {
  const { rpId, origins } = relyingParty(config);
  return {
    ...config,
    WEBAUTHN_RP_ID: rpId,
    WEBAUTHN_ORIGINS: origins,
    ACCESS_TOKEN_EXPIRE_MINUTES: config.ACCESS_TOKEN_EXPIRE_MINUTES ?? (config.JWT_ALGORITHM === 'HS256' ? 30 : 15),
    JWT_ISSUER: config.JWT_ISSUER ?? config.PUBLIC_URL ?? DEFAULT_NAME,
    MFA_REQUIRED_FOR_ADMINS: config.MFA_REQUIRED_FOR_ADMINS ?? config.NODE_ENV === 'production',
  };
});

export type Config = z.output<typeof ConfigSchema> & { SECRET_KEY: string };

// Keys that were shipped, documented or are typed by hand: whoever knows them can mint tokens for anyone.
const PLACEHOLDER_SECRETS =
  /change[-_ ]?(me|this|it)|replace[-_ ]?me|your[-_ ]?secret|placeholder|example|not[-_ ]?secret/i;
const MIN_SECRET_KEY_BITS = 128; // estimated, and a lower bound on what a guesser must search

/**
 * Why a SECRET_KEY cannot be a production key, or null: a known placeholder (the old docker-compose default
 * and its kind), or too little entropy by a simple estimate (the Shannon entropy of its characters times
 * their number, over one period of a key that repeats itself), which catches `aaaa…`, `0123456789…` repeated
 * and short alphabets; `openssl rand -base64 48` estimates ~350 bits. An estimate only bounds from above:
 * it cannot prove a key random, but it refuses the obvious.
 */
export function secretKeyWeakness(key: string): string | null {
  if (PLACEHOLDER_SECRETS.test(key)) return 'is a placeholder, not a secret';
  const chars = [...key];
  // A key that repeats itself (`0123456789` four times) holds no more than one period of it.
  let period = chars.length;
  for (let p = 1; p <= chars.length / 2 && period === chars.length; p++) {
    if (chars.every((char, i) => char === chars[i % p])) period = p;
  }
  const counts = new Map<string, number>();
  for (const char of chars.slice(0, period)) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bitsPerChar = 0;
  for (const count of counts.values()) bitsPerChar -= (count / period) * Math.log2(count / period);
  const bits = Math.floor(bitsPerChar * period);
  return bits < MIN_SECRET_KEY_BITS
    ? `has too little entropy (about ${bits} bits by its characters, at least ${MIN_SECRET_KEY_BITS} needed)`
    : null;
}

export class ConfigError extends DescribedError {
  override name = 'ConfigError';
}

/**
 * Parses configuration from a plain record (process.env, Deno.env.toObject(), a Workers env).
 * Throws one ConfigError whose message names every bad variable, one per line.
 * Without SECRET_KEY outside production a random key is generated, and `generatedSecret` says so,
 * so the caller can warn that tokens will not survive a restart.
 */
export function parseConfig(source: Record<string, unknown>): { config: Config; generatedSecret: boolean } {
  const parsed = parseWith(ConfigSchema, source);
  const generatedSecret = parsed.SECRET_KEY === undefined;
  return { config: { ...parsed, SECRET_KEY: parsed.SECRET_KEY ?? randomSecret() }, generatedSecret };
}

export function parseCliConfig(source: Record<string, unknown>): z.output<typeof CliConfigSchema> {
  return parseWith(CliConfigSchema, source);
}

function parseWith<S extends z.ZodType>(schema: S, source: Record<string, unknown>): z.output<S> {
  const result = schema.safeParse(source);
  if (result.success) return result.data;
  const lines = result.error.issues.map(
    (issue) => `invalid configuration: ${issue.path.join('.') || '(config)'} ${issue.message}`,
  );
  throw new ConfigError(lines.join('\n'));
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(48));
  return btoa(String.fromCharCode(...bytes));
}
