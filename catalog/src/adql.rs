//! ADQL (to be written).
