-- An operation whose provider changes are committed and that only reports the status back to
-- sources-api. The consumer may then leave out application events that change nothing (the
-- echo of that very report among them): nothing older can still be written over them. Reset
-- by every new trigger and every claim.
ALTER TABLE operations ADD COLUMN reporting boolean NOT NULL DEFAULT false;
