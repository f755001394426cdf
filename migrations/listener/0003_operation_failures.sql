-- Failures that will not heal (sources-api refusing a request, an answer that cannot be read,
-- a provider the database refuses), counted toward parking an operation. Failures that heal by
-- themselves (sources-api unreachable, timing out or answering 5xx, the database unavailable)
-- only delay the next attempt: `attempts` counts every attempt, for the backoff.
ALTER TABLE operations ADD COLUMN failures integer NOT NULL DEFAULT 0;
