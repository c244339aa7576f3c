import { type Hook, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../app-env';
import { type OAuthError, problemResponse } from '../lib/problems';
import { summarizeFieldErrors, toFieldErrors } from '../lib/validation';

// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input shape
type AnyHook = Hook<any, AppEnv, any, any>;

/** Every zod validation failure becomes a 422 problem naming each bad field (the library default is a 400). */
const validationHook =
  (oauthError?: OAuthError): AnyHook =>
  (result) => {
    if (result.success) return;
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
