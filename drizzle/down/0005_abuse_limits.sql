-- Reverses 0005_abuse_limits.sql. PostgreSQL cannot drop a value from an enum, so the type is rebuilt without
-- it. Events that use it are kept, relabelled as the failed password check they were (`login_failed`, naming
-- what they were in `details`); the audit log is append-only, so its trigger is off for that one UPDATE.
ALTER TABLE "refresh_tokens" DROP COLUMN "replaced_by";--> statement-breakpoint
ALTER TABLE "audit_events" DISABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
UPDATE "audit_events" SET "event" = 'login_failed', "details" = "details" || '{"was":"password_change_failed"}'::jsonb WHERE "event" = 'password_change_failed';--> statement-breakpoint
ALTER TABLE "audit_events" ENABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
ALTER TYPE "public"."audit_event" RENAME TO "audit_event_0005";--> statement-breakpoint
CREATE TYPE "public"."audit_event" AS ENUM('register', 'login_succeeded', 'login_failed', 'token_refreshed', 'refresh_reuse_detected', 'logout', 'session_revoked', 'password_changed', 'role_changed', 'user_disabled', 'user_enabled', 'user_deleted', 'password_reset_requested', 'password_reset', 'email_verified', 'email_changed');--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "event" TYPE "public"."audit_event" USING "event"::text::"public"."audit_event";--> statement-breakpoint
DROP TYPE "public"."audit_event_0005";
