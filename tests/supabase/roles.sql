-- Test cluster only: make a plain PostgreSQL look like a Supabase project to
-- the schema and to the endpoint (tests/supabase/postgrest.py). pg.sh applies
-- this file before docs/supabase/schema.sql, which stays exactly what a
-- Supabase user pastes into the SQL editor.
--
-- In Supabase these already exist:
--   anon           role of the publishable/anon key (NOLOGIN)
--   authenticated  role of signed-in users          (NOLOGIN)
--   service_role   role of the secret/service_role key, BYPASSRLS (NOLOGIN)
--   authenticator  the login role PostgREST connects as; it switches to one
--                  of the three above per request (SET LOCAL ROLE)
-- Every CREATE is guarded so that the file can be applied to a cluster that
-- has them already.

do $$
begin
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
    end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

-- Supabase: the API roles may use schema public ...
grant usage on schema public to anon, authenticated, service_role;

-- ... and are granted ALL on every table, sequence and function created in
-- it (default privileges of the project's owner). schema.sql has to revoke
-- what it does not want; reproducing the grants here makes the tests check
-- that it does.
alter default privileges in schema public
    grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public
    grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public
    grant all on functions to anon, authenticated, service_role;

-- Supabase's per-role statement timeouts. The endpoint applies the settings
-- of the role it switches to, as PostgREST does ("impersonated role
-- settings"); service_role has none unless a test sets one.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
