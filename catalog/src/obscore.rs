//! The `ivoa.obscore` table (IVOA ObsCore 1.1) every node serves over TAP.
//!
//! The database behind it is a view named [`SQL_VIEW`] with exactly these columns, plus
//! [`ROW_ID`] (the product's row id) and the unit vector [`SKY_X`], [`SKY_Y`], [`SKY_Z`] of its
//! position, which the cone test uses. [`SKY_INDEX`] is an R*Tree over the unit vectors, with
//! columns `id, x0, x1, y0, y1, z0, z1`.

/// The table's name in ADQL.
pub const TABLE_NAME: &str = "ivoa.obscore";
/// The schema the table belongs to.
pub const SCHEMA_NAME: &str = "ivoa";
pub use crate::table::{Column, Datatype};
use crate::table::{Table, TableKind};

/// The table, as TAP serves it.
pub const TABLE: Table = Table {
    schema: SCHEMA_NAME,
    name: "obscore",
    kind: TableKind::View,
    description: "The products this node holds, as ObsCore 1.1 describes them",
    utype: Some("ivo://ivoa.net/std/obscore#table-1.1"),
    columns: COLUMNS,
    foreign_keys: &[],
    sql: SQL_VIEW,
    row_id: ROW_ID,
    sky: true,
};

/// The SQL view behind the table.
pub const SQL_VIEW: &str = "obscore";
/// The view's column holding the product's row id.
pub const ROW_ID: &str = "_id";
/// The view's columns holding the position as a unit vector.
pub const SKY_X: &str = "_cx";
/// See [`SKY_X`].
pub const SKY_Y: &str = "_cy";
/// See [`SKY_X`].
pub const SKY_Z: &str = "_cz";
/// The R*Tree over unit vectors: `id, x0, x1, y0, y1, z0, z1`, `id` being [`ROW_ID`].
pub const SKY_INDEX: &str = "sky_index";

/// The columns, in ObsCore order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "dataproduct_type",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.code.class"),
        utype: Some("obscore:ObsDataset.dataProductType"),
        description: "Data product type: image, cube, spectrum, sed, timeseries, visibility, event or measurements",
        principal: true,
        indexed: true,
    },
    Column {
        name: "calib_level",
        datatype: Datatype::Int,
        unit: None,
        ucd: Some("meta.code;obs.calib"),
        utype: Some("obscore:ObsDataset.calibLevel"),
        description: "Calibration level: 0 raw, 1 instrumental, 2 calibrated, 3 enhanced, 4 analysis",
        principal: true,
        indexed: false,
    },
    Column {
        name: "obs_collection",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.id"),
        utype: Some("obscore:DataID.Collection"),
        description: "Name of the data collection (the mission or survey)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_id",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.id"),
        utype: Some("obscore:DataID.observationID"),
        description: "Observation identifier",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_title",
        // Titles are free text (the default one joins its parts with " · "): declared
        // unicodeChar in /tap/tables, TAP_SCHEMA and every result alike.
        datatype: Datatype::UnicodeChar,
        unit: None,
        ucd: Some("meta.title;obs"),
        utype: Some("obscore:DataID.Title"),
        description: "Title of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "obs_publisher_did",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.ref.ivoid"),
        utype: Some("obscore:Curation.PublisherDID"),
        description: "Publisher's identifier of the product",
        principal: true,
        indexed: true,
    },
    Column {
        name: "obs_publisher",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.curation"),
        utype: Some("obscore:Curation.Publisher"),
        description: "Publisher of the product",
        principal: false,
        indexed: false,
    },
    Column {
        name: "access_url",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.ref.url"),
        utype: Some("obscore:Access.Reference"),
        description: "Where the product can be fetched",
        principal: true,
        indexed: false,
    },
    Column {
        name: "access_format",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.code.mime"),
        utype: Some("obscore:Access.Format"),
        description: "MIME type of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "access_estsize",
        datatype: Datatype::Long,
        unit: Some("kbyte"),
        ucd: Some("phys.size;meta.file"),
        utype: Some("obscore:Access.Size"),
        description: "Size of the product",
        principal: true,
        indexed: false,
    },
    Column {
        name: "target_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.id;src"),
        utype: Some("obscore:Target.Name"),
        description: "Name of the observed target",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_ra",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: Some("pos.eq.ra"),
        utype: Some("obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1"),
        description: "Right ascension of the centre (ICRS)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_dec",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: Some("pos.eq.dec"),
        utype: Some("obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2"),
        description: "Declination of the centre (ICRS)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "s_fov",
        datatype: Datatype::Double,
        unit: Some("deg"),
        ucd: Some("phys.angSize;instr.fov"),
        utype: Some("obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter"),
        description: "Diameter of the covered region",
        principal: true,
        indexed: false,
    },
    Column {
        name: "s_region",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("pos.outline;obs.field"),
        utype: Some("obscore:Char.SpatialAxis.Coverage.Support.Area"),
        description: "Region covered, as an STC-S string",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_resolution",
        datatype: Datatype::Double,
        unit: Some("arcsec"),
        ucd: Some("pos.angResolution"),
        utype: Some("obscore:Char.SpatialAxis.Resolution.Refval.value"),
        description: "Spatial resolution",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_xel1",
        datatype: Datatype::Long,
        unit: None,
        ucd: Some("meta.number"),
        utype: Some("obscore:Char.SpatialAxis.numBins1"),
        description: "Pixels along the first spatial axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "s_xel2",
        datatype: Datatype::Long,
        unit: None,
        ucd: Some("meta.number"),
        utype: Some("obscore:Char.SpatialAxis.numBins2"),
        description: "Pixels along the second spatial axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "t_min",
        datatype: Datatype::Double,
        unit: Some("d"),
        ucd: Some("time.start;obs.exposure"),
        utype: Some("obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime"),
        description: "Start of the observation (MJD)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "t_max",
        datatype: Datatype::Double,
        unit: Some("d"),
        ucd: Some("time.end;obs.exposure"),
        utype: Some("obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime"),
        description: "End of the observation (MJD)",
        principal: true,
        indexed: true,
    },
    Column {
        name: "t_exptime",
        datatype: Datatype::Double,
        unit: Some("s"),
        ucd: Some("time.duration;obs.exposure"),
        utype: Some("obscore:Char.TimeAxis.Coverage.Support.Extent"),
        description: "Exposure time",
        principal: true,
        indexed: false,
    },
    Column {
        name: "t_resolution",
        datatype: Datatype::Double,
        unit: Some("s"),
        ucd: Some("time.resolution"),
        utype: Some("obscore:Char.TimeAxis.Resolution.Refval.value"),
        description: "Temporal resolution",
        principal: false,
        indexed: false,
    },
    Column {
        name: "t_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: Some("meta.number"),
        utype: Some("obscore:Char.TimeAxis.numBins"),
        description: "Samples along the time axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "em_min",
        datatype: Datatype::Double,
        unit: Some("m"),
        ucd: Some("em.wl;stat.min"),
        utype: Some("obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit"),
        description: "Shortest wavelength covered",
        principal: true,
        indexed: false,
    },
    Column {
        name: "em_max",
        datatype: Datatype::Double,
        unit: Some("m"),
        ucd: Some("em.wl;stat.max"),
        utype: Some("obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit"),
        description: "Longest wavelength covered",
        principal: true,
        indexed: false,
    },
    Column {
        name: "em_res_power",
        datatype: Datatype::Double,
        unit: None,
        ucd: Some("spect.resolution"),
        utype: Some("obscore:Char.SpectralAxis.Resolution.ResolPower.refVal"),
        description: "Spectral resolving power",
        principal: false,
        indexed: false,
    },
    Column {
        name: "em_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: Some("meta.number"),
        utype: Some("obscore:Char.SpectralAxis.numBins"),
        description: "Samples along the spectral axis",
        principal: false,
        indexed: false,
    },
    Column {
        name: "o_ucd",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.ucd"),
        utype: Some("obscore:Char.ObservableAxis.ucd"),
        description: "UCD of the observable (the pixel values)",
        principal: false,
        indexed: false,
    },
    Column {
        name: "pol_states",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.code;phys.polarization"),
        utype: Some("obscore:Char.PolarizationAxis.stateList"),
        description: "Polarisation states",
        principal: false,
        indexed: false,
    },
    Column {
        name: "pol_xel",
        datatype: Datatype::Long,
        unit: None,
        ucd: Some("meta.number"),
        utype: Some("obscore:Char.PolarizationAxis.numBins"),
        description: "Polarisation samples",
        principal: false,
        indexed: false,
    },
    Column {
        name: "facility_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.id;instr.tel"),
        utype: Some("obscore:Provenance.ObsConfig.Facility.name"),
        description: "Telescope or observatory",
        principal: true,
        indexed: true,
    },
    Column {
        name: "instrument_name",
        datatype: Datatype::Char,
        unit: None,
        ucd: Some("meta.id;instr"),
        utype: Some("obscore:Provenance.ObsConfig.Instrument.name"),
        description: "Instrument",
        principal: true,
        indexed: true,
    },
];

/// The column of that name (ADQL identifiers are case-insensitive unless quoted; quoted names
/// are matched exactly by the caller).
pub fn column(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_found() {
        for (i, c) in COLUMNS.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(
                COLUMNS[i + 1..].iter().all(|d| d.name != c.name),
                "{}",
                c.name
            );
            assert_eq!(column(&c.name.to_ascii_uppercase()), Some(c));
        }
        assert_eq!(column("password"), None);
    }

    #[test]
    fn ucds_follow_obscore() {
        // ObsCore 1.1 table 5: the product type is a class code, not an identifier.
        let ucd = |name: &str| column(name).and_then(|c| c.ucd);
        assert_eq!(ucd("dataproduct_type"), Some("meta.code.class"));
        assert_eq!(ucd("calib_level"), Some("meta.code;obs.calib"));
        assert_eq!(ucd("obs_id"), Some("meta.id"));
    }
}
