import { z } from '@hono/zod-openapi';
import { AUDIT_EVENTS } from '../db/schema';
import { PageQuerySchema } from './user';

export const SessionPublicSchema = z
  .object({
    id: z.uuid(),
    created_at: z.string().openapi({ format: 'date-time' }),
    last_used_at: z.string().openapi({ format: 'date-time' }),
    user_agent: z.string().nullable(),
    ip: z.string().nullable(),
    current: z.boolean().openapi({ description: 'The session of the token making this request' }),
  })
  .openapi('SessionPublic');

export const SessionIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
});

export const LogoutQuerySchema = z.object({
  all: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: '`true` ends every session of the caller, not only this one' }),
});

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

export const AuditQuerySchema = PageQuerySchema.extend({
  user_id: z.coerce
    .number()
    .int()
    .positive()
    .max(2 ** 31 - 1)
    .optional(),
});
