-- The PostgreSQL role botreports uses in botserver's database (docs/embedding.md,
-- "Next to a running botserver"). Run once as botserver's database owner, connected
-- to botserver's database (here named botserver; change the name on the GRANT CONNECT
-- line if yours differs), e.g.  psql -d botserver -f grants.sql
-- tests/test_botserver_recipe.py applies this file to a database built from botserver's
-- own migrations and reports through the role it creates.

CREATE ROLE botreports_reader LOGIN PASSWORD 'change-me';
GRANT CONNECT ON DATABASE botserver TO botreports_reader;

-- Reading: the five tables the botserver source reads, nothing else.
GRANT USAGE ON SCHEMA public TO botreports_reader;
GRANT SELECT ON public.bots, public.user_sessions, public.message_history,
                public.llm_metrics, public.compliance_audit_log TO botreports_reader;

-- Rollups: a schema botreports owns, the only place it ever writes in botserver's
-- database (docs/botserver_rollups.md). Leave this line out and every report reads
-- botserver's tables directly: the same numbers, slower.
CREATE SCHEMA botreports AUTHORIZATION botreports_reader;
