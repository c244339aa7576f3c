-- Reverses 0004_recovery_and_outbox.sql. Dropping the tables drops their indexes and foreign keys.
DROP TABLE "mail_outbox";--> statement-breakpoint
DROP TABLE "link_tokens";--> statement-breakpoint
DROP TYPE "public"."mail_status";--> statement-breakpoint
DROP TYPE "public"."link_token_purpose";--> statement-breakpoint
ALTER TABLE "users" DROP COLUMN "email_verified_at";--> statement-breakpoint
-- PostgreSQL cannot drop an enum value: the type is rebuilt without the four new events. Their rows cannot be
-- kept (no older event means the same), so the rollback deletes them, with the append-only trigger paused for it.
ALTER TABLE "audit_events" DISABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
DELETE FROM "audit_events" WHERE "event"::text IN ('password_reset_requested', 'password_reset', 'email_verified', 'email_changed');--> statement-breakpoint
ALTER TABLE "audit_events" ENABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
ALTER TYPE "public"."audit_event" RENAME TO "audit_event_0004";--> statement-breakpoint
CREATE TYPE "public"."audit_event" AS ENUM('register', 'login_succeeded', 'login_failed', 'token_refreshed', 'refresh_reuse_detected', 'logout', 'session_revoked', 'password_changed', 'role_changed', 'user_disabled', 'user_enabled', 'user_deleted');--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "event" TYPE "public"."audit_event" USING "event"::text::"public"."audit_event";--> statement-breakpoint
DROP TYPE "public"."audit_event_0004";
