import { z } from '@hono/zod-openapi';
import {
  PROBLEM_CONTENT_TYPE,
  PROBLEMS,
  type ProblemCode,
  type ProblemOptions,
  type ProblemStatus,
  problemBody,
  problemType,
  statusTitle,
} from '../lib/problems';

const ProblemFields = {
  type: z.string().openapi({ description: '`/problems/<code>`, or `about:blank` when the status says it all' }),
  title: z.string().openapi({ description: 'The HTTP status phrase' }),
  status: z.number().int(),
  detail: z.string().openapi({ description: 'A sentence a client may show' }),
  errors: z
    .array(z.object({ pointer: z.string().openapi({ example: '#/email' }), detail: z.string() }))
    .optional()
    .openapi({ description: 'Present on 422: one entry per invalid field' }),
  mfa_token: z.string().optional().openapi({
    description:
      'Present on 403 `/problems/mfa-required`: send it with grant_type=mfa_otp and a code (5 minutes, once)',
  }),
  methods: z
    .array(z.enum(['otp', 'webauthn']))
    .optional()
    .openapi({
      description:
        'Present on 403 `/problems/mfa-required`: the second factors the user has (RFC 8176 names). `otp`: ' +
        'grant_type=mfa_otp with the mfa_token and a TOTP or recovery code; `webauthn`: a passkey login instead',
    }),
};

export const ProblemSchema = z.object(ProblemFields).openapi('Problem', { description: 'RFC 9457 problem details' });

const schemasByStatus = new Map<number, z.ZodType>();

/**
 * `Problem409` and friends: the problem shape with this status and the types the catalogue has for it, so
 * a generated client knows exactly what a 409 can say. Made once per status (a name registers one schema).
 */
function problemSchemaFor(status: ProblemStatus): z.ZodType {
  let schema = schemasByStatus.get(status);
  if (!schema) {
    const types = [
      ...new Set(
        (Object.keys(PROBLEMS) as ProblemCode[]).filter((c) => PROBLEMS[c].status === status).map(problemType),
      ),
    ] as [string, ...string[]];
    schema = z
      .object({
        ...ProblemFields,
        type: z.enum(types).openapi({ description: 'Which problem; `about:blank` when the status says it all' }),
        status: z.literal(status),
      })
      .openapi(`Problem${status}`, { description: `RFC 9457 problem details: ${status} ${statusTitle(status)}` });
    schemasByStatus.set(status, schema);
  }
  return schema;
}

/** What /docs shows for a code: its catalogue body, and for a 422 one field error, as a real one carries. */
const EXAMPLE_OPTIONS: Partial<Record<ProblemCode, ProblemOptions>> = {
  validation: {
    detail: 'email: Invalid email address',
    errors: [{ pointer: '#/email', detail: 'Invalid email address' }],
  },
  'mfa-required': { extensions: { mfa_token: 'mJ3v0QxW1c8bq6z2Yk5sTnLhR4eAfDgUiOpVwXyZ7aE', methods: ['otp'] } },
};

type StatusOf<C extends ProblemCode> = (typeof PROBLEMS)[C]['status'];
type ProblemContent = { [PROBLEM_CONTENT_TYPE]: { schema: typeof ProblemSchema } };

/**
 * OpenAPI `responses` entries for the problems a route can answer, grouped by status: each status has its
 * `Problem<status>` schema and the catalogue's example of every one of the route's codes, so /docs shows
 * this route's own failures.
 */
export function problemResponses<const C extends ProblemCode>(...codes: C[]) {
  const byStatus = new Map<ProblemStatus, ProblemCode[]>();
  for (const code of codes) byStatus.set(PROBLEMS[code].status, [...(byStatus.get(PROBLEMS[code].status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, group]) => [
      status,
      {
        description: group.map((code) => PROBLEMS[code].detail).join(' / '),
        content: {
          [PROBLEM_CONTENT_TYPE]: {
            schema: problemSchemaFor(status),
            examples: Object.fromEntries(
              group.map((code) => [code, { value: problemBody(code, EXAMPLE_OPTIONS[code]) }]),
            ),
          },
        },
      },
    ]),
    // The typed client sees each status's body as the general Problem shape (its `status` a number).
  ) as unknown as Record<StatusOf<C>, { description: string; content: ProblemContent }>;
}

/** Every route may answer these: the database is down, or the request ran out of time. */
export const UNAVAILABLE = ['database-unavailable', 'timeout'] as const;
/** Every route with a JSON or form body may answer these before its handler runs. */
export const BAD_BODY = ['malformed-request', 'body-too-large', 'unsupported-media-type', 'validation'] as const;
/** The bearer-protected routes an admin who has still to enrol a second factor may use (requireAuthToEnrol). */
export const UNAUTHENTICATED_ENROLLING = ['not-authenticated', 'invalid-access-token'] as const;
/** Every other bearer-protected route (requireAuth): it refuses such an admin. */
export const UNAUTHENTICATED = [...UNAUTHENTICATED_ENROLLING, 'mfa-enrolment-required'] as const;
/** The sensitive actions (requireStepUp). */
export const STEP_UP = ['insufficient-user-authentication'] as const;
