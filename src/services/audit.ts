import { count, desc, eq, type SQL } from 'drizzle-orm';
import type { Database } from '../db/database';
import { AUDIT_EVENTS, type AuditEvent, type AuditEventRow, auditEvents } from '../db/schema';
import type { RequestMeta } from '../lib/request-meta';

export { AUDIT_EVENTS, type AuditEvent, type AuditEventRow };

/**
 * Appends one event. Pass the transaction of the change it records as `db`: the event commits or rolls
 * back with it, so the log never claims what did not happen nor misses what did.
 */
export async function recordAudit(
  { db }: { db: Pick<Database, 'insert'> },
  input: {
    event: AuditEvent;
    meta: RequestMeta;
    userId?: number | null;
    actorId?: number | null;
    details?: Record<string, unknown>;
  },
): Promise<void> {
  await db.insert(auditEvents).values({
    event: input.event,
    userId: input.userId ?? null,
    actorId: input.actorId ?? null,
    ip: input.meta.ip,
    userAgent: input.meta.userAgent,
    details: input.details ?? {},
  });
}

/** Newest first, optionally only the events filed under one user. */
export async function listAuditEvents(
  { db }: { db: Database },
  { userId, limit, offset }: { userId?: number; limit: number; offset: number },
) {
  const where: SQL | undefined = userId === undefined ? undefined : eq(auditEvents.userId, userId);
  const [items, [totals]] = await Promise.all([
    db.select().from(auditEvents).where(where).orderBy(desc(auditEvents.id)).limit(limit).offset(offset),
    db.select({ total: count() }).from(auditEvents).where(where),
  ]);
  return { items, total: totals?.total ?? 0 };
}
