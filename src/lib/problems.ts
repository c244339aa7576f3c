/**
 * Every problem the API can answer, named once: code → status, type, title, default detail and headers.
 * Responses are RFC 9457 problem details; the code is the last segment of the `type` URI
 * (`/problems/email-taken`), so a client branches on `type` and shows `detail`. Problems that mean no
 * more than their HTTP status (an unknown path, a wrong method, a body too large) are `about:blank`,
 * as RFC 9457 §4.2.1 describes. Tests assert the type, never the wording.
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { DescribedError } from './logger';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Seconds a client should wait before retrying a 503 that a retry will likely fix soon (RFC 9110 §10.2.3). */
export const RETRY_SOON_SECONDS = 5;
const RETRY_SOON = { 'Retry-After': String(RETRY_SOON_SECONDS) };

// RFC 6750 §3: a request without credentials gets the bare scheme; a bad token says why.
export const BEARER_CHALLENGE = 'Bearer';
export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';
// RFC 9470 §3: the token is good, but the way its user logged in is not enough for this action.
export const STEP_UP_CHALLENGE = 'Bearer error="insufficient_user_authentication"';

interface ProblemSpec {
  status: ContentfulStatusCode;
  /** The sentence a client may show; a caller may give a more specific one (which limit, which resource). */
  detail: string;
  /** No semantics beyond the status code: `type` is `about:blank`. */
  plain?: true;
  headers?: Record<string, string>;
  /** RFC 6749 §5.2 `error`, for the token endpoint's clients (problem+json keeps it as an extension member). */
  oauthError?: OAuthError;
}

/** RFC 6749 §5.2 and RFC 7009/7662 error codes the token endpoints answer with. */
export type OAuthError =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  // Not RFC 6749's: the password was right and a second factor must follow (as Auth0's token endpoint says it).
  | 'mfa_required';

export const PROBLEMS = {
  // Protocol-level: the status says it all.
  'malformed-request': { status: 400, detail: 'The request could not be parsed', plain: true },
  'no-route': { status: 404, detail: 'No such resource', plain: true },
  'method-not-allowed': { status: 405, detail: 'This method is not allowed here', plain: true },
  'body-too-large': { status: 413, detail: 'The request body is too large', plain: true },
  'unsupported-media-type': { status: 415, detail: 'Unsupported content type', plain: true },
  internal: { status: 500, detail: 'An unexpected error occurred; it has been logged', plain: true },

  // Input.
  validation: { status: 422, detail: 'The request is invalid' },
  'invalid-request': { status: 400, detail: 'The request is missing a parameter', oauthError: 'invalid_request' },
  'unsupported-grant-type': {
    status: 400,
    detail: 'grant_type must be "password", "refresh_token" or "mfa_otp"',
    oauthError: 'unsupported_grant_type',
  },

  // Credentials. The two 401s of the bearer check carry the RFC 6750 challenge; the login failure is the
  // original app's answer, the same for an unknown email and a wrong password.
  'not-authenticated': { status: 401, detail: 'Not authenticated', headers: { 'WWW-Authenticate': BEARER_CHALLENGE } },
  'invalid-access-token': {
    status: 401,
    detail: 'Could not validate credentials',
    headers: { 'WWW-Authenticate': INVALID_TOKEN_CHALLENGE },
  },
  'invalid-credentials': {
    status: 401,
    detail: 'Incorrect email or password',
    headers: { 'WWW-Authenticate': BEARER_CHALLENGE },
    oauthError: 'invalid_grant',
  },
  // RFC 6749 §5.2: a refresh token that is not (or no longer) good is a 400 invalid_grant.
  'invalid-refresh-token': {
    status: 400,
    detail: 'Invalid or expired refresh token',
    oauthError: 'invalid_grant',
  },
  // RFC 6749 §5.2 / RFC 7662 §2.1: the introspection caller failed to authenticate.
  'invalid-client': {
    status: 401,
    detail: 'Client authentication failed',
    headers: { 'WWW-Authenticate': 'Basic realm="introspection", Bearer' },
    oauthError: 'invalid_client',
  },
  // Passkeys: one answer for every way a ceremony can fail (which one is in the audit log, not the response).
  'passkey-rejected': { status: 400, detail: 'The passkey could not be registered; start again' },
  'passkey-login-failed': {
    status: 401,
    detail: 'Passkey login failed',
    headers: { 'WWW-Authenticate': BEARER_CHALLENGE },
  },
  'wrong-password': { status: 400, detail: 'The current password is incorrect' },

  // The second factor (services/mfa.ts). The password grant's answer for a user who has one: finish the login
  // with grant_type=mfa_otp and the `mfa_token` this problem carries.
  'mfa-required': {
    status: 403,
    detail: 'A second factor is required: send grant_type=mfa_otp with this mfa_token and a code',
    oauthError: 'mfa_required',
  },
  // RFC 6749 §5.2: like a refresh token, an mfa_token that is not (or no longer) good is a 400 invalid_grant.
  'invalid-mfa-token': {
    status: 400,
    detail: 'Invalid or expired mfa_token; log in with the password again',
    oauthError: 'invalid_grant',
  },
  // A wrong code keeps the original app's 401 for wrong credentials, as the password grant does (API.md).
  'invalid-otp': {
    status: 401,
    detail: 'Incorrect or already used code',
    headers: { 'WWW-Authenticate': BEARER_CHALLENGE },
    oauthError: 'invalid_grant',
  },
  'wrong-code': { status: 400, detail: 'The code is incorrect or was used already' },
  'insufficient-user-authentication': {
    status: 401,
    detail: 'This needs a login with your second factor: log in again with it',
    headers: { 'WWW-Authenticate': STEP_UP_CHALLENGE },
  },
  'mfa-enrolment-required': {
    status: 403,
    detail:
      'Admins need a second factor: enrol TOTP at /users/me/mfa/totp or a passkey at /webauthn/register/options, ' +
      'then log in with it',
  },
  'mfa-already-enabled': { status: 409, detail: 'TOTP is enabled already; disable it first to enrol anew' },
  'mfa-not-enabled': { status: 409, detail: 'TOTP is not enabled (or not pending) for this account' },
  forbidden: { status: 403, detail: 'You are not allowed to do this' },
  'rate-limited': { status: 429, detail: 'Too many attempts; try again later' },
  // One answer for a link token that is unknown, expired, spent or of another purpose: which it was is no
  // business of whoever holds it.
  'invalid-token': { status: 400, detail: 'This link is invalid or has expired; ask for a new one' },
  'email-unverified': {
    status: 403,
    detail: 'Confirm your email address first: follow the link we mailed you, or ask for a new one',
  },

  // Resources and state.
  'not-found': { status: 404, detail: 'No such resource' },
  'email-taken': { status: 409, detail: 'Email already registered' },
  'last-admin': { status: 409, detail: 'This would leave no enabled admin; promote another user first' },

  // The first admin of a service on the embedded database (POST /bootstrap/admin).
  'invalid-bootstrap-token': { status: 403, detail: 'Invalid or spent bootstrap token' },
  'admin-exists': { status: 409, detail: 'An admin exists already; the bootstrap token is spent' },

  // The service cannot answer now; a retry can.
  'database-unavailable': {
    status: 503,
    detail: 'The database is unavailable; try again shortly',
    headers: RETRY_SOON,
  },
  'migrations-pending': {
    status: 503,
    detail: 'Database migrations are pending; run `bun run db:migrate`',
    headers: RETRY_SOON,
  },
  timeout: { status: 503, detail: 'The request took too long; try again shortly', headers: RETRY_SOON },
  // More password checks than the hash pool can finish before their requests' deadlines: refused at once,
  // with the seconds until the queue is expected to have room (hashing/pool.ts).
  overloaded: { status: 503, detail: 'The service is busy; try again shortly', headers: RETRY_SOON },
  'not-configured': { status: 503, detail: 'The service is not configured', headers: { 'Retry-After': '60' } },
  'no-signing-key': {
    status: 503,
    detail: 'The service cannot sign tokens now: no signing key opens with its SECRET_KEY',
    headers: { 'Retry-After': '60' },
  },
} as const satisfies Record<string, ProblemSpec>;

export type ProblemCode = keyof typeof PROBLEMS;
export type ProblemStatus = (typeof PROBLEMS)[ProblemCode]['status'];

export interface FieldError {
  /** JSON Pointer (RFC 6901) to the offending field, as a URI fragment: `#/email`. */
  pointer: string;
  detail: string;
}

export interface ProblemOptions {
  /** Instead of the catalogue's sentence: the specific limit, resource or field that failed. */
  detail?: string;
  /** RFC 6749 §5.2 `error`, where the catalogue has none for this code (a 422 on a token endpoint). */
  oauthError?: OAuthError;
  /** Added to (and overriding) the catalogue's headers, e.g. `Retry-After` with the real wait. */
  headers?: Record<string, string>;
  /** 422 only: one entry per invalid field. */
  errors?: FieldError[];
  /** RFC 9457 §3.2 extension members, e.g. the `mfa_token` and `methods` of `mfa-required`. */
  extensions?: Record<string, string | readonly string[]>;
}

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

export const problemType = (code: ProblemCode): string =>
  'plain' in PROBLEMS[code] ? 'about:blank' : `/problems/${code}`;

export const statusTitle = (status: number): string => TITLES[status] ?? 'Error';

/** A failure a service or middleware throws; the app's error handler answers it as problem+json. */
export class AppError extends DescribedError {
  override name = 'AppError';
  readonly status: ContentfulStatusCode;
  readonly detail: string;

  constructor(
    readonly code: ProblemCode,
    readonly options: ProblemOptions = {},
  ) {
    const detail = options.detail ?? PROBLEMS[code].detail;
    super(detail);
    this.status = PROBLEMS[code].status;
    this.detail = detail;
  }
}

/** The RFC 9457 §3 body of a problem. */
export function problemBody(code: ProblemCode, options: ProblemOptions = {}) {
  const { status } = PROBLEMS[code];
  return {
    type: problemType(code),
    title: statusTitle(status),
    status,
    detail: options.detail ?? PROBLEMS[code].detail,
    ...(options.errors ? { errors: options.errors } : {}),
    ...options.extensions,
    ...oauthMember(options.oauthError ?? (PROBLEMS[code] as ProblemSpec).oauthError),
  };
}

const oauthMember = (error: OAuthError | undefined) => (error ? { error } : {});

/** The whole response for a problem: body, status, content type and the catalogue's headers. */
export function problemResponse(code: ProblemCode, options: ProblemOptions = {}): Response {
  const spec: ProblemSpec = PROBLEMS[code];
  return new Response(JSON.stringify(problemBody(code, options)), {
    status: spec.status,
    headers: { 'Content-Type': PROBLEM_CONTENT_TYPE, ...spec.headers, ...options.headers },
  });
}
