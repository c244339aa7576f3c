import { z } from '@hono/zod-openapi';

const MAX_FORM_FIELD_LENGTH = 1024;

/** RFC 6749 §4.3 resource owner password credentials, as OAuth2PasswordRequestForm reads it. */
export const TokenRequestSchema = z
  .object({
    grant_type: z.string().max(64).optional().openapi({ example: 'password' }),
    username: z
      .string()
      .max(MAX_FORM_FIELD_LENGTH)
      .openapi({ description: 'The account email', example: 'ada@example.com' }),
    password: z.string().max(MAX_FORM_FIELD_LENGTH).openapi({ example: 'correct horse battery staple' }),
    scope: z.string().max(MAX_FORM_FIELD_LENGTH).optional(),
  })
  .openapi('TokenRequest');

export const TokenSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal('bearer'),
    expires_in: z.number().int().openapi({ description: 'Seconds until the access token expires', example: 1800 }),
  })
  .openapi('Token');
