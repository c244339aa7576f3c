import { z } from '@hono/zod-openapi';
import { type MfaSummary, RECOVERY_CODE_COUNT } from '../services/mfa';

const CurrentPassword = z.string().max(1024).openapi({ example: 'correct horse battery staple' });
const Code = z
  .string()
  .max(64)
  .openapi({ description: 'A 6-digit code of the authenticator app, or an unused recovery code', example: '123456' });

export const TotpEnrolSchema = z.object({ current_password: CurrentPassword }).openapi('TotpEnrol');

export const TotpEnrolmentSchema = z
  .object({
    secret: z
      .string()
      .openapi({ description: 'Base32, to type into an authenticator app', example: 'JBSWY3DPEHPK3PXP' }),
    otpauth_uri: z.string().openapi({
      description: 'Key Uri Format: what the QR code holds',
      example:
        'otpauth://totp/hono-postgres-auth:ada%40example.com?issuer=hono-postgres-auth&secret=JBSWY3DPEHPK3PXP&algorithm=SHA1&digits=6&period=30',
    }),
    qr_svg: z.string().openapi({ description: 'The otpauth URI as an SVG QR code, to scan' }),
  })
  .openapi('TotpEnrolment');

export const TotpConfirmSchema = z
  .object({
    code: z.string().max(64).openapi({ description: 'The 6-digit code the app shows now', example: '123456' }),
  })
  .openapi('TotpConfirm');

/** DELETE /users/me/mfa/totp and POST /users/me/mfa/recovery-codes: the password and the second factor. */
export const SecondFactorProofSchema = z
  .object({ current_password: CurrentPassword, code: Code })
  .openapi('SecondFactorProof');

export const RecoveryCodesSchema = z
  .object({
    recovery_codes: z
      .array(z.string())
      .length(RECOVERY_CODE_COUNT)
      .openapi({
        description: 'Shown once: each logs in once instead of a TOTP code (grant_type=mfa_otp, recovery_code)',
        example: ['k7m2p-qx9rt', 'a3bcd-efg4h'],
      }),
  })
  .openapi('RecoveryCodes');

const timestamp = (example: string | null) =>
  z
    .string()
    .nullable()
    .openapi({ format: 'date-time', example: example ?? undefined });

export const MfaSummarySchema = z
  .object({
    totp: z.object({
      enabled: z.boolean().openapi({ example: true }),
      created_at: timestamp('2026-01-01T12:00:00.000Z').openapi({ description: 'When it was confirmed' }),
    }),
    passkeys: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        created_at: z.string().openapi({ format: 'date-time' }),
        last_used_at: timestamp(null),
      }),
    ),
    recovery_codes_left: z.number().int().openapi({ example: 10 }),
  })
  .openapi('MfaSummary');

export const toMfaSummary = (summary: MfaSummary): z.infer<typeof MfaSummarySchema> => ({
  totp: { enabled: summary.totp.enabled, created_at: summary.totp.createdAt?.toISOString() ?? null },
  passkeys: summary.passkeys.map((passkey) => ({
    id: passkey.id,
    name: passkey.name,
    created_at: passkey.createdAt.toISOString(),
    last_used_at: passkey.lastUsedAt?.toISOString() ?? null,
  })),
  recovery_codes_left: summary.recoveryCodesLeft,
});
