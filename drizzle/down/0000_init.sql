-- Reverses 0000_init.sql. drizzle-kit writes no down migrations; each one here is tested up → down → up.
DROP TABLE "users";--> statement-breakpoint
DROP TYPE "public"."user_role";
