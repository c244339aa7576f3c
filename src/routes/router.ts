import { type Hook, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../app-env';
import { type OAuthError, problemResponse } from '../lib/problems';
import { summarizeFieldErrors, toFieldErrors, toPointer } from '../lib/validation';

// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input shape
type AnyHook = Hook<any, AppEnv, any, any>;

/** The path of the first string in `value` that is not well-formed UTF-16 (a lone surrogate), or null. */
function illFormedString(value: unknown, path: PropertyKey[] = []): PropertyKey[] | null {
  if (typeof value === 'string') return value.isWellFormed() ? null : path;
  if (value === null || typeof value !== 'object') return null;
  for (const [key, item] of Object.entries(value)) {
    const found = illFormedString(item, [...path, Array.isArray(value) ? Number(key) : key]);
    if (found) return found;
  }
  return null;
}

/**
 * Every zod validation failure becomes a 422 problem naming each bad field (the library default is a 400).
 * And every string that passed validation must be well-formed UTF-16: JSON can carry a lone surrogate
 * (`"\ud800"`), which UTF-8 cannot encode, so PostgreSQL, bcrypt and every hash see U+FFFD instead and two
 * different passwords collide. One check here covers every body, query and path field of every route.
 */
const validationHook =
  (oauthError?: OAuthError): AnyHook =>
  (result) => {
    if (result.success) {
      const path = illFormedString(result.data);
      if (!path) return;
      const errors = [{ pointer: toPointer(path), detail: 'Must be valid Unicode text (no unpaired surrogates)' }];
      return problemResponse('validation', { detail: summarizeFieldErrors(errors), errors, oauthError });
    }
    // @hono/zod-validator passes the unparsed input as `data` on failure too; its Hook type only says so on success.
    const errors = toFieldErrors(result.error, (result as { data?: unknown }).data);
    return problemResponse('validation', { detail: summarizeFieldErrors(errors), errors, oauthError });
  };

export const defaultHook = validationHook();

/** The one way to make a router: typed bindings and the 422 hook. */
export const createRouter = () => new OpenAPIHono<AppEnv>({ defaultHook });

/**
 * For the OAuth endpoints (/token, /revoke, /introspect): the same 422, with RFC 6749 §5.2's
 * `error: "invalid_request"` for the standard clients that read it.
 */
export const createOAuthRouter = () => new OpenAPIHono<AppEnv>({ defaultHook: validationHook('invalid_request') });
