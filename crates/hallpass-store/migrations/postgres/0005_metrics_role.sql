-- A read-only role for a Prometheus scraper: its token reads /metrics and nothing else.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('dpo', 'admin', 'relay', 'metrics'));
