-- Reverses 0001_sessions_and_audit.sql. Dropping the tables drops their triggers, indexes and foreign keys.
DROP TABLE "refresh_tokens";--> statement-breakpoint
DROP TABLE "sessions";--> statement-breakpoint
DROP TABLE "audit_events";--> statement-breakpoint
DROP FUNCTION "audit_events_append_only"();--> statement-breakpoint
DROP TYPE "public"."audit_event";
