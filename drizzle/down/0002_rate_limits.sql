-- Reverses 0002_rate_limits.sql. Dropping the table drops its index.
DROP TABLE "rate_limits";
