import { describe, expect, test } from 'bun:test';
import { createTestApp } from './helpers';

const { app } = await createTestApp();

describe('security headers', () => {
  test('API responses forbid sniffing, framing, referrers and any active content', async () => {
    const res = await app.request('/health');
    expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff');
    expect(res.headers.get('X-Frame-Options')).toBe('DENY');
    expect(res.headers.get('Referrer-Policy')).toBe('no-referrer');
    expect(res.headers.get('Content-Security-Policy')).toBe("default-src 'none'; frame-ancestors 'none'");
  });

  test('error responses carry the same headers', async () => {
    const res = await app.request('/no-such-path');
    expect(res.status).toBe(404);
    expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff');
    expect(res.headers.get('Content-Security-Policy')).toContain("default-src 'none'");
  });

  test.each(['/docs', '/redoc'])(
    '%s gets a CSP that lets its own scripts run and loads nothing from elsewhere',
    async (path) => {
      const res = await app.request(path);
      const csp = res.headers.get('Content-Security-Policy') ?? '';
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      // Every source in the policy is this origin, inline, data: or blob:, never another host.
      for (const source of csp.split(/[; ]+/).filter((token) => token.includes(':') || token.includes('.'))) {
        expect(['data:', 'blob:']).toContain(source);
      }
    },
  );
});

describe('CORS', () => {
  test('is off by default: no Access-Control-Allow-Origin for any origin', async () => {
    const res = await app.request('/health', { headers: { Origin: 'https://evil.example' } });
    expect(res.headers.get('Access-Control-Allow-Origin')).toBeNull();
  });

  test('allows exactly the configured origins, preflight included', async () => {
    const { app: corsApp } = await createTestApp({
      env: { CORS_ORIGINS: 'https://app.example, https://admin.example' },
    });
    const allowed = await corsApp.request('/health', { headers: { Origin: 'https://admin.example' } });
    expect(allowed.headers.get('Access-Control-Allow-Origin')).toBe('https://admin.example');

    const other = await corsApp.request('/health', { headers: { Origin: 'https://evil.example' } });
    expect(other.headers.get('Access-Control-Allow-Origin')).toBeNull();

    const preflight = await corsApp.request('/users/me', {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://app.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'Authorization',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example');
    expect(preflight.headers.get('Access-Control-Allow-Headers')?.toLowerCase()).toContain('authorization');
  });
});
