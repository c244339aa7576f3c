import { createRoute, z } from '@hono/zod-openapi';
import { AppError } from '../lib/problems';
import { problemResponses } from '../schemas/problem';
import { authorizeScrape, scrapeMetrics } from '../services/metrics';
import { createRouter } from './router';

const MetricsTextSchema = z.string().openapi('MetricsText', {
  description: 'Prometheus text exposition format 0.0.4',
  example: 'auth_logins_total{outcome="ok"} 3',
});

export const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  tags: ['operations'],
  summary: 'Prometheus metrics of this instance',
  description:
    'The Prometheus text format (README "Operations" lists every metric). With METRICS_TOKEN set, send it as ' +
    '`Authorization: Bearer <METRICS_TOKEN>`; without it only clients on this machine (loopback, after ' +
    'TRUST_PROXY) may scrape. 404 where the runtime keeps no metrics (Cloudflare Workers).',
  responses: {
    200: {
      description: 'The metrics',
      content: { 'text/plain; version=0.0.4; charset=utf-8': { schema: MetricsTextSchema } },
    },
    ...problemResponses('not-authenticated', 'forbidden', 'not-found'),
  },
});

export const metricsRoutes = createRouter().openapi(metricsRoute, async (c) => {
  const { ctx, meta } = c.var;
  await authorizeScrape(ctx, { authorization: c.req.header('Authorization'), ip: meta.ip });
  const scraped = await scrapeMetrics(ctx);
  if (!scraped) throw new AppError('not-found', { detail: 'Metrics are not kept on this runtime' });
  return c.text(scraped.body, 200, { 'Content-Type': scraped.contentType, 'Cache-Control': 'no-store' });
});
