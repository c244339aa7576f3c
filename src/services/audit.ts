import { and, count, desc, eq, type SQL } from 'drizzle-orm';
import type { Database } from '../db/database';
import { type AuditEvent, auditEvents } from '../db/schema';

/** Who did it and from where, as the request shows it. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/** The database, or the transaction the audited change runs in (the event commits or rolls back with it). */
type Executor = Pick<Database, 'insert'>;

export async function recordAudit(
  db: Executor,
  meta: RequestMeta,
  event: AuditEvent,
  fields: { userId?: number | null; actorId?: number | null; details?: Record<string, unknown> } = {},
): Promise<void> {
  await db.insert(auditEvents).values({
    event,
    userId: fields.userId ?? null,
    actorId: fields.actorId ?? null,
    ip: meta.ip,
    userAgent: meta.userAgent,
    details: fields.details ?? {},
  });
}

export async function listAuditEvents(
  db: Database,
  { userId, limit, offset }: { userId?: number; limit: number; offset: number },
) {
  const where: SQL | undefined = userId === undefined ? undefined : eq(auditEvents.userId, userId);
  const [items, [totals]] = await Promise.all([
    db.select().from(auditEvents).where(where).orderBy(desc(auditEvents.id)).limit(limit).offset(offset),
    db.select({ total: count() }).from(auditEvents).where(and(where)),
  ]);
  return { items, total: totals?.total ?? 0 };
}
