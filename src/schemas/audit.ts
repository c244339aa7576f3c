import { z } from '@hono/zod-openapi';
import { AUDIT_EVENTS, type AuditEventRow } from '../services/audit';
import { PageQuerySchema, UserIdSchema } from './user';

export const AuditEventPublicSchema = z
  .object({
    id: z.number().int(),
    created_at: z.string().openapi({ format: 'date-time' }),
    event: z.enum(AUDIT_EVENTS),
    user_id: z.number().int().nullable(),
    actor_id: z.number().int().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('AuditEvent');

export const AuditEventsPublicSchema = z
  .object({ items: z.array(AuditEventPublicSchema), total: z.number().int() })
  .openapi('AuditEvents');

export const toAuditEventPublic = (row: AuditEventRow): z.infer<typeof AuditEventPublicSchema> => ({
  id: row.id,
  created_at: row.createdAt.toISOString(),
  event: row.event,
  user_id: row.userId,
  actor_id: row.actorId,
  ip: row.ip,
  user_agent: row.userAgent,
  details: row.details,
});

export const AuditQuerySchema = PageQuerySchema.extend({ user_id: UserIdSchema.optional() });
