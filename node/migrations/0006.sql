-- ObsCore makes calib_level mandatory: products catalogued before the node gave a default
-- get the level a product nothing else describes is given (1, instrumental data in a standard
-- format; node::catalog::meta::DEFAULT_CALIB_LEVEL).
UPDATE products SET calib_level = 1 WHERE calib_level IS NULL;
