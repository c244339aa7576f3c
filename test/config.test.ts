import { describe, expect, test } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../src/config';

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

  test('defaults every variable as API.md lists', () => {
    const { config } = parseConfig({});
    expect(config).toMatchObject({
      PGLITE_DIR: './data',
      ACCESS_TOKEN_EXPIRE_MINUTES: 30,
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
  test('exits non-zero with one stderr line naming PORT when PORT=abc', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'hpa-config-'));
    try {
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', PORT: 'abc', PGLITE_DIR: dataDir };
      const child = Bun.spawn(['bun', 'src/runtimes/bun.ts'], {
        cwd: join(import.meta.dir, '..'),
        env,
        stdout: 'pipe',
        stderr: 'pipe',
        timeout: 20_000, // a bug that let it start would otherwise serve forever
      });
      const [exitCode, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
      expect(exitCode).not.toBe(0);
      const lines = stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('PORT');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
