/**
 * `bun scripts/measure-mail.ts [--database-url postgres://…]`: two figures for README "Email", on an
 * in-process app and a loopback SMTP sink (test/support/smtp-sink.ts), PGlite in memory unless a database
 * URL is given (a scratch database is made there and dropped).
 *
 * 1. POST /password/forgot for unknown, disabled and known addresses, interleaved: median and p90 each.
 * 2. The outbox sender: messages per second, one sender, queued in one go.
 */
import { parseArgs } from 'node:util';
import { eq } from 'drizzle-orm';
import { localOnlyBus } from '../src/access/listener';
import { createApp } from '../src/app';
import { parseConfig } from '../src/config';
import type { DatabaseHandle } from '../src/db/database';
import { runMigrations } from '../src/db/migrate';
import { users } from '../src/db/schema';
import { accessSink, buildDeps, createInstance } from '../src/deps';
import { readAssetFromNodeModules } from '../src/docs/read-node-modules';
import { createBunHasher } from '../src/hashing/bun';
import { createMailSender } from '../src/mail/sender';
import { createMailTransport } from '../src/mail/transport';
import { createRateLimitStore } from '../src/rate-limit/stores';
import { enqueueMail } from '../src/services/outbox';
import { startSmtpSink } from '../test/support/smtp-sink';

const ROUNDS = 300; // requests per kind of address
const MESSAGES = 300;

const { values } = parseArgs({ options: { 'database-url': { type: 'string' } } });

async function openScratch(): Promise<{ handle: DatabaseHandle; drop(): Promise<void> }> {
  const adminUrl = values['database-url'];
  if (!adminUrl) {
    const { createPgliteDb } = await import('../src/db/client-pglite');
    const handle = await createPgliteDb();
    return { handle, drop: async () => {} };
  }
  const { createPostgresClient, createPostgresDb } = await import('../src/db/client-postgres');
  const name = `hpa_measure_mail_${process.pid}`;
  const admin = createPostgresClient(adminUrl, 1);
  await admin.unsafe(`create database "${name}"`);
  const handle = createPostgresDb(Object.assign(new URL(adminUrl), { pathname: `/${name}` }).href);
  return {
    handle,
    drop: async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
const ms = (n: number) => `${n.toFixed(2)} ms`;

const sink = await startSmtpSink();
const { handle, drop } = await openScratch();
const hasher = createBunHasher({ cost: 4 });
try {
  await runMigrations(handle);
  const { config } = parseConfig({
    SMTP_URL: sink.url,
    LOG_LEVEL: 'silent',
    BCRYPT_COST: '4',
    RATE_LIMIT_RECOVERY_PER_IP: '0',
    RATE_LIMIT_REGISTER_PER_IP: '0',
  });
  const instance = createInstance(config, { hasher });
  const rateLimits = (
    await createRateLimitStore(config, { db: handle.db, logger: instance.logger, clock: instance.clock })
  ).rateLimits;
  // The per-address limit (3 an hour) never bites: every request of the run goes to a fresh address.
  const app = createApp(
    buildDeps(instance, {
      db: handle.db,
      // One instance: its own changes reach its view at once, and no other instance needs to hear them.
      access: localOnlyBus(accessSink(instance, handle.db)),
      rateLimits,
      readAsset: readAssetFromNodeModules,
    }),
  );
  const post = (path: string, body: unknown) =>
    app.request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

  // 1. forgot: one fresh address of each kind per round, in rotating order.
  const kinds = ['unknown', 'disabled', 'known'] as const;
  const times: Record<(typeof kinds)[number], number[]> = { unknown: [], disabled: [], known: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const addresses = {
      unknown: `nobody-${round}@example.com`,
      disabled: `disabled-${round}@example.com`,
      known: `known-${round}@example.com`,
    };
    for (const kind of ['disabled', 'known'] as const) {
      await post('/register', { email: addresses[kind], password: 'correct horse battery' });
    }
    await handle.db.update(users).set({ disabled: true }).where(eq(users.email, addresses.disabled));
    for (let i = 0; i < kinds.length; i++) {
      const kind = kinds[(round + i) % kinds.length] as (typeof kinds)[number];
      const started = performance.now();
      const res = await post('/password/forgot', { email: addresses[kind] });
      times[kind].push(performance.now() - started);
      if (res.status !== 202) throw new Error(`forgot answered ${res.status}`);
    }
  }
  console.log(`POST /password/forgot, ${ROUNDS} requests each (${handle.driver}):`);
  for (const kind of kinds) {
    const sorted = [...times[kind]].sort((a, b) => a - b);
    console.log(`  ${kind.padEnd(8)} median ${ms(percentile(sorted, 0.5))}  p90 ${ms(percentile(sorted, 0.9))}`);
  }

  // 2. the sender: a burst queued at once (the forgot run's mail first, then MESSAGES more).
  const transport = createMailTransport(config, { logger: instance.logger });
  if (!transport) throw new Error('no transport');
  const sender = createMailSender({ ...instance, db: handle.db, transport });
  await sender.drain();
  await handle.db.transaction(async (tx) => {
    for (let i = 0; i < MESSAGES; i++) {
      await enqueueMail(
        { db: tx, clock: instance.clock },
        { template: 'test', to: `burst-${i}@example.com`, params: {} },
      );
    }
  });
  const started = performance.now();
  const sent = await sender.drain();
  const seconds = (performance.now() - started) / 1000;
  console.log(`outbox sender: ${sent} messages in ${seconds.toFixed(1)} s = ${(sent / seconds).toFixed(0)} messages/s`);
  transport.close();
} finally {
  hasher.close();
  await handle.close();
  await drop();
  await sink.close();
}
