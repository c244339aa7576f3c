/**
 * What a database error means to the service, by its codes (SQLSTATEs from PostgreSQL and PGlite, errnos
 * and client codes from postgres.js and node sockets); the message is never read.
 */
import { errorCodes } from '../lib/logger';

// Connection-level failures and PostgreSQL's own "not now" SQLSTATEs: the database is down or unreachable,
// which is a 503 the client may retry, not a bug.
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

/** True when the error says the database is down or unreachable (SQLSTATE class 08 is "connection exception"). */
export function isDatabaseUnavailable(error: unknown): boolean {
  return errorCodes(error).some((code) => UNAVAILABLE_CODES.has(code) || code.startsWith('08'));
}

// A SQLSTATE: five digits or capitals (PostgreSQL Appendix A), the code every error of the server carries.
const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * True for any failure of the database or of the way to it: an error the server sent (a SQLSTATE, such as
 * 26000 "prepared statement … does not exist" behind a pooler) or a connection that failed.
 */
export function isDatabaseError(error: unknown): boolean {
  if (isDatabaseUnavailable(error)) return true;
  if (error instanceof Error && error.name === 'DrizzleQueryError') return true;
  return errorCodes(error).some((code) => SQLSTATE.test(code));
}

/** 42P01: the table does not exist, which for this service's own tables means it was never migrated. */
export const isUndefinedTable = (error: unknown): boolean => errorCodes(error).includes('42P01');

/** 23505: a unique index refused the row (an email another account has). */
export const isUniqueViolation = (error: unknown): boolean => errorCodes(error).includes('23505');
