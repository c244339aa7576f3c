/**
 * `cli mail <status | send | retry ID|--all | test --to ADDRESS>`: the operator's view of the outbox
 * (README "Email"). `send` delivers what is due and exits: where no long-running instance sends mail (the
 * API on Cloudflare Workers), run it from cron.
 */
import { parseConfig } from '../config';
import type { DatabaseHandle } from '../db/database';
import { systemClock } from '../lib/clock';
import { createLogger, DescribedError } from '../lib/logger';
import { createMailSender } from '../mail/sender';
import { renderMail } from '../mail/templates';
import { createMailTransport, describeMailFailure, messageIdFor } from '../mail/transport';
import { listMail, outboxStats, retryDeadMail } from '../services/outbox';

export const MAIL_USAGE = `  mail status                      outbox depth, oldest waiting message, dead messages (with why)
  mail send                        deliver every due message now, then exit (cron, where no instance sends)
  mail retry <id> | --all          queue a dead message (or every one) again with fresh attempts
  mail test --to <address>         send a test message through the configured transport, now`;

const DEAD_LISTED = 20;

function mailSetup(env: Record<string, string | undefined>) {
  const { config } = parseConfig(env);
  const logger = createLogger(config.LOG_LEVEL);
  const transport = createMailTransport(config, { logger });
  return { config, logger, transport };
}

const noTransport = () =>
  new DescribedError('SMTP_URL is not set (and NODE_ENV=production writes no .eml files): nothing can be sent');

export async function mailCommand(
  database: DatabaseHandle,
  { to, all, env }: { to?: string; all?: boolean; env: Record<string, string | undefined> },
  [subcommand, id]: string[],
  usage: (message: string) => Error,
): Promise<void> {
  const ctx = { db: database.db, clock: systemClock };
  if (subcommand === 'status') {
    const stats = await outboxStats(ctx);
    console.log(
      `waiting ${stats.depth} (sending now ${stats.sending}), oldest ${stats.oldestAgeSeconds} s, dead ${stats.dead}`,
    );
    for (const mail of await listMail(ctx, { status: 'dead', limit: DEAD_LISTED })) {
      console.log(
        `dead ${mail.id}  ${mail.template} to ${mail.recipient}, ${mail.attempts} attempts: ${mail.lastError ?? '?'}`,
      );
    }
    if (stats.dead > 0) console.log('queue them again with `bun run cli mail retry <id>` or `--all`');
    return;
  }
  if (subcommand === 'retry') {
    if (!all && (id === undefined || !/^\d+$/.test(id))) throw usage('mail retry needs a message id or --all');
    const count = await retryDeadMail(ctx, all ? {} : { id: Number(id) });
    if (!all && count === 0) throw new DescribedError(`no dead message ${id}`);
    console.log(`queued ${count} message(s) again`);
    return;
  }
  if (subcommand === 'send') {
    const { config, logger, transport } = mailSetup(env);
    if (!transport) throw noTransport();
    const sender = createMailSender({ ...ctx, config, logger, transport });
    try {
      const attempted = await sender.drain();
      const stats = await outboxStats(ctx);
      console.log(`attempted ${attempted}; waiting ${stats.depth}, dead ${stats.dead}`);
    } finally {
      transport.close();
    }
    return;
  }
  if (subcommand === 'test') {
    if (!to) throw usage('mail test needs --to <address>');
    const { config, transport } = mailSetup(env);
    if (!transport) throw noTransport();
    // Straight through the transport, not the outbox: the operator learns at once whether the settings work.
    const messageId = messageIdFor(config, crypto.randomUUID());
    try {
      await transport.send({ ...renderMail(config, { template: 'test', params: {} }), to, messageId });
    } catch (error) {
      throw new DescribedError(`not sent via ${transport.description}: ${describeMailFailure(error)}`);
    } finally {
      transport.close();
    }
    console.log(`sent ${messageId} to ${to} via ${transport.description}`);
    return;
  }
  throw usage(subcommand ? `unknown mail command ${subcommand}` : 'mail needs a command');
}
