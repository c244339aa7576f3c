/**
 * The first admin of a service running on the embedded database. A PGlite directory belongs to one process,
 * so while the service runs, `bun run cli create-admin` cannot open it; instead the service, when it starts
 * with no enabled admin, opens this one-time path and hands its token to the CLI through a private file in
 * the data directory (runtimes/bootstrap.ts). The CLI posts the token to POST /bootstrap/admin.
 *
 * - Who can use it: whoever can read the data directory, who could read or rewrite the database anyway.
 *   The token (256 random bits) is never logged or printed; only its SHA-256 is held, compared in constant time.
 * - Single use: the first admin it creates spends it, and so does finding that an admin exists already.
 *   A failed attempt (a taken email, a database error) leaves it usable; wrong tokens are refused before any work.
 * - Audited: the admin's `register` event carries `{bootstrap: true}`.
 */
import { constantTimeEqual, randomToken, sha256 } from '../lib/crypto';
import { AppError } from '../lib/problems';
import type { RequestMeta } from '../lib/request-meta';
import { createFirstAdmin, type User } from './users';

type FirstAdminContext = Parameters<typeof createFirstAdmin>[0];

export interface AdminBootstrap {
  /** False once spent or closed. */
  readonly open: boolean;
  /** Creates the first admin if `token` is this bootstrap's and unspent (403 otherwise); spends it on success. */
  redeem(
    ctx: FirstAdminContext,
    input: { token: string; email: string; password: string; meta: RequestMeta },
  ): Promise<User>;
  /** Spends the token without using it (an admin appeared, the service stops). */
  close(): void;
}

/** Opens a bootstrap; `onClose` runs once, when it is spent or closed (e.g. to delete the file holding the token). */
export async function openAdminBootstrap({ onClose }: { onClose?: () => void } = {}): Promise<{
  token: string;
  bootstrap: AdminBootstrap;
}> {
  const token = randomToken();
  let digest: string | null = await sha256(token);
  let redeeming = false;
  const close = () => {
    if (digest === null) return;
    digest = null;
    onClose?.();
  };
  const bootstrap: AdminBootstrap = {
    get open() {
      return digest !== null;
    },
    close,
    async redeem(ctx, { token: presented, email, password, meta }) {
      const presentedDigest = await sha256(presented);
      // Checked and claimed with no await in between: of two requests racing with the right token, one
      // creates the admin and the other is refused.
      if (digest === null || redeeming || !constantTimeEqual(presentedDigest, digest)) {
        throw new AppError('invalid-bootstrap-token');
      }
      redeeming = true;
      try {
        const user = await createFirstAdmin(ctx, { email, password, meta });
        close();
        return user;
      } catch (error) {
        if (error instanceof AppError && error.code === 'admin-exists') close();
        throw error;
      } finally {
        redeeming = false;
      }
    },
  };
  return { token, bootstrap };
}

/** POST /bootstrap/admin: one answer (403) for a wrong token, a spent one, and a service that opened none. */
export async function redeemAdminBootstrap(
  ctx: FirstAdminContext & { adminBootstrap?: AdminBootstrap },
  input: { token: string; email: string; password: string; meta: RequestMeta },
): Promise<User> {
  if (!ctx.adminBootstrap) throw new AppError('invalid-bootstrap-token');
  return ctx.adminBootstrap.redeem(ctx, input);
}
