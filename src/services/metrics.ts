/**
 * GET /metrics: who may scrape it, and the figures of the moment it reports beside the counters.
 */
import { constantTimeEqual, sha256 } from '../lib/crypto';
import { isLoopback } from '../lib/ip';
import type { MetricsSnapshot } from '../lib/metrics';
import { AppError } from '../lib/problems';
import type { ServiceContext } from './context';
import { outboxStats } from './outbox';

/**
 * With METRICS_TOKEN, the caller must present it as a bearer token (compared in constant time: a byte-wise
 * compare would tell how much of a guess is right; digests of equal length hide the token's length too). Without one, only a client on this machine
 * may scrape, by the resolved client address: behind a proxy trusted with TRUST_PROXY that is the address
 * the proxy forwarded, so a request relayed from outside is not taken for a local one.
 */
export async function authorizeScrape(
  { config }: Pick<ServiceContext, 'config'>,
  { authorization, ip }: { authorization: string | undefined; ip: string | null },
): Promise<void> {
  const token = config.METRICS_TOKEN;
  if (token === undefined) {
    if (isLoopback(ip)) return;
    throw new AppError('forbidden', {
      detail: 'Metrics are served only to this machine; set METRICS_TOKEN to scrape from elsewhere',
    });
  }
  const presented = /^Bearer[ \t]+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
  if (presented === undefined || !constantTimeEqual(await sha256(presented), await sha256(token)))
    throw new AppError('not-authenticated');
}

/** The Prometheus text, or null where this runtime keeps no metrics. */
export async function scrapeMetrics(ctx: ServiceContext) {
  const { view, metrics, logger } = ctx;
  const stats = view.stats();
  // The outbox is read now; a database that does not answer leaves those figures unknown, not the scrape failed.
  const outbox = await outboxStats(ctx).catch(() => {
    logger.warn('metrics: could not read the outbox');
    return undefined;
  });
  const snapshot: MetricsSnapshot = {
    hashPool: ctx.hashPoolStats?.(),
    pool: ctx.poolStats?.(),
    view: { ...stats, entries: { users: stats.users, sessions: stats.sessions, tokens: stats.tokens } },
    outbox,
  };
  return metrics.render(snapshot);
}
