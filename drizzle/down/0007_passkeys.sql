-- Reverses 0007_passkeys.sql. The tables go; PostgreSQL cannot drop a value from an enum, so audit_event is
-- rebuilt from its current labels less the three passkey events (read from pg_enum, so it holds whatever the
-- earlier migrations put there). Events that use them are kept, relabelled as 0006's down step does (naming
-- what they were in `details`): a refused counter is `login_failed`, a passkey added or removed
-- `password_changed` (a credential change). The audit log is append-only, so its trigger is off for that UPDATE.
DROP TABLE "webauthn_challenges";--> statement-breakpoint
DROP TABLE "passkeys";--> statement-breakpoint
DROP TYPE "public"."webauthn_ceremony";--> statement-breakpoint
ALTER TABLE "audit_events" DISABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
UPDATE "audit_events" SET "event" = (CASE "event"::text WHEN 'passkey_counter_rollback' THEN 'login_failed' ELSE 'password_changed' END)::"public"."audit_event", "details" = "details" || jsonb_build_object('was', "event"::text) WHERE "event"::text IN ('passkey_added', 'passkey_removed', 'passkey_counter_rollback');--> statement-breakpoint
ALTER TABLE "audit_events" ENABLE TRIGGER "audit_events_no_update_or_delete";--> statement-breakpoint
ALTER TYPE "public"."audit_event" RENAME TO "audit_event_0007";--> statement-breakpoint
DO $$
DECLARE labels text;
BEGIN
  SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder) INTO labels FROM pg_enum
    WHERE enumtypid = '"public"."audit_event_0007"'::regtype
      AND enumlabel NOT IN ('passkey_added', 'passkey_removed', 'passkey_counter_rollback');
  EXECUTE format('CREATE TYPE "public"."audit_event" AS ENUM(%s)', labels);
END $$;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "event" TYPE "public"."audit_event" USING "event"::text::"public"."audit_event";--> statement-breakpoint
DROP TYPE "public"."audit_event_0007";
