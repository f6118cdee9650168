-- Test cluster only: the knobs behind the endpoint's /_test/poison and
-- /_test/slow, applied by pg.sh after docs/supabase/schema.sql.
--
-- They are real database behaviour, not endpoint shortcuts: a BEFORE INSERT
-- trigger on each ermd table
--   * raises an error (SQLSTATE 22P02 unless told otherwise) for a row whose
--     id is listed in erm_test.poison, so the whole INSERT statement fails
--     (nothing of the batch lands) and the endpoint maps the PostgreSQL error
--     exactly as it maps any other (22P02 -> 400);
--   * sleeps erm_test.slow.per_row_ms for every row inserted into a table, so
--     that with a statement_timeout on the role (ALTER ROLE service_role SET
--     statement_timeout, applied per request like PostgREST does) a large
--     batch fails with 57014 (-> 500) and a smaller one passes.
-- Both tables are empty by default: the trigger then only costs two lookups.
-- Schema erm_test is not exposed through the endpoint (only public is).

create schema if not exists erm_test;
revoke all on schema erm_test from public;

create table if not exists erm_test.poison (
    tbl      text not null,                      -- table name in public
    id       uuid not null,
    code     text not null default '22P02' check (code ~ '^[0-9A-Z]{5}$'),
    message  text,
    primary key (tbl, id)
);

create table if not exists erm_test.slow (
    tbl         text    primary key,
    per_row_ms  integer not null check (per_row_ms >= 0)
);

-- SECURITY DEFINER: the insert runs as service_role, which has no access to
-- schema erm_test; the trigger reads its two tables as their owner.
create or replace function erm_test.guard() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog, erm_test
as $$
declare
    p  erm_test.poison;
    ms integer;
begin
    select * into p from erm_test.poison
        where tbl = tg_table_name and id = new.id;
    if found then
        raise exception using
            errcode = p.code,
            message = coalesce(p.message,
                format('invalid input value in row %s of %s', new.id,
                       tg_table_name)),
            detail  = 'Poison row: refused by the test cluster''s erm_test.guard trigger (POST /_test/poison).';
    end if;
    select per_row_ms into ms from erm_test.slow where tbl = tg_table_name;
    if ms > 0 then
        perform pg_sleep(ms / 1000.0);
    end if;
    return new;
end
$$;

do $$
declare
    t text;
begin
    foreach t in array array['erm_errors', 'erm_recoveries', 'erm_alerts'] loop
        execute format('drop trigger if exists erm_test_guard on public.%I', t);
        execute format('create trigger erm_test_guard before insert on public.%I '
                       'for each row execute function erm_test.guard()', t);
    end loop;
end
$$;
