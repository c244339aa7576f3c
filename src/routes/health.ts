import { createRoute, z } from '@hono/zod-openapi';
import { problemResponses } from '../schemas/problem';
import { checkReadiness } from '../services/readiness';
import { createRouter } from './router';

const StatusSchema = z.object({ status: z.literal('ok') }).openapi('Status');

export const healthRoute = createRoute({
  method: 'get',
  path: '/health',
  operationId: 'getHealth',
  tags: ['health'],
  summary: 'Liveness: the process answers (no database call)',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: StatusSchema } } } },
});

export const readyRoute = createRoute({
  method: 'get',
  path: '/ready',
  operationId: 'getReady',
  tags: ['health'],
  summary: 'Readiness: the database answers and every migration is applied',
  responses: {
    200: { description: 'Ready for traffic', content: { 'application/json': { schema: StatusSchema } } },
    ...problemResponses('database-unavailable', 'migrations-pending', 'timeout'),
  },
});

export const healthRoutes = createRouter()
  .openapi(healthRoute, (c) => c.json({ status: 'ok' as const }, 200))
  .openapi(readyRoute, async (c) => {
    await checkReadiness(c.var.ctx);
    return c.json({ status: 'ok' as const }, 200);
  });
