-- The signal trend (detector, `signal_degradation` rules, plugins, backtests) reads the hourly
-- sums too. It leaves 0 dBm (RouterOS's "no reading") out where the history counts it, so each
-- hour also counts its zeros. Sums made before this lack that count: they are dropped and summed
-- again from the registrations (the next passes walk back 30 days, a few seconds at a time;
-- reads take the registrations meanwhile, so no answer changes).
ALTER TABLE signal_hourly ADD COLUMN zero_samples BIGINT NOT NULL DEFAULT 0;
DELETE FROM signal_hourly;
DELETE FROM signal_hourly_dirty;
DELETE FROM signal_rollup_state;
