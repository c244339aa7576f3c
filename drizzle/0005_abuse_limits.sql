ALTER TYPE "public"."audit_event" ADD VALUE 'password_change_failed';--> statement-breakpoint
ALTER TABLE "refresh_tokens" ADD COLUMN "replaced_by" uuid;