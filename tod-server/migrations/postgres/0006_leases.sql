-- Background work runs on one replica at a time: whoever holds a job's lease runs it.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     UUID NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
