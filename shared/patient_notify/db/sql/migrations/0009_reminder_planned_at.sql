-- When the appointment's current reminder plan (its reminder day) became known to us. A reminder
-- whose window had already ended by then is late because of the booking (an appointment made less
-- than three days ahead, a move to a nearer day), not because of an outage: the scheduler reports
-- those in one daily alert instead of one per appointment. Rows from before this migration count
-- as known since now.
ALTER TABLE appointments ADD COLUMN reminder_planned_at timestamptz NOT NULL DEFAULT now();
