/**
 * What every login does once the user has proved who they are, whichever way (password, password + code,
 * passkey): the login time, the audit event with its `amr` (RFC 8176) and a new session, in the caller's
 * access transaction, so a login that also spends something (an mfa_token, a code) commits all of it or none.
 */
import type { AccessScope } from '../access/transaction';
import type { Clock } from '../lib/clock';
import { type RequestMeta, throwIfAbandoned } from '../lib/request-meta';
import { recordAudit } from './audit';
import { startSession } from './sessions';
import { recordLogin } from './users';

export async function recordSuccessfulLogin(
  scope: AccessScope & Parameters<typeof startSession>[0] & { clock: Clock },
  { userId, meta, amr, clientId }: { userId: number; meta: RequestMeta; amr: string[]; clientId: string | null },
) {
  await recordLogin(scope, { userId, at: scope.clock.now() });
  await recordAudit(scope, { event: 'login_succeeded', meta, userId, details: { amr } });
  const session = await startSession(scope, { userId, meta, amr, clientId });
  throwIfAbandoned(meta); // the last moment to roll back a login nobody will receive
  return session;
}
