import { z } from '@hono/zod-openapi';
import { PROBLEM_CONTENT_TYPE, PROBLEMS, type ProblemCode, problemBody } from '../lib/problems';

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ description: '`/problems/<code>`, or `about:blank` when the status says it all' }),
    title: z.string().openapi({ description: 'The HTTP status phrase' }),
    status: z.number().int(),
    detail: z.string().openapi({ description: 'A sentence a client may show' }),
    errors: z
      .array(z.object({ pointer: z.string().openapi({ example: '#/email' }), detail: z.string() }))
      .optional()
      .openapi({ description: 'Present on 422: one entry per invalid field' }),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details' });

type StatusOf<C extends ProblemCode> = (typeof PROBLEMS)[C]['status'];
type ProblemContent = { [PROBLEM_CONTENT_TYPE]: { schema: typeof ProblemSchema } };

/**
 * OpenAPI `responses` entries for the problems a route can answer, grouped by status: each status lists the
 * catalogue's example of every one of its codes, so /docs shows this route's own failures.
 */
export function problemResponses<const C extends ProblemCode>(...codes: C[]) {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) byStatus.set(PROBLEMS[code].status, [...(byStatus.get(PROBLEMS[code].status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => [
      status,
      {
        description: group.map((code) => PROBLEMS[code].detail).join(' / '),
        content: {
          [PROBLEM_CONTENT_TYPE]: {
            schema: ProblemSchema,
            examples: Object.fromEntries(group.map((code) => [code, { value: problemBody(code) }])),
          },
        },
      },
    ]),
  ) as unknown as Record<StatusOf<C>, { description: string; content: ProblemContent }>;
}

/** Every route may answer these: the database is down, or the request ran out of time. */
export const UNAVAILABLE = ['database-unavailable', 'timeout'] as const;
/** Every route with a JSON or form body may answer these before its handler runs. */
export const BAD_BODY = ['malformed-request', 'body-too-large', 'unsupported-media-type', 'validation'] as const;
/** Every bearer-protected route. */
export const UNAUTHENTICATED = ['not-authenticated', 'invalid-access-token'] as const;
