import { z } from '@hono/zod-openapi';
import { EmailRule } from '../lib/email';
import { CONTROL_CHARACTERS } from '../lib/text';
import type { Passkey } from '../services/passkeys';

// WebAuthn's JSON encodings (WebAuthn L3 §5.1.8, §5.1.9): binary fields are base64url. The bounds are far above
// what an authenticator sends (a credential id is at most 1023 bytes, §4) and keep garbage away from the decoders.
const MAX_CREDENTIAL_ID_CHARS = 1400;
const MAX_BINARY_CHARS = 16 * 1024;
const base64url = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(/^[A-Za-z0-9_-]+={0,2}$/, 'Must be base64url');

const credentialFields = {
  id: base64url(MAX_CREDENTIAL_ID_CHARS).openapi({ description: 'The credential id' }),
  rawId: base64url(MAX_CREDENTIAL_ID_CHARS),
  type: z.literal('public-key'),
  authenticatorAttachment: z.enum(['platform', 'cross-platform']).optional(),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
};

export const RegistrationResponseSchema = z
  .object({
    ...credentialFields,
    response: z.object({
      clientDataJSON: base64url(MAX_BINARY_CHARS),
      attestationObject: base64url(MAX_BINARY_CHARS),
      authenticatorData: base64url(MAX_BINARY_CHARS).optional(),
      transports: z
        .array(z.string().regex(/^[a-z0-9-]{1,32}$/, 'Must be a transport name such as "internal" or "usb"'))
        .max(16)
        .optional(),
      publicKeyAlgorithm: z.number().int().optional(),
      publicKey: base64url(MAX_BINARY_CHARS).optional(),
    }),
  })
  .openapi('RegistrationResponseJSON', {
    description:
      "`PublicKeyCredential.toJSON()` of navigator.credentials.create()'s answer (or @simplewebauthn/browser's)",
  });

export const AuthenticationResponseSchema = z
  .object({
    ...credentialFields,
    response: z.object({
      clientDataJSON: base64url(MAX_BINARY_CHARS),
      authenticatorData: base64url(MAX_BINARY_CHARS),
      signature: base64url(MAX_BINARY_CHARS),
      userHandle: base64url(MAX_BINARY_CHARS).optional(),
    }),
  })
  .openapi('AuthenticationResponseJSON', {
    description:
      "`PublicKeyCredential.toJSON()` of navigator.credentials.get()'s answer (or @simplewebauthn/browser's)",
  });

export const PasskeyRegistrationRequestSchema = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .refine((name) => !CONTROL_CHARACTERS.test(name), 'Must not contain control characters')
      .optional()
      .openapi({ description: 'What the passkey is called in your list (default "Passkey")', example: 'Laptop' }),
  })
  .openapi('PasskeyRegistrationRequest');

export const PasskeyLoginRequestSchema = z
  .object({
    email: EmailRule.optional().openapi({
      description: "Offer only this account's passkeys; omit it for discoverable passkeys (no email typed)",
      format: 'email',
    }),
  })
  .openapi('PasskeyLoginRequest');

const credentialDescriptor = z.object({
  id: z.string(),
  type: z.string().openapi({ example: 'public-key' }),
  transports: z.array(z.string()).optional(),
});

export const CreationOptionsSchema = z
  .object({
    rp: z.object({ id: z.string().optional(), name: z.string() }),
    user: z.object({ id: z.string(), name: z.string(), displayName: z.string() }),
    challenge: z.string(),
    pubKeyCredParams: z.array(z.object({ type: z.literal('public-key'), alg: z.number().int() })),
    timeout: z.number().int().optional(),
    excludeCredentials: z.array(credentialDescriptor).optional(),
    authenticatorSelection: z.record(z.string(), z.unknown()).optional(),
    attestation: z.string().optional(),
    extensions: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi('PublicKeyCredentialCreationOptionsJSON', {
    description: 'For `PublicKeyCredential.parseCreationOptionsFromJSON()` (or @simplewebauthn/browser)',
  });

export const RequestOptionsSchema = z
  .object({
    challenge: z.string(),
    timeout: z.number().int().optional(),
    rpId: z.string().optional(),
    allowCredentials: z.array(credentialDescriptor).optional(),
    userVerification: z.string().optional(),
    extensions: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi('PublicKeyCredentialRequestOptionsJSON', {
    description: 'For `PublicKeyCredential.parseRequestOptionsFromJSON()` (or @simplewebauthn/browser)',
  });

export const PasskeyCreatedSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    created_at: z.string().openapi({ format: 'date-time' }),
  })
  .openapi('PasskeyCreated');

export const toPasskeyCreated = (passkey: Passkey): z.infer<typeof PasskeyCreatedSchema> => ({
  id: passkey.id,
  name: passkey.name,
  created_at: passkey.createdAt.toISOString(),
});

export const PasskeyIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
});
