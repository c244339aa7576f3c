import { z } from '@hono/zod-openapi';
import type { Session } from '../services/sessions';

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

export const SessionsPublicSchema = SessionPublicSchema.array().openapi('SessionsPublic');

/** A session as its owner sees it; `current` marks the one the request's token belongs to. */
export const toSessionPublic = (session: Session, currentSessionId: string): z.infer<typeof SessionPublicSchema> => ({
  id: session.id,
  created_at: session.createdAt.toISOString(),
  last_used_at: session.lastUsedAt.toISOString(),
  user_agent: session.userAgent,
  ip: session.ip,
  current: session.id === currentSessionId,
});

export const SessionIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
});

export const LogoutQuerySchema = z.object({
  all: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: '`true` ends every session of the caller, not only this one' }),
});
