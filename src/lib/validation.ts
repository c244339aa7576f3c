import type { Hook } from '@hono/zod-openapi';
import type { z } from 'zod';
import type { AppEnv } from '../deps';
import { type FieldError, problem } from './errors';

/** RFC 6901 JSON Pointer escaping, written as a URI fragment (`#/a~1b/0`); the whole document is `#`. */
const toPointer = (path: PropertyKey[]) =>
  path.length === 0
    ? '#'
    : `#/${path.map((part) => String(part).replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;

/** The raw input at `path`: zod 4 issues leave the input out, and only it tells "missing" from "wrong type". */
function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === 'invalid_type' && valueAt(input, issue.path) === undefined) return 'Field is required';
  return issue.message;
}

export function toFieldErrors(error: z.ZodError, input: unknown): FieldError[] {
  return error.issues.map((issue) => ({ pointer: toPointer(issue.path), detail: describeIssue(issue, input) }));
}

/** Every zod validation failure becomes a 422 problem naming each bad field (the library default is a 400). */
// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input shape
export const defaultHook: Hook<any, AppEnv, any, any> = (result) => {
  if (result.success) return;
  // @hono/zod-validator passes the unparsed input as `data` on failure too; its Hook type only says so on success.
  const errors = toFieldErrors(result.error, (result as { data?: unknown }).data);
  const [first] = errors;
  const detail =
    errors.length !== 1 || !first
      ? `${errors.length} fields are invalid`
      : first.pointer === '#'
        ? `Request body: ${first.detail}`
        : `${first.pointer.slice(2)}: ${first.detail}`;
  return problem(422, detail, { type: '/problems/validation', errors });
};
