/** zod issues as the API reports them: one field error per issue, addressed by JSON Pointer. */
import type { z } from 'zod';
import type { FieldError } from './problems';

/** RFC 6901 JSON Pointer escaping, written as a URI fragment (`#/a~1b/0`); the whole document is `#`. */
export const toPointer = (path: PropertyKey[]) =>
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

/** One line for a person reading a terminal or a report: `email: Invalid email address; password: …`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/** The summary `detail` of a 422: the one bad field and why, or how many fields are bad. */
export function summarizeFieldErrors(errors: FieldError[]): string {
  const [first] = errors;
  if (errors.length !== 1 || !first) return `${errors.length} fields are invalid`;
  return first.pointer === '#' ? `Request body: ${first.detail}` : `${first.pointer.slice(2)}: ${first.detail}`;
}
