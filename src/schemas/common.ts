/** Responses with tokens or personal data must never be stored by a cache (RFC 6749 §5.1, RFC 9111 §5.2.2.5). */
export const NO_STORE = { 'Cache-Control': 'no-store' } as const;

// Typed up front: an inline array literal of two differently-keyed objects makes zod-openapi infer the
// router's schema as `{ [path: string]: ... }`, which leaves `hc<AppType>` with no typed routes at all.
export const BEARER_SECURITY: Record<string, string[]>[] = [{ Bearer: [] }, { OAuth2Password: [] }];
