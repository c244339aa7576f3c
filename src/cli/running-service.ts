/**
 * `create-admin` while the service runs on the embedded database: the PGlite directory is the service's, so
 * the CLI asks the service, with the one-time token the service left in that directory for this purpose
 * (services/admin-bootstrap.ts says why that is safe).
 */
import { type AdminBootstrapFile, adminBootstrapPath, readAdminBootstrapFile } from '../db/data-dir';
import { DescribedError } from '../lib/logger';

/** How the CLI names itself: the user agent of its audit events and of its requests to the service. */
export const CLI_USER_AGENT = 'hono-postgres-auth cli';
const REQUEST_TIMEOUT_MS = 30_000; // one bcrypt hash on a busy service, with room to spare

interface Problem {
  detail?: string;
}

async function post(file: AdminBootstrapFile, body: Record<string, string>): Promise<Response> {
  try {
    return await fetch(`${file.url}/bootstrap/admin`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': CLI_USER_AGENT },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch {
    throw new DescribedError(
      `the service holding the data directory (process ${file.pid}) does not answer at ${file.url}; ` +
        'if it has stopped, run this again',
    );
  }
}

/** Creates the first admin through the running service; resolves with the line to print. */
export async function createAdminThroughService({
  dir,
  admin,
  locked,
}: {
  dir: string;
  admin: { email: string; password: string };
  /** Why the directory could not be opened: the message names the process holding it. */
  locked: DescribedError;
}): Promise<string> {
  const file = readAdminBootstrapFile(dir);
  if (!file) {
    throw new DescribedError(
      `${locked.message}. It offers no first-admin bootstrap (${adminBootstrapPath(dir)} is absent): either ` +
        'an admin exists already, so log in as one and promote a user with PATCH /users/{id} {"role":"admin"}, ' +
        'or that process is not the service; stop it and run this again',
    );
  }
  const res = await post(file, { token: file.token, ...admin });
  const body = (await res.json().catch(() => ({}))) as Problem & { id?: number; email?: string };
  if (res.status === 201)
    return `created admin ${body.email} (id ${body.id}) through the running service at ${file.url}`;
  // A problem's detail is a sentence the service wrote for clients; it carries no password or hash.
  throw new DescribedError(`the running service refused: ${body.detail ?? `HTTP ${res.status}`}`);
}
