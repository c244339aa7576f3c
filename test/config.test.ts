import { afterAll, describe, expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDatabase } from '../scripts/lib/scratch-database';
import { CONFIG_KEYS, ConfigError, parseConfig } from '../src/config';
import { SERVER_TEST_TIMEOUT_MS, spawnProject, stopAll } from './server-process';

const KEY_32_BYTES = 'pX7v2Qm9Lz4Rk8Ws1Ny6Tb3Hd0Fj5Gc+'; // 32 random characters: production also wants entropy

/** The ConfigError that parsing `source` throws; fails the test when it does not throw one. */
function configError(source: Record<string, string>): ConfigError {
  try {
    parseConfig(source);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(source)}`);
}

describe('parseConfig', () => {
  test('refuses production without SECRET_KEY, naming SECRET_KEY', () => {
    expect(configError({ NODE_ENV: 'production' }).message).toContain('SECRET_KEY');
  });

  test('refuses production with a 10-byte SECRET_KEY, naming SECRET_KEY', () => {
    expect(configError({ NODE_ENV: 'production', SECRET_KEY: '0123456789' }).message).toContain('SECRET_KEY');
  });

  test('accepts production with a 32-byte SECRET_KEY and uses it', () => {
    const { config, generatedSecret } = parseConfig({ NODE_ENV: 'production', SECRET_KEY: KEY_32_BYTES });
    expect(config.SECRET_KEY).toBe(KEY_32_BYTES);
    expect(generatedSecret).toBe(false);
  });

  test('refuses in production a known placeholder key, naming SECRET_KEY', () => {
    // The value docker-compose.yml used to ship as its default.
    const message = configError({
      NODE_ENV: 'production',
      SECRET_KEY: 'change-me-compose-only-secret-key-0123456789',
    }).message;
    expect(message).toContain('SECRET_KEY');
    expect(message).toContain('placeholder');
  });

  test('refuses in production keys of 32 bytes and more with too little entropy, naming SECRET_KEY', () => {
    for (const key of ['k'.repeat(32), '0123456789'.repeat(4), 'abab'.repeat(16)]) {
      const message = configError({ NODE_ENV: 'production', SECRET_KEY: key }).message;
      expect(message).toContain('SECRET_KEY');
      expect(message).toContain('entropy');
    }
  });

  test('accepts in production a key as `openssl rand -base64 48` makes one', () => {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(48))));
    expect(parseConfig({ NODE_ENV: 'production', SECRET_KEY: key }).config.SECRET_KEY).toBe(key);
  });

  test('docker-compose.yml takes SECRET_KEY from the environment and refuses to start without one', async () => {
    const compose = await Bun.file(join(import.meta.dir, '..', 'docker-compose.yml')).text();
    expect(compose).toMatch(/SECRET_KEY: \$\{SECRET_KEY:\?[^}]+\}/);
    expect(compose).not.toMatch(/SECRET_KEY:-/); // no default a copy of the file would share
  });

  test('reads TRUST_PROXY as off, one proxy, a hop count or a list of trusted networks', () => {
    const trust = (value: string) => parseConfig({ TRUST_PROXY: value }).config.TRUST_PROXY;
    expect(trust('off')).toBe(false);
    expect(trust('1')).toBe(true);
    expect(trust('2')).toBe(2);
    expect(trust('10.0.0.0/8, 2001:db8::/32,192.0.2.7')).toHaveLength(3);
  });

  test('refuses a TRUST_PROXY that is no hop count and no network, naming TRUST_PROXY and the entry', () => {
    const message = configError({ TRUST_PROXY: '10.0.0.0/8,proxy.internal' }).message;
    expect(message).toContain('TRUST_PROXY');
    expect(message).toContain('"proxy.internal"');
    expect(configError({ TRUST_PROXY: '10.0.0.0/33' }).message).toContain('TRUST_PROXY');
  });

  test('refuses a short SECRET_KEY outside production too', () => {
    expect(configError({ SECRET_KEY: 'short' }).message).toContain('SECRET_KEY');
  });

  test('generates a random SECRET_KEY per start in development, and says so', () => {
    const first = parseConfig({});
    const second = parseConfig({});
    expect(first.generatedSecret).toBe(true);
    expect(new TextEncoder().encode(first.config.SECRET_KEY).length).toBeGreaterThanOrEqual(32);
    expect(first.config.SECRET_KEY).not.toBe(second.config.SECRET_KEY);
  });

  test('refuses PORT=abc, naming PORT', () => {
    const message = configError({ PORT: 'abc' }).message;
    expect(message).toContain('PORT');
    expect(message.split('\n')).toHaveLength(1);
  });

  test('names every bad variable at once, one per line', () => {
    const lines = configError({ PORT: 'abc', BCRYPT_COST: '3' }).message.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.some((line) => line.includes('PORT'))).toBe(true);
    expect(lines.some((line) => line.includes('BCRYPT_COST'))).toBe(true);
  });

  test('keeps access tokens short under an asymmetric algorithm, 30 minutes under HS256, unless told', () => {
    expect(parseConfig({ JWT_ALGORITHM: 'EdDSA' }).config.ACCESS_TOKEN_EXPIRE_MINUTES).toBe(15);
    expect(parseConfig({ JWT_ALGORITHM: 'HS256' }).config.ACCESS_TOKEN_EXPIRE_MINUTES).toBe(30);
    expect(parseConfig({ ACCESS_TOKEN_EXPIRE_MINUTES: '5' }).config.ACCESS_TOKEN_EXPIRE_MINUTES).toBe(5);
  });

  test('takes the issuer from PUBLIC_URL unless JWT_ISSUER is set (RFC 8414 §2)', () => {
    expect(parseConfig({ PUBLIC_URL: 'https://auth.example.com' }).config.JWT_ISSUER).toBe('https://auth.example.com');
    expect(parseConfig({ PUBLIC_URL: 'https://auth.example.com', JWT_ISSUER: 'me' }).config.JWT_ISSUER).toBe('me');
  });

  test('refuses an unknown JWT_ALGORITHM and a lone introspection credential, naming each', () => {
    expect(configError({ JWT_ALGORITHM: 'RS256' }).message).toContain('JWT_ALGORITHM');
    expect(configError({ INTROSPECTION_CLIENT_ID: 'gateway' }).message).toContain('INTROSPECTION_CLIENT_SECRET');
    expect(configError({ INTROSPECTION_CLIENT_ID: 'gateway', INTROSPECTION_CLIENT_SECRET: 'short' }).message).toContain(
      'INTROSPECTION_CLIENT_SECRET must be at least 16 bytes',
    );
  });

  test('defaults every variable as API.md lists', () => {
    const { config } = parseConfig({});
    expect(config).toMatchObject({
      PGLITE_DIR: './data',
      JWT_ALGORITHM: 'ES256',
      ACCESS_TOKEN_EXPIRE_MINUTES: 15,
      REFRESH_TOKEN_EXPIRE_DAYS: 14,
      JWT_ISSUER: 'hono-postgres-auth',
      JWT_AUDIENCE: 'hono-postgres-auth',
      BCRYPT_COST: 12,
      HOST: '0.0.0.0',
      PORT: 8000,
      TRUST_PROXY: false,
      CORS_ORIGINS: [],
      BODY_LIMIT_BYTES: 65536,
      REQUEST_TIMEOUT_MS: 10000,
      LOG_LEVEL: 'info',
    });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  test('treats empty variables as unset', () => {
    expect(parseConfig({ PORT: '', BCRYPT_COST: '' }).config).toMatchObject({ PORT: 8000, BCRYPT_COST: 12 });
  });

  test('reads numbers, flags and lists from their string form', () => {
    const { config } = parseConfig({
      PORT: '9000',
      TRUST_PROXY: 'true',
      CORS_ORIGINS: 'https://a.example, https://b.example',
    });
    expect(config).toMatchObject({
      PORT: 9000,
      TRUST_PROXY: true,
      CORS_ORIGINS: ['https://a.example', 'https://b.example'],
    });
  });
});

describe('bun src/runtimes/bun.ts', () => {
  afterAll(stopAll); // a bug that let it start would otherwise serve forever

  test(
    'exits non-zero with one stderr line naming PORT when PORT=abc',
    async () => {
      const database = await scratchDatabase('config_test');
      try {
        const child = spawnProject(['src/runtimes/bun.ts'], { PORT: 'abc', ...database.env });
        expect(await child.finished).not.toBe(0);
        const lines = child.stderr.join('\n').trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain('PORT');
      } finally {
        await database.drop();
      }
    },
    SERVER_TEST_TIMEOUT_MS,
  );
});

describe('every setting is documented', () => {
  const ROOT = join(import.meta.dir, '..');
  const keys: string[] = CONFIG_KEYS;
  const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
  /** `KEY=value` lines of .env.example, commented out or not. */
  const exampleEntries = Object.fromEntries(
    [...example.matchAll(/^#? ?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map(([, key, value]) => [key, value]),
  );

  test('.env.example names every setting of ConfigSchema, and nothing else', () => {
    expect(keys.length).toBeGreaterThan(15);
    expect(Object.keys(exampleEntries).sort()).toEqual([...keys].sort());
  });

  test('the values .env.example shows are valid (so uncommenting one never breaks the start)', () => {
    const { DATABASE_URL: _unset, ...values } = exampleEntries;
    expect(() => parseConfig(values)).not.toThrow();
    expect(() => parseConfig(exampleEntries)).not.toThrow();
  });

  test("the README's Configuration table names every setting", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const section = readme.slice(
      readme.indexOf('## Configuration'),
      readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1),
    );
    const missing = keys.filter((key) => !new RegExp(`^\\|[^\\n]*\`${key}\``, 'm').test(section));
    expect(missing).toEqual([]);
  });
});

describe('mail settings', () => {
  const production = { NODE_ENV: 'production', SECRET_KEY: KEY_32_BYTES };

  test('refuses production with EMAIL_VERIFICATION=required and no SMTP_URL, in one line naming SMTP_URL', () => {
    const { message } = configError({ ...production, EMAIL_VERIFICATION: 'required' });
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toStartWith('invalid configuration: SMTP_URL is required in production');
  });

  test('accepts production with EMAIL_VERIFICATION=required and an SMTP_URL, or optional without one', () => {
    expect(() =>
      parseConfig({ ...production, EMAIL_VERIFICATION: 'required', SMTP_URL: 'smtp://mx:25' }),
    ).not.toThrow();
    expect(parseConfig(production).config.EMAIL_VERIFICATION).toBe('optional');
  });

  test('refuses an SMTP_URL, PUBLIC_URL, MAIL_FROM or EMAIL_VERIFICATION it cannot use, naming each', () => {
    const { message } = configError({
      SMTP_URL: 'mx.example.com:25',
      PUBLIC_URL: 'auth.example.com',
      MAIL_FROM: 'no-reply',
      EMAIL_VERIFICATION: 'sometimes',
    });
    for (const name of ['SMTP_URL', 'PUBLIC_URL', 'MAIL_FROM', 'EMAIL_VERIFICATION']) expect(message).toContain(name);
  });

  test('PUBLIC_URL loses its trailing slash', () => {
    expect(parseConfig({ PUBLIC_URL: 'https://auth.example.com/' }).config.PUBLIC_URL).toBe('https://auth.example.com');
  });
});

describe('passkey settings', () => {
  test('default to localhost and http://localhost:PORT, or to PUBLIC_URL', () => {
    const local = parseConfig({ PORT: '8123' }).config;
    expect([local.WEBAUTHN_RP_ID, local.WEBAUTHN_ORIGINS]).toEqual(['localhost', ['http://localhost:8123']]);
    const hosted = parseConfig({ PUBLIC_URL: 'https://auth.example.com/base/' }).config;
    expect([hosted.WEBAUTHN_RP_ID, hosted.WEBAUTHN_ORIGINS]).toEqual([
      'auth.example.com',
      ['https://auth.example.com'],
    ]);
  });

  test('accept origins on the RP id and its subdomains', () => {
    const { config } = parseConfig({
      WEBAUTHN_RP_ID: 'example.com',
      WEBAUTHN_ORIGINS: 'https://example.com, https://app.example.com:8443',
    });
    expect(config.WEBAUTHN_ORIGINS).toEqual(['https://example.com', 'https://app.example.com:8443']);
  });

  test('an http PUBLIC_URL with no WEBAUTHN_* set starts: passkeys are held to their rules only when configured', () => {
    for (const url of ['http://127.0.0.1:9000', 'http://auth.internal']) {
      expect(parseConfig({ PUBLIC_URL: url }).config.WEBAUTHN_ORIGINS).toEqual([url]);
    }
    expect(
      configError({ PUBLIC_URL: 'http://auth.internal', WEBAUTHN_RP_NAME: 'x', WEBAUTHN_RP_ID: 'auth.internal' })
        .message,
    ).toContain('WEBAUTHN_ORIGINS');
  });

  test('refuse, in one line naming WEBAUTHN_ORIGINS, an origin outside the RP id', () => {
    const { message } = configError({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://evil-example.com' });
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toStartWith('invalid configuration: WEBAUTHN_ORIGINS "https://evil-example.com" is not on');
  });

  test('refuse an origin with a path, plain http off localhost, and an RP id that is no domain', () => {
    expect(configError({ WEBAUTHN_ORIGINS: 'http://localhost:8000/app' }).message).toContain('WEBAUTHN_ORIGINS');
    const http = configError({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'http://example.com' }).message;
    expect(http).toContain('must be https');
    expect(configError({ WEBAUTHN_RP_ID: 'https://example.com' }).message).toContain('WEBAUTHN_RP_ID');
  });
});
