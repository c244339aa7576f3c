-- Reverses 0006_second_factor.sql. The tables go; PostgreSQL cannot drop a value from an enum, so the type is
-- rebuilt without the second factor's events. Events that use them are kept, relabelled as the nearest older
-- event (naming what they were in `details`): a login that did not finish is `login_failed`, a recovery-code
-- login `login_succeeded`, a change of factors `password_changed` (a credential change). The audit log is
-- append-only, so its trigger is off for that one UPDATE.
DROP TABLE "totp_factors";--> statement-breakpoint
DROP TABLE "recovery_codes";--> statement-breakpoint
DROP TABLE "mfa_challenges";--> statement-breakpoint
ALTER TABLE "audit_events" DISABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
UPDATE "audit_events" SET "event" = (CASE "event"::text WHEN 'mfa_required' THEN 'login_failed' WHEN 'mfa_failed' THEN 'login_failed' WHEN 'recovery_code_used' THEN 'login_succeeded' ELSE 'password_changed' END)::"public"."audit_event", "details" = "details" || jsonb_build_object('was', "event"::text) WHERE "event"::text IN ('mfa_required', 'mfa_failed', 'totp_enabled', 'totp_disabled', 'recovery_code_used', 'recovery_codes_regenerated', 'mfa_reset');--> statement-breakpoint
ALTER TABLE "audit_events" ENABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
ALTER TYPE "public"."audit_event" RENAME TO "audit_event_0006";--> statement-breakpoint
CREATE TYPE "public"."audit_event" AS ENUM('register', 'login_succeeded', 'login_failed', 'token_refreshed', 'refresh_reuse_detected', 'logout', 'session_revoked', 'password_changed', 'role_changed', 'user_disabled', 'user_enabled', 'user_deleted', 'password_reset_requested', 'password_reset', 'email_verified', 'email_changed', 'password_change_failed');--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "event" TYPE "public"."audit_event" USING "event"::text::"public"."audit_event";--> statement-breakpoint
DROP TYPE "public"."audit_event_0006";
