"""Other servers the suite runs against: Debian's PostgreSQL 15 and pgbouncer."""
