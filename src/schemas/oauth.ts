import { z } from '@hono/zod-openapi';
import { ClientIdSchema } from './token';

const MAX_TOKEN_FIELD_LENGTH = 4096;

const TokenFieldSchema = z
  .string()
  .max(MAX_TOKEN_FIELD_LENGTH)
  .optional()
  .openapi({ description: 'The access or refresh token; missing is a 400 `invalid_request`' });

const TokenTypeHintSchema = z.string().max(64).optional().openapi({
  description: '`access_token` or `refresh_token`: which kind to look for first (another value is ignored)',
  example: 'refresh_token',
});

/** RFC 7009 §2.1. */
export const RevocationRequestSchema = z
  .object({ token: TokenFieldSchema, token_type_hint: TokenTypeHintSchema, client_id: ClientIdSchema.optional() })
  .openapi('RevocationRequest');

/** RFC 7662 §2.1. */
export const IntrospectionRequestSchema = z
  .object({ token: TokenFieldSchema, token_type_hint: TokenTypeHintSchema })
  .openapi('IntrospectionRequest');

/** RFC 7662 §2.2: `{active: false}` alone for anything not live. */
export const IntrospectionSchema = z
  .object({
    active: z.boolean(),
    sub: z.string().optional().openapi({ example: '1' }),
    sid: z.string().optional().openapi({ description: 'The session the token belongs to' }),
    client_id: z.string().optional().openapi({ example: 'hono-postgres-auth' }),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    iss: z.string().optional(),
    aud: z.string().optional(),
    token_type: z.literal('Bearer').optional(),
    token_use: z.enum(['access_token', 'refresh_token']).optional(),
    amr: z
      .array(z.string())
      .optional()
      .openapi({ example: ['pwd'] }),
    jti: z.string().optional(),
  })
  .openapi('Introspection', { example: { active: false } });

export const JwkSchema = z
  .object({
    kty: z.string().openapi({ example: 'EC' }),
    crv: z.string().openapi({ example: 'P-256' }),
    x: z.string(),
    y: z.string().optional(),
    kid: z.string(),
    alg: z.string().openapi({ example: 'ES256' }),
    use: z.literal('sig'),
  })
  .openapi('Jwk');

export const JwksSchema = z.object({ keys: z.array(JwkSchema) }).openapi('Jwks');

export const MetadataSchema = z
  .object({
    issuer: z.string(),
    token_endpoint: z.string(),
    jwks_uri: z.string(),
    revocation_endpoint: z.string(),
    introspection_endpoint: z.string(),
    response_types_supported: z.array(z.string()),
    grant_types_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: z.array(z.string()),
    revocation_endpoint_auth_methods_supported: z.array(z.string()),
    introspection_endpoint_auth_methods_supported: z.array(z.string()),
    access_token_signing_alg_values_supported: z.array(z.string()).optional(),
  })
  .openapi('AuthorizationServerMetadata');
