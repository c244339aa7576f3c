/** Responses with tokens or personal data must never be stored by a cache (RFC 6749 §5.1, RFC 9111 §5.2.2.5). */
export const NO_STORE = { 'Cache-Control': 'no-store' } as const;

/** A route's required JSON request body of `schema`. */
export const jsonBody = <S>(schema: S) => ({ required: true, content: { 'application/json': { schema } } });

// The one security scheme of /openapi.json (openapi.ts registers it): an access token from POST /token.
// Typed up front: a literal's inferred type has made zod-openapi widen the router's schema to
// `{ [path: string]: ... }`, which leaves `hc<AppType>` with no typed routes at all.
export const BEARER_SECURITY: Record<string, string[]>[] = [{ OAuth2Password: [] }];
