-- A CAF can be retired by hand (its remaining folios are then to be annulled at the SII).
ALTER TABLE cafs ADD COLUMN retired_at TIMESTAMPTZ;
