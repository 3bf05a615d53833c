//! VOTable (to be written).
