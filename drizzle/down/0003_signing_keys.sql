-- Reverses 0003_signing_keys.sql. Dropping a table drops its triggers.
DROP TRIGGER "users_notify_update" ON "users";--> statement-breakpoint
DROP TRIGGER "users_notify_delete" ON "users";--> statement-breakpoint
DROP TRIGGER "sessions_notify_update" ON "sessions";--> statement-breakpoint
DROP TRIGGER "sessions_notify_delete" ON "sessions";--> statement-breakpoint
DROP TABLE "signing_keys";--> statement-breakpoint
DROP FUNCTION "hpa_notify_user_change"();--> statement-breakpoint
DROP FUNCTION "hpa_notify_session_change"();--> statement-breakpoint
DROP FUNCTION "hpa_notify_key_change"();--> statement-breakpoint
ALTER TABLE "sessions" DROP COLUMN "client_id";--> statement-breakpoint
ALTER TABLE "sessions" DROP COLUMN "amr";
