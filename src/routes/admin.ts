import { createRoute, z } from '@hono/zod-openapi';
import { requireAuth, requireRole, requireStepUp } from '../middleware/auth';
import { AuditEventsPublicSchema, AuditQuerySchema, toAuditEventPublic } from '../schemas/audit';
import { BEARER_SECURITY, jsonBody, NO_STORE } from '../schemas/common';
import { BAD_BODY, problemResponses, STEP_UP, UNAUTHENTICATED, UNAVAILABLE } from '../schemas/problem';
import {
  AdminBootstrapSchema,
  PageQuerySchema,
  toUserPublic,
  UserIdParamSchema,
  UserPublicSchema,
  UsersPublicSchema,
  UserUpdateSchema,
} from '../schemas/user';
import { redeemAdminBootstrap } from '../services/admin-bootstrap';
import { listAuditEvents } from '../services/audit';
import { resetSecondFactor } from '../services/mfa';
import { deleteUser, getUser, listUsers, updateUser } from '../services/users';
import { createRouter } from './router';

const ADMIN_ONLY = [requireAuth, requireRole('admin')];
const ADMIN_PROBLEMS = [...UNAUTHENTICATED, 'forbidden', ...UNAVAILABLE] as const;
// Changes to other users' access: an admin with a second factor must have used it (RFC 9470 step-up).
const ADMIN_STEP_UP = [...ADMIN_ONLY, requireStepUp];
const STEP_UP_NOTE = ' An admin with a second factor needs a token of a login with it (else 401, RFC 9470).';

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
  operationId: 'listUsers',
  tags: ['admin'],
  summary: 'List users (admin)',
  description: 'Ordered by id. `limit` 1–100 (default 20), `offset` from 0.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { query: ListUsersQuerySchema },
  responses: {
    200: { description: 'A page of users', content: { 'application/json': { schema: UsersPublicSchema } } },
    ...problemResponses(...ADMIN_PROBLEMS, 'validation'),
  },
});

export const getUserRoute = createRoute({
  method: 'get',
  path: '/users/{id}',
  operationId: 'getUser',
  tags: ['admin'],
  summary: 'One user (admin)',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { params: UserIdParamSchema },
  responses: {
    200: { description: 'The user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(...ADMIN_PROBLEMS, 'not-found', 'validation'),
  },
});

export const updateUserRoute = createRoute({
  method: 'patch',
  path: '/users/{id}',
  operationId: 'updateUser',
  tags: ['admin'],
  summary: 'Change a role or disable a user (admin)',
  description:
    'A disabled user cannot log in and every token of theirs stops working at once. 409 when the change ' +
    `would leave no enabled admin.${STEP_UP_NOTE}`,
  middleware: ADMIN_STEP_UP,
  security: BEARER_SECURITY,
  request: {
    params: UserIdParamSchema,
    body: jsonBody(UserUpdateSchema),
  },
  responses: {
    200: { description: 'The updated user', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(...ADMIN_PROBLEMS, ...STEP_UP, ...BAD_BODY, 'not-found', 'last-admin'),
  },
});

export const deleteUserRoute = createRoute({
  method: 'delete',
  path: '/users/{id}',
  operationId: 'deleteUser',
  tags: ['admin'],
  summary: 'Delete a user (admin)',
  description: `Their tokens stop working at once. 409 for the last enabled admin.${STEP_UP_NOTE}`,
  middleware: ADMIN_STEP_UP,
  security: BEARER_SECURITY,
  request: { params: UserIdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses(...ADMIN_PROBLEMS, ...STEP_UP, 'not-found', 'last-admin', 'validation'),
  },
});

export const resetUserMfaRoute = createRoute({
  method: 'delete',
  path: '/users/{id}/mfa',
  operationId: 'resetUserMfa',
  tags: ['admin'],
  summary: "Remove a user's second factors (admin)",
  description:
    'For a user who lost every factor: TOTP, passkeys and recovery codes are removed, every session of theirs ' +
    `ends, and it is audited (\`mfa_reset\`); they log in with the password alone again.${STEP_UP_NOTE}`,
  middleware: ADMIN_STEP_UP,
  security: BEARER_SECURITY,
  request: { params: UserIdParamSchema },
  responses: {
    204: { description: 'Removed' },
    ...problemResponses(...ADMIN_PROBLEMS, ...STEP_UP, 'not-found', 'validation'),
  },
});

export const listAuditRoute = createRoute({
  method: 'get',
  path: '/audit',
  operationId: 'listAuditEvents',
  tags: ['admin'],
  summary: 'The audit log of authentication events (admin)',
  description: 'Newest first. Append-only: written in the same transaction as the change it records.',
  middleware: ADMIN_ONLY,
  security: BEARER_SECURITY,
  request: { query: AuditQuerySchema },
  responses: {
    200: { description: 'A page of events', content: { 'application/json': { schema: AuditEventsPublicSchema } } },
    ...problemResponses(...ADMIN_PROBLEMS, 'validation'),
  },
});

export const bootstrapAdminRoute = createRoute({
  method: 'post',
  path: '/bootstrap/admin',
  operationId: 'bootstrapAdmin',
  tags: ['admin'],
  summary: 'Create the first admin with the one-time bootstrap token',
  description:
    'Only while no enabled admin exists, on a service that runs on the embedded database (PGlite): at start it ' +
    'writes a single-use token to `admin-bootstrap.json` in `PGLITE_DIR`, readable by its own user only. ' +
    '`bun run cli create-admin` uses it while the service runs; this endpoint is what it calls. The token is ' +
    'spent by the first admin it creates. On PostgreSQL, `bun run cli create-admin` works directly.',
  request: { body: jsonBody(AdminBootstrapSchema) },
  responses: {
    201: { description: 'The new admin', content: { 'application/json': { schema: UserPublicSchema } } },
    ...problemResponses(...BAD_BODY, 'invalid-bootstrap-token', 'admin-exists', 'email-taken', ...UNAVAILABLE),
  },
});

export const adminRoutes = createRouter()
  .openapi(listUsersRoute, async (c) => {
    const { items, total } = await listUsers(c.var.ctx, c.req.valid('query'));
    return c.json({ items: items.map(toUserPublic), total }, 200, NO_STORE);
  })
  .openapi(getUserRoute, async (c) => {
    const user = await getUser(c.var.ctx, { userId: c.req.valid('param').id });
    return c.json(toUserPublic(user), 200, NO_STORE);
  })
  .openapi(updateUserRoute, async (c) => {
    const { ctx, user: actor, meta } = c.var;
    const user = await updateUser(ctx, {
      userId: c.req.valid('param').id,
      changes: c.req.valid('json'),
      actorId: actor.id,
      meta,
    });
    return c.json(toUserPublic(user), 200, NO_STORE);
  })
  .openapi(deleteUserRoute, async (c) => {
    const { ctx, user: actor, meta } = c.var;
    await deleteUser(ctx, { userId: c.req.valid('param').id, actorId: actor.id, meta });
    return c.body(null, 204);
  })
  .openapi(resetUserMfaRoute, async (c) => {
    const { ctx, user: actor, meta } = c.var;
    await resetSecondFactor(ctx, { userId: c.req.valid('param').id, actorId: actor.id, meta });
    return c.body(null, 204);
  })
  .openapi(listAuditRoute, async (c) => {
    const { user_id: userId, limit, offset } = c.req.valid('query');
    const { items, total } = await listAuditEvents(c.var.ctx, { userId, limit, offset });
    return c.json({ items: items.map(toAuditEventPublic), total }, 200, NO_STORE);
  })
  .openapi(bootstrapAdminRoute, async (c) => {
    const { token, email, password } = c.req.valid('json');
    const user = await redeemAdminBootstrap(c.var.ctx, { token, email, password, meta: c.var.meta });
    return c.json(toUserPublic(user), 201, NO_STORE);
  });
