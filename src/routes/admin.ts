import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AuditEventRow } from '../db/schema';
import type { AppEnv } from '../deps';
import { requestMeta } from '../lib/request-meta';
import { defaultHook } from '../lib/validation';
import { requireAuth, requireRole } from '../middleware/auth';
import { BEARER_SECURITY, NO_STORE } from '../schemas/common';
import { problemResponses } from '../schemas/problem';
import { AuditEventsPublicSchema, AuditQuerySchema } from '../schemas/session';
import {
  PageQuerySchema,
  UserIdParamSchema,
  UserPublicSchema,
  UsersPublicSchema,
  UserUpdateSchema,
} from '../schemas/user';
import { listAuditEvents } from '../services/audit';
import { deleteUser, getUser, listUsers, toPublicUser, updateUser } from '../services/users';

const ADMIN_ONLY = [requireAuth, requireRole('admin')];
const ListUsersQuerySchema = PageQuerySchema.extend({
  email: z
    .string()
    .max(254)
    // Found by fuzzing: `?email=%00` reached ILIKE and PostgreSQL refuses NUL in text (a 500). No email holds one.
    .refine((s) => !s.includes('\0'), 'Email must not contain NUL')
    .optional()
    .openapi({ description: 'Only users whose email contains this (case-insensitive)' }),
});

export const listUsersRoute = createRoute({
  method: 'get',
  path: '/users',
  tags: ['admin'],
  summary: 'List users (admin)',
  description: 'Ordered by id. `limit` 1–100 (default 20), `offset` from 0.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { query: ListUsersQuerySchema },
  responses: {
    200: { description: 'A page of users', content: { 'application/json': { schema: UsersPublicSchema } } },
    ...problemResponses(401, 403, 422, 503),
  },
});

export const getUserRoute = createRoute({
  method: 'get',
  path: '/users/{id}',
  tags: ['admin'],
  summary: 'One user (admin)',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { params: UserIdParamSchema },
  responses: {
    200: { description: 'The user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(401, 403, 404, 422, 503),
  },
});

export const updateUserRoute = createRoute({
  method: 'patch',
  path: '/users/{id}',
  tags: ['admin'],
  summary: 'Change a role or disable a user (admin)',
  description:
    'A disabled user cannot log in and every token of theirs stops working at once. 409 when the change ' +
    'would leave no enabled admin.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: {
    params: UserIdParamSchema,
    body: { required: true, content: { 'application/json': { schema: UserUpdateSchema } } },
  },
  responses: {
    200: { description: 'The updated user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(401, 403, 404, 409, 413, 415, 422, 503),
  },
});

export const deleteUserRoute = createRoute({
  method: 'delete',
  path: '/users/{id}',
  tags: ['admin'],
  summary: 'Delete a user (admin)',
  description: 'Their tokens stop working at once. 409 for the last enabled admin.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { params: UserIdParamSchema },
  responses: { 204: { description: 'Deleted' }, ...problemResponses(401, 403, 404, 409, 422, 503) },
});

export const listAuditRoute = createRoute({
  method: 'get',
  path: '/audit',
  tags: ['admin'],
  summary: 'The audit log of authentication events (admin)',
  description: 'Newest first. Append-only: written in the same transaction as the change it records.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { query: AuditQuerySchema },
  responses: {
    200: { description: 'A page of events', content: { 'application/json': { schema: AuditEventsPublicSchema } } },
    ...problemResponses(401, 403, 422, 503),
  },
});

const toPublicAuditEvent = (row: AuditEventRow) => ({
  id: row.id,
  created_at: row.createdAt.toISOString(),
  event: row.event,
  user_id: row.userId,
  actor_id: row.actorId,
  ip: row.ip,
  user_agent: row.userAgent,
  details: row.details,
});

export const adminRoutes = new OpenAPIHono<AppEnv>({ defaultHook })
  .openapi(listUsersRoute, async (c) => {
    const { items, total } = await listUsers(c.var.deps, c.req.valid('query'));
    return c.json({ items: items.map(toPublicUser), total }, 200, NO_STORE);
  })
  .openapi(getUserRoute, async (c) => {
    const user = await getUser(c.var.deps, c.req.valid('param').id);
    return c.json(toPublicUser(user), 200, NO_STORE);
  })
  .openapi(updateUserRoute, async (c) => {
    const { deps, user: actor } = c.var;
    const user = await updateUser(deps, actor.id, c.req.valid('param').id, c.req.valid('json'), requestMeta(c));
    return c.json(toPublicUser(user), 200, NO_STORE);
  })
  .openapi(deleteUserRoute, async (c) => {
    await deleteUser(c.var.deps, c.var.user.id, c.req.valid('param').id, requestMeta(c));
    return c.body(null, 204);
  })
  .openapi(listAuditRoute, async (c) => {
    const { user_id: userId, limit, offset } = c.req.valid('query');
    const { items, total } = await listAuditEvents(c.var.deps.db, { userId, limit, offset });
    return c.json({ items: items.map(toPublicAuditEvent), total }, 200, NO_STORE);
  });
