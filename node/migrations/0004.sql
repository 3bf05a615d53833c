-- A collection whose scan started and has not finished: the scan is running, or it was
-- interrupted (the process was killed, the machine stopped) and the collection holds only part
-- of the directory. `orrery dataset add` sets it when it starts and clears it in the transaction
-- that ends the scan; the node advertises such a collection as incomplete.
ALTER TABLE collections ADD COLUMN scan_started_at INTEGER;

-- The defaults (`orrery dataset add`'s --mission, --licence, --calib-level …) the collection's
-- products were last read with, as JSON. A later scan keeps them unless given new ones, and reads
-- every file again when they changed, so a changed flag reaches every product.
ALTER TABLE collections ADD COLUMN defaults TEXT;
