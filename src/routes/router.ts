import { type Hook, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../app-env';
import { problemResponse } from '../lib/problems';
import { summarizeFieldErrors, toFieldErrors } from '../lib/validation';

/** Every zod validation failure becomes a 422 problem naming each bad field (the library default is a 400). */
// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input shape
export const defaultHook: Hook<any, AppEnv, any, any> = (result) => {
  if (result.success) return;
  // @hono/zod-validator passes the unparsed input as `data` on failure too; its Hook type only says so on success.
  const errors = toFieldErrors(result.error, (result as { data?: unknown }).data);
  return problemResponse('validation', { detail: summarizeFieldErrors(errors), errors });
};

/** The one way to make a router: typed bindings and the 422 hook. */
export const createRouter = () => new OpenAPIHono<AppEnv>({ defaultHook });
