import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AppEnv } from '../deps';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export interface FieldError {
  /** JSON Pointer (RFC 6901) to the offending field, as a URI fragment: `#/email`. */
  pointer: string;
  detail: string;
}

export interface ProblemOptions {
  /** A stable URI reference clients can branch on, e.g. `/problems/email-taken`; `about:blank` otherwise. */
  type?: string;
  headers?: Record<string, string>;
  errors?: FieldError[];
}

/** A business failure a service throws; `onError` turns it into an RFC 9457 problem response. */
export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly detail: string,
    readonly options: ProblemOptions = {},
  ) {
    super(detail);
  }
}

export const BEARER_CHALLENGE = 'Bearer';
export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';

export function unauthorized(detail: string, challenge = INVALID_TOKEN_CHALLENGE): AppError {
  return new AppError(401, detail, { headers: { 'WWW-Authenticate': challenge } });
}

/** RFC 9457 §3 problem details. `detail` is always a sentence a client may show. */
export function problem(status: ContentfulStatusCode, detail: string, options: ProblemOptions = {}): Response {
  const body = {
    type: options.type ?? 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    ...(options.errors ? { errors: options.errors } : {}),
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': PROBLEM_CONTENT_TYPE, ...options.headers },
  });
}

// Connection-level failures from postgres.js / node sockets and PostgreSQL's own "not now" SQLSTATEs:
// the database is down or unreachable, which is a 503 the client may retry, not a bug.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);
/** For a 503 that a retry will likely fix soon: a database blip, a slow request. Seconds (RFC 9110 §10.2.3). */
export const RETRY_SOON = { 'Retry-After': '5' };

/** The `code`s of an error and of the errors it wraps (DrizzleQueryError keeps the driver's error as `cause`). */
export function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** True when the error says the database is down or unreachable (SQLSTATE class 08 is "connection exception"). */
export function isDatabaseUnavailable(error: unknown): boolean {
  return errorCodes(error).some((code) => UNAVAILABLE_CODES.has(code) || code.startsWith('08'));
}

export const databaseUnavailable = () =>
  new AppError(503, 'The database is unavailable; try again shortly', { headers: RETRY_SOON });

/** The one place every thrown error becomes a response; nothing from `err.message` of unknown errors reaches a client. */
export function handleError(err: Error, c: Context<AppEnv>): Response {
  if (isDatabaseUnavailable(err)) {
    c.var.deps.logger.warn('database unavailable', { requestId: c.var.requestId, error: describe(err) });
    err = databaseUnavailable();
  }
  if (err instanceof AppError) return problem(err.status, err.detail, err.options);
  if (err instanceof HTTPException) return fromHttpException(err);
  // The frames locate the bug; the message stays out, because messages can carry input (a password, a query value).
  const frames = err.stack?.split('\n').slice(1).join('\n');
  c.var.deps.logger.error('unhandled error', { requestId: c.var.requestId, error: describe(err), stack: frames });
  return problem(500, 'An unexpected error occurred; it has been logged');
}

function fromHttpException(err: HTTPException): Response {
  // Already a problem (ours, e.g. the request timeout with its Retry-After): send it as built.
  if (err.res?.headers.get('Content-Type')?.startsWith(PROBLEM_CONTENT_TYPE)) return err.res;
  const status = err.status as ContentfulStatusCode;
  const headers: Record<string, string> = {};
  // hono/jwt and friends put the RFC 6750 challenge on their own response: keep it.
  const challenge = err.res?.headers.get('WWW-Authenticate');
  if (challenge) headers['WWW-Authenticate'] = challenge;
  if (status >= 500) return problem(status, TITLES[status] ?? 'Server error', { headers });
  return problem(status, err.message || TITLES[status] || 'Request failed', { headers });
}

function describe(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return code ? `${err.name} (${String(code)})` : err.name;
}
