-- Reports an agent's spool dropped to stay within its bounds, as the agent last counted them
-- (each batch carries the running count): the API shows it, and ingest publishes
-- `agent.data_lost` when it grows, so lost data is never silent.
ALTER TABLE agents ADD COLUMN spool_dropped BIGINT NOT NULL DEFAULT 0;
