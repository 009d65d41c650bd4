-- Background work runs on one replica at a time: whoever holds a job's lease runs it.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
