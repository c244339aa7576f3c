import type { Hook } from '@hono/zod-openapi';
import type { z } from 'zod';
import type { AppEnv } from '../deps';
import { type FieldError, problem } from './errors';

/** RFC 6901 JSON Pointer escaping, written as a URI fragment (`#/a~1b/0`). */
const toPointer = (path: PropertyKey[]) =>
  `#/${path.map((part) => String(part).replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'Field is required';
  return issue.message;
}

export function toFieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({ pointer: toPointer(issue.path), detail: describeIssue(issue) }));
}

/** Every zod validation failure becomes a 422 problem naming each bad field (the library default is a 400). */
// biome-ignore lint/suspicious/noExplicitAny: the hook is shared by routes of every input shape
export const defaultHook: Hook<any, AppEnv, any, any> = (result) => {
  if (result.success) return;
  const errors = toFieldErrors(result.error);
  const detail =
    errors.length === 1
      ? `${errors[0]?.pointer.slice(2)}: ${errors[0]?.detail}`
      : `${errors.length} fields are invalid`;
  return problem(422, detail, { type: '/problems/validation', errors });
};
