import { z } from '@hono/zod-openapi';
import { PROBLEM_CONTENT_TYPE } from '../lib/errors';

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: 'about:blank' }),
    title: z.string().openapi({ example: 'Unauthorized' }),
    status: z.number().int().openapi({ example: 401 }),
    detail: z.string().openapi({ example: 'Incorrect email or password' }),
    errors: z
      .array(z.object({ pointer: z.string().openapi({ example: '#/email' }), detail: z.string() }))
      .optional()
      .openapi({ description: 'Present on 422: one entry per invalid field' }),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details' });

const DESCRIPTIONS = {
  400: 'Bad request',
  401: 'Missing, invalid or expired credentials',
  403: 'Authenticated, but not allowed',
  404: 'No such resource',
  409: 'Conflicts with the current state',
  413: 'Request body too large',
  415: 'Unsupported content type',
  422: 'Invalid input; `errors` lists each field',
  429: 'Too many attempts; see Retry-After',
  503: 'Database unavailable; see Retry-After',
} as const;

type ProblemStatus = keyof typeof DESCRIPTIONS;

/** OpenAPI `responses` entries for the given failure statuses, all sharing ProblemSchema. */
export function problemResponses<S extends ProblemStatus>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: DESCRIPTIONS[status], content: { [PROBLEM_CONTENT_TYPE]: { schema: ProblemSchema } } },
    ]),
  ) as unknown as Record<
    S,
    { description: string; content: { [PROBLEM_CONTENT_TYPE]: { schema: typeof ProblemSchema } } }
  >;
}
