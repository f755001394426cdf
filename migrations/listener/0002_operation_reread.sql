-- What a queued operation reads again from sources-api: everything, or only the application
-- when every event behind it changed only the application of a source that has a provider
-- (Application.update, .pause, .unpause; among them the echo of the listener's own status
-- report). Merged like the kind: `application` only while every trigger asks for no more.
ALTER TABLE operations ADD COLUMN reread text NOT NULL DEFAULT 'all'
    CHECK (reread IN ('all', 'application'));
