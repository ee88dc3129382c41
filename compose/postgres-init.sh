#!/bin/sh
# Run once by the postgres:16 image, on its first start with an empty volume (/docker-entrypoint-initdb.d):
# create the `swarmq` role that every swarmq service logs in as, and the `swarmq` database it owns. The role is
# no superuser and may not create roles or databases: it owns its tables, functions and triggers (the
# migrations create them) and nothing else. The password comes from the environment through psql's \getenv,
# never from a command line, and psql's :'pw' quotes it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv pw SWARMQ_DB_PASSWORD
CREATE ROLE swarmq LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'pw';
CREATE DATABASE swarmq OWNER swarmq;
REVOKE ALL ON DATABASE swarmq FROM PUBLIC;
SQL
