export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
type Fields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
}

/** One JSON object per line on stdout, so any log shipper can parse it without configuration. */
export function createLogger(level: LogLevel, write: (line: string) => void = console.log): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const at =
    (name: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields: Fields = {}) => {
      if (LOG_LEVELS.indexOf(name) < threshold) return;
      write(JSON.stringify({ time: new Date().toISOString(), level: name, msg: message, ...fields }));
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * The `code`s of an error and of the errors it wraps, outermost first (DrizzleQueryError keeps the driver's
 * error as `cause`; postgres.js and node sockets put SQLSTATEs and errnos on `code`).
 */
export function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/**
 * An error whose message is a sentence we wrote, carrying no input or data: what is wrong and what to do
 * (a locked data directory, an unreachable Redis, a bad setting, a problem's detail). describeError prints
 * its message; of any other error only the class and codes.
 */
export class DescribedError extends Error {
  override name = 'DescribedError';
}

/**
 * How an error appears in a log line or on an operator's terminal: a DescribedError's message, otherwise
 * the class and codes, never the message. Messages carry input: a failed query's message lists its
 * parameters (emails, bcrypt hashes), a parse error quotes the body it choked on. The name and the
 * SQLSTATE or errno locate a fault without them.
 */
export function describeError(error: unknown): string {
  if (error instanceof DescribedError) return error.message;
  if (!(error instanceof Error)) return typeof error;
  const codes = errorCodes(error);
  return codes.length > 0 ? `${error.name} (${codes.join(', ')})` : error.name;
}
