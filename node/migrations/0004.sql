-- A collection whose scan started and has not finished: the scan is running, or it was
-- interrupted (the process was killed, the machine stopped) and the collection holds only part
-- of the directory. `orrery dataset add` sets it when it starts and clears it in the transaction
-- that ends the scan; the node advertises such a collection as incomplete.
ALTER TABLE collections ADD COLUMN scan_started_at INTEGER;
