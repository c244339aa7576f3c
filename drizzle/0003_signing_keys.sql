CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"private_key" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"activates_at" timestamp (3) with time zone NOT NULL,
	"revoked_at" timestamp (3) with time zone
);
--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "amr" text[] DEFAULT '{pwd}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "client_id" text;--> statement-breakpoint
-- Cross-instance revocation (API.md "Revocation without a database round trip"): every change that ends or
-- changes access NOTIFYs the `hpa_access` channel from the changing transaction, so each instance's view hears
-- of it exactly when it commits, whoever wrote the row (the service, the CLI, an operator's SQL).
-- Payloads are src/access/changes.ts's wire format; `t` is the publish time in ms, for the invalidation lag.
CREATE FUNCTION "hpa_notify_user_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hpa_access', json_build_object(
    'k', 'u', 'u', OLD.id, 't', floor(extract(epoch from clock_timestamp()) * 1000))::text);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE FUNCTION "hpa_notify_session_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hpa_access', json_build_object(
    's', OLD.id, 'k', 's', 'u', OLD.user_id, 't', floor(extract(epoch from clock_timestamp()) * 1000))::text);
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE FUNCTION "hpa_notify_key_change"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
    PERFORM pg_notify('hpa_access', json_build_object(
      'k', 'key', 'kid', NEW.kid, 't', floor(extract(epoch from clock_timestamp()) * 1000))::text);
  END IF;
  PERFORM pg_notify('hpa_access', json_build_object(
    'k', 'keys', 't', floor(extract(epoch from clock_timestamp()) * 1000))::text);
  RETURN NULL;
END $$;--> statement-breakpoint
-- Any change of a user's row: the view keeps the whole row (GET /users/me answers from it).
CREATE TRIGGER "users_notify_update" AFTER UPDATE ON "users"
  FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION "hpa_notify_user_change"();--> statement-breakpoint
CREATE TRIGGER "users_notify_delete" AFTER DELETE ON "users" FOR EACH ROW EXECUTE FUNCTION "hpa_notify_user_change"();--> statement-breakpoint
-- What the view keeps of a session; not last_used_at, which every refresh moves and no access decision reads.
CREATE TRIGGER "sessions_notify_update" AFTER UPDATE ON "sessions"
  FOR EACH ROW WHEN (
    OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
    OR OLD.amr IS DISTINCT FROM NEW.amr OR OLD.client_id IS DISTINCT FROM NEW.client_id
  )
  EXECUTE FUNCTION "hpa_notify_session_change"();--> statement-breakpoint
CREATE TRIGGER "sessions_notify_delete" AFTER DELETE ON "sessions" FOR EACH ROW EXECUTE FUNCTION "hpa_notify_session_change"();--> statement-breakpoint
CREATE TRIGGER "signing_keys_notify" AFTER INSERT OR UPDATE OR DELETE ON "signing_keys"
  FOR EACH ROW EXECUTE FUNCTION "hpa_notify_key_change"();
